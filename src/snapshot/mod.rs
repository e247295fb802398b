//! The in-memory customer feature snapshot: id → row of a row-major f32 matrix, swapped atomically as a whole.

pub mod check;
pub mod codec;
mod decode;
pub mod discover;
pub mod drift;
pub mod hidden;
pub mod ids;
pub mod load;
mod owned;
pub mod partition;
pub mod reload;
mod row_group;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;

pub use discover::{
    DiscoverOptions, Discovery, PartFile, SnapshotSource, Unservable, discover, find_snapshots,
};
pub use drift::{DriftReport, SampleScorer};
pub use hidden::HiddenRows;
pub use ids::{CustomerId, CustomerIndex};
pub use load::{load_snapshot, load_snapshot_with};
pub use partition::PartitionValue;
pub use reload::{Prepare, Refusal, ReloadOutcome, ReloadPolicy, SnapshotReloader, Waivers};

/// Why a snapshot could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: column '{column}' {problem}")]
    Column {
        path: PathBuf,
        column: String,
        problem: String,
    },
    #[error("{path}: duplicate customer_id '{id}'")]
    DuplicateId { path: PathBuf, id: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// An object store could not be read after its retries (network, throttling): tried again at the next poll.
    #[error("cannot fetch {path}: {message}")]
    Unreachable { path: PathBuf, message: String },
}

/// One loaded snapshot. Immutable: a reload builds a new one and swaps the `Arc`.
pub struct FeatureSnapshot {
    /// Name of the file or folder it came from (what replies report).
    pub version: String,
    /// Path it was loaded from.
    pub source: PathBuf,
    /// When the load finished.
    pub loaded_at: SystemTime,
    /// When the data was produced (the file's, or the `_SUCCESS` marker's, modification time).
    pub produced_at: SystemTime,
    /// Validation findings that did not stop the swap (constant or all-null columns).
    pub warnings: Vec<String>,
    /// How it differs from the snapshot served when it was swapped in (none for the first one of a run).
    pub drift: Option<Arc<drift::DriftReport>>,
    /// Feature columns, in matrix column order.
    pub columns: Vec<String>,
    /// Whether `customer_id` was an integer column.
    pub integer_ids: bool,
    rows: usize,
    matrix: Vec<f32>,
    index: CustomerIndex,
    /// Items each customer owns (the recommender's list column), if the snapshot has one.
    pub owned: Option<OwnedItems>,
    serial: u64,
    /// Rows of erased customers: kept in the matrix (row numbers stay valid) but never found.
    hidden: HiddenRows,
}

/// Where a model's feature columns sit in the rows of one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The [`FeatureSnapshot::serial`] it was resolved against.
    pub snapshot: u64,
    positions: Box<[usize]>,
    /// First position when the columns are adjacent and in order: gathering is then one copy.
    contiguous_from: Option<usize>,
}

impl Layout {
    /// Values per gathered row.
    pub fn width(&self) -> usize {
        self.positions.len()
    }
}

/// Serial numbers of snapshots built by this process.
static SERIALS: AtomicU64 = AtomicU64::new(1);

impl FeatureSnapshot {
    /// Assembles a snapshot from its parts (the loader and tests use this).
    pub fn new(
        version: String,
        source: PathBuf,
        columns: Vec<String>,
        matrix: Vec<f32>,
        index: CustomerIndex,
    ) -> FeatureSnapshot {
        let rows = index.len();
        debug_assert_eq!(matrix.len(), rows * columns.len());
        let now = SystemTime::now();
        FeatureSnapshot {
            version,
            source,
            loaded_at: now,
            produced_at: now,
            warnings: Vec::new(),
            drift: None,
            integer_ids: index.is_integer(),
            columns,
            rows,
            matrix,
            index,
            owned: None,
            serial: SERIALS.fetch_add(1, Ordering::Relaxed),
            hidden: HiddenRows::default(),
        }
    }

    /// Number of customers served (erased ones left out).
    pub fn rows(&self) -> usize {
        self.rows - self.hidden.len()
    }

    /// Row index of a customer, if present (an erased customer is not).
    #[inline]
    pub fn lookup(&self, id: &CustomerId) -> Option<usize> {
        self.index.get(id).filter(|&row| !self.hidden.contains(row))
    }

    /// Customer ids in row order (erased customers included: their rows are hidden, not removed).
    pub fn customer_ids(&self) -> Vec<CustomerId> {
        self.index.ids()
    }

    /// Calls `f` with every customer id's text (integers in decimal) and row, in no particular order.
    pub fn for_each_id(&self, f: impl FnMut(&str, usize)) {
        self.index.for_each_id(f)
    }

    /// Whether row `row` belongs to an erased customer.
    pub fn is_hidden(&self, row: usize) -> bool {
        self.hidden.contains(row)
    }

