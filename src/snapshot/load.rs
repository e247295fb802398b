//! Finding complete Parquet snapshots and loading one: footer once, schema checked by name, only the needed
//! columns decoded, row groups in parallel straight into the final matrix.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::file::reader::ChunkReader;
use rayon::prelude::*;

use super::ids::{CustomerIndex, StrIndexBuilder};
use super::{FeatureSnapshot, SnapshotError};
use crate::storage::RemoteParts;

/// The id column every snapshot must have.
pub const ID_COLUMN: &str = "customer_id";
/// The marker Spark and Hive write when a folder of part files is complete.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// A complete snapshot on disk: one Parquet file, or a folder of part files with `_SUCCESS`.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotSource {
    /// File or folder name, reported as the snapshot version.
    pub name: String,
    /// The file or folder.
    pub path: PathBuf,
    /// The Parquet files to read, in order.
    pub files: Vec<PathBuf>,
    /// Modification time of the file, or of the folder's `_SUCCESS` marker.
    pub modified: SystemTime,
    /// The part objects when the snapshot is in an object store (`files` then holds their URLs).
    pub remote: Option<RemoteParts>,
}

/// Names writers use while a file is incomplete: hidden, underscore (`_temporary`), or temporary suffixes.
pub(crate) fn is_in_progress(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('_')
        || [".tmp", ".temp", ".crc", ".inprogress", ".partial"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// Whether a file or object name is a Parquet part.
pub(crate) fn is_parquet(name: &str) -> bool {
    name.ends_with(".parquet") || name.ends_with(".parq")
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn modified(path: &Path) -> Result<SystemTime, SnapshotError> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| read_error(path, e))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A folder of part files, if it is complete (has `_SUCCESS` and at least one part).
fn part_folder(dir: &Path) -> Result<Option<SnapshotSource>, SnapshotError> {
    let marker = dir.join(SUCCESS_MARKER);
    if !marker.is_file() {
        return Ok(None);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
        let path = entry.map_err(|e| read_error(dir, e))?.path();
        let name = file_name(&path);
        if path.is_file() && is_parquet(&name) && !is_in_progress(&name) {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    files.sort();
    Ok(Some(SnapshotSource {
        name: file_name(dir),
        path: dir.to_path_buf(),
        files,
        modified: modified(&marker)?,
        remote: None,
    }))
}

fn single_file(path: &Path) -> Result<SnapshotSource, SnapshotError> {
    Ok(SnapshotSource {
        name: file_name(path),
        path: path.to_path_buf(),
        files: vec![path.to_path_buf()],
        modified: modified(path)?,
        remote: None,
    })
}

/// Complete snapshots under `path`, newest first (by modification time, then name). `path` may be a snapshot
/// itself (a Parquet file or a part folder with `_SUCCESS`) or a folder of them.
pub fn find_snapshots(path: &Path) -> Result<Vec<SnapshotSource>, SnapshotError> {
    if path.is_file() {
        return Ok(vec![single_file(path)?]);
    }
    if let Some(folder) = part_folder(path)? {
        return Ok(vec![folder]);
    }
    if !path.is_dir() {
        return Err(read_error(path, "no such file or folder"));
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| read_error(path, e))? {
        let entry_path = entry.map_err(|e| read_error(path, e))?.path();
        let name = file_name(&entry_path);
        if is_in_progress(&name) {
            continue;
        }
        if entry_path.is_file() && is_parquet(&name) {
            found.push(single_file(&entry_path)?);
        } else if entry_path.is_dir()
            && let Some(folder) = part_folder(&entry_path)?
        {
            found.push(folder);
        }
    }
    found.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| b.name.cmp(&a.name))
    });
    Ok(found)
}

/// One row group of one file, and where its rows go in the matrix.
struct Unit {
    file: usize,
    row_group: usize,
    rows: usize,
}

/// The ids decoded from one unit.
enum IdChunk {
    Str(Vec<ArrayRef>),
    Int(Vec<i64>),
    /// A `UInt64` id column: kept unsigned so ids above `i64::MAX` stay exact.
    UInt(Vec<u64>),
}

fn is_string_type(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_string_type(value),
        _ => false,
    }
}

