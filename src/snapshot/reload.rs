//! Picking up new snapshots while serving: find the newest complete one that loads, validate it against the
//! served one (or, after a restart, the one served before it), swap. A bad snapshot is reported and never replaces
//! a good one, and never hides a good one dropped after it: refused candidates are skipped until they change.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::discover::{DiscoverOptions, Unservable, discover};
use super::drift::{self, DriftReport, SampleScorer};
use super::{FeatureSnapshot, SnapshotSource, SnapshotStore, load_snapshot_with};
use crate::telemetry::Metrics;

/// What runs on every snapshot just before it is served (erasure hides the erased customers in it).
pub type Prepare = dyn Fn(&mut FeatureSnapshot) + Send + Sync;

/// Rules a new snapshot must pass before it replaces the served one.
#[derive(Debug, Clone, Copy)]
pub struct ReloadPolicy {
    /// Largest fraction of rows a new snapshot may lose against the served one (0.5: a truncated export that
    /// halves the customer base is refused).
    pub max_row_drop: f64,
    /// Largest population stability index any feature may show against the served snapshot (None: drift is
    /// reported, never refused).
    pub max_psi: Option<f64>,
}

impl Default for ReloadPolicy {
    fn default() -> Self {
        ReloadPolicy {
            max_row_drop: 0.5,
            max_psi: None,
        }
    }
}

/// Guards the operator skips for one rescan (the admin reload's query).
#[derive(Debug, Clone, Copy, Default)]
pub struct Waivers {
    /// Serve a snapshot with more than --max-row-drop fewer customers.
    pub row_drop: bool,
    /// Serve a snapshot whose features drifted past --max-psi.
    pub drift: bool,
}

/// Identity of a snapshot on disk: a replaced file (same path, new rename) has a new modification time or size;
/// a replaced object in an object store also a new ETag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SourceKey {
    path: PathBuf,
    modified: SystemTime,
    bytes: u64,
    /// The parts' names, sizes, ETags and modification times (objects only).
    tag: Option<String>,
}

impl SourceKey {
    fn of(source: &SnapshotSource) -> SourceKey {
        let bytes = match &source.remote {
            Some(remote) => remote.bytes(),
            None => source
                .files
                .iter()
                .filter_map(|f| std::fs::metadata(&f.path).ok())
                .map(|m| m.len())
                .sum(),
        };
        SourceKey {
            path: source.path.clone(),
            modified: source.modified,
            bytes,
            tag: source.remote.as_ref().map(|r| r.fingerprint()),
        }
    }

    fn of_unservable(found: &Unservable) -> SourceKey {
        SourceKey {
            path: found.path.clone(),
            modified: found.modified,
            bytes: 0,
            tag: None,
        }
    }
}

/// What one rescan did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    /// The newest complete snapshot is the served one.
    Unchanged,
    /// A new snapshot was validated and swapped in (and nothing newer was refused).
    Loaded {
        /// Its version (file or folder name).
        version: String,
        /// Its customers.
        rows: usize,
        /// Load and validation time.
        seconds: f64,
    },
    /// The newest snapshot is refused (now, or earlier and unchanged since); the served one (if any, possibly an
    /// older one loaded by this rescan) stays.
    Rejected {
        /// File or folder name.
        source: String,
        /// Why.
        error: String,
    },
    /// No complete snapshot exists yet.
    Missing,
}

/// A snapshot newer than the served one that is not served: refused at load (not retried until it changes), or
/// found incomplete or unreadable as a whole (a folder without `_SUCCESS`, with no parts or non-Parquet files).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    /// File or folder name.
    pub version: String,
    /// Its path.
    pub source: String,
    /// Why it is not served.
    pub reason: String,
}

/// What the row-drop guard compares a new snapshot against.
#[derive(Debug, Clone, PartialEq)]
struct Baseline {
    version: String,
    rows: usize,
    /// Read from the state file: served by an earlier run of the server.
    restored: bool,
}

