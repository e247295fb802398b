//! The use cases behind the routes: resolve the model, take one snapshot for the whole request, gather rows,
//! submit them to the model's queue, await, and hand back per-item outcomes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::batching::{Deadline, ModelInput};
use crate::config::StalePolicy;
use crate::error::ScoreError;
use crate::model::catalogue::top_k;
use crate::model::explainer::{Explanation, ModelExplainer};
use crate::model::spec::MissingPolicy;
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
    /// The engagement policy behind insights.
    pub engagement: crate::engagement::insights::Engagement,
    /// Set when a shutdown signal arrives: readiness turns 503 and replies close their connection.
    pub drain: Arc<crate::shutdown::Drain>,
    /// The API keys every keyed route needs (None: no keys needed).
    pub api_keys: Option<crate::api_keys::KeyStore>,
    /// The erased customers and the audit log (None without --state-dir: erasure is refused).
    pub erasures: Option<Arc<crate::erasure::Erasures>>,
    /// The feedback folder the model report reads (None or empty: no decisions are recorded).
    pub feedback_dir: Option<std::path::PathBuf>,
    /// The outcome and decision log (None: --feedback-dir is empty, recording is off).
    pub feedback: Option<crate::feedback::FeedbackLog>,
    /// The local mirror of `--models` when it is an object-store URL (synced before each model rescan).
    pub model_sync: Option<crate::storage::ModelSync>,
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
    /// Most characters in one text.
    pub max_text_chars: usize,
    /// Most recommended items per request (customers × k).
    pub max_recommendations: usize,
    /// Most output values per request (rows × output width).
    pub max_output_values: usize,
}

/// Refuses a request whose reply would exceed `limit` (`asked` is what it would produce, `what` says of what and
/// how it was counted, `flag` the setting that raises the limit).
pub fn check_reply(asked: usize, limit: usize, what: &str, flag: &str) -> Result<(), ScoreError> {
    match asked <= limit {
        true => Ok(()),
        false => Err(ScoreError::ReplyTooLarge(format!(
            "this request asks for {asked} {what}; at most {limit} are answered per request ({flag}): split it \
             into smaller requests"
        ))),
    }
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

/// The outcome of running a list of customers, rows or texts through a model.
pub struct Scored {
    /// The model that answered.
    pub model: Arc<ModelHandle>,
    /// The snapshot the features came from (None for inline rows and texts).
    pub snapshot: Option<Arc<FeatureSnapshot>>,
    /// Whether that snapshot is past --max-snapshot-age (served anyway under the serve policy).
    pub stale: bool,
    /// One outcome per requested item, in request order.
    pub items: Vec<ItemOutcome>,
    /// The snapshot row of each requested customer that was found.
    pub snapshot_rows: Vec<Option<usize>>,
    /// Output rows (probabilities, item scores or logits), `width` values each.
    pub outputs: Vec<f32>,
    /// Values per output row.
    pub width: usize,
    /// Microseconds waiting in the queue.
    pub queue_us: u64,
    /// Microseconds of inference.
    pub inference_us: u64,
    /// Contributions of every scored row, when the request asked to explain.
    pub explained: Option<Explained>,
}

/// The explanation of a request's scored rows.
pub struct Explained {
    /// What explained them (method, space, width).
    pub explainer: Arc<ModelExplainer>,
    /// Contributions (and error bounds) per scored row.
    pub explanation: Explanation,
    /// The rows as the model saw them, for the feature values in reasons.
    pub inputs: Vec<f32>,
}

impl Explained {
    /// Contributions of scored row `row`, then its base value.
    pub fn contributions_of(&self, row: usize) -> &[f32] {
        let w = self.explainer.width + 1;
        &self.explanation.contributions[row * w..(row + 1) * w]
    }

    /// The feature values of scored row `row`.
    pub fn inputs_of(&self, row: usize) -> &[f32] {
        let w = self.explainer.width;
        &self.inputs[row * w..(row + 1) * w]
    }

    /// The 95% error bounds of scored row `row` (empty for exact methods).
    pub fn error_bounds_of(&self, row: usize) -> &[f32] {
        let w = self.explainer.width;
        self.explanation
            .error_bounds
            .get(row * w..(row + 1) * w)
            .unwrap_or(&[])
    }
}

/// The `k` features of a scored row with the largest absolute contribution, largest first (feature order on
/// ties); `None` returns every feature, also ordered.
pub fn top_contributions(explained: &Explained, row: usize, k: Option<usize>) -> Vec<(usize, f32)> {
    let phi = explained.contributions_of(row);
    let width = explained.explainer.width;
    let mut order: Vec<(usize, f32)> = phi[..width].iter().copied().enumerate().collect();
    order.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
    if let Some(k) = k {
        order.truncate(k);
    }
    order
}

/// Whether a contribution raises or lowers the score (`none` for zero).
pub fn direction(contribution: f32) -> &'static str {
    if contribution > 0.0 {
        "raises"
    } else if contribution < 0.0 {
        "lowers"
    } else {
        "none"
    }
}