fn is_feature_type(t: &DataType) -> bool {
    t.is_numeric() || *t == DataType::Boolean
}

/// Checks one file's schema by name; returns whether its ids are strings.
fn check_schema(path: &Path, schema: &Schema, columns: &[String]) -> Result<bool, SnapshotError> {
    let column_error = |column: &str, problem: String| SnapshotError::Column {
        path: path.to_path_buf(),
        column: column.to_string(),
        problem,
    };
    let id = schema.field_with_name(ID_COLUMN).map_err(|_| {
        column_error(
            ID_COLUMN,
            "is missing (every snapshot needs a customer id column)".into(),
        )
    })?;
    let string_ids = is_string_type(id.data_type());
    if !string_ids && !id.data_type().is_integer() {
        return Err(column_error(
            ID_COLUMN,
            format!("has type {}, expected a string or integer", id.data_type()),
        ));
    }
    for column in columns {
        let field = schema
            .field_with_name(column)
            .map_err(|_| column_error(column, "is missing (a model needs it)".into()))?;
        if !is_feature_type(field.data_type()) {
            return Err(column_error(
                column,
                format!(
                    "has type {}, expected an integer, float or boolean feature",
                    field.data_type()
                ),
            ));
        }
    }
    Ok(string_ids)
}

/// Reads `source`, keeping `columns` (in that order) as the feature matrix.
pub fn load_snapshot(
    source: &SnapshotSource,
    columns: &[String],
) -> Result<FeatureSnapshot, SnapshotError> {
    load_snapshot_with(source, columns, None)
}

/// Like `load_snapshot`, also reading the list column `owned` (item ids per customer) when the files have it.
pub fn load_snapshot_with(
    source: &SnapshotSource,
    columns: &[String],
    owned: Option<&str>,
) -> Result<FeatureSnapshot, SnapshotError> {
    let opened = open_snapshot(source, columns, owned)?;
    if opened.rows() > u32::MAX as usize {
        return Err(SnapshotError::Invalid {
            path: source.path.clone(),
            message: format!(
                "{} rows is more than this server indexes ({})",
                opened.rows(),
                u32::MAX
            ),
        });
    }
    let mut snapshot = opened.decode(0..opened.units.len())?;
    snapshot.version = source.name.clone();
    Ok(snapshot)
}

/// A snapshot whose footers are read and schemas checked, ready to decode all or some of its row groups.
pub struct OpenedSnapshot {
    source: SnapshotSource,
    columns: Vec<String>,
    metas: Vec<ArrowReaderMetadata>,
    string_ids: bool,
    owned: Option<String>,
    units: Vec<Unit>,
}

/// Reads the footers of `source`'s files and checks their schemas for `columns` (and the list column `owned`,
/// used only when every file has it), with the messages of the server's loader; refuses a snapshot without rows.
pub fn open_snapshot(
    source: &SnapshotSource,
    columns: &[String],
    owned: Option<&str>,
) -> Result<OpenedSnapshot, SnapshotError> {
    let mut metas = Vec::with_capacity(source.files.len());
    let mut string_ids = None;
    for (i, path) in source.files.iter().enumerate() {
        let meta = read_footer(source, i)?;
        let strings = check_schema(path, meta.schema(), columns)?;
        if let Some(name) = owned
            && let Ok(field) = meta.schema().field_with_name(name)
            && !matches!(
                field.data_type(),
                DataType::List(_) | DataType::LargeList(_)
            )
        {
            return Err(SnapshotError::Column {
                path: path.clone(),
                column: name.to_string(),
                problem: format!(
                    "has type {}, expected a list of item ids",
                    field.data_type()
                ),
            });
        }
        if *string_ids.get_or_insert(strings) != strings {
            return Err(SnapshotError::Invalid {
                path: path.clone(),
                message: format!(
                    "{ID_COLUMN} is a string in some part files and an integer in others"
                ),
            });
        }
        metas.push(meta);
    }
    let string_ids = string_ids.unwrap_or(true);
    // Every part must have the owned-items column for it to be used; otherwise nothing is excluded (logged).
    let owned = owned.filter(|name| {
        metas
            .iter()
            .all(|m| m.schema().field_with_name(name).is_ok())
    });

    let units: Vec<Unit> = metas
        .iter()
        .enumerate()
        .flat_map(|(file, meta)| {
            meta.metadata()
                .row_groups()
                .iter()
                .enumerate()
                .map(move |(row_group, rg)| Unit {
                    file,
                    row_group,
                    rows: rg.num_rows().max(0) as usize,
                })
        })
        .collect();
    let opened = OpenedSnapshot {
        source: source.clone(),
        columns: columns.to_vec(),
        metas,
        string_ids,
        owned: owned.map(str::to_string),
        units,
    };
    if opened.rows() == 0 {
        return Err(SnapshotError::Invalid {
            path: source.path.clone(),
            message: "the snapshot has no rows".into(),
        });
    }
    Ok(opened)
}

