//! Reading the decision and outcome logs: every `date=*/part-*.parquet` of the Parquet day folders, only the
//! columns the report needs.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;

use super::ReportError;

/// The marker a day folder gets once its day is over and compacted.
const SUCCESS_MARKER: &str = "_SUCCESS";

/// The Parquet files of the two logs, and which day folders are still open.
#[derive(Debug, Default)]
pub struct FeedbackFiles {
    /// `decisions/date=*/part-*.parquet`, in folder then file order.
    pub decisions: Vec<PathBuf>,
    /// `outcomes/date=*/part-*.parquet`.
    pub outcomes: Vec<PathBuf>,
    /// Day folders without `_SUCCESS` that hold files, as `decisions/date=YYYY-MM-DD`.
    pub open_days: Vec<String>,
}

/// One decision of the reported model, for a known customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The id replies carried.
    pub decision_id: String,
    /// The customer scored.
    pub customer_id: String,
    /// Microseconds since the Unix epoch.
    pub decided_at: i64,
    /// The model's score (churn probability).
    pub score: f64,
    /// The action chosen, if any.
    pub action: Option<String>,
}

/// One churned or retained outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Unique per event; breaks ties.
    pub event_id: String,
    /// The customer it happened to.
    pub customer_id: String,
    /// The decision it answers, if the caller named one.
    pub decision_id: Option<String>,
    /// Churned (true) or retained (false).
    pub churned: bool,
    /// Microseconds since the Unix epoch.
    pub occurred_at: i64,
    /// Microseconds since the Unix epoch.
    pub recorded_at: i64,
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Names readers skip: hidden and underscore files (markers, half-written `.part-*.tmp`).
fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// The files under `dir`'s `decisions/` and `outcomes/` (a log folder that does not exist yet holds none).
pub fn find_files(dir: &Path) -> Result<FeedbackFiles, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::MissingFolder(dir.to_path_buf()));
    }
    let mut found = FeedbackFiles::default();
    found.decisions = log_files(dir, "decisions", &mut found.open_days)?;
    found.outcomes = log_files(dir, "outcomes", &mut found.open_days)?;
    Ok(found)
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, ReportError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
        let path = entry.map_err(|e| read_error(dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !is_hidden(&name) {
            entries.push((name, path));
        }
    }
    entries.sort();
    Ok(entries)
}

fn log_files(
    dir: &Path,
    log: &str,
    open_days: &mut Vec<String>,
) -> Result<Vec<PathBuf>, ReportError> {
    let root = dir.join(log);
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for (day, day_path) in sorted_entries(&root)? {
        if !day.starts_with("date=") || !day_path.is_dir() {
            continue;
        }
        let before = files.len();
        for (name, path) in sorted_entries(&day_path)? {
            if name.starts_with("part-") && name.ends_with(".parquet") && path.is_file() {
                files.push(path);
            }
        }
        if files.len() > before && !day_path.join(SUCCESS_MARKER).is_file() {
            open_days.push(format!("{log}/{day}"));
        }
    }
    Ok(files)
}

