//! The use cases behind the routes: resolve the model, take one snapshot for the whole request, gather rows,
//! submit them to the model's queue, await, and hand back per-item outcomes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::StalePolicy;
use crate::error::ScoreError;
use crate::model::spec::{MissingPolicy, ModelKind, TabularSpec};
use crate::model::{ModelHandle, ModelRegistry};
use crate::snapshot::{CustomerId, FeatureSnapshot, SnapshotReloader, SnapshotStore};
use crate::telemetry::Metrics;

/// What the HTTP layer shares between requests.
pub struct AppState {
    /// The served models.
    pub models: ModelRegistry,
    /// The served snapshot.
    pub snapshots: SnapshotStore,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Request size limits.
    pub limits: Limits,
    /// Rescans the snapshots path (the watcher thread and the admin route share it).
    pub reloader: SnapshotReloader,
    /// When a snapshot counts as stale and what that means.
    pub freshness: Freshness,
    /// Bearer token of the admin and repository routes, if any.
    pub admin_token: Option<String>,
}

/// The staleness rule.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// Age after which the snapshot is stale (None: never).
    pub max_age: Option<Duration>,
    /// Serve-and-flag or refuse.
    pub policy: StalePolicy,
}

impl Freshness {
    /// Whether `snapshot` is past its maximum age; Some(reason) when it is.
    pub fn stale_reason(&self, snapshot: &FeatureSnapshot) -> Option<String> {
        let max = self.max_age?;
        let age = snapshot.age();
        (age > max).then(|| {
            format!(
                "snapshot {} is {}s old, more than --max-snapshot-age {}s",
                snapshot.version,
                age.as_secs(),
                max.as_secs()
            )
        })
    }
}

/// Caps on what one request may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most ids, rows or tensor rows per request.
    pub max_items: usize,
    /// Largest body in bytes.
    pub max_body_bytes: usize,
}

/// A per-item failure inside a successful batch reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemError {
    /// snake_case code
    pub code: &'static str,
    /// human sentence
    pub message: String,
}

/// Where an item's answer is: a row of the output, or an error.
pub type ItemOutcome = Result<usize, ItemError>;

/// The outcome of scoring a list of customers or rows with a tabular model.
pub struct Scored {
    /// The model that answered.
    pub model: Arc<ModelHandle>,
    /// The snapshot the features came from (None for inline rows).
    pub snapshot: Option<Arc<FeatureSnapshot>>,
    /// Whether that snapshot is past --max-snapshot-age (served anyway under the serve policy).
    pub stale: bool,
    /// One outcome per requested item, in request order.
    pub items: Vec<ItemOutcome>,
    /// Output rows (class probabilities), `labels` values each.
    pub probabilities: Vec<f32>,
    /// Microseconds waiting in the queue.
    pub queue_us: u64,
    /// Microseconds of inference.
    pub inference_us: u64,
}

impl Scored {
    /// The class probabilities of output row `row`.
    pub fn probabilities_of(&self, row: usize) -> &[f32] {
        let width = self.tabular().labels.len();
        &self.probabilities[row * width..(row + 1) * width]
    }

    /// The tabular settings of the model that answered.
    pub fn tabular(&self) -> &TabularSpec {
        let ModelKind::Tabular(t) = &self.model.spec.kind;
        t
    }
}

/// The model `name`, which must be tabular.
pub fn tabular_model(models: &ModelRegistry, name: &str) -> Result<Arc<ModelHandle>, ScoreError> {
    let model = models
        .get(name)
        .ok_or_else(|| ScoreError::UnknownModel(name.to_string()))?;
    match &model.spec.kind {
        ModelKind::Tabular(_) => Ok(model.clone()),
    }
}

fn tabular_spec(model: &ModelHandle) -> &TabularSpec {
    let ModelKind::Tabular(t) = &model.spec.kind;
    t
}

/// Checks a list's length against the request cap.
pub fn check_count(what: &str, n: usize, limits: &Limits) -> Result<(), ScoreError> {
    if n == 0 {
        return Err(ScoreError::BadRequest(format!(
            "'{what}' is empty; send at least one"
        )));
    }
    if n > limits.max_items {
        return Err(ScoreError::BadRequest(format!(
            "'{what}' has {n} items; at most {} are accepted per request",
            limits.max_items
        )));
    }
    Ok(())
}