impl OpenedSnapshot {
    /// Rows of every file together.
    pub fn rows(&self) -> usize {
        self.units.iter().map(|u| u.rows).sum()
    }

    /// Rows of each row group of each file, in file then row-group order.
    pub fn unit_rows(&self) -> Vec<usize> {
        self.units.iter().map(|u| u.rows).collect()
    }

    /// The file of row-group unit `unit` (files in order, then their row groups).
    pub fn unit_file(&self, unit: usize) -> Option<usize> {
        self.units.get(unit).map(|u| u.file)
    }

    /// The snapshot this was opened from.
    pub fn source(&self) -> &SnapshotSource {
        &self.source
    }

    /// The Arrow schema of the first file.
    pub fn schema(&self) -> Option<&Schema> {
        self.metas.first().map(|m| m.schema().as_ref())
    }

    /// Decodes row-group units `range` (in [`OpenedSnapshot::unit_rows`] order) into a snapshot of their rows
    /// alone, row groups in parallel; its version is `source name#first-last`.
    pub fn decode(&self, range: std::ops::Range<usize>) -> Result<FeatureSnapshot, SnapshotError> {
        let units = &self.units[range.clone()];
        let (source, columns, owned) = (&self.source, &self.columns, self.owned.as_deref());
        let total_rows: usize = units.iter().map(|u| u.rows).sum();
        let width = columns.len();
        let mut matrix = vec![0.0_f32; total_rows * width];
        let mut slices = Vec::with_capacity(units.len());
        let mut rest = matrix.as_mut_slice();
        for unit in units {
            let (head, tail) = rest.split_at_mut(unit.rows * width);
            slices.push(head);
            rest = tail;
        }
        let decoded: Vec<(IdChunk, Option<OwnedChunk>)> = units
            .par_iter()
            .zip(slices.into_par_iter())
            .map(|(unit, dst)| {
                decode_unit(
                    source,
                    &self.metas[unit.file],
                    unit,
                    columns,
                    owned,
                    self.string_ids,
                    dst,
                )
            })
            .collect::<Result<_, _>>()?;
        let (chunks, owned_chunks): (Vec<IdChunk>, Vec<Option<OwnedChunk>>) =
            decoded.into_iter().unzip();

        let index = build_index(&source.path, chunks, total_rows)?;
        let owned_items = owned.map(|_| merge_owned(owned_chunks.into_iter().flatten()));
        let mut snapshot = FeatureSnapshot::new(
            format!("{}#{}-{}", source.name, range.start, range.end),
            source.path.clone(),
            columns.to_vec(),
            matrix,
            index,
        );
        snapshot.produced_at = source.modified;
        snapshot.owned = owned_items;
        Ok(snapshot)
    }
}

/// Reads the footer of part `file` of `source`: from the local file, or from the remote object's last bytes.
fn read_footer(source: &SnapshotSource, file: usize) -> Result<ArrowReaderMetadata, SnapshotError> {
    let path = &source.files[file];
    let options = ArrowReaderOptions::new();
    let meta = match &source.remote {
        None => {
            let local = File::open(path).map_err(|e| read_error(path, e))?;
            ArrowReaderMetadata::load(&local, options)
        }
        Some(remote) => {
            let footer = remote.footer(file)?;
            ArrowReaderMetadata::load(&footer, options)
        }
    };
    meta.map_err(|e| read_error(path, format!("not a readable Parquet file: {e}")))
}

