//! The rows the feedback log records (outcome events and decisions) and the validation of posted outcomes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The outcome values a client may send.
pub const OUTCOMES: [&str; 5] = ["accepted", "declined", "no_response", "churned", "retained"];

/// Longest event, customer, decision and item id, action and channel (characters).
pub const MAX_ID_CHARS: usize = 128;
/// Longest note (characters).
pub const MAX_NOTE_CHARS: usize = 2_000;

/// The fields an outcome event may carry (anything else is refused, so a typo is not silently dropped).
const FIELDS: [&str; 9] = [
    "event_id",
    "customer_id",
    "decision_id",
    "action",
    "item_id",
    "channel",
    "outcome",
    "occurred_at",
    "note",
];

/// One recorded outcome: what happened after a decision (the `outcomes` Parquet schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRow {
    /// The client's id of the event; a replay of the same id is stored once.
    pub event_id: String,
    /// The customer (integer ids as decimal text).
    pub customer_id: String,
    /// The decision this answers, when known.
    pub decision_id: Option<String>,
    /// The action taken.
    pub action: String,
    /// The offer, when one was made.
    pub item_id: Option<String>,
    /// How the customer was reached.
    pub channel: Option<String>,
    /// One of [`OUTCOMES`].
    pub outcome: String,
    /// When it happened (microseconds since the Unix epoch, UTC).
    pub occurred_at: i64,
    /// When the server recorded it (microseconds since the Unix epoch, UTC); its UTC day names the folder.
    pub recorded_at: i64,
    /// Free text (never logged).
    pub note: Option<String>,
}

#[cfg(test)]
impl OutcomeRow {
    /// A test row: a call with `outcome`, recorded at `at` (µs since the epoch, occurred then too).
    pub(crate) fn sample(event_id: &str, customer_id: &str, outcome: &str, at: i64) -> OutcomeRow {
        OutcomeRow {
            event_id: event_id.into(),
            customer_id: customer_id.into(),
            decision_id: None,
            action: "call".into(),
            item_id: None,
            channel: None,
            outcome: outcome.into(),
            occurred_at: at,
            recorded_at: at,
            note: Some("private".into()),
        }
    }
}

/// One logged decision: a customer answered in a sampled scoring or insights reply (the `decisions` schema).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DecisionRow {
    /// The id in that result of the reply.
    pub decision_id: String,
    /// The customer; None for inline-feature rows and texts.
    pub customer_id: Option<String>,
    /// When it was decided (microseconds since the Unix epoch, UTC).
    pub decided_at: i64,
    /// `insights`, `churn_score`, `recommendations`, `sentiment` or `model_score`.
    pub route: String,
    /// The primary model.
    pub model: String,
    /// Its version.
    pub model_version: String,
    /// Every model used, `name=version` joined by `;`.
    pub models: String,
    /// The served snapshot's version (None for inline rows and texts).
    pub snapshot_version: Option<String>,
    /// Churn probability, positive-class probability, top item score or top label probability.
    pub score: Option<f64>,
    /// Churn risk band.
    pub risk: Option<String>,
    /// Segment key.
    pub segment: Option<String>,
    /// Next best action chosen (insights).
    pub action: Option<String>,
    /// Offer chosen (insights) or top item (recommendations).
    pub item_id: Option<String>,
    /// Expected value of the chosen action.
    pub expected_value: Option<f64>,
    /// The features as a JSON object (only with --decision-log-features).
    pub features: Option<String>,
}

/// What the write-ahead log holds: either kind of row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Row {
    /// An outcome event.
    Outcome(OutcomeRow),
    /// A decision.
    Decision(DecisionRow),
}

impl Row {
    /// The customer the row is about, if any.
    pub fn customer_id(&self) -> Option<&str> {
        match self {
            Row::Outcome(o) => Some(&o.customer_id),
            Row::Decision(d) => d.customer_id.as_deref(),
        }
    }

    /// When the server recorded it (its UTC day names the Parquet folder).
    pub fn recorded_at(&self) -> i64 {
        match self {
            Row::Outcome(o) => o.recorded_at,
            Row::Decision(d) => d.decided_at,
        }
    }

    /// Its unique id: the event id or the decision id.
    pub fn id(&self) -> &str {
        match self {
            Row::Outcome(o) => &o.event_id,
            Row::Decision(d) => &d.decision_id,
        }
    }
}