/// The index of the nearest segment (smallest distance; the first on ties).
pub fn nearest(distances: &[f32]) -> usize {
    distances.iter().enumerate().fold(
        0,
        |best, (i, d)| if *d < distances[best] { i } else { best },
    )
}

impl Scored {
    /// The values of output row `row`.
    pub fn output_of(&self, row: usize) -> &[f32] {
        &self.outputs[row * self.width..(row + 1) * self.width]
    }
}

/// The served model `name`; when `kind` is given ("tabular", "recommender" or "text") it must be of that kind. A
/// model folder that failed to load or was unloaded is `ModelNotReady` with the reason (file names, not paths).
pub fn find_model(
    models: &ModelRegistry,
    name: &str,
    kind: Option<&'static str>,
) -> Result<Arc<ModelHandle>, ScoreError> {
    let model = models
        .get(name)
        .ok_or_else(|| match models.unavailable(name) {
            Some(down) => ScoreError::ModelNotReady {
                model: name.to_string(),
                reason: crate::api::redact_paths(&down.reason),
            },
            None => ScoreError::UnknownModel(name.to_string()),
        })?;
    let actual = model.spec.kind.name();
    if let Some(expected) = kind
        && actual != expected
    {
        return Err(ScoreError::WrongModelKind {
            model: name.to_string(),
            kind: actual,
            expected,
        });
    }
    Ok(model)
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

/// The model's explainer for the served snapshot (its reference sample): Err when the model cannot be
/// explained or no snapshot is served.
pub fn explainer(state: &AppState, model: &ModelHandle) -> Result<Arc<ModelExplainer>, ScoreError> {
    let snapshot = state.snapshots.current().ok_or_else(|| {
        ScoreError::NotReady(format!(
            "explanations need a served snapshot (their reference sample): {}",
            state.snapshots.not_served_reason()
        ))
    })?;
    model
        .explainer_for(&snapshot)
        .map_err(ScoreError::NotExplainable)
}

/// The served snapshot and whether it is stale; Err when there is none or it is stale under the refuse policy.
pub fn served_snapshot(state: &AppState) -> Result<(Arc<FeatureSnapshot>, bool), ScoreError> {
    let snapshot = state
        .snapshots
        .current()
        .ok_or_else(|| ScoreError::NotReady(state.snapshots.not_served_reason()))?;
    let stale = match state.freshness.stale_reason(&snapshot) {
        Some(reason) if state.freshness.policy == StalePolicy::Refuse => {
            return Err(ScoreError::Stale(reason));
        }
        Some(_) => true,
        None => false,
    };
    Ok((snapshot, stale))
}

/// The deadline of a request that arrived now: `timeout_ms` when the client gave one, else the server default
/// (--default-timeout-ms), else none.
pub fn deadline(state: &AppState, timeout_ms: Option<u64>) -> Option<Deadline> {
    timeout_ms
        .map(Duration::from_millis)
        .or(state.models.default_timeout())
        .and_then(Deadline::after)
}

/// Scores customers of the served snapshot with a snapshot-fed model (explaining the scores when asked);
/// unknown ids become per-item errors. A job still queued at `deadline` is dropped (`DeadlineExceeded`).
pub async fn score_customers(
    state: &AppState,
    model: Arc<ModelHandle>,
    ids: &[CustomerId],
    explain: bool,
    deadline: Option<Deadline>,
) -> Result<Scored, ScoreError> {
    check_count("customer_ids", ids.len(), &state.limits)?;
    let (snapshot, stale) = served_snapshot(state)?;
    let rows = lookup(&snapshot, ids);
    let mut scored = submit_customers_until(model, &snapshot, ids, &rows, explain, deadline)?
        .wait()
        .await?;
    scored.stale = stale;
    Ok(scored)
}

/// The snapshot row of every id (None when absent), with each found row's memory prefetched.
pub fn lookup(snapshot: &FeatureSnapshot, ids: &[CustomerId]) -> Vec<Option<usize>> {
    // Look every id up first (independent lookups overlap in the CPU) and start loading the rows; the copy
    // comes later.
    ids.iter()
        .map(|id| {
            let found = snapshot.lookup(id);
            if let Some(row) = found {
                snapshot.prefetch(row);
            }
            found
        })
        .collect()
}

/// A job on a model's queue whose answer has not been awaited yet: several models can run at once.
pub struct Pending {
    model: Arc<ModelHandle>,
    snapshot: Option<Arc<FeatureSnapshot>>,
    snapshot_rows: Vec<Option<usize>>,
    items: Vec<ItemOutcome>,
    receiver: Option<tokio::sync::oneshot::Receiver<crate::batching::JobResult>>,
    explained: Option<(Arc<ModelExplainer>, Vec<f32>)>,
    deadline: Option<Deadline>,
}

/// Gathers the found customers' rows (`rows`, from [`lookup`]) for `model` and submits them to its queue.
pub fn submit_customers(
    model: Arc<ModelHandle>,
    snapshot: &Arc<FeatureSnapshot>,
    ids: &[CustomerId],
    rows: &[Option<usize>],
    explain: bool,
) -> Result<Pending, ScoreError> {
    submit_customers_until(model, snapshot, ids, rows, explain, None)
}

/// [`submit_customers`] with a deadline: a job still queued when it passes is dropped before inference.
pub fn submit_customers_until(
    model: Arc<ModelHandle>,
    snapshot: &Arc<FeatureSnapshot>,
    ids: &[CustomerId],
    rows: &[Option<usize>],
    explain: bool,
    deadline: Option<Deadline>,
) -> Result<Pending, ScoreError> {
    let explainer = match explain {
        true => Some(
            model
                .explainer_for(snapshot)
                .map_err(ScoreError::NotExplainable)?,
        ),
        false => None,
    };
    let (items, input, scored_rows) = gather_customers(&model, snapshot, ids, rows)?;
    let mut pending = submit(model, items, input, scored_rows, explainer, deadline)?;
    pending.snapshot = Some(snapshot.clone());
    pending.snapshot_rows = rows.to_vec();
    Ok(pending)
}

/// The model input of customers `ids` found at snapshot `rows` (from [`lookup`]): their features in model order
/// with the model's missing-value policy applied, one outcome per id (the input row, or why there is none), and
/// the number of input rows.
pub fn gather_customers(
    model: &ModelHandle,
    snapshot: &FeatureSnapshot,
    ids: &[CustomerId],
    rows: &[Option<usize>],
) -> Result<(Vec<ItemOutcome>, Vec<f32>, usize), ScoreError> {
    let (features, missing) = (model.spec.feature_columns(), model.spec.missing());
    let layout = model.layout_in(snapshot).map_err(|column| {
        ScoreError::NotReady(format!(
            "the served snapshot lacks column '{column}' of model '{}'",
            model.spec.name
        ))
    })?;
    let mut input = Vec::with_capacity(ids.len() * features.len());
    let mut items = Vec::with_capacity(ids.len());
    let mut scored_rows = 0;
    for (id, found) in ids.iter().zip(rows) {
        let Some(row) = *found else {
            items.push(Err(ItemError {
                code: "unknown_customer",
                message: format!("customer '{id}' is not in snapshot {}", snapshot.version),
            }));
            continue;
        };
        let start = input.len();
        snapshot.gather(row, &layout, &mut input);
        match apply_missing(features, missing, &mut input[start..]) {
            Ok(()) => {
                items.push(Ok(scored_rows));
                scored_rows += 1;
            }
            Err(column) => {
                input.truncate(start);
                items.push(Err(ItemError {
                    code: "missing_feature",
                    message: format!(
                        "customer '{id}' has no value for '{column}' and model '{}' rejects missing values",
                        model.spec.name
                    ),
                }));
            }
        }
    }
    Ok((items, input, scored_rows))
}

/// Submits float rows, keeping a copy of them when they are explained (reasons show the values).
fn submit(
    model: Arc<ModelHandle>,
    items: Vec<ItemOutcome>,
    input: Vec<f32>,
    rows: usize,
    explainer: Option<Arc<ModelExplainer>>,
    deadline: Option<Deadline>,
) -> Result<Pending, ScoreError> {
    let explained = explainer.clone().map(|e| (e, input.clone()));
    submit_input(
        model,
        items,
        ModelInput::Rows(input),
        rows,
        explainer,
        explained,
        deadline,
    )
}

fn submit_input(
    model: Arc<ModelHandle>,
    items: Vec<ItemOutcome>,
    input: ModelInput,
    rows: usize,
    explainer: Option<Arc<ModelExplainer>>,
    explained: Option<(Arc<ModelExplainer>, Vec<f32>)>,
    deadline: Option<Deadline>,
) -> Result<Pending, ScoreError> {
    let receiver = match rows {
        0 => None,
        _ => Some(model.queue.submit(input, rows, explainer, deadline)?),
    };
    Ok(Pending {
        model,
        snapshot: None,
        snapshot_rows: Vec::new(),
        items,
        receiver,
        explained,
        deadline,
    })
}

impl Pending {
    /// Awaits the model's answer.
    pub async fn wait(self) -> Result<Scored, ScoreError> {
        let width = self.model.output_width();
        let (outputs, queue_us, inference_us, explanation) = match self.receiver {
            None => (Vec::new(), 0, 0, Some(Explanation::default())),
            Some(receiver) => {
                let out = self.model.queue.answer(receiver, self.deadline).await?;
                (out.values, out.queue_us, out.inference_us, out.explanation)
            }
        };
        let explained = match (self.explained, explanation) {
            (Some((explainer, inputs)), Some(explanation)) => Some(Explained {
                explainer,
                explanation,
                inputs,
            }),
            _ => None,
        };
        Ok(Scored {
            model: self.model,
            snapshot: self.snapshot,
            stale: false,
            snapshot_rows: self.snapshot_rows,
            items: self.items,
            outputs,
            width,
            queue_us,
            inference_us,
            explained,
        })
    }
}

/// Scores inline feature rows with a tabular model; every feature is required and must be a number (or null
/// where the model allows).
pub async fn score_rows(
    state: &AppState,
    model: Arc<ModelHandle>,
    rows: &[Map<String, Value>],
    explain: bool,
    deadline: Option<Deadline>,
) -> Result<Scored, ScoreError> {
    check_count("rows", rows.len(), &state.limits)?;
    let explainer = match explain {
        true => Some(explainer(state, &model)?),
        false => None,
    };
    let (features, missing) = (model.spec.feature_columns(), model.spec.missing());
    let mut input = Vec::with_capacity(rows.len() * features.len());
    for (i, row) in rows.iter().enumerate() {
        row_features(features, missing, i, row, &mut input)?;
    }
    let items = (0..rows.len()).map(Ok).collect();
    submit(model, items, input, rows.len(), explainer, deadline)?
        .wait()
        .await
}

/// Scores a row-major float matrix as given (the v2 infer path of feature models), explaining it with
/// `explainer` when given.
pub async fn score_matrix(
    model: Arc<ModelHandle>,
    input: Vec<f32>,
    rows: usize,
    explainer: Option<Arc<ModelExplainer>>,
    deadline: Option<Deadline>,
) -> Result<Scored, ScoreError> {
    let items = (0..rows).map(Ok).collect();
    submit(model, items, input, rows, explainer, deadline)?
        .wait()
        .await
}

/// Classifies texts with a text model: each must be a non-empty string within the character cap.
pub async fn classify_texts(
    state: &AppState,
    model: Arc<ModelHandle>,
    texts: &[Value],
    deadline: Option<Deadline>,
) -> Result<Scored, ScoreError> {
    check_count("texts", texts.len(), &state.limits)?;
    let encoder = model
        .encoder
        .as_ref()
        .ok_or_else(|| ScoreError::ModelUnavailable(model.spec.name.clone()))?;
    let mut sequences = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let bad = |msg: String| ScoreError::BadRequest(format!("texts[{i}] {msg}"));
        let Value::String(text) = text else {
            return Err(bad(format!("must be a string, got {}", json_type(text))));
        };
        if text.trim().is_empty() {
            return Err(bad("is empty".into()));
        }
        let chars = text.chars().count();
        if chars > state.limits.max_text_chars {
            return Err(bad(format!(
                "has {chars} characters; at most {} are accepted (--max-text-chars)",
                state.limits.max_text_chars
            )));
        }
        sequences.push(encoder.encode(text).map_err(bad)?);
    }
    let items = (0..texts.len()).map(Ok).collect();
    let input = ModelInput::Tokens(sequences);
    submit_input(model, items, input, texts.len(), None, None, deadline)?
        .wait()
        .await
}