/// A reader of row group `unit` with the columns of `mask`, over the local file or over the byte ranges of those
/// columns fetched from the remote object.
fn row_group_reader(
    remote: Option<&RemoteParts>,
    path: &Path,
    meta: &ArrowReaderMetadata,
    unit: &Unit,
    mask: ProjectionMask,
) -> Result<ParquetRecordBatchReader, SnapshotError> {
    fn build<R: ChunkReader + 'static>(
        reader: R,
        meta: &ArrowReaderMetadata,
        unit: &Unit,
        mask: ProjectionMask,
    ) -> parquet::errors::Result<ParquetRecordBatchReader> {
        ParquetRecordBatchReaderBuilder::new_with_metadata(reader, meta.clone())
            .with_row_groups(vec![unit.row_group])
            .with_projection(mask)
            .with_batch_size(8192)
            .build()
    }
    let reader = match remote {
        None => build(
            File::open(path).map_err(|e| read_error(path, e))?,
            meta,
            unit,
            mask,
        ),
        Some(remote) => {
            let ranges = remote.row_group(unit.file, meta.metadata(), unit.row_group, &mask)?;
            build(ranges, meta, unit, mask)
        }
    };
    reader.map_err(|e| read_error(path, e))
}

/// Decodes one row group's id and feature columns; features go into `dst` (this unit's rows of the matrix).
fn decode_unit(
    source: &SnapshotSource,
    meta: &ArrowReaderMetadata,
    unit: &Unit,
    columns: &[String],
    owned: Option<&str>,
    string_ids: bool,
    dst: &mut [f32],
) -> Result<(IdChunk, Option<OwnedChunk>), SnapshotError> {
    let schema = meta.schema();
    let roots = std::iter::once(ID_COLUMN)
        .chain(columns.iter().map(String::as_str))
        .chain(owned)
        .filter_map(|name| schema.index_of(name).ok());
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
    let path = &source.files[unit.file];
    let reader = row_group_reader(source.remote.as_ref(), path, meta, unit, mask)?;
    let width = columns.len();
    let unsigned_ids = schema
        .field_with_name(ID_COLUMN)
        .is_ok_and(|f| *f.data_type() == DataType::UInt64);
    let mut ids = if string_ids {
        IdChunk::Str(Vec::new())
    } else if unsigned_ids {
        IdChunk::UInt(Vec::with_capacity(unit.rows))
    } else {
        IdChunk::Int(Vec::with_capacity(unit.rows))
    };
    let mut owned_chunk = owned.map(|_| OwnedChunk::default());
    let mut row = 0;
    for batch in reader {
        let batch =
            batch.map_err(|e| read_error(path, format!("corrupt or truncated data: {e}")))?;
        let n = batch.num_rows();
        if row + n > unit.rows {
            return Err(read_error(
                path,
                "a row group holds more rows than its metadata says",
            ));
        }
        collect_ids(path, &batch, &mut ids)?;
        if let (Some(name), Some(chunk)) = (owned, owned_chunk.as_mut()) {
            chunk.collect(path, &batch, name)?;
        }
        for (c, name) in columns.iter().enumerate() {
            write_column(
                path,
                &batch,
                name,
                &mut dst[row * width..(row + n) * width],
                c,
                width,
            )?;
        }
        row += n;
    }
    if row != unit.rows {
        return Err(read_error(
            path,
            format!(
                "row group {} ended after {row} of {} rows",
                unit.row_group, unit.rows
            ),
        ));
    }
    Ok((ids, owned_chunk))
}

fn column<'b>(
    path: &Path,
    batch: &'b RecordBatch,
    name: &str,
) -> Result<&'b ArrayRef, SnapshotError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| SnapshotError::Column {
            path: path.to_path_buf(),
            column: name.to_string(),
            problem: "is missing from a row group".into(),
        })
}