/// Why a posted batch was refused: the event's index and the field, in words (never the field's value, which
/// may be a customer id or a note).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("events[{index}].{field}: {problem}")]
pub struct InvalidEvent {
    /// Position of the event in the batch.
    pub index: usize,
    /// The field at fault.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Validates a posted batch (all or nothing) into rows recorded at `recorded_at` (µs since the epoch).
pub fn validate(events: &[Value], recorded_at: i64) -> Result<Vec<OutcomeRow>, InvalidEvent> {
    events
        .iter()
        .enumerate()
        .map(|(index, event)| validate_one(index, event, recorded_at))
        .collect()
}

fn validate_one(index: usize, event: &Value, recorded_at: i64) -> Result<OutcomeRow, InvalidEvent> {
    let bad = |field: &str, problem: String| InvalidEvent {
        index,
        field: field.to_string(),
        problem,
    };
    let Value::Object(map) = event else {
        return Err(bad("", "each event must be a JSON object".into()));
    };
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad(
            unknown,
            format!("unknown field; the fields are {}", FIELDS.join(", ")),
        ));
    }
    let outcome = required_text(map, "outcome", MAX_ID_CHARS).map_err(|p| bad("outcome", p))?;
    if !OUTCOMES.contains(&outcome.as_str()) {
        return Err(bad(
            "outcome",
            format!("unknown outcome; allowed: {}", OUTCOMES.join(", ")),
        ));
    }
    let occurred = required_text(map, "occurred_at", 64).map_err(|p| bad("occurred_at", p))?;
    let occurred_at = parse_rfc3339(&occurred).ok_or_else(|| {
        bad(
            "occurred_at",
            "must be an RFC 3339 timestamp such as 2026-11-30T14:05:00Z".into(),
        )
    })?;
    Ok(OutcomeRow {
        event_id: required_text(map, "event_id", MAX_ID_CHARS).map_err(|p| bad("event_id", p))?,
        customer_id: customer_id(map).map_err(|p| bad("customer_id", p))?,
        decision_id: optional_text(map, "decision_id", MAX_ID_CHARS)
            .map_err(|p| bad("decision_id", p))?,
        action: required_text(map, "action", MAX_ID_CHARS).map_err(|p| bad("action", p))?,
        item_id: optional_text(map, "item_id", MAX_ID_CHARS).map_err(|p| bad("item_id", p))?,
        channel: optional_text(map, "channel", MAX_ID_CHARS).map_err(|p| bad("channel", p))?,
        outcome,
        occurred_at,
        recorded_at,
        note: optional_text(map, "note", MAX_NOTE_CHARS).map_err(|p| bad("note", p))?,
    })
}

fn required_text(map: &Map<String, Value>, field: &str, max: usize) -> Result<String, String> {
    optional_text(map, field, max)?.ok_or_else(|| "missing; it is required".to_string())
}

fn optional_text(
    map: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, String> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err("must not be empty".into()),
        Some(Value::String(s)) if s.chars().count() > max => {
            Err(format!("longer than {max} characters"))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("must be a string".into()),
    }
}

/// A string, or an integer id written as decimal text.
fn customer_id(map: &Map<String, Value>) -> Result<String, String> {
    match map.get("customer_id") {
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(Value::Number(_)) => Err("must be a string or an integer".into()),
        _ => required_text(map, "customer_id", MAX_ID_CHARS),
    }
}

/// Microseconds since the Unix epoch of an RFC 3339 timestamp (any offset), or None.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The UTC day of a time in microseconds, as `YYYY-MM-DD`.
pub fn day_of(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({"event_id": "e1", "customer_id": "C1", "action": "call", "outcome": "retained",
               "occurred_at": "2026-11-30T14:05:00+01:00"})
    }

    #[test]
    fn a_valid_event_becomes_a_row() {
        let rows = validate(&[event()], 7).unwrap();
        assert_eq!(rows[0].event_id, "e1");
        assert_eq!(rows[0].occurred_at, 1_796_043_900_000_000);
        assert_eq!(rows[0].recorded_at, 7);
        assert_eq!(rows[0].decision_id, None);
    }

    #[test]
    fn integer_customer_ids_are_text() {
        let mut e = event();
        e["customer_id"] = json!(4211);
        assert_eq!(validate(&[e], 0).unwrap()[0].customer_id, "4211");
    }

    #[test]
    fn an_unknown_outcome_names_the_allowed_ones_and_the_index() {
        let mut e = event();
        e["outcome"] = json!("maybe");
        let err = validate(&[event(), e], 0).unwrap_err();
        assert_eq!((err.index, err.field.as_str()), (1, "outcome"));
        let text = err.to_string();
        for allowed in OUTCOMES {
            assert!(text.contains(allowed), "{text}");
        }
        assert!(
            !text.contains("maybe"),
            "values stay out of messages: {text}"
        );
    }

    #[test]
    fn missing_long_and_mistyped_fields_are_named() {
        let mut e = event();
        e.as_object_mut().unwrap().remove("action");
        assert_eq!(validate(&[e], 0).unwrap_err().field, "action");
        let mut e = event();
        e["note"] = json!("x".repeat(MAX_NOTE_CHARS + 1));
        assert_eq!(validate(&[e], 0).unwrap_err().field, "note");
        let mut e = event();
        e["channel"] = json!(3);
        assert_eq!(validate(&[e], 0).unwrap_err().field, "channel");
        let mut e = event();
        e["occurred_at"] = json!("yesterday");
        assert_eq!(validate(&[e], 0).unwrap_err().field, "occurred_at");
        let mut e = event();
        e["outcom"] = json!("retained");
        assert_eq!(validate(&[e], 0).unwrap_err().field, "outcom");
        assert_eq!(validate(&[json!([1])], 0).unwrap_err().index, 0);
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(day_of(1_796_043_900_000_000), "2026-11-30");
        assert_eq!(day_of(0), "1970-01-01");
    }
}
