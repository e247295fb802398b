//! The Arrow schemas of the outcome and decision Parquet files, and rows to and from record batches.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::FeedbackError;
use super::event::{DecisionRow, OutcomeRow, Row};

/// Which log a row or file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `outcomes/`
    Outcomes,
    /// `decisions/`
    Decisions,
}

impl Kind {
    /// The folder name under the feedback folder.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::Outcomes => "outcomes",
            Kind::Decisions => "decisions",
        }
    }

    /// The column holding the row's unique id.
    pub fn id_column(self) -> &'static str {
        match self {
            Kind::Outcomes => "event_id",
            Kind::Decisions => "decision_id",
        }
    }

    /// The kind of a row.
    pub fn of(row: &Row) -> Kind {
        match row {
            Row::Outcome(_) => Kind::Outcomes,
            Row::Decision(_) => Kind::Decisions,
        }
    }

    /// The schema of its files.
    pub fn schema(self) -> SchemaRef {
        let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
        let time = |name: &str| {
            Field::new(
                name,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            )
        };
        let float = |name: &str| Field::new(name, DataType::Float64, true);
        Arc::new(Schema::new(match self {
            Kind::Outcomes => vec![
                text("event_id", false),
                text("customer_id", false),
                text("decision_id", true),
                text("action", false),
                text("item_id", true),
                text("channel", true),
                text("outcome", false),
                time("occurred_at"),
                time("recorded_at"),
                text("note", true),
            ],
            Kind::Decisions => vec![
                text("decision_id", false),
                text("customer_id", true),
                time("decided_at"),
                text("route", false),
                text("model", false),
                text("model_version", false),
                text("models", false),
                text("snapshot_version", true),
                float("score"),
                text("risk", true),
                text("segment", true),
                text("action", true),
                text("item_id", true),
                float("expected_value"),
                text("features", true),
            ],
        }))
    }
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    values.for_each(|v| b.append_option(v));
    Arc::new(b.finish())
}

fn times(values: impl Iterator<Item = i64>) -> ArrayRef {
    let mut b = TimestampMicrosecondBuilder::new();
    values.for_each(|v| b.append_value(v));
    Arc::new(b.finish().with_timezone("UTC"))
}

fn floats(values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    let mut b = Float64Builder::new();
    values.for_each(|v| b.append_option(v));
    Arc::new(b.finish())
}

/// The record batch of rows of one kind (rows of the other kind are skipped).
pub fn to_batch(kind: Kind, rows: &[&Row]) -> Result<RecordBatch, FeedbackError> {
    let columns = match kind {
        Kind::Outcomes => {
            let o: Vec<&OutcomeRow> = rows
                .iter()
                .filter_map(|r| match r {
                    Row::Outcome(o) => Some(o),
                    Row::Decision(_) => None,
                })
                .collect();
            vec![
                strings(o.iter().map(|r| Some(r.event_id.as_str()))),
                strings(o.iter().map(|r| Some(r.customer_id.as_str()))),
                strings(o.iter().map(|r| r.decision_id.as_deref())),
                strings(o.iter().map(|r| Some(r.action.as_str()))),
                strings(o.iter().map(|r| r.item_id.as_deref())),
                strings(o.iter().map(|r| r.channel.as_deref())),
                strings(o.iter().map(|r| Some(r.outcome.as_str()))),
                times(o.iter().map(|r| r.occurred_at)),
                times(o.iter().map(|r| r.recorded_at)),
                strings(o.iter().map(|r| r.note.as_deref())),
            ]
        }
        Kind::Decisions => {
            let d: Vec<&DecisionRow> = rows
                .iter()
                .filter_map(|r| match r {
                    Row::Decision(d) => Some(d),
                    Row::Outcome(_) => None,
                })
                .collect();
            vec![
                strings(d.iter().map(|r| Some(r.decision_id.as_str()))),
                strings(d.iter().map(|r| r.customer_id.as_deref())),
                times(d.iter().map(|r| r.decided_at)),
                strings(d.iter().map(|r| Some(r.route.as_str()))),
                strings(d.iter().map(|r| Some(r.model.as_str()))),
                strings(d.iter().map(|r| Some(r.model_version.as_str()))),
                strings(d.iter().map(|r| Some(r.models.as_str()))),
                strings(d.iter().map(|r| r.snapshot_version.as_deref())),
                floats(d.iter().map(|r| r.score)),
                strings(d.iter().map(|r| r.risk.as_deref())),
                strings(d.iter().map(|r| r.segment.as_deref())),
                strings(d.iter().map(|r| r.action.as_deref())),
                strings(d.iter().map(|r| r.item_id.as_deref())),
                floats(d.iter().map(|r| r.expected_value)),
                strings(d.iter().map(|r| r.features.as_deref())),
            ]
        }
    };
    RecordBatch::try_new(kind.schema(), columns)
        .map_err(|e| FeedbackError::Corrupt(format!("building a {} batch: {e}", kind.folder())))
}

