//! Removing one customer's rows from Parquet files (batch-scoring outputs, exports, feedback day files): a file
//! that holds the customer is rewritten to a hidden temporary name beside it and renamed over; other files are
//! not touched.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::{Array, BooleanArray, RecordBatch, RecordBatchReader};
use arrow_schema::DataType;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;

use super::{ErasureError, RewrittenFile};
use crate::durable;

/// The column that names the customer of a row.
pub const ID_COLUMN: &str = "customer_id";

/// What happened to one file.
#[derive(Debug, Clone, PartialEq)]
pub enum FileOutcome {
    /// It has no `customer_id` column (left as it is).
    NoIdColumn,
    /// The customer is not in it (left as it is).
    Untouched,
    /// Rewritten without the customer's rows.
    Rewritten(RewrittenFile),
}

/// What a sweep over files and folders did.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Files rewritten, with the rows removed from each.
    pub rewritten: Vec<RewrittenFile>,
    /// Files that do not hold the customer.
    pub untouched: usize,
    /// Files without a `customer_id` column.
    pub without_id_column: Vec<PathBuf>,
}

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> ErasureError {
    ErasureError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The Parquet files at `path`: the file itself, or every `.parquet` file below the folder, skipping names
/// writers use while writing (hidden, `_`-prefixed, `.tmp`).
pub fn parquet_files(path: &Path) -> Result<Vec<PathBuf>, ErasureError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(ErasureError::io(path, "no such file or folder"));
    }
    let mut found = Vec::new();
    let mut folders = vec![path.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).map_err(|e| ErasureError::io(&folder, e))? {
            let entry = entry.map_err(|e| ErasureError::io(&folder, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let kind = entry
                .file_type()
                .map_err(|e| ErasureError::io(&folder, e))?;
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_file() && name.ends_with(".parquet") {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Removes `customer_id`'s rows from every Parquet file at each of `paths` (files or folders).
pub fn sweep(paths: &[PathBuf], customer_id: &str) -> Result<Sweep, ErasureError> {
    let mut sweep = Sweep::default();
    for path in paths {
        for file in parquet_files(path)? {
            match remove_customer_rows(&file, customer_id)? {
                FileOutcome::NoIdColumn => sweep.without_id_column.push(file),
                FileOutcome::Untouched => sweep.untouched += 1,
                FileOutcome::Rewritten(done) => sweep.rewritten.push(done),
            }
        }
    }
    Ok(sweep)
}

/// Which rows of `batch` to keep: all but those whose `customer_id` (string, or integer in decimal) is
/// `customer_id`. None when the batch has no such column.
fn keep_mask(batch: &RecordBatch, customer_id: &str) -> Result<Option<BooleanArray>, String> {
    let Some(column) = batch.column_by_name(ID_COLUMN) else {
        return Ok(None);
    };
    let text = arrow_cast::cast(column, &DataType::Utf8).map_err(|e| e.to_string())?;
    let text = text.as_string::<i32>();
    Ok(Some(
        (0..text.len())
            .map(|i| Some(text.is_null(i) || text.value(i) != customer_id))
            .collect(),
    ))
}

/// Removes `customer_id`'s rows from the Parquet file `path`, rewriting it atomically (same compression and
/// row-group size) only when it holds some.
pub fn remove_customer_rows(path: &Path, customer_id: &str) -> Result<FileOutcome, ErasureError> {
    let open = || File::open(path).map_err(|e| ErasureError::io(path, e));
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(open()?).map_err(|e| parquet_error(path, e))?;
    let Some(root) = builder.schema().index_of(ID_COLUMN).ok() else {
        return Ok(FileOutcome::NoIdColumn);
    };
    let metadata = builder.metadata().clone();
    // First only the id column: most files do not hold the customer and are left alone.
    let mask = ProjectionMask::roots(builder.parquet_schema(), [root]);
    let mut matches = 0;
    for batch in builder
        .with_projection(mask)
        .build()
        .map_err(|e| parquet_error(path, e))?
    {
        let batch = batch.map_err(|e| parquet_error(path, e))?;
        if let Some(keep) = keep_mask(&batch, customer_id).map_err(|e| parquet_error(path, e))? {
            matches += keep.len() - keep.true_count();
        }
    }
    if matches == 0 {
        return Ok(FileOutcome::Untouched);
    }
    let mut props = WriterProperties::builder();
    if let Some(group) = metadata.row_groups().first() {
        if group.num_columns() > 0 {
            props = props.set_compression(group.column(0).compression());
        }
        props = props.set_max_row_group_row_count(Some((group.num_rows().max(1)) as usize));
    }
    let reader = ParquetRecordBatchReaderBuilder::try_new(open()?)
        .and_then(|b| b.build())
        .map_err(|e| parquet_error(path, e))?;
    let schema = reader.schema();
    let mut removed = 0;
    let mut kept = 0;
    let mut failure = None;
    durable::replace_with(path, |file| {
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props.build()))
            .map_err(std::io::Error::other)?;
        for batch in reader {
            let batch = batch.map_err(std::io::Error::other)?;
            let keep = match keep_mask(&batch, customer_id) {
                Ok(Some(keep)) => keep,
                Ok(None) => BooleanArray::from(vec![true; batch.num_rows()]),
                Err(e) => {
                    failure = Some(e);
                    return Err(std::io::Error::other("the id column cannot be read"));
                }
            };
            let filtered = arrow_select::filter::filter_record_batch(&batch, &keep)
                .map_err(std::io::Error::other)?;
            removed += batch.num_rows() - filtered.num_rows();
            kept += filtered.num_rows();
            writer.write(&filtered).map_err(std::io::Error::other)?;
        }
        writer.close().map_err(std::io::Error::other)?;
        Ok(())
    })
    .map_err(|e| parquet_error(path, failure.take().unwrap_or_else(|| e.to_string())))?;
    tracing::debug!(file = %path.display(), rows_removed = removed, rows_kept = kept, "Parquet file rewritten without an erased customer");
    Ok(FileOutcome::Rewritten(RewrittenFile {
        path: path.display().to_string(),
        rows_removed: removed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float32Array, Int64Array, StringArray};

    fn write(path: &Path, ids: ArrayRef) {
        let n = ids.len();
        let batch = RecordBatch::try_from_iter([
            ("customer_id", ids),
            (
                "score",
                Arc::new(Float32Array::from_iter_values((0..n).map(|i| i as f32))) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut w =
            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn ids(path: &Path) -> Vec<String> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let text = arrow_cast::cast(batch.column(0), &DataType::Utf8).unwrap();
            out.extend(
                text.as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap_or("-").to_string()),
            );
        }
        out
    }

    #[test]
    fn only_files_holding_the_customer_are_rewritten() {
        let dir = std::env::temp_dir().join(format!("crmscore-rewrite-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("part")).unwrap();
        let strings = dir.join("part/a.parquet");
        write(
            &strings,
            Arc::new(StringArray::from(vec![
                Some("C1"),
                Some("C2"),
                None,
                Some("C1"),
            ])),
        );
        let ints = dir.join("b.parquet");
        write(&ints, Arc::new(Int64Array::from(vec![7, 8, 9])));
        let other = dir.join("c.parquet");
        write(&other, Arc::new(StringArray::from(vec!["C3"])));
        let before = std::fs::metadata(&other).unwrap().modified().unwrap();
        std::fs::write(dir.join("_SUCCESS"), b"").unwrap();

        let done = sweep(std::slice::from_ref(&dir), "C1").unwrap();
        assert_eq!(done.rewritten.len(), 1);
        assert_eq!(done.rewritten[0].rows_removed, 2);
        assert_eq!(done.untouched, 2);
        assert_eq!(ids(&strings), ["C2", "-"]);
        assert_eq!(
            std::fs::metadata(&other).unwrap().modified().unwrap(),
            before
        );

        assert!(matches!(
            remove_customer_rows(&ints, "8").unwrap(),
            FileOutcome::Rewritten(_)
        ));
        assert_eq!(ids(&ints), ["7", "9"]);
        assert_eq!(
            remove_customer_rows(&ints, "8").unwrap(),
            FileOutcome::Untouched
        );
        assert!(!durable::temp_name(&ints).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