/// Cast options that fail on overflow instead of writing a null.
const CHECKED: arrow_cast::CastOptions<'static> = arrow_cast::CastOptions {
    safe: false,
    format_options: arrow_cast::display::FormatOptions::new(),
};

fn collect_ids(path: &Path, batch: &RecordBatch, ids: &mut IdChunk) -> Result<(), SnapshotError> {
    let array = column(path, batch, ID_COLUMN)?;
    let id_error = |problem: String| SnapshotError::Column {
        path: path.to_path_buf(),
        column: ID_COLUMN.to_string(),
        problem,
    };
    if array.null_count() > 0 {
        return Err(id_error(format!("has {} null ids", array.null_count())));
    }
    match ids {
        IdChunk::Str(chunks) => {
            let utf8 =
                arrow_cast::cast(array, &DataType::Utf8).map_err(|e| id_error(e.to_string()))?;
            chunks.push(utf8);
        }
        // Checked casts: a value that does not fit is an error, never a null read as 0.
        IdChunk::Int(values) => {
            let int64 = arrow_cast::cast_with_options(array, &DataType::Int64, &CHECKED)
                .map_err(|e| id_error(e.to_string()))?;
            values.extend_from_slice(int64.as_primitive::<Int64Type>().values());
        }
        IdChunk::UInt(values) => {
            let uint64 = arrow_cast::cast_with_options(array, &DataType::UInt64, &CHECKED)
                .map_err(|e| id_error(e.to_string()))?;
            values.extend_from_slice(uint64.as_primitive::<UInt64Type>().values());
        }
    }
    Ok(())
}

/// Writes column `name` of `batch` into column `c` of the row-major `dst`; nulls become NaN.
fn write_column(
    path: &Path,
    batch: &RecordBatch,
    name: &str,
    dst: &mut [f32],
    c: usize,
    width: usize,
) -> Result<(), SnapshotError> {
    let array = column(path, batch, name)?;
    let floats =
        arrow_cast::cast(array, &DataType::Float32).map_err(|e| SnapshotError::Column {
            path: path.to_path_buf(),
            column: name.to_string(),
            problem: format!("cannot be read as numbers: {e}"),
        })?;
    let floats = floats.as_primitive::<Float32Type>();
    let values = floats.values();
    let cells = dst.iter_mut().skip(c).step_by(width);
    match floats.nulls() {
        None => cells.zip(values.iter()).for_each(|(d, &v)| *d = v),
        Some(nulls) => cells
            .zip(values.iter().zip(nulls.iter()))
            .for_each(|(d, (&v, valid))| *d = if valid { v } else { f32::NAN }),
    }
    Ok(())
}

/// One unit's owned items: per-row counts and values as indices into a unit-local table of distinct ids.
#[derive(Default)]
struct OwnedChunk {
    counts: Vec<u32>,
    values: Vec<u32>,
    dict: Vec<String>,
    lookup: std::collections::HashMap<String, u32>,
}

impl OwnedChunk {
    fn collect(
        &mut self,
        path: &Path,
        batch: &RecordBatch,
        name: &str,
    ) -> Result<(), SnapshotError> {
        let array = column(path, batch, name)?;
        let target = DataType::List(Arc::new(arrow_schema::Field::new_list_field(
            DataType::Utf8,
            true,
        )));
        let list = arrow_cast::cast(array, &target).map_err(|e| SnapshotError::Column {
            path: path.to_path_buf(),
            column: name.to_string(),
            problem: format!("cannot be read as a list of item ids: {e}"),
        })?;
        let list = list.as_list::<i32>();
        let offsets = list.value_offsets();
        let values = list.values().as_string::<i32>();
        for r in 0..list.len() {
            if list.is_null(r) {
                self.counts.push(0);
                continue;
            }
            let (start, end) = (offsets[r] as usize, offsets[r + 1] as usize);
            let mut count = 0;
            for i in start..end {
                if values.is_null(i) {
                    continue;
                }
                let id = values.value(i);
                let index = match self.lookup.get(id) {
                    Some(&index) => index,
                    None => {
                        let index = self.dict.len() as u32;
                        self.dict.push(id.to_string());
                        self.lookup.insert(id.to_string(), index);
                        index
                    }
                };
                self.values.push(index);
                count += 1;
            }
            self.counts.push(count);
        }
        Ok(())
    }
}