/// Scores customers of the served snapshot; unknown ids become per-item errors.
pub async fn score_customers(
    state: &AppState,
    model: &str,
    ids: &[CustomerId],
) -> Result<Scored, ScoreError> {
    check_count("customer_ids", ids.len(), &state.limits)?;
    let model = tabular_model(&state.models, model)?;
    let snapshot = state.snapshots.current().ok_or_else(|| {
        ScoreError::NotReady(match state.snapshots.last_error() {
            Some(e) => format!("no snapshot is served yet (last attempt: {e})"),
            None => "no snapshot is served yet".to_string(),
        })
    })?;
    let stale = match state.freshness.stale_reason(&snapshot) {
        Some(reason) if state.freshness.policy == StalePolicy::Refuse => {
            return Err(ScoreError::Stale(reason));
        }
        Some(_) => true,
        None => false,
    };
    let spec = tabular_spec(&model);
    let layout = snapshot.layout(&spec.features).map_err(|column| {
        ScoreError::NotReady(format!(
            "the served snapshot lacks column '{column}' of model '{}'",
            model.spec.name
        ))
    })?;
    let width = spec.features.len();
    let mut input = Vec::with_capacity(ids.len() * width);
    let mut items = Vec::with_capacity(ids.len());
    let mut rows = 0;
    for id in ids {
        let Some(row) = snapshot.lookup(id) else {
            items.push(Err(ItemError {
                code: "unknown_customer",
                message: format!("customer '{id}' is not in snapshot {}", snapshot.version),
            }));
            continue;
        };
        let start = input.len();
        snapshot.gather(row, &layout, &mut input);
        match apply_missing(spec, &mut input[start..]) {
            Ok(()) => {
                items.push(Ok(rows));
                rows += 1;
            }
            Err(column) => {
                input.truncate(start);
                items.push(Err(ItemError {
                    code: "missing_feature",
                    message: format!("customer '{id}' has no value for '{column}' and model '{}' rejects missing values", model.spec.name),
                }));
            }
        }
    }
    let mut scored = run(model, Some(snapshot), items, input, rows).await?;
    scored.stale = stale;
    Ok(scored)
}

/// Scores inline feature rows; every feature is required and must be a number (or null where the model allows).
pub async fn score_rows(
    state: &AppState,
    model: &str,
    rows: &[Map<String, Value>],
) -> Result<Scored, ScoreError> {
    check_count("rows", rows.len(), &state.limits)?;
    let model = tabular_model(&state.models, model)?;
    let spec = tabular_spec(&model);
    let mut input = Vec::with_capacity(rows.len() * spec.features.len());
    for (i, row) in rows.iter().enumerate() {
        row_features(spec, i, row, &mut input)?;
    }
    let items = (0..rows.len()).map(Ok).collect();
    run(model, None, items, input, rows.len()).await
}

/// Scores a row-major float matrix as given (the v2 infer path).
pub async fn score_matrix(
    model: Arc<ModelHandle>,
    input: Vec<f32>,
    rows: usize,
) -> Result<Scored, ScoreError> {
    let items = (0..rows).map(Ok).collect();
    run(model, None, items, input, rows).await
}

async fn run(
    model: Arc<ModelHandle>,
    snapshot: Option<Arc<FeatureSnapshot>>,
    items: Vec<ItemOutcome>,
    input: Vec<f32>,
    rows: usize,
) -> Result<Scored, ScoreError> {
    let (probabilities, queue_us, inference_us) = if rows == 0 {
        (Vec::new(), 0, 0)
    } else {
        let out = model.queue.run(input, rows).await?;
        (out.values, out.queue_us, out.inference_us)
    };
    Ok(Scored {
        model,
        snapshot,
        stale: false,
        items,
        probabilities,
        queue_us,
        inference_us,
    })
}

/// Applies the model's missing-value policy to one gathered row; Err names the first missing feature it rejects.
fn apply_missing<'s>(spec: &'s TabularSpec, row: &mut [f32]) -> Result<(), &'s str> {
    match spec.missing {
        MissingPolicy::Nan => Ok(()),
        MissingPolicy::Zero => {
            row.iter_mut().filter(|v| v.is_nan()).for_each(|v| *v = 0.0);
            Ok(())
        }
        MissingPolicy::Reject => match row.iter().position(|v| v.is_nan()) {
            Some(i) => Err(&spec.features[i]),
            None => Ok(()),
        },
    }
}

