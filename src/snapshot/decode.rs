//! Decoding row groups in parallel: each row group's projected bytes read at once, features written straight
//! into its rows of the row-major matrix, string ids added to one shared index by every thread as they come,
//! owned-item lists kept per row group and joined once.

use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::file::reader::ChunkReader;
use rayon::prelude::*;

use super::discover::{PartFile, SnapshotSource};
use super::ids::{CustomerIndex, SharedStrIndexBuilder};
use super::load::ID_COLUMN;
use super::owned::{OwnedChunk, merge_owned};
use super::partition;
use super::row_group::read_row_group;
use super::{OwnedItems, SnapshotError};
use crate::storage::RemoteParts;

/// One row group of one file, and how many rows it holds.
pub(super) struct Unit {
    pub(super) file: usize,
    pub(super) row_group: usize,
    pub(super) rows: usize,
}

/// Most rows per decoded batch: a row group's rows in one batch, unless the row group is huge.
const MAX_BATCH: usize = 65_536;

/// Rows transposed together: their matrix rows stay in cache while every column is written into them.
const BLOCK: usize = 256;

/// What every unit of one decode shares.
pub(super) struct Plan<'a> {
    /// The snapshot's path (what a duplicate id is reported against).
    pub(super) snapshot: &'a Path,
    /// Feature columns, in matrix order.
    pub(super) columns: &'a [String],
    /// The owned-items list column, when used.
    pub(super) owned: Option<&'a str>,
    /// The index string ids go into; `None` for integer ids (collected per unit, indexed after).
    pub(super) index: Option<&'a SharedStrIndexBuilder>,
    /// The part objects, when the snapshot is in an object store.
    pub(super) remote: Option<&'a RemoteParts>,
}

/// The ids decoded from one unit.
pub(super) enum IdChunk {
    /// String ids: already in the shared index.
    Indexed,
    Int(Vec<i64>),
    /// A `UInt64` id column: kept unsigned so ids above `i64::MAX` stay exact.
    UInt(Vec<u64>),
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Decodes `units` of `source`'s part files (footers `metas`) in parallel: the row-major matrix, the id index and
/// the owned items (when `owned` is given).
pub(super) fn decode_units(
    source: &SnapshotSource,
    metas: &[ArrowReaderMetadata],
    units: &[Unit],
    columns: &[String],
    owned: Option<&str>,
    string_ids: bool,
) -> Result<(Vec<f32>, CustomerIndex, Option<OwnedItems>), SnapshotError> {
    let (snapshot, parts, remote) = (source.path.as_path(), &source.files, source.remote.as_ref());
    let total_rows: usize = units.iter().map(|u| u.rows).sum();
    let width = columns.len();
    let mut matrix = vec![0.0_f32; total_rows * width];
    let mut jobs = Vec::with_capacity(units.len());
    let mut rest = matrix.as_mut_slice();
    let mut first_row = 0;
    for unit in units {
        let (head, tail) = rest.split_at_mut(unit.rows * width);
        jobs.push((unit, first_row, head));
        first_row += unit.rows;
        rest = tail;
    }
    let index = string_ids.then(|| SharedStrIndexBuilder::with_capacity(total_rows, 0));
    let plan = Plan {
        snapshot,
        columns,
        owned,
        index: index.as_ref(),
        remote,
    };
    let decoded: Vec<(IdChunk, Option<OwnedChunk>)> = jobs
        .into_par_iter()
        .map(|(unit, first_row, dst)| {
            decode_unit(
                &parts[unit.file],
                &metas[unit.file],
                unit,
                first_row,
                &plan,
                dst,
            )
        })
        .collect::<Result<_, _>>()?;
    let (chunks, owned_chunks): (Vec<IdChunk>, Vec<Option<OwnedChunk>>) =
        decoded.into_iter().unzip();
    let index = match index {
        Some(index) => index.finish(),
        None => build_integer_index(snapshot, chunks)?,
    };
    let owned_items = match owned {
        Some(_) => Some(merge_owned(
            snapshot,
            owned_chunks.into_iter().flatten(),
            total_rows,
        )?),
        None => None,
    };
    Ok((matrix, index, owned_items))
}

/// A reader of row group `unit` with the columns of `mask`: over one read of the local file's projected
/// chunks, or over those chunks' byte ranges fetched from the object store.
fn row_group_reader(
    remote: Option<&RemoteParts>,
    part: &PartFile,
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
            .with_batch_size(unit.rows.clamp(1, MAX_BATCH))
            .build()
    }
    let path = part.path.as_path();
    let reader = match remote {
        Some(remote) => {
            let ranges = remote.row_group(unit.file, meta.metadata(), unit.row_group, &mask)?;
            build(ranges, meta, unit, mask)
        }
        None => {
            let leaves =
                (0..meta.parquet_schema().num_columns()).filter(|&leaf| mask.leaf_included(leaf));
            let file = File::open(path).map_err(|e| read_error(path, e))?;
            let bytes = read_row_group(&file, meta, unit.row_group, leaves)
                .map_err(|e| read_error(path, format!("corrupt or truncated data: {e}")))?;
            build(bytes, meta, unit, mask)
        }
    };
    reader.map_err(|e| read_error(path, e))
}

