//! Insights: for each customer, from one snapshot read, the churn score and its reasons, the segment, the offers
//! and the next best action chosen by the engagement policy.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde::Serialize;

use super::policy::{Action, Facts, OfferSource, Policy, PolicyStore, Vocabulary};
use crate::batching::Deadline;
use crate::error::ScoreError;
use crate::model::catalogue::{Catalogue, Item, top_k_where};
use crate::model::spec::{ModelKind, RiskBand, Segment};
use crate::model::{ModelHandle, ModelRegistry};
use crate::scoring::{self, AppState, ItemError, Pending, Scored};
use crate::snapshot::{CustomerId, FeatureSnapshot};

/// The model behind churn scores and reasons.
pub const CHURN_MODEL: &str = "churn";
/// The model behind segments.
pub const SEGMENTATION_MODEL: &str = "segmentation";
/// The model behind offers.
pub const RECOMMENDATION_MODEL: &str = "recommendation";

/// The served engagement policy and what insights cache about it.
pub struct Engagement {
    /// The policy file, hot-reloaded (None: no policy configured; insights carry no next best action).
    pub policies: Option<PolicyStore>,
    /// Which catalogue items each rule's offer filter allows, for the served policy and catalogue.
    masks: ArcSwapOption<OfferMasks>,
}

/// Per rule, the catalogue items its offer filter allows (None: the rule has no filter).
pub struct OfferMasks {
    policy: usize,
    catalogue: usize,
    rules: Vec<Option<Vec<bool>>>,
}

impl Engagement {
    /// Wraps a policy store (or none).
    pub fn new(policies: Option<PolicyStore>) -> Engagement {
        Engagement {
            policies,
            masks: ArcSwapOption::empty(),
        }
    }

    /// The allow-masks of `policy`'s offer filters over `catalogue`, computed once per (policy, catalogue).
    pub fn masks(&self, policy: &Arc<Policy>, catalogue: &Catalogue) -> Arc<OfferMasks> {
        let (p, c) = (
            Arc::as_ptr(policy) as usize,
            catalogue as *const Catalogue as usize,
        );
        if let Some(m) = self.masks.load_full()
            && m.policy == p
            && m.catalogue == c
        {
            return m;
        }
        let rules = policy
            .offer_filters()
            .map(|filter| {
                filter.map(|f| {
                    (catalogue.items.iter())
                        .map(|i| f.allows(i.category.as_deref(), i.price_band.as_deref()))
                        .collect()
                })
            })
            .collect();
        let masks = Arc::new(OfferMasks {
            policy: p,
            catalogue: c,
            rules,
        });
        self.masks.store(Some(masks.clone()));
        masks
    }
}

/// What the policy may name: the served models' features and segments, and the catalogue's values; the manifests
/// of folders that failed to load or were unloaded count too, so a model being down does not refuse the policy.
pub fn vocabulary(models: &ModelRegistry) -> Vocabulary {
    let all = models.all();
    let unserved = models.unserved_specs();
    let catalogues: Vec<&Catalogue> = all.iter().filter_map(|m| m.catalogue.as_ref()).collect();
    vocabulary_of(
        all.iter().map(|m| &m.spec).chain(unserved.iter()),
        &catalogues,
    )
}

/// The vocabulary of these manifests (features, segment keys) and catalogues (categories, price bands).
pub fn vocabulary_of<'a>(
    specs: impl Iterator<Item = &'a crate::model::ModelSpec> + Clone,
    catalogues: &[&Catalogue],
) -> Vocabulary {
    let mut vocab = Vocabulary::from_specs(specs.clone());
    for spec in specs {
        if let ModelKind::Segmentation(g) = &spec.kind {
            vocab
                .segments
                .extend(g.segments.iter().map(|s| s.key.clone()));
        }
    }
    for catalogue in catalogues {
        vocab.add_catalogue(catalogue);
    }
    vocab
}

/// One offer: a catalogue item and its recommender score.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Offer {
    /// The item.
    #[serde(flatten)]
    pub item: Item,
    /// Recommender score (0 for popularity picks).
    pub score: f32,
}

/// A reason for the churn score.
#[derive(Debug, Serialize, utoipa::ToSchema)]
// Named apart from the scoring routes' `Reason` in the OpenAPI document.
#[schema(as = InsightReason)]
pub struct Reason {
    /// Feature name.
    pub name: String,
    /// The customer's value (null when missing).
    pub value: Option<f32>,
    /// Contribution to the churn margin.
    pub contribution: f32,
    /// `raises` or `lowers` the risk (`none` for zero).
    pub direction: &'static str,
    /// What the feature means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// The churn part of an insight.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Churn {
    /// Probability that the customer churns.
    pub probability: f32,
    /// Risk band.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskBand>,
    /// The largest contributions, largest first.
    pub reasons: Vec<Reason>,
}