/// Joins units' owned items in row order under one table of distinct ids.
fn merge_owned(chunks: impl Iterator<Item = OwnedChunk>) -> super::OwnedItems {
    let mut merged = super::OwnedItems {
        offsets: vec![0],
        ..Default::default()
    };
    let mut global: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for chunk in chunks {
        let remap: Vec<u32> = chunk
            .dict
            .into_iter()
            .map(|id| {
                let next = merged.dict.len() as u32;
                *global.entry(id).or_insert_with_key(|id| {
                    merged.dict.push(id.clone());
                    next
                })
            })
            .collect();
        let mut taken = 0;
        for count in chunk.counts {
            let count = count as usize;
            merged.values.extend(
                chunk.values[taken..taken + count]
                    .iter()
                    .map(|&v| remap[v as usize]),
            );
            taken += count;
            merged.offsets.push(merged.values.len());
        }
    }
    merged
}

fn build_index(
    path: &Path,
    chunks: Vec<IdChunk>,
    rows: usize,
) -> Result<CustomerIndex, SnapshotError> {
    let duplicate = |id: String| SnapshotError::DuplicateId {
        path: path.to_path_buf(),
        id,
    };
    if matches!(chunks.first(), Some(IdChunk::Int(_) | IdChunk::UInt(_))) {
        return build_integer_index(path, chunks);
    }
    let arrays: Vec<Arc<dyn Array>> = chunks
        .into_iter()
        .flat_map(|c| match c {
            IdChunk::Str(v) => v,
            IdChunk::Int(_) | IdChunk::UInt(_) => Vec::new(),
        })
        .collect();
    let bytes: usize = arrays
        .iter()
        .map(|a| a.as_string::<i32>().value_data().len())
        .sum();
    let mut builder = StrIndexBuilder::with_capacity(rows, bytes);
    for array in &arrays {
        for id in array.as_string::<i32>().iter().flatten() {
            builder.push(id).map_err(duplicate)?;
        }
    }
    Ok(builder.finish())
}

/// Integer ids, exact over the whole i64 and u64 ranges: signed when every id fits `i64`, unsigned when some
/// `UInt64` id is above `i64::MAX` (then a negative id in another part file is refused, naming both).
fn build_integer_index(path: &Path, chunks: Vec<IdChunk>) -> Result<CustomerIndex, SnapshotError> {
    let duplicate = |id: String| SnapshotError::DuplicateId {
        path: path.to_path_buf(),
        id,
    };
    let unsigned = |c: &IdChunk| match c {
        IdChunk::UInt(v) => v.iter().copied().find(|&u| u > i64::MAX as u64),
        _ => None,
    };
    let Some(big) = chunks.iter().find_map(unsigned) else {
        let ints = chunks.into_iter().flat_map(|c| match c {
            IdChunk::Int(v) => v,
            // Every value fits: checked above.
            IdChunk::UInt(v) => v.into_iter().map(|u| u as i64).collect(),
            IdChunk::Str(_) => Vec::new(),
        });
        return CustomerIndex::from_integers(ints).map_err(duplicate);
    };
    let negative = chunks.iter().find_map(|c| match c {
        IdChunk::Int(v) => v.iter().copied().find(|&i| i < 0),
        _ => None,
    });
    if let Some(negative) = negative {
        return Err(SnapshotError::Column {
            path: path.to_path_buf(),
            column: ID_COLUMN.to_string(),
            problem: format!(
                "mixes negative ids (first: {negative}) with unsigned ids above {} (first: {big}); \
                 one integer index cannot hold both",
                i64::MAX
            ),
        });
    }
    let ids = chunks.into_iter().flat_map(|c| match c {
        IdChunk::Int(v) => v.into_iter().map(|i| i as u64).collect(),
        IdChunk::UInt(v) => v,
        IdChunk::Str(_) => Vec::new(),
    });
    CustomerIndex::from_unsigned(ids).map_err(duplicate)
}