/// Decodes one row group's id and feature columns; features go into `dst` (this unit's rows of the matrix),
/// string ids into the shared index as rows `first_row..`.
pub(super) fn decode_unit(
    part: &PartFile,
    meta: &ArrowReaderMetadata,
    unit: &Unit,
    first_row: usize,
    plan: &Plan,
    dst: &mut [f32],
) -> Result<(IdChunk, Option<OwnedChunk>), SnapshotError> {
    let path = part.path.as_path();
    let schema = meta.schema();
    let roots: Vec<usize> = std::iter::once(ID_COLUMN)
        .chain(plan.columns.iter().map(String::as_str))
        .chain(plan.owned)
        .filter_map(|name| schema.index_of(name).ok())
        .collect();
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots.iter().copied());
    let reader = row_group_reader(plan.remote, part, meta, unit, mask)?;
    let width = plan.columns.len();
    let unsigned_ids = schema
        .field_with_name(ID_COLUMN)
        .is_ok_and(|f| *f.data_type() == DataType::UInt64);
    let mut ids = match plan.index {
        Some(_) => IdChunk::Indexed,
        None if unsigned_ids => IdChunk::UInt(Vec::with_capacity(unit.rows)),
        None => IdChunk::Int(Vec::with_capacity(unit.rows)),
    };
    let mut owned_chunk = plan.owned.map(|_| OwnedChunk::with_rows(unit.rows));
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
        collect_ids(path, plan, &batch, first_row + row, &mut ids)?;
        if let (Some(name), Some(chunk)) = (plan.owned, owned_chunk.as_mut()) {
            chunk.collect(path, &batch, name)?;
        }
        write_features(
            part,
            &batch,
            plan.columns,
            &mut dst[row * width..(row + n) * width],
        )?;
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

/// Column `name` of `batch`, or the error naming it.
pub(super) fn column<'b>(
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

/// Adds one batch's ids (rows `first_row..`): string ids to the shared index, integers to `ids`.
fn collect_ids(
    path: &Path,
    plan: &Plan,
    batch: &RecordBatch,
    first_row: usize,
    ids: &mut IdChunk,
) -> Result<(), SnapshotError> {
    let array = column(path, batch, ID_COLUMN)?;
    let id_error = |problem: String| SnapshotError::Column {
        path: path.to_path_buf(),
        column: ID_COLUMN.to_string(),
        problem,
    };
    if array.null_count() > 0 {
        return Err(id_error(format!("has {} null ids", array.null_count())));
    }
    match (ids, plan.index) {
        (IdChunk::Indexed, Some(index)) => {
            let utf8 = match array.data_type() {
                DataType::Utf8 => Arc::clone(array),
                _ => {
                    arrow_cast::cast(array, &DataType::Utf8).map_err(|e| id_error(e.to_string()))?
                }
            };
            let strings = utf8.as_string::<i32>();
            index
                .push_rows(first_row, strings.len(), |i| strings.value(i))
                .map_err(|id| SnapshotError::DuplicateId {
                    path: plan.snapshot.to_path_buf(),
                    id,
                })?;
        }
        (IdChunk::Indexed, None) => {}
        // Checked casts: a value that does not fit is an error, never a null read as 0.
        (IdChunk::Int(values), _) => {
            let int64 = arrow_cast::cast_with_options(array, &DataType::Int64, &CHECKED)
                .map_err(|e| id_error(e.to_string()))?;
            values.extend_from_slice(int64.as_primitive::<Int64Type>().values());
        }
        (IdChunk::UInt(values), _) => {
            let uint64 = arrow_cast::cast_with_options(array, &DataType::UInt64, &CHECKED)
                .map_err(|e| id_error(e.to_string()))?;
            values.extend_from_slice(uint64.as_primitive::<UInt64Type>().values());
        }
    }
    Ok(())
}

/// One feature column of a batch, as its stored values (no converted copy for the usual numeric types).
enum Values<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
}

/// A feature column ready to write: its values and nulls.
struct Feature<'a> {
    values: Values<'a>,
    nulls: Option<&'a NullBuffer>,
}