/// The action the policy chose and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NextBestAction {
    /// What to do.
    pub action: Action,
    /// How to reach the customer.
    pub channel: String,
    /// 1 = most urgent.
    pub priority: u32,
    /// The rule that matched.
    pub rule: String,
    /// The values of the variables its condition names, for this customer.
    pub matched_on: serde_json::Map<String, serde_json::Value>,
    /// The rule's expected value, to rank customers by (null when it has none or data was missing).
    pub expected_value: Option<f64>,
}

/// A per-customer failure.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InsightError {
    /// snake_case code.
    pub code: &'static str,
    /// Human sentence.
    pub message: String,
}

/// Everything known about one customer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Insight {
    /// The customer, echoed as given.
    pub customer_id: CustomerId,
    /// True for a customer not in the snapshot whom a cold-start rule answered.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cold_start: bool,
    /// Churn score and reasons (absent without a churn model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<Churn>,
    /// The customer's segment (absent without a segmentation model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    /// Offers, best first (owned items excluded; the matched rule's filter applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offers: Option<Vec<Offer>>,
    /// What to do next (absent when no policy is served or no rule matched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_best_action: Option<NextBestAction>,
    /// Why this customer has no insight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<InsightError>,
}

/// A model that answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelVersion {
    /// Model name.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// The reply of an insights request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Insights {
    /// The snapshot every answer came from.
    pub snapshot: String,
    /// Present (true) only when that snapshot is older than --max-snapshot-age.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// The models that answered.
    pub models: Vec<ModelVersion>,
    /// The served policy's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// What is not served, so parts of the answer are absent (models by name, or "policy").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// One insight per requested customer, in request order.
    pub results: Vec<Insight>,
}

/// What an insights request asks for.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// Offers per customer.
    pub offers: usize,
    /// Churn reasons per customer.
    pub reasons: usize,
}

/// Scores, explains, segments and recommends `ids` from one snapshot read, then lets the policy choose each
/// customer's next best action. Models that are not served are listed in `missing`; unknown customers are
/// per-item errors unless a cold-start rule answers them.
pub async fn insights(
    state: &AppState,
    ids: &[CustomerId],
    ask: Ask,
    deadline: Option<Deadline>,
) -> Result<Insights, ScoreError> {
    scoring::check_count("customer_ids", ids.len(), &state.limits)?;
    let (snapshot, stale) = scoring::served_snapshot(state)?;
    let rows = scoring::lookup(&snapshot, ids);
    let mut missing = Vec::new();
    let mut model = |name: &str, kind: &'static str| match state.models.get(name) {
        Some(m) if m.spec.kind.name() == kind => Some(m),
        _ => {
            missing.push(name.to_string());
            None
        }
    };
    let (churn, segmentation, recommender) = (
        model(CHURN_MODEL, "tabular"),
        model(SEGMENTATION_MODEL, "segmentation"),
        model(RECOMMENDATION_MODEL, "recommender"),
    );
    // Every model's job is queued before any is awaited: they run on their own workers at the same time.
    let submit = |m: &Option<Arc<ModelHandle>>,
                  explain: bool|
     -> Result<Option<Pending>, ScoreError> {
        m.clone()
            .map(|m| scoring::submit_customers_until(m, &snapshot, ids, &rows, explain, deadline))
            .transpose()
    };
    let (churn, segmentation, recommender) = (
        submit(&churn, ask.reasons > 0)?,
        submit(&segmentation, false)?,
        submit(&recommender, false)?,
    );
    let (churn, segmentation, recommender) = (
        wait(churn).await?,
        wait(segmentation).await?,
        wait(recommender).await?,
    );
    let policy = state.engagement.policies.as_ref().map(PolicyStore::current);
    if policy.is_none() {
        missing.push("policy".into());
    }
    let parts = Parts {
        snapshot: &snapshot,
        churn: churn.as_ref(),
        segmentation: segmentation.as_ref(),
        recommender: recommender.as_ref(),
        policy: policy.as_ref(),
        masks: match (
            &policy,
            recommender
                .as_ref()
                .and_then(|r| r.model.catalogue.as_ref()),
        ) {
            (Some(p), Some(c)) => Some(state.engagement.masks(p, c)),
            _ => None,
        },
        ask,
    };
    let features = policy
        .as_ref()
        .map(|p| snapshot.layout(p.features_used()))
        .transpose()
        .map_err(|column| {
            ScoreError::NotReady(format!(
                "the engagement policy names '{column}', which the served snapshot lacks"
            ))
        })?;
    let results = ids
        .iter()
        .enumerate()
        .map(|(i, id)| parts.insight(i, id, rows[i], features.as_ref(), Some(&state.metrics)))
        .collect();
    let models = [&churn, &segmentation, &recommender]
        .into_iter()
        .flatten()
        .map(|s| ModelVersion {
            name: s.model.spec.name.clone(),
            version: s.model.spec.version.clone(),
        })
        .collect();
    Ok(Insights {
        snapshot: snapshot.version.clone(),
        stale,
        models,
        policy: policy.map(|p| p.version.clone()),
        missing,
        results,
    })
}