/// Appends one inline row's features in model order, rejecting unknown keys, missing keys and non-numbers.
fn row_features(
    spec: &TabularSpec,
    i: usize,
    row: &Map<String, Value>,
    out: &mut Vec<f32>,
) -> Result<(), ScoreError> {
    let bad = |msg: String| ScoreError::BadRequest(format!("rows[{i}]: {msg}"));
    if let Some(unknown) = row.keys().find(|k| !spec.features.contains(k)) {
        return Err(bad(format!("'{unknown}' is not a feature of this model")));
    }
    for feature in &spec.features {
        let value = match row.get(feature) {
            None => {
                return Err(bad(format!(
                    "feature '{feature}' is missing (every feature is required)"
                )));
            }
            Some(Value::Number(n)) => n.as_f64().map(|v| v as f32).unwrap_or(f32::NAN),
            Some(Value::Bool(b)) => f32::from(u8::from(*b)),
            Some(Value::Null) if spec.missing != MissingPolicy::Reject => {
                if spec.missing == MissingPolicy::Zero {
                    0.0
                } else {
                    f32::NAN
                }
            }
            Some(Value::Null) => {
                return Err(bad(format!(
                    "feature '{feature}' is null and this model rejects missing values"
                )));
            }
            Some(other) => {
                return Err(bad(format!(
                    "feature '{feature}' must be a number, got {}",
                    json_type(other)
                )));
            }
        };
        if value.is_infinite() {
            return Err(bad(format!(
                "feature '{feature}' is out of the float32 range"
            )));
        }
        out.push(value);
    }
    Ok(())
}

/// The JSON type name of a value, for error messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSpec;
    use std::path::Path;

    fn spec(missing: &str) -> TabularSpec {
        let text = format!(
            "kind='tabular'\ninput='i'\noutput='o'\nlabels=['a','b']\nfeatures=['x','y']\nmissing='{missing}'\n"
        );
        let ModelKind::Tabular(t) = ModelSpec::parse("m", Path::new("m"), &text).unwrap().kind;
        t
    }

    fn row(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn inline_rows_follow_model_order_and_policy() {
        let mut out = Vec::new();
        row_features(&spec("nan"), 0, &row(r#"{"y": 2, "x": true}"#), &mut out).unwrap();
        row_features(&spec("zero"), 1, &row(r#"{"x": null, "y": 1.5}"#), &mut out).unwrap();
        assert_eq!(out, vec![1.0, 2.0, 0.0, 1.5]);
    }

    #[test]
    fn inline_row_errors_name_the_row_and_feature() {
        let cases = [
            (r#"{"x": 1}"#, "nan", "rows[0]: feature 'y' is missing"),
            (
                r#"{"x": 1, "y": "2"}"#,
                "nan",
                "'y' must be a number, got a string",
            ),
            (r#"{"x": 1, "y": 2, "z": 3}"#, "nan", "'z' is not a feature"),
            (r#"{"x": null, "y": 2}"#, "reject", "'x' is null"),
            (r#"{"x": 1e300, "y": 2}"#, "nan", "out of the float32 range"),
        ];
        for (json, policy, want) in cases {
            let err = row_features(&spec(policy), 0, &row(json), &mut Vec::new())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn missing_policy_on_snapshot_rows() {
        let mut r = [f32::NAN, 1.0];
        assert_eq!(apply_missing(&spec("reject"), &mut r), Err("x"));
        apply_missing(&spec("zero"), &mut r).unwrap();
        assert_eq!(r, [0.0, 1.0]);
    }

    #[test]
    fn counts_are_bounded() {
        let limits = Limits {
            max_items: 3,
            max_body_bytes: 10,
        };
        assert!(
            check_count("ids", 0, &limits)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(
            check_count("ids", 4, &limits)
                .unwrap_err()
                .to_string()
                .contains("at most 3")
        );
        check_count("ids", 3, &limits).unwrap();
    }
}