impl<'a> Feature<'a> {
    /// `array` as stored when it is a plain numeric array; `None` for the rest (booleans, decimals, ...).
    fn of(array: &'a dyn Array) -> Option<Feature<'a>> {
        let values = match array.data_type() {
            DataType::Float32 => Values::F32(array.as_primitive::<Float32Type>().values()),
            DataType::Float64 => Values::F64(array.as_primitive::<Float64Type>().values()),
            DataType::Int8 => Values::I8(array.as_primitive::<Int8Type>().values()),
            DataType::Int16 => Values::I16(array.as_primitive::<Int16Type>().values()),
            DataType::Int32 => Values::I32(array.as_primitive::<Int32Type>().values()),
            DataType::Int64 => Values::I64(array.as_primitive::<Int64Type>().values()),
            DataType::UInt8 => Values::U8(array.as_primitive::<UInt8Type>().values()),
            DataType::UInt16 => Values::U16(array.as_primitive::<UInt16Type>().values()),
            DataType::UInt32 => Values::U32(array.as_primitive::<UInt32Type>().values()),
            DataType::UInt64 => Values::U64(array.as_primitive::<UInt64Type>().values()),
            _ => return None,
        };
        Some(Feature {
            values,
            nulls: array.nulls().filter(|n| n.null_count() > 0),
        })
    }

    /// Writes rows `rows` of this column into column `c` of `block` (those rows of the row-major matrix).
    fn write(&self, rows: Range<usize>, block: &mut [f32], c: usize, width: usize) {
        macro_rules! fill {
            ($values:expr) => {
                fill(
                    &$values[rows.clone()],
                    rows.start,
                    self.nulls,
                    block,
                    c,
                    width,
                    |v| v as f32,
                )
            };
        }
        match self.values {
            Values::F32(v) => fill!(v),
            Values::F64(v) => fill!(v),
            Values::I8(v) => fill!(v),
            Values::I16(v) => fill!(v),
            Values::I32(v) => fill!(v),
            Values::I64(v) => fill!(v),
            Values::U8(v) => fill!(v),
            Values::U16(v) => fill!(v),
            Values::U32(v) => fill!(v),
            Values::U64(v) => fill!(v),
        }
    }
}

/// Writes `values` (rows `first..` of a column) into column `c` of the row-major `block`; nulls become NaN.
fn fill<T: Copy>(
    values: &[T],
    first: usize,
    nulls: Option<&NullBuffer>,
    block: &mut [f32],
    c: usize,
    width: usize,
    to_f32: impl Fn(T) -> f32,
) {
    let cells = block[c..].iter_mut().step_by(width);
    match nulls {
        None => cells.zip(values).for_each(|(d, &v)| *d = to_f32(v)),
        Some(nulls) => cells.zip(values).enumerate().for_each(|(i, (d, &v))| {
            *d = if nulls.is_valid(first + i) {
                to_f32(v)
            } else {
                f32::NAN
            }
        }),
    }
}

/// Writes every feature column of `batch` into the row-major `dst` (its rows of the matrix), a block of rows
/// at a time; nulls become NaN.
fn write_features(
    part: &PartFile,
    batch: &RecordBatch,
    all_columns: &[String],
    dst: &mut [f32],
) -> Result<(), SnapshotError> {
    let path = part.path.as_path();
    let width = all_columns.len();
    // A Hive partition column is the same value on every row of this file: filled, not decoded.
    let mut positions = Vec::with_capacity(width);
    let mut columns = Vec::with_capacity(width);
    for (c, name) in all_columns.iter().enumerate() {
        match part.value(name) {
            Some(value) => partition::fill_column(dst, c, width, value),
            None => {
                positions.push(c);
                columns.push(name);
            }
        }
    }
    let arrays: Vec<&ArrayRef> = columns
        .iter()
        .map(|name| column(path, batch, name))
        .collect::<Result<_, _>>()?;
    // Types without a direct path (booleans, decimals, ...) are cast to f32 first.
    let cast: Vec<Option<ArrayRef>> = arrays
        .iter()
        .zip(columns)
        .map(|(array, name)| match Feature::of(array.as_ref()) {
            Some(_) => Ok(None),
            None => arrow_cast::cast(array, &DataType::Float32)
                .map(Some)
                .map_err(|e| SnapshotError::Column {
                    path: path.to_path_buf(),
                    column: name.to_string(),
                    problem: format!("cannot be read as numbers: {e}"),
                }),
        })
        .collect::<Result<_, _>>()?;
    let features: Vec<Feature> = arrays
        .iter()
        .zip(&cast)
        .filter_map(|(array, cast)| Feature::of(cast.as_ref().unwrap_or(array).as_ref()))
        .collect();
    debug_assert_eq!(
        features.len(),
        positions.len(),
        "every column is numeric after the cast"
    );
    let n = batch.num_rows();
    for start in (0..n).step_by(BLOCK) {
        let rows = start..(start + BLOCK).min(n);
        let block = &mut dst[rows.start * width..rows.end * width];
        for (&c, feature) in positions.iter().zip(&features) {
            feature.write(rows.clone(), block, c, width);
        }
    }
    Ok(())
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
            IdChunk::Indexed => Vec::new(),
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
        IdChunk::Indexed => Vec::new(),
    });
    CustomerIndex::from_unsigned(ids).map_err(duplicate)
}