/// The answer of a job that was submitted (None: its model is not served).
async fn wait(pending: Option<Pending>) -> Result<Option<Scored>, ScoreError> {
    match pending {
        Some(p) => Ok(Some(p.wait().await?)),
        None => Ok(None),
    }
}

/// What one request's (or one batch chunk's) customers are answered from: the HTTP route and `score-batch` both
/// answer each customer with [`Parts::insight`].
pub struct Parts<'a> {
    /// The snapshot the customers' features (and owned items) are read from.
    pub snapshot: &'a FeatureSnapshot,
    /// The churn model's answers, per customer in order (None: not served or not asked).
    pub churn: Option<&'a Scored>,
    /// The segmentation model's answers.
    pub segmentation: Option<&'a Scored>,
    /// The recommender's answers.
    pub recommender: Option<&'a Scored>,
    /// The engagement policy choosing next best actions.
    pub policy: Option<&'a Arc<Policy>>,
    /// The policy's offer-filter masks over the recommender's catalogue ([`Engagement::masks`]).
    pub masks: Option<Arc<OfferMasks>>,
    /// Offers and reasons per customer.
    pub ask: Ask,
}

impl Parts<'_> {
    /// The insight of the `i`-th customer `id`, found at snapshot row `row`; `features` is where the policy's
    /// features sit in the snapshot's rows. Decisions are counted in `metrics` when given.
    pub fn insight(
        &self,
        i: usize,
        id: &CustomerId,
        row: Option<usize>,
        features: Option<&crate::snapshot::Layout>,
        metrics: Option<&crate::telemetry::Metrics>,
    ) -> Insight {
        let churn = self.churn.and_then(|s| churn_of(s, i, self.ask.reasons));
        let segment = self.segmentation.and_then(|s| segment_of(s, i));
        let catalogue = self.recommender.and_then(|r| r.model.catalogue.as_ref());
        let owned = self.owned(i, catalogue);
        let offer_count = catalogue.map_or(0, |c| c.len().saturating_sub(owned.len()));
        // The policy's view of the customer: raising reasons, its features (missing = None).
        let raising: Vec<&str> = churn.as_ref().map_or(Vec::new(), |c| {
            (c.reasons.iter())
                .filter(|r| r.contribution > 0.0)
                .map(|r| r.name.as_str())
                .collect()
        });
        let mut values = Vec::new();
        if let (Some(layout), Some(row)) = (features, row) {
            self.snapshot.gather(row, layout, &mut values);
        }
        let named: Vec<(&str, Option<f64>)> = match (self.policy, row) {
            (Some(p), Some(_)) => (p.features_used().iter())
                .zip(&values)
                .map(|(f, v)| (f.as_str(), (!v.is_nan()).then_some(f64::from(*v))))
                .collect(),
            _ => Vec::new(),
        };
        let risk = churn.as_ref().and_then(|c| c.risk).map(RiskBand::as_str);
        let facts = Facts {
            known: row.is_some(),
            churn_probability: churn.as_ref().map(|c| f64::from(c.probability)),
            risk,
            reasons: &raising,
            segment: segment.as_ref().map(|s| s.key.as_str()),
            segment_name: segment.as_ref().map(|s| s.name.as_str()),
            offer_count: offer_count as i64,
            features: &named,
        };
        let decision = self.policy.and_then(|p| {
            let d = p.decide(&facts)?;
            let rule = p.rule_index(d.rule)?;
            Some((d, rule))
        });
        if row.is_none() && decision.is_none() {
            return unknown(id, self.snapshot);
        }
        if let (Some((d, _)), Some(metrics)) = (&decision, metrics) {
            metrics
                .decisions
                .with_label_values(&[d.rule, d.action.as_str()])
                .inc();
        }
        let offers = catalogue.map(|catalogue| {
            let filter = decision.as_ref().and_then(|(d, _)| d.offers);
            let mask = decision.as_ref().and_then(|(_, rule)| {
                self.masks
                    .as_ref()
                    .and_then(|m| m.rules.get(*rule))
                    .and_then(Option::as_ref)
            });
            let k = filter
                .and_then(|f| f.max)
                .unwrap_or(self.ask.offers)
                .min(self.ask.offers);
            let allowed =
                |item: usize| !owned.contains(&(item as u32)) && mask.is_none_or(|m| m[item]);
            let popular = row.is_none() || filter.is_some_and(|f| f.source == OfferSource::Popular);
            let picks: Vec<(u32, f32)> = match (popular, self.recommender) {
                (false, Some(r)) => match r.items[i] {
                    Ok(out) => top_k_where(r.output_of(out), k, allowed),
                    Err(_) => Vec::new(),
                },
                _ => catalogue
                    .popular()
                    .filter(|&item| allowed(item as usize))
                    .take(k)
                    .map(|item| (item, 0.0))
                    .collect(),
            };
            offers_of(catalogue, &picks)
        });
        Insight {
            customer_id: id.clone(),
            cold_start: row.is_none(),
            churn,
            segment,
            offers,
            next_best_action: decision.map(|(d, _)| NextBestAction {
                action: d.action,
                channel: d.channel.to_string(),
                priority: d.priority,
                rule: d.rule.to_string(),
                matched_on: d
                    .matched_on
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                expected_value: d.expected_value,
            }),
            error: None,
        }
    }

    /// Catalogue indices of the items customer `i` owns.
    fn owned(&self, i: usize, catalogue: Option<&Catalogue>) -> Vec<u32> {
        let (Some(catalogue), Some(r)) = (catalogue, self.recommender) else {
            return Vec::new();
        };
        let (Some(owned), Some(Some(row))) = (&self.snapshot.owned, r.snapshot_rows.get(i)) else {
            return Vec::new();
        };
        owned
            .of(*row)
            .filter_map(|id| catalogue.index_of(id))
            .collect()
    }
}

