//! Writing the output so that nothing looks complete before it is: rows go to a hidden temporary file, renamed
//! into place when closed; a part folder's `_SUCCESS` is written last, once every part is there.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::BatchError;
use super::plan::{Target, part_name};
use crate::snapshot::load::{ID_COLUMN, SUCCESS_MARKER};

/// Rows per output row group: bounds what the writer buffers.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Folder where a part folder's parts are written before they are renamed into it (Spark's convention; the
/// server's loader and every Hive-style reader skip it).
const TEMPORARY: &str = "_temporary";

fn io(path: &Path, e: impl std::fmt::Display) -> BatchError {
    BatchError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// An output file being written under its temporary name.
pub struct PartWriter {
    /// None once published (a writer dropped unpublished removes its temporary file).
    writer: Option<ArrowWriter<File>>,
    temporary: PathBuf,
    target: Target,
    rows: usize,
}

impl PartWriter {
    /// Starts the output of `target` with `schema`; for a part folder, first removes a `_SUCCESS` left by an
    /// earlier run, so the folder never looks complete while this run's part is missing.
    pub fn create(target: &Target, schema: SchemaRef) -> Result<PartWriter, BatchError> {
        let temporary = match target {
            Target::File(path) => {
                let dir = parent(path);
                std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                dir.join(format!(".{name}.{}.inprogress", std::process::id()))
            }
            Target::Folder { dir, part, .. } => {
                let tmp = dir.join(TEMPORARY);
                std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
                let marker = dir.join(SUCCESS_MARKER);
                match std::fs::remove_file(&marker) {
                    Ok(()) => {
                        tracing::info!(marker = %marker.display(), "removed the earlier run's _SUCCESS")
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&marker, e)),
                }
                tmp.join(format!("{part}.{}", std::process::id()))
            }
        };
        let file = File::create(&temporary).map_err(|e| io(&temporary, e))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            // Ids are unique: a dictionary would only be built to be thrown away.
            .set_column_dictionary_enabled(ColumnPath::from(ID_COLUMN), false)
            .build();
        let writer =
            ArrowWriter::try_new(file, schema, Some(properties)).map_err(|e| io(&temporary, e))?;
        Ok(PartWriter {
            writer: Some(writer),
            temporary,
            target: target.clone(),
            rows: 0,
        })
    }

    /// Appends rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), BatchError> {
        self.rows += batch.num_rows();
        match &mut self.writer {
            Some(w) => w.write(batch).map_err(|e| io(&self.temporary, e)),
            None => Err(io(&self.temporary, "written after it was published")),
        }
    }

    /// Closes the file, flushes it to disk and renames it into place; for a part folder, writes `_SUCCESS`
    /// when every part of the set is there. Returns the rows written.
    pub fn publish(mut self) -> Result<usize, BatchError> {
        let Some(writer) = self.writer.take() else {
            return Err(io(&self.temporary, "published twice"));
        };
        let file = writer.into_inner().map_err(|e| io(&self.temporary, e))?;
        file.sync_all().map_err(|e| io(&self.temporary, e))?;
        drop(file);
        let destination = match &self.target {
            Target::File(path) => path.clone(),
            Target::Folder { dir, part, .. } => dir.join(part),
        };
        std::fs::rename(&self.temporary, &destination).map_err(|e| io(&destination, e))?;
        // The rename itself must be on disk before `_SUCCESS` can say the set is complete.
        let folder = (destination.parent())
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::durable::sync_folder(folder).map_err(|e| io(folder, e))?;
        if let Target::Folder { dir, parts, .. } = &self.target
            && missing_parts(dir, *parts).is_empty()
        {
            mark_success(dir)?;
        }
        Ok(self.rows)
    }
}

impl Drop for PartWriter {
    /// A run that fails leaves no half-written file behind (a killed one leaves only a hidden one).
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// The parts of a set of `parts` that are not in `dir` yet.
pub fn missing_parts(dir: &Path, parts: usize) -> Vec<String> {
    (0..parts)
        .map(|i| part_name(i, parts))
        .filter(|name| !dir.join(name).is_file())
        .collect()
}

/// Writes `dir`'s `_SUCCESS` (and removes the emptied `_temporary`), the last step of a complete folder.
pub fn mark_success(dir: &Path) -> Result<(), BatchError> {
    // Another shard may still be writing there: only an empty folder is removed.
    let _ = std::fs::remove_dir(dir.join(TEMPORARY));
    let marker = dir.join(SUCCESS_MARKER);
    File::create(&marker)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&marker, e))
}

/// `--finalize`: `_SUCCESS` when every part of the set of `parts` is in `dir`, else an error naming the missing.
pub fn finalize(dir: &Path, parts: usize) -> Result<(), BatchError> {
    let missing = missing_parts(dir, parts);
    if !missing.is_empty() {
        return Err(BatchError::Incomplete {
            dir: dir.to_path_buf(),
            missing,
        });
    }
    mark_success(dir)
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
