//! Reading the snapshot for a batch run: find and open it with the server loader's checks and messages, decode
//! chunks of row groups (only the needed columns), and gather an explainer's reference sample.

use std::ops::Range;
use std::path::Path;

use crate::model::explainer::reference_rows;
use crate::snapshot::find_snapshots;
use crate::snapshot::load::{OpenedSnapshot, open_snapshot};
use crate::snapshot::{FeatureSnapshot, Layout, SnapshotError};

/// The newest complete snapshot at `path` (a file, a part folder with `_SUCCESS`, or a folder of snapshots),
/// opened for `columns` (and the owned-items list column, when the files have it).
pub fn open(
    path: &Path,
    columns: &[String],
    owned: Option<&str>,
) -> Result<OpenedSnapshot, SnapshotError> {
    let source =
        find_snapshots(path)?
            .into_iter()
            .next()
            .ok_or_else(|| SnapshotError::Invalid {
                path: path.to_path_buf(),
                message: "no complete snapshot here (a part folder needs its _SUCCESS marker)"
                    .into(),
            })?;
    open_snapshot(&source, columns, owned)
}

/// Decodes the row groups `units` into a snapshot of their rows.
pub fn chunk(
    snapshot: &OpenedSnapshot,
    units: Range<usize>,
) -> Result<FeatureSnapshot, SnapshotError> {
    snapshot.decode(units)
}

/// The rows an explainer's reference sample takes from the whole snapshot, as the server picks them from the
/// same file (so reasons match the HTTP ones), gathered with `layout_of` (a model's columns in a chunk) chunk by
/// chunk: only the row groups that hold sampled rows are read.
pub fn reference_sample(
    snapshot: &OpenedSnapshot,
    layout_of: &dyn Fn(&FeatureSnapshot) -> Result<Layout, String>,
) -> Result<Vec<f32>, SnapshotError> {
    let picked = reference_rows(snapshot.rows());
    let unit_rows = snapshot.unit_rows();
    let mut rows = Vec::new();
    let (mut next, mut first_row) = (0, 0);
    for (unit, &n) in unit_rows.iter().enumerate() {
        let end = first_row + n;
        let from = next;
        while next < picked.len() && picked[next] < end {
            next += 1;
        }
        if next > from {
            let part = snapshot.decode(unit..unit + 1)?;
            let layout = layout_of(&part).map_err(|column| SnapshotError::Column {
                path: snapshot.source().path.clone(),
                column,
                problem: "is missing (a model needs it)".into(),
            })?;
            for &row in &picked[from..next] {
                part.gather(row - first_row, &layout, &mut rows);
            }
        }
        first_row = end;
    }
    Ok(rows)
}
