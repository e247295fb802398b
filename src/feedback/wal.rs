//! The write-ahead log: length- and checksum-framed rows appended to numbered segment files under DIR/wal/.
//!
//! A record is `len: u32 LE | crc32(payload): u32 LE | payload` (the row as JSON). A crash can leave a torn
//! record at the end of the last segment; it was never acknowledged (the fsync that acknowledges it had not
//! returned), so reading stops there and drops it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::FeedbackError;
use super::event::Row;

/// Largest record accepted when reading (a bigger length can only be a torn or corrupt header).
const MAX_RECORD: usize = 16 << 20;

/// The folder of the write-ahead log under the feedback folder.
pub fn wal_dir(dir: &Path) -> PathBuf {
    dir.join("wal")
}

/// The path of segment `n`.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    wal_dir(dir).join(format!("segment-{n:010}.log"))
}

/// The numbers of the segments present, oldest first.
pub fn segments(dir: &Path) -> Result<Vec<u64>, FeedbackError> {
    let wal = wal_dir(dir);
    let entries = match std::fs::read_dir(&wal) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FeedbackError::io("reading", &wal, e)),
    };
    let mut numbers: Vec<u64> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("segment-")?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// Appends `rows` as records to `out` (no I/O: the writer writes one buffer per group commit).
pub fn encode(rows: &[Row], out: &mut Vec<u8>) -> Result<(), FeedbackError> {
    for row in rows {
        let start = out.len();
        out.extend_from_slice(&[0; 8]);
        serde_json::to_writer(&mut *out, row)
            .map_err(|e| FeedbackError::Corrupt(format!("encoding a row: {e}")))?;
        let payload = &out[start + 8..];
        let len = u32::try_from(payload.len())
            .map_err(|_| FeedbackError::Corrupt("a row larger than 4 GiB".into()))?;
        let crc = crc32fast::hash(payload);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }
    Ok(())
}

/// What reading one segment found.
#[derive(Debug, Default)]
pub struct SegmentRead {
    /// The rows that verified, in order.
    pub rows: Vec<Row>,
    /// Bytes after the last verified record (a torn tail; dropped).
    pub torn_bytes: usize,
}

/// Decodes every verified record of `bytes`, stopping at the first that does not verify.
pub fn decode(bytes: &[u8]) -> SegmentRead {
    let mut rows = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap_or_default());
        let end = at + 8 + len;
        if len > MAX_RECORD || end > bytes.len() {
            break;
        }
        let payload = &bytes[at + 8..end];
        if crc32fast::hash(payload) != crc {
            break;
        }
        match serde_json::from_slice(payload) {
            Ok(row) => rows.push(row),
            Err(_) => break,
        }
        at = end;
    }
    SegmentRead {
        rows,
        torn_bytes: bytes.len() - at,
    }
}

/// Reads segment `n` of `dir`.
pub fn read_segment(dir: &Path, n: u64) -> Result<SegmentRead, FeedbackError> {
    let path = segment_path(dir, n);
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| FeedbackError::io("reading", &path, e))?;
    Ok(decode(&bytes))
}

/// An open segment the writer appends to.
pub struct Segment {
    /// Its number.
    pub number: u64,
    file: File,
    /// Bytes written so far.
    pub bytes: u64,
}

impl Segment {
    /// Creates segment `n` (the folder too, and makes its entry durable).
    pub fn create(dir: &Path, n: u64) -> Result<Segment, FeedbackError> {
        let wal = wal_dir(dir);
        std::fs::create_dir_all(&wal).map_err(|e| FeedbackError::io("creating", &wal, e))?;
        let path = segment_path(dir, n);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| FeedbackError::io("creating", &path, e))?;
        sync_dir(&wal)?;
        Ok(Segment {
            number: n,
            file,
            bytes: 0,
        })
    }

    /// Appends encoded records and makes them durable (one fsync for the whole group).
    pub fn append_durably(&mut self, encoded: &[u8]) -> std::io::Result<()> {
        self.file.write_all(encoded)?;
        self.file.sync_data()?;
        self.bytes += encoded.len() as u64;
        Ok(())
    }
}

/// Replaces segment `n` with `rows` (write a dot-named temp, fsync, rename over, fsync the folder): used by
/// erasure and to drop a torn tail before appending after it.
pub fn rewrite_segment(dir: &Path, n: u64, rows: &[Row]) -> Result<(), FeedbackError> {
    let path = segment_path(dir, n);
    let mut encoded = Vec::new();
    encode(rows, &mut encoded)?;
    crate::durable::replace(&path, &encoded).map_err(|e| FeedbackError::io("writing", &path, e))
}

/// Removes segment `n` (after its rows are durable in Parquet).
pub fn remove_segment(dir: &Path, n: u64) -> Result<(), FeedbackError> {
    let path = segment_path(dir, n);
    std::fs::remove_file(&path).map_err(|e| FeedbackError::io("removing", &path, e))?;
    sync_dir(&wal_dir(dir))
}

/// Makes the entries of folder `dir` (creations, renames, removals) durable.
pub fn sync_dir(dir: &Path) -> Result<(), FeedbackError> {
    crate::durable::sync_folder(dir).map_err(|e| FeedbackError::io("syncing", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::event::OutcomeRow;

    fn row(id: &str) -> Row {
        Row::Outcome(OutcomeRow::sample(id, "C1", "retained", 2))
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let mut bytes = Vec::new();
        encode(&[row("a"), row("b")], &mut bytes).unwrap();
        let whole = bytes.len();
        encode(&[row("c")], &mut bytes).unwrap();
        let read = decode(&bytes);
        assert_eq!(read.rows.len(), 3);
        assert_eq!(read.torn_bytes, 0);
        for cut in whole + 1..bytes.len() {
            let read = decode(&bytes[..cut]);
            assert_eq!(read.rows, vec![row("a"), row("b")], "cut at {cut}");
            assert_eq!(read.torn_bytes, cut - whole);
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 0x20;
        assert_eq!(decode(&flipped).rows.len(), 2);
    }
}
