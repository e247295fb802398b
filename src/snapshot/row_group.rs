//! One row group's projected column chunks in memory, read with one read: a Parquet `ChunkReader` whose page
//! reads are slices of that buffer instead of a seek and a read (on a fresh file handle) per page.

use std::fs::File;

use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::file::reader::{ChunkReader, Length};

/// The projected column chunks of one row group, read with one read: the decoder's page reads are then
/// slices of memory instead of a seek and a read (on a fresh file handle) per page.
pub(super) struct RowGroupBytes {
    /// File offset of `data[0]`.
    start: u64,
    data: Bytes,
    file_len: u64,
}

impl RowGroupBytes {
    /// Reads the byte range covering the chunks of `columns` (leaf indices) of row group `row_group`.
    pub(super) fn read(
        file: &File,
        meta: &ArrowReaderMetadata,
        row_group: usize,
        leaves: impl Iterator<Item = usize>,
    ) -> Result<RowGroupBytes, parquet::errors::ParquetError> {
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
        Ok(RowGroupBytes {
            start,
            data,
            file_len,
        })
    }

    fn slice(&self, start: u64, length: Option<usize>) -> parquet::errors::Result<Bytes> {
        let at = start
            .checked_sub(self.start)
            .map(|a| a as usize)
            .filter(|&a| a <= self.data.len());
        let Some(at) = at else {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "byte {start} is outside the row group's column chunks"
            )));
        };
        let end = length.map_or(Some(self.data.len()), |l| at.checked_add(l));
        match end.filter(|&e| e <= self.data.len()) {
            Some(end) => Ok(self.data.slice(at..end)),
            None => Err(parquet::errors::ParquetError::EOF(format!(
                "{} bytes from byte {start} run past the row group's column chunks",
                length.unwrap_or(0)
            ))),
        }
    }
}

impl Length for RowGroupBytes {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl ChunkReader for RowGroupBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}