#[derive(Default)]
struct Memory {
    served: Option<SourceKey>,
    rejected: HashMap<SourceKey, String>,
    /// Snapshots found but not servable (no `_SUCCESS`, no parts, ...), with the reason last logged.
    unservable: HashMap<SourceKey, String>,
    baseline: Option<Baseline>,
    /// `--accept-row-drop-once`: the next swap skips the row-drop guard.
    accept_row_drop_once: bool,
}

/// The state file: what the row-drop guard needs to survive a restart.
#[derive(Debug, Serialize, Deserialize)]
struct GuardState {
    /// The `--snapshots` path it was written for.
    snapshots: String,
    /// The last served snapshot: name, path, modification time (Unix seconds and nanoseconds), bytes, rows.
    version: String,
    source: String,
    modified_secs: u64,
    modified_nanos: u32,
    bytes: u64,
    rows: usize,
}

/// Name of the state file inside `--state-dir`.
pub const STATE_FILE: &str = "snapshot-guard.json";

fn comparable(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Rescans one snapshots path; one rescan at a time (the watcher and the admin route share it).
pub struct SnapshotReloader {
    path: PathBuf,
    policy: ReloadPolicy,
    state_file: Option<PathBuf>,
    options: DiscoverOptions,
    memory: Mutex<Memory>,
    /// Refused snapshots newer than the served one, as of the last rescan (read by `/v1/snapshot` without waiting
    /// for a rescan in progress).
    refused: Mutex<Vec<Refusal>>,
    prepare: Option<std::sync::Arc<Prepare>>,
}

impl SnapshotReloader {
    /// A reloader for `path` (a folder of snapshots, or one snapshot) that remembers nothing across restarts.
    pub fn new(path: &Path, policy: ReloadPolicy) -> SnapshotReloader {
        SnapshotReloader {
            path: path.to_path_buf(),
            policy,
            state_file: None,
            options: DiscoverOptions::default(),
            memory: Mutex::new(Memory::default()),
            refused: Mutex::new(Vec::new()),
            prepare: None,
        }
    }

    /// Serves part folders without `_SUCCESS` once nothing in them changed for `settle`
    /// (`--snapshot-settle-seconds`); None (the default) waits for the marker.
    pub fn settling_after(mut self, settle: Option<Duration>) -> SnapshotReloader {
        self.options.settle = settle;
        self
    }

    /// Runs `prepare` on every snapshot before it is served (and while no erasure can slip in between).
    pub fn preparing_with(mut self, prepare: std::sync::Arc<Prepare>) -> SnapshotReloader {
        self.prepare = Some(prepare);
        self
    }

    /// Keeps the row-drop guard's baseline in `state_dir` (created when first written), and starts from the one an
    /// earlier run left there. An unreadable or corrupt state file is logged and ignored.
    pub fn persisting_in(mut self, state_dir: Option<&Path>) -> SnapshotReloader {
        let Some(dir) = state_dir.filter(|d| !d.as_os_str().is_empty()) else {
            return self;
        };
        let file = dir.join(STATE_FILE);
        let baseline = self.restore(&file);
        self.memory_mut().baseline = baseline;
        self.state_file = Some(file);
        self
    }

    /// Lets the next swap take a snapshot the row-drop guard would refuse (`--accept-row-drop-once`).
    pub fn accepting_row_drop_once(mut self, accept: bool) -> SnapshotReloader {
        if accept {
            tracing::warn!(
                "--accept-row-drop-once: the next snapshot is served even if it has more than --max-row-drop fewer customers"
            );
        }
        self.memory_mut().accept_row_drop_once = accept;
        self
    }

    fn memory_mut(&mut self) -> &mut Memory {
        self.memory.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    fn restore(&self, file: &Path) -> Option<Baseline> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(file = %file.display(), %error, "cannot read the snapshot state file; ignored (the row-drop guard starts empty)");
                return None;
            }
        };
        let state: GuardState = match serde_json::from_str(&text) {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(file = %file.display(), %error, "corrupt snapshot state file; ignored (the row-drop guard starts empty)");
                return None;
            }
        };
        if state.snapshots != comparable(&self.path) {
            tracing::info!(file = %file.display(), was = %state.snapshots, "snapshot state file is for another snapshots path; ignored");
            return None;
        }
        tracing::info!(snapshot = %state.version, rows = state.rows, "row-drop guard restored: the first snapshot is checked against the one served before the restart");
        Some(Baseline {
            version: state.version,
            rows: state.rows,
            restored: true,
        })
    }

    /// Writes the state file atomically (temporary file, then rename); a failure is logged, never fatal.
    fn persist(&self, key: &SourceKey, snapshot: &FeatureSnapshot) {
        let Some(file) = &self.state_file else {
            return;
        };
        let since = key.modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        let state = GuardState {
            snapshots: comparable(&self.path),
            version: snapshot.version.clone(),
            source: key.path.display().to_string(),
            modified_secs: since.as_secs(),
            modified_nanos: since.subsec_nanos(),
            bytes: key.bytes,
            rows: snapshot.rows(),
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = file.with_extension("json.tmp");
            let mut out = std::fs::File::create(&tmp)?;
            out.write_all(&serde_json::to_vec_pretty(&state)?)?;
            out.sync_all()?;
            std::fs::rename(&tmp, file)
        };
        if let Err(error) = write() {
            tracing::warn!(file = %file.display(), %error, "cannot write the snapshot state file; the row-drop guard will not survive a restart");
        }
    }

    /// Refused snapshots newer than the served one (newest first), as of the last rescan.
    pub fn refused(&self) -> Vec<Refusal> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Looks for a newer complete snapshot and swaps in the newest that loads and validates; `scorer` (the churn
    /// model) scores a sample of customers for the drift report.
    pub fn reload_once(
        &self,
        store: &SnapshotStore,
        columns: &[String],
        owned: Option<&str>,
        metrics: &Metrics,
        scorer: Option<&dyn SampleScorer>,
    ) -> ReloadOutcome {
        self.reload(store, columns, owned, metrics, Waivers::default(), scorer)
    }

    /// [`reload_once`](Self::reload_once); with a waiver (the operator's admin call) its guard is skipped for this
    /// rescan, and candidates refused earlier are retried.
    pub fn reload(
        &self,
        store: &SnapshotStore,
        columns: &[String],
        owned: Option<&str>,
        metrics: &Metrics,
        waivers: Waivers,
        scorer: Option<&dyn SampleScorer>,
    ) -> ReloadOutcome {
        let accept_row_drop = waivers.row_drop;
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let (sources, unservable) = match discover(&self.path, &self.options) {
            Ok(found) => (found.sources, found.unservable),
            Err(e) => {
                store.set_error(Some(e.to_string()));
                return ReloadOutcome::Rejected {
                    source: self.path.display().to_string(),
                    error: e.to_string(),
                };
            }
        };
        let keys: Vec<SourceKey> = sources.iter().map(SourceKey::of).collect();
        // Forget refusals of files that are gone or changed: a changed file is a new candidate.
        memory.rejected.retain(|key, _| keys.contains(key));
        let mut refused = Vec::new();
        let mut loaded = None;
        for (source, key) in sources.iter().zip(keys) {
            if memory.served.as_ref() == Some(&key) {
                break;
            }
            let refusal = |reason: &str| {
                let refusal = Refusal {
                    version: source.name.clone(),
                    source: source.path.display().to_string(),
                    reason: reason.to_string(),
                };
                (source.modified, refusal)
            };
            if let Some(reason) = memory.rejected.get(&key)
                && !accept_row_drop
                && !waivers.drift
            {
                refused.push(refusal(reason));
                continue;
            }
            let waive = accept_row_drop || memory.accept_row_drop_once;
            let started = Instant::now();
            // An object store that could not be read is tried again at the next poll, not refused until changed.
            let mut unreachable = false;
            let outcome = load_snapshot_with(source, columns, owned)
                .map_err(|e| {
                    unreachable = matches!(e, super::SnapshotError::Unreachable { .. });
                    e.to_string()
                })
                .and_then(|mut new| {
                    let guard = memory
                        .baseline
                        .as_ref()
                        .map_or(Ok(()), |b| check_row_drop(new.rows(), b, &self.policy));
                    match guard {
                        Err(reason) if waive => {
                            tracing::warn!(snapshot = %new.version, %reason, "row-drop guard waived by the operator: served anyway");
                        }
                        other => other?,
                    }
                    new.warnings = column_warnings(&new);
                    if let Some(served) = store.current() {
                        let report = drift::compare(&new, &served, scorer);
                        match (self.policy.max_psi.map(|max| check_drift(&report, max)), waivers.drift) {
                            (Some(Err(reason)), true) => {
                                tracing::warn!(snapshot = %new.version, %reason, "drift guard waived by the operator: served anyway");
                            }
                            (Some(refused), false) => refused?,
                            _ => {}
                        }
                        new.drift = Some(std::sync::Arc::new(report));
                    }
                    Ok(new)
                });
            match outcome {
                Ok(new) => {
                    let new = store.put(new, self.prepare.as_deref());
                    store.set_error(None);
                    let seconds = started.elapsed().as_secs_f64();
                    for warning in &new.warnings {
                        tracing::warn!(snapshot = %new.version, %warning, "snapshot served with a warning");
                    }
                    tracing::info!(snapshot = %new.version, rows = new.rows(), seconds, "snapshot swapped in");
                    if memory.accept_row_drop_once {
                        tracing::info!(snapshot = %new.version, "--accept-row-drop-once used up");
                        memory.accept_row_drop_once = false;
                    }
                    log_drift(&new, metrics);
                    metrics.snapshot_load_seconds.observe(seconds);
                    metrics.snapshot_loads.inc();
                    metrics.snapshot_rows.set(new.rows() as i64);
                    loaded = Some(ReloadOutcome::Loaded {
                        version: new.version.clone(),
                        rows: new.rows(),
                        seconds,
                    });
                    memory.rejected.remove(&key);
                    self.persist(&key, &new);
                    memory.baseline = Some(Baseline {
                        version: new.version.clone(),
                        rows: new.rows(),
                        restored: false,
                    });
                    memory.served = Some(key);
                    break;
                }
                Err(error) => {
                    tracing::error!(snapshot = %source.name, %error, "snapshot refused; the served one (if any) stays, older ones are tried");
                    metrics.snapshot_load_failures.inc();
                    refused.push(refusal(&error));
                    if !unreachable {
                        memory.rejected.insert(key, error);
                    }
                }
            }
        }
        let refused = add_unservable(&mut memory, refused, &unservable);
        if !refused.is_empty() || store.current().is_some() {
            store.set_error(
                refused
                    .first()
                    .map(|r| format!("{}: {}", r.version, r.reason)),
            );
        }
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = refused.clone();
        match (refused.into_iter().next(), loaded) {
            (Some(newest), _) => ReloadOutcome::Rejected {
                source: newest.version,
                error: newest.reason,
            },
            (None, Some(loaded)) => loaded,
            (None, None) if sources.is_empty() => ReloadOutcome::Missing,
            (None, None) => ReloadOutcome::Unchanged,
        }
    }
}