    /// Hides `rows` of this served snapshot from every lookup (an erasure while it is served); returns how
    /// many were not hidden already.
    pub fn hide(&self, rows: &[usize]) -> usize {
        self.hidden.insert(rows)
    }

    /// Hides `rows` and blanks their feature values (NaN, as a null) before the snapshot is served, so an
    /// erased customer's data is neither found nor kept in the matrix.
    pub fn erase_rows(&mut self, rows: &[usize]) {
        let width = self.columns.len();
        for &row in rows.iter().filter(|&&r| r < self.rows) {
            self.matrix[row * width..(row + 1) * width].fill(f32::NAN);
        }
        self.hidden.insert(rows);
    }

    /// Asks the CPU to start loading row `row` into cache, so that gathering many random rows overlaps their
    /// memory latency instead of paying it one row after another.
    pub fn prefetch(&self, row: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let values = self.row(row);
            // A row can straddle two cache lines.
            let (first, last) = (
                values.as_ptr(),
                values.as_ptr().wrapping_add(values.len().saturating_sub(1)),
            );
            // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is a hint that never faults; both
            // pointers are inside `values`.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(first.cast());
                _mm_prefetch::<_MM_HINT_T0>(last.cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = row;
    }

    /// The full feature row of customer row `row`.
    pub fn row(&self, row: usize) -> &[f32] {
        let width = self.columns.len();
        &self.matrix[row * width..(row + 1) * width]
    }

    /// A number no other snapshot of this process has (what cached layouts are keyed by).
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Column positions of `features` in this snapshot, or the first one it lacks.
    pub fn layout(&self, features: &[String]) -> Result<Layout, String> {
        let positions: Box<[usize]> = features
            .iter()
            .map(|f| {
                self.columns
                    .iter()
                    .position(|c| c == f)
                    .ok_or_else(|| f.clone())
            })
            .collect::<Result<_, _>>()?;
        let contiguous = positions.windows(2).all(|w| w[1] == w[0] + 1);
        Ok(Layout {
            snapshot: self.serial,
            contiguous_from: positions.first().copied().filter(|_| contiguous),
            positions,
        })
    }

    /// Seconds since the data was produced.
    pub fn age(&self) -> std::time::Duration {
        SystemTime::now()
            .duration_since(self.produced_at)
            .unwrap_or_default()
    }

    /// Per feature column: nulls (or NaN), and min/max of the other values.
    pub fn column_stats(&self) -> Vec<ColumnStats> {
        use rayon::prelude::*;
        let width = self.columns.len();
        let empty = || vec![ColumnStats::default(); width];
        if width == 0 {
            return Vec::new();
        }
        self.matrix
            .par_chunks(width * 4096)
            .fold(empty, |mut acc, chunk| {
                for row in chunk.chunks_exact(width) {
                    for (s, &v) in acc.iter_mut().zip(row) {
                        s.add(v);
                    }
                }
                acc
            })
            .reduce(empty, |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| x.merge(y));
                a
            })
    }

    /// Appends customer row `row`'s values at `positions` to `out` (a straight copy when they are contiguous).
    pub fn gather(&self, row: usize, layout: &Layout, out: &mut Vec<f32>) {
        debug_assert_eq!(layout.snapshot, self.serial, "layout of another snapshot");
        let full = self.row(row);
        match layout.contiguous_from {
            Some(start) => out.extend_from_slice(&full[start..start + layout.width()]),
            None => out.extend(layout.positions.iter().map(|&p| full[p])),
        }
    }
}

/// Owned item ids per customer, stored compactly: offsets into one list of indices into a table of distinct ids.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OwnedItems {
    /// `offsets[r]..offsets[r + 1]` are row r's entries in `values`.
    pub offsets: Vec<u32>,
    /// Indices into `dict`.
    pub values: Vec<u32>,
    /// Distinct item ids.
    pub dict: Vec<String>,
}

impl OwnedItems {
    /// The item ids customer row `row` owns.
    pub fn of(&self, row: usize) -> impl Iterator<Item = &str> {
        let at = |r: usize| self.offsets.get(r).map_or(0, |&o| o as usize);
        let range = at(row)..at(row + 1);
        self.values[range]
            .iter()
            .map(|&v| self.dict[v as usize].as_str())
    }
}

/// Summary of one feature column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnStats {
    /// Null or NaN values.
    pub nulls: usize,
    /// Smallest non-null value (+inf when none).
    pub min: f32,
    /// Largest non-null value (-inf when none).
    pub max: f32,
}