/// Reads `columns` of every file (in parallel), failing on a file that lacks one.
fn read_batches<'f>(
    files: &'f [PathBuf],
    columns: &[&str],
) -> Result<Vec<(&'f Path, RecordBatch)>, ReportError> {
    let per_file: Vec<Vec<(&Path, RecordBatch)>> = files
        .par_iter()
        .map(|path| {
            let file = File::open(path).map_err(|e| read_error(path, e))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| read_error(path, format!("not a readable Parquet file: {e}")))?;
            let schema = builder.schema().clone();
            let mut roots = Vec::with_capacity(columns.len());
            for name in columns {
                let index = schema
                    .index_of(name)
                    .map_err(|_| read_error(path, format!("column '{name}' is missing")))?;
                roots.push(index);
            }
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            let reader = builder
                .with_projection(mask)
                .with_batch_size(8192)
                .build()
                .map_err(|e| read_error(path, e))?;
            reader
                .map(|batch| {
                    batch
                        .map(|b| (path.as_path(), b))
                        .map_err(|e| read_error(path, format!("corrupt data: {e}")))
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    Ok(per_file.into_iter().flatten().collect())
}

fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef, String> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| format!("column '{name}' is missing"))
}

fn strings(batch: &RecordBatch, name: &str) -> Result<StringArray, String> {
    let array = column(batch, name)?;
    let utf8 = arrow_cast::cast(&array, &DataType::Utf8)
        .map_err(|e| format!("column '{name}' is not text: {e}"))?;
    Ok(utf8.as_string::<i32>().clone())
}

fn micros(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>, String> {
    let array = column(batch, name)?;
    let array = match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => array,
        _ => arrow_cast::cast(
            &array,
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )
        .map_err(|e| format!("column '{name}' is not a timestamp: {e}"))?,
    };
    Ok(array
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect())
}

fn floats(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>, String> {
    let array = arrow_cast::cast(&column(batch, name)?, &DataType::Float64)
        .map_err(|e| format!("column '{name}' is not a number: {e}"))?;
    Ok(array.as_primitive::<Float64Type>().iter().collect())
}

fn text(array: &StringArray, row: usize) -> Option<String> {
    array.is_valid(row).then(|| array.value(row).to_string())
}

const DECISION_COLUMNS: [&str; 6] = [
    "decision_id",
    "customer_id",
    "decided_at",
    "model",
    "score",
    "action",
];

/// The decisions of `model` that name a customer and carry a finite score (inline-feature rows have no customer
/// to label; a decision without a score has nothing to judge).
pub fn read_decisions(files: &[PathBuf], model: &str) -> Result<Vec<Decision>, ReportError> {
    let batches = read_batches(files, &DECISION_COLUMNS)?;
    let mut decisions = Vec::new();
    for (path, batch) in &batches {
        let bad = |message: String| read_error(path, message);
        let models = strings(batch, "model").map_err(bad)?;
        let ids = strings(batch, "decision_id").map_err(bad)?;
        let customers = strings(batch, "customer_id").map_err(bad)?;
        let actions = strings(batch, "action").map_err(bad)?;
        let at = micros(batch, "decided_at").map_err(bad)?;
        let scores = floats(batch, "score").map_err(bad)?;
        for row in 0..batch.num_rows() {
            if !models.is_valid(row) || models.value(row) != model {
                continue;
            }
            let (Some(customer_id), Some(decision_id), Some(decided_at), Some(score)) =
                (text(&customers, row), text(&ids, row), at[row], scores[row])
            else {
                continue;
            };
            if score.is_finite() {
                decisions.push(Decision {
                    decision_id,
                    customer_id,
                    decided_at,
                    score,
                    action: text(&actions, row),
                });
            }
        }
    }
    Ok(decisions)
}

const OUTCOME_COLUMNS: [&str; 6] = [
    "event_id",
    "customer_id",
    "decision_id",
    "outcome",
    "occurred_at",
    "recorded_at",
];

/// The churned and retained outcomes (the others say nothing about churn).
pub fn read_outcomes(files: &[PathBuf]) -> Result<Vec<Outcome>, ReportError> {
    let batches = read_batches(files, &OUTCOME_COLUMNS)?;
    let mut outcomes = Vec::new();
    for (path, batch) in &batches {
        let bad = |message: String| read_error(path, message);
        let kinds = strings(batch, "outcome").map_err(bad)?;
        let events = strings(batch, "event_id").map_err(bad)?;
        let customers = strings(batch, "customer_id").map_err(bad)?;
        let decisions = strings(batch, "decision_id").map_err(bad)?;
        let occurred = micros(batch, "occurred_at").map_err(bad)?;
        let recorded = micros(batch, "recorded_at").map_err(bad)?;
        for row in 0..batch.num_rows() {
            let churned = match kinds.is_valid(row).then(|| kinds.value(row)) {
                Some("churned") => true,
                Some("retained") => false,
                _ => continue,
            };
            let (Some(customer_id), Some(occurred_at)) = (text(&customers, row), occurred[row])
            else {
                continue;
            };
            outcomes.push(Outcome {
                event_id: text(&events, row).unwrap_or_default(),
                customer_id,
                decision_id: text(&decisions, row),
                churned,
                occurred_at,
                recorded_at: recorded[row].unwrap_or(i64::MAX),
            });
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    #[test]
    fn finds_parts_skips_hidden_and_notes_open_days() {
        let dir = std::env::temp_dir().join(format!("crmscore-report-find-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        touch(&dir.join("decisions/date=2026-12-01/part-00000.parquet"));
        touch(&dir.join("decisions/date=2026-12-01/part-00001.parquet"));
        touch(&dir.join("decisions/date=2026-12-01/_SUCCESS"));
        touch(&dir.join("decisions/date=2026-12-02/part-00000.parquet"));
        touch(&dir.join("decisions/date=2026-12-02/.part-00001.parquet.tmp"));
        touch(&dir.join("decisions/_tmp/part-00000.parquet"));
        touch(&dir.join("outcomes/date=2026-12-02/_SUCCESS"));
        touch(&dir.join("wal/segment-1"));
        let found = find_files(&dir).unwrap();
        let names: Vec<String> = found
            .decisions
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "decisions/date=2026-12-01/part-00000.parquet",
                "decisions/date=2026-12-01/part-00001.parquet",
                "decisions/date=2026-12-02/part-00000.parquet"
            ]
        );
        assert!(found.outcomes.is_empty());
        assert_eq!(found.open_days, ["decisions/date=2026-12-02"]);
        assert!(matches!(
            find_files(&dir.join("nope")),
            Err(ReportError::MissingFolder(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