impl SnapshotReloader {
    /// Re-reads the served snapshot with `columns` when it lacks some of them (a model loaded at run time needs
    /// columns the served models did not); Ok when it has them or nothing is served yet (the next rescan reads
    /// them), Err saying why it cannot. Only the served file as it was loaded is re-read: a changed file is a new
    /// candidate for [`SnapshotReloader::reload_once`] and its checks.
    pub fn widen(
        &self,
        store: &SnapshotStore,
        columns: &[String],
        owned: Option<&str>,
    ) -> Result<(), String> {
        let Some(served) = store.current() else {
            return Ok(());
        };
        if columns.iter().all(|c| served.columns.contains(c)) {
            return Ok(());
        }
        let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let source = discover(&self.path, &self.options)
            .map_err(|e| e.to_string())?
            .sources
            .into_iter()
            .find(|s| memory.served.as_ref() == Some(&SourceKey::of(s)))
            .ok_or_else(|| {
                format!(
                    "the served snapshot {} changed on disk and is not reloaded yet",
                    served.version
                )
            })?;
        let mut wider = load_snapshot_with(&source, columns, owned)
            .map_err(|e| format!("the served snapshot {} lacks them: {e}", served.version))?;
        wider.warnings = column_warnings(&wider);
        wider.drift = served.drift.clone();
        tracing::info!(snapshot = %wider.version, columns = columns.len(), "snapshot re-read with the columns a new model needs");
        // The same data with more columns: the last error (a refused newer file) still stands.
        store.put(wider, self.prepare.as_deref());
        Ok(())
    }
}