impl Default for ColumnStats {
    fn default() -> Self {
        ColumnStats {
            nulls: 0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }
}

impl ColumnStats {
    fn add(&mut self, v: f32) {
        if v.is_nan() {
            self.nulls += 1;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    fn merge(&mut self, other: ColumnStats) {
        self.nulls += other.nulls;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// The served snapshot, or none yet, plus the outcome of the last load attempt.
#[derive(Default)]
pub struct SnapshotStore {
    current: ArcSwapOption<FeatureSnapshot>,
    last_error: Mutex<Option<String>>,
    /// Held while a snapshot is prepared and swapped in, and while an erasure changes the served one: an
    /// erasure is never lost between checking a new snapshot and serving it.
    swaps: Mutex<()>,
}

impl SnapshotStore {
    /// The snapshot to use for one whole request (readers keep it alive across a swap).
    pub fn current(&self) -> Option<Arc<FeatureSnapshot>> {
        self.current.load_full()
    }

    /// Swaps in a new snapshot; the old one is freed when its last reader is done.
    pub fn install(&self, snapshot: FeatureSnapshot) {
        self.put(snapshot, None);
        self.set_error(None);
    }

    /// Runs `prepare` on `snapshot` (erasure hides erased customers) and swaps it in, with no erasure in
    /// between; the last error is left as it is. Returns the snapshot now served.
    pub fn put(
        &self,
        mut snapshot: FeatureSnapshot,
        prepare: Option<&Prepare>,
    ) -> Arc<FeatureSnapshot> {
        let _swap = self.hold_swaps();
        if let Some(prepare) = prepare {
            prepare(&mut snapshot);
        }
        let snapshot = Arc::new(snapshot);
        self.current.store(Some(snapshot.clone()));
        snapshot
    }

    /// Keeps snapshots from being swapped in while the guard lives (an erasure records itself, then hides the
    /// customer in the served snapshot, under it).
    pub fn hold_swaps(&self) -> MutexGuard<'_, ()> {
        self.swaps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records why the last load attempt failed (None after a success).
    pub fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// Why no snapshot is served: still loading or none complete, or the last attempt's failure.
    pub fn not_served_reason(&self) -> String {
        match self.last_error() {
            Some(e) => format!("no snapshot is served yet; last attempt failed: {e}"),
            None => "no snapshot is served yet (loading, or none complete in the snapshots folder)"
                .to_string(),
        }
    }

    /// Why the last load attempt failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> FeatureSnapshot {
        let index = CustomerIndex::from_strings(["a", "b"].iter().map(|s| s.to_string())).unwrap();
        FeatureSnapshot::new(
            "t".into(),
            PathBuf::from("t"),
            vec!["x".into(), "y".into(), "z".into()],
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            index,
        )
    }

    #[test]
    fn gathers_contiguous_and_scattered_layouts() {
        let s = tiny();
        let row = s.lookup(&CustomerId::Str("b".into())).unwrap();
        let mut out = Vec::new();
        s.gather(row, &s.layout(&["y".into(), "z".into()]).unwrap(), &mut out);
        s.gather(row, &s.layout(&["z".into(), "x".into()]).unwrap(), &mut out);
        assert_eq!(out, vec![5.0, 6.0, 6.0, 4.0]);
        assert_eq!(s.layout(&["w".into()]).unwrap_err(), "w");
        assert_ne!(
            s.serial(),
            tiny().serial(),
            "every snapshot has its own serial"
        );
    }

    #[test]
    fn column_stats_count_nulls_and_ranges() {
        let index = CustomerIndex::from_strings(["a", "b", "c"]).unwrap();
        let s = FeatureSnapshot::new(
            "t".into(),
            PathBuf::from("t"),
            vec!["x".into(), "y".into()],
            vec![1.0, f32::NAN, 3.0, f32::NAN, -2.0, f32::NAN],
            index,
        );
        let stats = s.column_stats();
        assert_eq!(
            stats[0],
            ColumnStats {
                nulls: 0,
                min: -2.0,
                max: 3.0
            }
        );
        assert_eq!(stats[1].nulls, 3);
    }

    #[test]
    fn erased_rows_are_not_found_and_not_counted() {
        let mut s = tiny();
        let b = CustomerId::Str("b".into());
        s.erase_rows(&[1]);
        assert_eq!(s.lookup(&b), None);
        assert!(s.row(1).iter().all(|v| v.is_nan()), "values blanked");
        assert_eq!(s.rows(), 1);
        let s = tiny();
        assert_eq!(s.hide(&[0]), 1);
        assert_eq!(s.lookup(&CustomerId::Str("a".into())), None);
        assert_eq!(s.lookup(&b), Some(1));
        assert!(s.is_hidden(0) && !s.is_hidden(1));
    }

    #[test]
    fn store_swaps_and_keeps_old_readers_alive() {
        let store = SnapshotStore::default();
        assert!(store.current().is_none());
        store.install(tiny());
        let held = store.current().unwrap();
        store.install(tiny());
        assert_eq!(held.rows(), 2, "a reader keeps its snapshot across a swap");
        assert!(!Arc::ptr_eq(&held, &store.current().unwrap()));
    }
}