fn unknown(id: &CustomerId, snapshot: &FeatureSnapshot) -> Insight {
    let e = ItemError {
        code: "unknown_customer",
        message: format!("customer '{id}' is not in snapshot {}", snapshot.version),
    };
    Insight {
        customer_id: id.clone(),
        cold_start: false,
        churn: None,
        segment: None,
        offers: None,
        next_best_action: None,
        error: Some(InsightError {
            code: e.code,
            message: e.message,
        }),
    }
}

fn churn_of(scored: &Scored, i: usize, reasons: usize) -> Option<Churn> {
    let ModelKind::Tabular(t) = &scored.model.spec.kind else {
        return None;
    };
    let row = *scored.items[i].as_ref().ok()?;
    let probability = scored.output_of(row)[t.positive];
    let reasons = match &scored.explained {
        Some(explained) if reasons > 0 => {
            let spec = &scored.model.spec;
            let features = spec.feature_columns();
            let values = explained.inputs_of(row);
            scoring::top_contributions(explained, row, Some(reasons))
                .into_iter()
                .map(|(f, contribution)| {
                    let info = spec.feature_info.get(&features[f]);
                    Reason {
                        name: features[f].clone(),
                        value: values.get(f).copied().filter(|v| !v.is_nan()),
                        contribution,
                        direction: scoring::direction(contribution),
                        description: info
                            .map(|x| x.description.clone())
                            .filter(|d| !d.is_empty()),
                        unit: info.and_then(|x| x.unit.clone()),
                    }
                })
                .collect()
        }
        _ => Vec::new(),
    };
    Some(Churn {
        probability,
        risk: t.risk.map(|r| r.band(probability)),
        reasons,
    })
}

fn segment_of(scored: &Scored, i: usize) -> Option<Segment> {
    let ModelKind::Segmentation(g) = &scored.model.spec.kind else {
        return None;
    };
    let row = *scored.items[i].as_ref().ok()?;
    g.segments
        .get(scoring::nearest(scored.output_of(row)))
        .cloned()
}

fn offers_of(catalogue: &Catalogue, picks: &[(u32, f32)]) -> Vec<Offer> {
    picks
        .iter()
        .map(|&(i, score)| Offer {
            item: catalogue.items[i as usize].clone(),
            score,
        })
        .collect()
}
