//! Picking up new snapshots while serving: find the newest complete one, load it off the request path, validate it
//! against the served one, swap. A bad snapshot is reported and never replaces a good one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use super::{FeatureSnapshot, SnapshotSource, SnapshotStore, find_snapshots, load_snapshot_with};
use crate::telemetry::Metrics;

/// Rules a new snapshot must pass before it replaces the served one.
#[derive(Debug, Clone, Copy)]
pub struct ReloadPolicy {
    /// Largest fraction of rows a new snapshot may lose against the served one (0.5: a truncated export that
    /// halves the customer base is refused).
    pub max_row_drop: f64,
}

impl Default for ReloadPolicy {
    fn default() -> Self {
        ReloadPolicy { max_row_drop: 0.5 }
    }
}

/// Identity of a snapshot on disk: a replaced file (same path, new rename) has a new modification time or size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SourceKey {
    path: PathBuf,
    modified: SystemTime,
    bytes: u64,
}

impl SourceKey {
    fn of(source: &SnapshotSource) -> SourceKey {
        let bytes = source
            .files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        SourceKey {
            path: source.path.clone(),
            modified: source.modified,
            bytes,
        }
    }
}

/// What one rescan did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    /// The newest complete snapshot is the served one (or a known-bad one while a good one serves).
    Unchanged,
    /// A new snapshot was validated and swapped in.
    Loaded {
        /// Its version (file or folder name).
        version: String,
        /// Its customers.
        rows: usize,
        /// Load and validation time.
        seconds: f64,
    },
    /// The newest snapshot failed; the served one (if any) stays.
    Rejected {
        /// File or folder name.
        source: String,
        /// Why.
        error: String,
    },
    /// No complete snapshot exists yet.
    Missing,
}

#[derive(Default)]
struct Memory {
    served: Option<SourceKey>,
    rejected: HashSet<SourceKey>,
}

/// Rescans one snapshots path; one rescan at a time (the watcher and the admin route share it).
pub struct SnapshotReloader {
    path: PathBuf,
    policy: ReloadPolicy,
    memory: Mutex<Memory>,
}

impl SnapshotReloader {
    /// A reloader for `path` (a folder of snapshots, or one snapshot).
    pub fn new(path: &Path, policy: ReloadPolicy) -> SnapshotReloader {
        SnapshotReloader {
            path: path.to_path_buf(),
            policy,
            memory: Mutex::new(Memory::default()),
        }
    }

    /// Looks for a newer complete snapshot and swaps it in if it loads and validates. While nothing is served,
    /// older snapshots are tried when newer ones fail.
    pub fn reload_once(
        &self,
        store: &SnapshotStore,
        columns: &[String],
        owned: Option<&str>,
        metrics: &Metrics,
    ) -> ReloadOutcome {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let sources = match find_snapshots(&self.path) {
            Ok(sources) => sources,
            Err(e) => {
                store.set_error(Some(e.to_string()));
                return ReloadOutcome::Rejected {
                    source: self.path.display().to_string(),
                    error: e.to_string(),
                };
            }
        };
        let mut first_rejection = None;
        for source in &sources {
            let key = SourceKey::of(source);
            let served = store.current();
            if memory.served.as_ref() == Some(&key)
                || (served.is_some() && memory.rejected.contains(&key))
            {
                return first_rejection.unwrap_or(ReloadOutcome::Unchanged);
            }
            if memory.rejected.contains(&key) {
                continue;
            }
            let started = Instant::now();
            let outcome = load_snapshot_with(source, columns, owned)
                .map_err(|e| e.to_string())
                .and_then(|mut new| {
                    new.warnings = validate(&new, served.as_deref(), &self.policy)?;
                    Ok(new)
                });
            match outcome {
                Ok(new) => {
                    let seconds = started.elapsed().as_secs_f64();
                    for warning in &new.warnings {
                        tracing::warn!(snapshot = %new.version, %warning, "snapshot served with a warning");
                    }
                    tracing::info!(snapshot = %new.version, rows = new.rows(), seconds, "snapshot swapped in");
                    metrics.snapshot_load_seconds.observe(seconds);
                    metrics.snapshot_loads.inc();
                    metrics.snapshot_rows.set(new.rows() as i64);
                    let loaded = ReloadOutcome::Loaded {
                        version: new.version.clone(),
                        rows: new.rows(),
                        seconds,
                    };
                    store.install(new);
                    memory.served = Some(key);
                    return loaded;
                }
                Err(error) => {
                    tracing::error!(snapshot = %source.name, %error, "snapshot rejected; the served one (if any) stays");
                    metrics.snapshot_load_failures.inc();
                    store.set_error(Some(format!("{}: {error}", source.name)));
                    memory.rejected.insert(key);
                    first_rejection.get_or_insert(ReloadOutcome::Rejected {
                        source: source.name.clone(),
                        error,
                    });
                    if served.is_some() {
                        break;
                    }
                }
            }
        }
        first_rejection.unwrap_or(ReloadOutcome::Missing)
    }
}

/// Checks a loaded snapshot before it is served; Ok holds warnings, Err the reason it must not be served.
pub fn validate(
    new: &FeatureSnapshot,
    served: Option<&FeatureSnapshot>,
    policy: &ReloadPolicy,
) -> Result<Vec<String>, String> {
    if let Some(old) = served {
        let floor = old.rows() as f64 * (1.0 - policy.max_row_drop);
        if (new.rows() as f64) < floor {
            return Err(format!(
                "has {} rows, {:.0}% fewer than the served snapshot's {} (more than the {:.0}% allowed by \
                 --max-row-drop); a truncated export is not served",
                new.rows(),
                100.0 * (1.0 - new.rows() as f64 / old.rows() as f64),
                old.rows(),
                100.0 * policy.max_row_drop
            ));
        }
    }
    let mut warnings = Vec::new();
    for (column, stats) in new.columns.iter().zip(new.column_stats()) {
        if stats.nulls == new.rows() {
            warnings.push(format!("column '{column}' is entirely null"));
        } else if stats.min == stats.max && new.rows() > 1 {
            warnings.push(format!("column '{column}' is constant ({})", stats.min));
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::CustomerIndex;

    fn snapshot(rows: usize, values: impl Fn(usize) -> [f32; 2]) -> FeatureSnapshot {
        let index = CustomerIndex::from_integers(0..rows as i64).unwrap();
        let matrix = (0..rows).flat_map(values).collect();
        FeatureSnapshot::new(
            "s".into(),
            PathBuf::from("s"),
            vec!["a".into(), "b".into()],
            matrix,
            index,
        )
    }

    #[test]
    fn a_big_row_drop_is_refused_and_odd_columns_warn() {
        let old = snapshot(100, |i| [i as f32, 1.0]);
        let policy = ReloadPolicy::default();
        let err = validate(&snapshot(10, |i| [i as f32, 2.0]), Some(&old), &policy).unwrap_err();
        assert!(err.contains("has 10 rows, 90% fewer"), "{err}");
        let warnings = validate(
            &snapshot(60, |i| [f32::NAN, i as f32 * 0.0 + 3.0]),
            Some(&old),
            &policy,
        )
        .unwrap();
        assert_eq!(
            warnings,
            vec!["column 'a' is entirely null", "column 'b' is constant (3)"]
        );
        assert!(
            validate(&snapshot(5, |i| [i as f32, i as f32]), None, &policy)
                .unwrap()
                .is_empty()
        );
    }
}