const ROW_DROP_HINT: &str = "a truncated export is not served (to take a deliberate shrink: \
     POST /v1/admin/snapshot/reload?accept_row_drop=true, or restart with --accept-row-drop-once)";

/// Err when `rows` is more than the policy's fraction below the baseline's.
fn check_row_drop(rows: usize, baseline: &Baseline, policy: &ReloadPolicy) -> Result<(), String> {
    let floor = baseline.rows as f64 * (1.0 - policy.max_row_drop);
    if (rows as f64) >= floor {
        return Ok(());
    }
    let against = match baseline.restored {
        true => format!(
            "the {} rows of {}, served before the restart",
            baseline.rows, baseline.version
        ),
        false => format!("the served snapshot's {}", baseline.rows),
    };
    Err(format!(
        "has {rows} rows, {:.0}% fewer than {against} (more than the {:.0}% allowed by --max-row-drop); \
         {ROW_DROP_HINT}",
        100.0 * (1.0 - rows as f64 / baseline.rows as f64),
        100.0 * policy.max_row_drop
    ))
}

/// Err naming every feature whose PSI is above `max_psi`, largest first.
pub fn check_drift(report: &DriftReport, max_psi: f64) -> Result<(), String> {
    let over = report.over(max_psi);
    if over.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = over
        .iter()
        .map(|f| format!("{} (PSI {:.3})", f.feature, f.psi))
        .collect();
    Err(format!(
        "feature drift above --max-psi {max_psi} against the served snapshot {}: {}; a changed unit or a broken \
         join is not served (to take a deliberate change: \
         POST /v1/admin/snapshot/reload?accept_drift=true)",
        report.against,
        named.join(", ")
    ))
}