/// The values of text column `name` of `batch` (None for nulls); Err when the column is missing or not text.
pub fn text_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>, FeedbackError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| FeedbackError::Corrupt(format!("a feedback file has no column '{name}'")))?;
    let column = column
        .as_string_opt::<i32>()
        .ok_or_else(|| FeedbackError::Corrupt(format!("column '{name}' is not text")))?;
    Ok(column.iter().map(|v| v.map(str::to_string)).collect())
}

/// The rows of a batch read back from a file of `kind`: the tests' check that files decode to what was written
/// (erasure rewrites files with the generic `erasure::rewrite`, which keeps any file's own schema).
#[cfg(test)]
pub fn from_batch(kind: Kind, batch: &RecordBatch) -> Result<Vec<Row>, FeedbackError> {
    use arrow_array::Array;
    use arrow_array::types::{Float64Type, TimestampMicrosecondType};
    let text = |name| text_column(batch, name);
    let time = |name: &str| -> Result<Vec<i64>, FeedbackError> {
        let column = batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| FeedbackError::Corrupt(format!("column '{name}' is not a timestamp")))?;
        Ok(column.values().to_vec())
    };
    let float = |name: &str| -> Result<Vec<Option<f64>>, FeedbackError> {
        let column = batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| FeedbackError::Corrupt(format!("column '{name}' is not a float")))?;
        Ok((0..column.len())
            .map(|i| (!column.is_null(i)).then(|| column.value(i)))
            .collect())
    };
    let need = |v: Option<String>| v.unwrap_or_default();
    let n = batch.num_rows();
    Ok(match kind {
        Kind::Outcomes => {
            let (mut ev, mut cu, mut de, mut ac) = (
                text("event_id")?,
                text("customer_id")?,
                text("decision_id")?,
                text("action")?,
            );
            let (mut it, mut ch, mut ou, mut no) = (
                text("item_id")?,
                text("channel")?,
                text("outcome")?,
                text("note")?,
            );
            let (occ, rec) = (time("occurred_at")?, time("recorded_at")?);
            (0..n)
                .map(|i| {
                    Row::Outcome(OutcomeRow {
                        event_id: need(ev[i].take()),
                        customer_id: need(cu[i].take()),
                        decision_id: de[i].take(),
                        action: need(ac[i].take()),
                        item_id: it[i].take(),
                        channel: ch[i].take(),
                        outcome: need(ou[i].take()),
                        occurred_at: occ[i],
                        recorded_at: rec[i],
                        note: no[i].take(),
                    })
                })
                .collect()
        }
        Kind::Decisions => {
            let (mut id, mut cu, mut ro, mut mo) = (
                text("decision_id")?,
                text("customer_id")?,
                text("route")?,
                text("model")?,
            );
            let (mut mv, mut ms, mut sv, mut ri) = (
                text("model_version")?,
                text("models")?,
                text("snapshot_version")?,
                text("risk")?,
            );
            let (mut se, mut ac, mut it, mut fe) = (
                text("segment")?,
                text("action")?,
                text("item_id")?,
                text("features")?,
            );
            let (at, sc, ev) = (
                time("decided_at")?,
                float("score")?,
                float("expected_value")?,
            );
            (0..n)
                .map(|i| {
                    Row::Decision(DecisionRow {
                        decision_id: need(id[i].take()),
                        customer_id: cu[i].take(),
                        decided_at: at[i],
                        route: need(ro[i].take()),
                        model: need(mo[i].take()),
                        model_version: need(mv[i].take()),
                        models: need(ms[i].take()),
                        snapshot_version: sv[i].take(),
                        score: sc[i],
                        risk: ri[i].take(),
                        segment: se[i].take(),
                        action: ac[i].take(),
                        item_id: it[i].take(),
                        expected_value: ev[i],
                        features: fe[i].take(),
                    })
                })
                .collect()
        }
    })
}
