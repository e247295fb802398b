//! One row group's projected column chunks in memory, read with one read: the decoder's page reads are then
//! slices of that buffer instead of a seek and a read (on a fresh file handle) per page.

use std::fs::File;

use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::file::reader::{ChunkReader, Length};

use crate::storage::SparseBytes;

/// Reads the byte range covering the chunks of `leaves` (leaf column indices) of row group `row_group`, as a file
/// of which only that range is in memory (the same reader the object-store path fills with fetched ranges).
pub(super) fn read_row_group(
    file: &File,
    meta: &ArrowReaderMetadata,
    row_group: usize,
    leaves: impl Iterator<Item = usize>,
) -> Result<SparseBytes, parquet::errors::ParquetError> {
    let rg = meta.metadata().row_group(row_group);
    let (mut start, mut end) = (u64::MAX, 0_u64);
    for leaf in leaves {
        let (offset, len) = rg.column(leaf).byte_range();
        start = start.min(offset);
        end = end.max(offset.saturating_add(len));
    }
    let file_len = file.len();
    if start >= end {
        (start, end) = (0, 0);
    }
    if end > file_len {
        return Err(parquet::errors::ParquetError::EOF(format!(
            "row group {row_group} ends at byte {end}, past the end of the file ({file_len})"
        )));
    }
    let data = file.get_bytes(start, (end - start) as usize)?;
    Ok(SparseBytes::new(file_len, vec![(start, data)]))
}