/// The drift log line and gauges of a snapshot just swapped in (gauges cleared when it has no report).
fn log_drift(new: &FeatureSnapshot, metrics: &Metrics) {
    metrics.drift.set(new.drift.as_deref());
    let Some(report) = &new.drift else {
        return;
    };
    let score_psi = report.score.as_ref().map(|s| s.psi);
    tracing::info!(
        snapshot = %new.version,
        against = %report.against,
        top = %report.top(3),
        score_psi,
        sampled = report.sample_rows_new,
        seconds = report.seconds,
        "snapshot drift against the one it replaced"
    );
}

/// Adds the snapshots found but not servable that are newer than the served one (all of them when none is served)
/// to a rescan's refusals, newest first; each is logged once per change.
fn add_unservable(
    memory: &mut Memory,
    refused: Vec<(SystemTime, Refusal)>,
    unservable: &[Unservable],
) -> Vec<Refusal> {
    let keys: Vec<SourceKey> = unservable.iter().map(SourceKey::of_unservable).collect();
    memory.unservable.retain(|key, _| keys.contains(key));
    let served = memory.served.as_ref().map(|k| k.modified);
    let mut all = refused;
    for (found, key) in unservable.iter().zip(keys) {
        if served.is_some_and(|t| found.modified <= t) {
            continue;
        }
        if memory.unservable.get(&key) != Some(&found.reason) {
            tracing::warn!(snapshot = %found.name, path = %found.path.display(), reason = %found.reason, "snapshot found but not served");
            memory.unservable.insert(key, found.reason.clone());
        }
        let refusal = Refusal {
            version: found.name.clone(),
            source: found.path.display().to_string(),
            reason: found.reason.clone(),
        };
        all.push((found.modified, refusal));
    }
    // Stable: among equal times the loader's order stays.
    all.sort_by_key(|b| std::cmp::Reverse(b.0));
    all.into_iter().map(|(_, r)| r).collect()
}

