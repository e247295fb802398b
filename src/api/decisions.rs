//! Decision log rows of scoring and insights replies: built only for the sampled results (none at the default
//! rate of plain scoring), handed to the feedback writer without waiting.

use crate::engagement::insights::Insights;
use crate::feedback::{DecisionIds, DecisionRow, FeedbackLog};
use crate::model::spec::ModelKind;
use crate::scoring::{self, AppState, Scored};
use crate::snapshot::{CustomerId, FeatureSnapshot};
use crate::text::softmax;

/// The decision log's name of a scoring route (`named` as `score` knows it).
pub fn route_of(named: Option<&'static str>) -> &'static str {
    match named {
        Some("tabular") => "churn_score",
        Some("recommender") => "recommendations",
        Some("text") => "sentiment",
        _ => "model_score",
    }
}

/// The log and its rate for this kind of reply, when anything is to be logged.
fn sampling(state: &AppState, insights: bool) -> Option<(&FeedbackLog, f64)> {
    let log = state.feedback.as_ref()?;
    let options = log.options();
    let rate = match insights {
        true => options.decision_sample_insights,
        false => options.decision_sample,
    };
    (rate > 0.0).then_some((log, rate))
}

/// The snapshot row of a customer as a JSON object `{column: value}` (nulls for missing values).
fn features_json(snapshot: &FeatureSnapshot, row: usize) -> String {
    let map: serde_json::Map<String, serde_json::Value> = snapshot
        .columns
        .iter()
        .zip(snapshot.row(row))
        .map(|(name, v)| {
            let value = serde_json::Number::from_f64(f64::from(*v))
                .map_or(serde_json::Value::Null, serde_json::Value::Number);
            (name.clone(), value)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Logs the sampled results of one scoring reply; `customers` are the request's ids (None for inline rows and
/// texts), `exclude_owned` the recommendation flag.
pub fn log_scored(
    state: &AppState,
    route: &'static str,
    scored: &Scored,
    made: &DecisionIds,
    customers: Option<&[CustomerId]>,
    exclude_owned: Option<bool>,
) {
    let Some((log, rate)) = sampling(state, false) else {
        return;
    };
    let spec = &scored.model.spec;
    let sampled: Vec<usize> = (0..scored.items.len())
        .filter(|&i| scored.items[i].is_ok() && made.get(i).sampled(rate))
        .collect();
    if sampled.is_empty() {
        return;
    }
    let top_items = match (&spec.kind, exclude_owned) {
        (ModelKind::Recommender(_), Some(exclude)) => Some(scoring::recommend(scored, 1, exclude)),
        _ => None,
    };
    let snapshot = scored.snapshot.as_deref().filter(|_| customers.is_some());
    let features = log.options().decision_features;
    let rows = sampled
        .into_iter()
        .filter_map(|i| {
            let row = *scored.items[i].as_ref().ok()?;
            let mut d = DecisionRow {
                decision_id: made.get(i).as_str().to_string(),
                customer_id: customers.and_then(|c| c.get(i)).map(ToString::to_string),
                route: route.to_string(),
                model: spec.name.clone(),
                model_version: spec.version.clone(),
                models: format!("{}={}", spec.name, spec.version),
                snapshot_version: snapshot.map(|s| s.version.clone()),
                ..Default::default()
            };
            let out = scored.output_of(row);
            match &spec.kind {
                ModelKind::Tabular(t) => {
                    let p = out[t.positive];
                    d.score = Some(f64::from(p));
                    d.risk = t.risk.map(|r| r.band(p).as_str().to_string());
                }
                ModelKind::Segmentation(g) => {
                    d.segment = g.segments.get(scoring::nearest(out)).map(|s| s.key.clone());
                }
                ModelKind::Recommender(_) => {
                    let top = top_items
                        .as_ref()?
                        .get(i)?
                        .as_ref()
                        .ok()?
                        .items
                        .first()
                        .copied();
                    if let (Some((item, score)), Some(catalogue)) = (top, &scored.model.catalogue) {
                        d.item_id = catalogue
                            .items
                            .get(item as usize)
                            .map(|c| c.item_id.clone());
                        d.score = Some(f64::from(score));
                    }
                }
                ModelKind::Text(_) => {
                    d.score = softmax(out).into_iter().reduce(f32::max).map(f64::from);
                }
            }
            if features {
                let snapshot_row = scored.snapshot_rows.get(i).copied().flatten();
                d.features = snapshot.zip(snapshot_row).map(|(s, r)| features_json(s, r));
            }
            Some(d)
        })
        .collect();
    log.log_decisions(rows);
}

/// Logs the sampled results of one insights reply.
pub fn log_insights(state: &AppState, reply: &Insights, made: &DecisionIds) {
    let Some((log, rate)) = sampling(state, true) else {
        return;
    };
    let version_of = |name: &str| {
        reply
            .models
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.version.clone())
    };
    let models = reply
        .models
        .iter()
        .map(|m| format!("{}={}", m.name, m.version))
        .collect::<Vec<_>>()
        .join(";");
    let snapshot = state
        .snapshots
        .current()
        .filter(|s| s.version == reply.snapshot && log.options().decision_features);
    let rows = reply
        .results
        .iter()
        .enumerate()
        .filter(|(i, r)| r.error.is_none() && made.get(*i).sampled(rate))
        .map(|(i, r)| {
            let nba = r.next_best_action.as_ref();
            DecisionRow {
                decision_id: made.get(i).as_str().to_string(),
                customer_id: Some(r.customer_id.to_string()),
                route: "insights".into(),
                model: "churn".into(),
                model_version: version_of("churn").unwrap_or_default(),
                models: models.clone(),
                snapshot_version: Some(reply.snapshot.clone()),
                score: r.churn.as_ref().map(|c| f64::from(c.probability)),
                risk: r
                    .churn
                    .as_ref()
                    .and_then(|c| c.risk)
                    .map(|b| b.as_str().to_string()),
                segment: r.segment.as_ref().map(|s| s.key.clone()),
                action: nba.map(|n| n.action.as_str().to_string()),
                item_id: r
                    .offers
                    .as_ref()
                    .and_then(|o| o.first())
                    .map(|o| o.item.item_id.clone()),
                expected_value: nba.and_then(|n| n.expected_value),
                features: snapshot
                    .as_deref()
                    .and_then(|s| s.lookup(&r.customer_id).map(|row| features_json(s, row))),
                ..Default::default()
            }
        })
        .collect();
    log.log_decisions(rows);
}
