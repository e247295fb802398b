//! `crmscore check-snapshot`: the report a pipeline reads before it drops a snapshot.

use std::fmt::Write;
use std::fs::File;
use std::path::Path;

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};

use super::load::ID_COLUMN;
use super::reload::{ReloadPolicy, check_drift, validate};
use super::{DiscoverOptions, FeatureSnapshot, discover, load_snapshot_with};
use crate::model::spec::snapshot_columns;
use crate::model::{ModelError, ModelSpec};
use crate::snapshot::find_snapshots;

/// The feature columns of every model manifest in `models`, and the owned-items column a recommender reads
/// (manifests only; no ONNX Runtime needed).
pub fn model_columns(models: &Path) -> Result<(Vec<String>, Option<String>), ModelError> {
    let specs = ModelSpec::load_all(models)?;
    let owned = specs
        .iter()
        .find_map(|s| s.owned_column().map(str::to_string));
    Ok((snapshot_columns(&specs), owned))
}

/// The newest snapshot at `path`, loaded with `columns`.
fn load_newest(
    path: &Path,
    columns: &[String],
    owned: Option<&str>,
) -> Result<FeatureSnapshot, String> {
    let sources = find_snapshots(path).map_err(|e| e.to_string())?;
    let source = sources
        .first()
        .ok_or_else(|| format!("no complete snapshot under {}", path.display()))?;
    load_snapshot_with(source, columns, owned).map_err(|e| e.to_string())
}

/// Builds the report for the snapshot at `path` (its newest, for a folder); with `against` (the served one) it
/// adds the drift report the server would log, failing when a feature's PSI is above `max_psi`. The bool is the
/// verdict.
pub fn check(
    path: &Path,
    columns: &[String],
    owned: Option<&str>,
    against: Option<&Path>,
    max_psi: Option<f64>,
) -> (String, bool) {
    let mut out = String::new();
    let sources = match discover(path, &DiscoverOptions::default()) {
        Ok(found) if !found.sources.is_empty() => found.sources,
        Ok(found) => {
            let why = found
                .unservable
                .first()
                .map(|u| format!(" ({} {})", u.name, u.reason))
                .unwrap_or_default();
            return (
                format!(
                    "verdict  FAIL: no complete snapshot under {}{why}\n",
                    path.display()
                ),
                false,
            );
        }
        Err(e) => return (format!("verdict  FAIL: {e}\n"), false),
    };
    let source = &sources[0];
    let _ = writeln!(
        out,
        "snapshot {} ({} file(s))",
        source.path.display(),
        source.files.len()
    );
    let types = File::open(&source.files[0].path)
        .ok()
        .and_then(|f| ArrowReaderMetadata::load(&f, ArrowReaderOptions::new()).ok())
        .map(|m| m.schema().clone());
    let type_of = |c: &str| {
        types
            .as_ref()
            .and_then(|s| s.field_with_name(c).ok())
            .map(|f| f.data_type().to_string())
            .unwrap_or_else(|| "-".into())
    };
    let snapshot = match load_snapshot_with(source, columns, owned) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(out, "verdict  FAIL: {e}");
            return (out, false);
        }
    };
    let _ = writeln!(out, "rows     {}", snapshot.rows());
    match (owned, &snapshot.owned) {
        (Some(column), Some(items)) => {
            let _ = writeln!(
                out,
                "owned    {column}: {} entries, {} distinct items",
                items.values.len(),
                items.dict.len()
            );
        }
        (Some(column), None) => {
            let _ = writeln!(
                out,
                "warning  no '{column}' column: recommendations will exclude nothing"
            );
        }
        _ => {}
    }
    let _ = writeln!(
        out,
        "ids      {ID_COLUMN} ({}), unique, no nulls",
        type_of(ID_COLUMN)
    );
    let _ = writeln!(
        out,
        "{:<28} {:<10} {:>10} {:>8} {:>14} {:>14}",
        "column", "type", "nulls", "null %", "min", "max"
    );
    for (c, s) in snapshot.columns.iter().zip(snapshot.column_stats()) {
        let pct = 100.0 * s.nulls as f64 / snapshot.rows().max(1) as f64;
        let _ = writeln!(
            out,
            "{c:<28} {:<10} {:>10} {pct:>7.1}% {:>14} {:>14}",
            type_of(c),
            s.nulls,
            s.min,
            s.max
        );
    }
    let served = against.map(|a| {
        load_newest(a, columns, owned).map_err(|e| format!("--against {}: {e}", a.display()))
    });
    let policy = ReloadPolicy::default();
    let verdict = validate(
        &snapshot,
        served.as_ref().and_then(|s| s.as_ref().ok()),
        &policy,
    )
    .and_then(|warnings| {
        for w in &warnings {
            let _ = writeln!(out, "warning  {w}");
        }
        let Some(served) = served else {
            return Ok(());
        };
        let mut report = super::drift::compare(&snapshot, &served?, None);
        report.score_note = Some(
            "check-snapshot loads no model (the server compares churn scores at the swap)".into(),
        );
        out.push_str(&report.render());
        max_psi.map_or(Ok(()), |max| check_drift(&report, max))
    });
    match verdict {
        Ok(()) => {
            let _ = writeln!(out, "verdict  OK: the server would serve this snapshot");
            (out, true)
        }
        Err(e) => {
            let _ = writeln!(out, "verdict  FAIL: {e}");
            (out, false)
        }
    }
}