/// A recommendation list for one customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// (catalogue index, score), best first.
    pub items: Vec<(u32, f32)>,
    /// True when the customer is not in the snapshot: the most popular items are returned.
    pub cold_start: bool,
}

/// Top-k items per customer of a scored recommender request, after masking owned items when asked; unknown
/// customers get the most popular items, flagged as a cold start.
pub fn recommend(
    scored: &Scored,
    k: usize,
    exclude_owned: bool,
) -> Vec<Result<Recommendation, ItemError>> {
    let Some(catalogue) = scored.model.catalogue.as_ref() else {
        return Vec::new();
    };
    let owned_of = |i: usize| -> Vec<u32> {
        let (Some(snapshot), Some(Some(row))) =
            (scored.snapshot.as_deref(), scored.snapshot_rows.get(i))
        else {
            return Vec::new();
        };
        match (&snapshot.owned, exclude_owned) {
            (Some(owned), true) => owned
                .of(*row)
                .filter_map(|id| catalogue.index_of(id))
                .collect(),
            _ => Vec::new(),
        }
    };
    scored
        .items
        .iter()
        .enumerate()
        .map(|(i, outcome)| match outcome {
            Ok(row) => Ok(Recommendation {
                items: top_k(scored.output_of(*row), k, &owned_of(i)),
                cold_start: false,
            }),
            Err(e) if e.code == "unknown_customer" => {
                let popular = catalogue.most_popular(k, &[]);
                Ok(Recommendation {
                    items: popular.into_iter().map(|i| (i, 0.0)).collect(),
                    cold_start: true,
                })
            }
            Err(e) => Err(e.clone()),
        })
        .collect()
}