/// Constant or entirely null feature columns (served, with a warning).
fn column_warnings(new: &FeatureSnapshot) -> Vec<String> {
    let mut warnings = Vec::new();
    for (column, stats) in new.columns.iter().zip(new.column_stats()) {
        // Erased rows are blanked (null) but not counted in rows().
        if stats.nulls >= new.rows() {
            warnings.push(format!("column '{column}' is entirely null"));
        } else if stats.min == stats.max && new.rows() > 1 {
            warnings.push(format!("column '{column}' is constant ({})", stats.min));
        }
    }
    warnings
}

/// Checks a loaded snapshot before it is served; Ok holds warnings, Err the reason it must not be served.
pub fn validate(
    new: &FeatureSnapshot,
    served: Option<&FeatureSnapshot>,
    policy: &ReloadPolicy,
) -> Result<Vec<String>, String> {
    if let Some(old) = served {
        let baseline = Baseline {
            version: old.version.clone(),
            rows: old.rows(),
            restored: false,
        };
        check_row_drop(new.rows(), &baseline, policy)?;
    }
    Ok(column_warnings(new))
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

    #[test]
    fn the_guard_baseline_survives_a_restart_and_a_corrupt_state_file_is_ignored() {
        let dir = std::env::temp_dir().join(format!("crmscore-guard-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let snapshots = dir.join("snapshots");
        let reloader =
            SnapshotReloader::new(&snapshots, ReloadPolicy::default()).persisting_in(Some(&dir));
        let key = SourceKey {
            path: snapshots.join("s"),
            modified: UNIX_EPOCH + std::time::Duration::from_millis(1_500),
            bytes: 42,
            tag: None,
        };
        reloader.persist(&key, &snapshot(100, |i| [i as f32, 1.0]));
        let text = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
        assert!(
            text.contains("\"rows\": 100") && text.contains("\"bytes\": 42"),
            "{text}"
        );
        let restarted = SnapshotReloader::new(&snapshots, ReloadPolicy::default())
            .persisting_in(Some(&dir))
            .memory
            .into_inner()
            .unwrap();
        let baseline = restarted.baseline.unwrap();
        assert_eq!((baseline.rows, baseline.restored), (100, true));
        let err = check_row_drop(10, &baseline, &ReloadPolicy::default()).unwrap_err();
        assert!(err.contains("served before the restart"), "{err}");
        let elsewhere = SnapshotReloader::new(&dir.join("other"), ReloadPolicy::default())
            .persisting_in(Some(&dir));
        assert!(
            elsewhere.memory.lock().unwrap().baseline.is_none(),
            "another snapshots path"
        );
        std::fs::write(dir.join(STATE_FILE), b"{not json").unwrap();
        let corrupt =
            SnapshotReloader::new(&snapshots, ReloadPolicy::default()).persisting_in(Some(&dir));
        assert!(corrupt.memory.lock().unwrap().baseline.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