/// Applies the missing-value policy to one gathered row; Err names the first missing feature it rejects.
pub fn apply_missing<'s>(
    features: &'s [String],
    missing: MissingPolicy,
    row: &mut [f32],
) -> Result<(), &'s str> {
    match missing {
        MissingPolicy::Nan => Ok(()),
        MissingPolicy::Zero => {
            row.iter_mut().filter(|v| v.is_nan()).for_each(|v| *v = 0.0);
            Ok(())
        }
        MissingPolicy::Reject => match row.iter().position(|v| v.is_nan()) {
            Some(i) => Err(&features[i]),
            None => Ok(()),
        },
    }
}

/// Appends one inline row's features in model order, rejecting unknown keys, missing keys and non-numbers.
fn row_features(
    features: &[String],
    missing: MissingPolicy,
    i: usize,
    row: &Map<String, Value>,
    out: &mut Vec<f32>,
) -> Result<(), ScoreError> {
    let bad = |msg: String| ScoreError::BadRequest(format!("rows[{i}]: {msg}"));
    if let Some(unknown) = row.keys().find(|k| !features.contains(k)) {
        return Err(bad(format!("'{unknown}' is not a feature of this model")));
    }
    for feature in features {
        let value = match row.get(feature) {
            None => {
                return Err(bad(format!(
                    "feature '{feature}' is missing (every feature is required)"
                )));
            }
            Some(Value::Number(n)) => n.as_f64().map(|v| v as f32).unwrap_or(f32::NAN),
            Some(Value::Bool(b)) => f32::from(u8::from(*b)),
            Some(Value::Null) => match missing {
                MissingPolicy::Nan => f32::NAN,
                MissingPolicy::Zero => 0.0,
                MissingPolicy::Reject => {
                    return Err(bad(format!(
                        "feature '{feature}' is null and this model rejects missing values"
                    )));
                }
            },
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

    fn features() -> Vec<String> {
        vec!["x".into(), "y".into()]
    }

    fn row(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn inline_rows_follow_model_order_and_policy() {
        let mut out = Vec::new();
        row_features(
            &features(),
            MissingPolicy::Nan,
            0,
            &row(r#"{"y": 2, "x": true}"#),
            &mut out,
        )
        .unwrap();
        row_features(
            &features(),
            MissingPolicy::Zero,
            1,
            &row(r#"{"x": null, "y": 1.5}"#),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![1.0, 2.0, 0.0, 1.5]);
    }

    #[test]
    fn inline_row_errors_name_the_row_and_feature() {
        let cases = [
            (
                r#"{"x": 1}"#,
                MissingPolicy::Nan,
                "rows[0]: feature 'y' is missing",
            ),
            (
                r#"{"x": 1, "y": "2"}"#,
                MissingPolicy::Nan,
                "'y' must be a number, got a string",
            ),
            (
                r#"{"x": 1, "y": 2, "z": 3}"#,
                MissingPolicy::Nan,
                "'z' is not a feature",
            ),
            (
                r#"{"x": null, "y": 2}"#,
                MissingPolicy::Reject,
                "'x' is null",
            ),
            (
                r#"{"x": 1e300, "y": 2}"#,
                MissingPolicy::Nan,
                "out of the float32 range",
            ),
        ];
        for (json, policy, want) in cases {
            let err = row_features(&features(), policy, 0, &row(json), &mut Vec::new())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn missing_policy_on_snapshot_rows() {
        let mut r = [f32::NAN, 1.0];
        assert_eq!(
            apply_missing(&features(), MissingPolicy::Reject, &mut r),
            Err("x")
        );
        apply_missing(&features(), MissingPolicy::Zero, &mut r).unwrap();
        assert_eq!(r, [0.0, 1.0]);
    }

    #[test]
    fn counts_are_bounded() {
        let limits = Limits {
            max_items: 3,
            max_body_bytes: 10,
            max_text_chars: 10,
            max_recommendations: 10,
            max_output_values: 10,
        };
        assert!(check_reply(10, 10, "items", "--flag").is_ok());
        let err = check_reply(11, 10, "items (1 × 11)", "--flag").unwrap_err();
        assert!(matches!(err, ScoreError::ReplyTooLarge(_)));
        assert!(
            err.to_string().contains("11 items (1 × 11)") && err.to_string().contains("at most 10")
        );
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
