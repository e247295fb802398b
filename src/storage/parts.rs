//! Reading the part files of a snapshot in an object store: the footer from the object's last bytes, and for
//! each row group only the byte ranges of its needed column chunks, fetched concurrently and handed to the
//! Parquet decoder as a sparse in-memory file (nothing staged on disk; memory bounded by the row groups in flight).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use object_store::{ObjectMeta, ObjectStore};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::reader::{ChunkReader, Length};

use super::metrics::STORAGE;
use crate::snapshot::SnapshotError;

/// Attempts of one operation when the client's own retries end in a transient error (a connection dropped
/// mid-body is one the client does not retry itself).
const ATTEMPTS: u32 = 3;
/// The first wait between attempts; doubled each time.
const BACKOFF: Duration = Duration::from_millis(200);
/// Bytes read from the end of an object for its footer in one request (most footers fit).
const FOOTER_GUESS: u64 = 64 * 1024;

/// Whether an error may go away on a second try (not a missing object, a refused credential or a bad request).
fn transient(error: &object_store::Error) -> bool {
    !matches!(
        error,
        object_store::Error::NotFound { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::InvalidPath { .. }
    )
}

/// Runs `attempt` up to [`ATTEMPTS`] times with exponential backoff while it fails transiently; each retry is
/// logged and counted under `op`, a final failure counted as an error.
pub(crate) async fn retrying<T, F, Fut>(op: &str, what: &str, attempt: F) -> Result<T, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, object_store::Error>>,
{
    let mut wait = BACKOFF;
    for n in 1..=ATTEMPTS {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if n < ATTEMPTS && transient(&error) => {
                STORAGE.retries.with_label_values(&[op]).inc();
                tracing::warn!(op, object = what, attempt = n, %error, wait_ms = wait.as_millis() as u64, "object-store request failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(error) => {
                STORAGE.errors.with_label_values(&[op]).inc();
                return Err(error.to_string());
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// A file of which only some byte ranges are in memory (a local row group read at once, or ranges fetched from an
/// object store): what the decoder of one row group (or the footer reader) asks for lies inside one of them.
#[derive(Debug, Clone)]
pub struct SparseBytes {
    len: u64,
    /// Fetched ranges by start offset, sorted, not overlapping.
    parts: Vec<(u64, Bytes)>,
}

impl SparseBytes {
    /// A file of `len` bytes holding `parts` (start offset, bytes) in memory.
    pub fn new(len: u64, mut parts: Vec<(u64, Bytes)>) -> SparseBytes {
        parts.sort_by_key(|(start, _)| *start);
        SparseBytes { len, parts }
    }

    /// The fetched bytes from `start` to the end of the range that holds it.
    fn from(&self, start: u64) -> parquet::errors::Result<Bytes> {
        let i = self.parts.partition_point(|(s, _)| *s <= start);
        let (s, bytes) = i
            .checked_sub(1)
            .and_then(|i| self.parts.get(i))
            .filter(|(s, b)| start <= s + b.len() as u64)
            .ok_or_else(|| {
                ParquetError::General(format!("byte {start} of the object was not fetched"))
            })?;
        Ok(bytes.slice((start - s) as usize..))
    }
}

impl Length for SparseBytes {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for SparseBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.from(start)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let rest = self.from(start)?;
        if rest.len() < length {
            return Err(ParquetError::General(format!(
                "bytes {start}..{} of the object were not fetched",
                start + length as u64
            )));
        }
        Ok(rest.slice(..length))
    }
}

/// The part objects of one remote snapshot, as listed: read with their listed sizes.
#[derive(Clone)]
pub struct RemoteParts {
    store: Arc<dyn ObjectStore>,
    objects: Vec<ObjectMeta>,
    root: String,
    ahead: Arc<Mutex<ReadAhead>>,
}

/// A row group's fetched ranges (start offset, bytes), or why not.
type Fetched = Result<Vec<(u64, Bytes)>, String>;

/// A row group's fetch: its byte ranges and the task fetching them.
type InFlight = (Vec<Range<u64>>, tokio::task::JoinHandle<Fetched>);

/// Row groups fetched ahead of the decoder, so the network and the decoding overlap: each decoding thread works
/// through consecutive row groups, and asks for the next [`AHEAD`] while it decodes one.
#[derive(Default)]
struct ReadAhead {
    /// Fetches in flight or done, not yet taken, by (part, row group).
    pending: HashMap<(usize, usize), InFlight>,
    /// Row groups already taken by a decoder (never fetched ahead again).
    taken: HashSet<(usize, usize)>,
}

/// Row groups fetched ahead of each decoding thread at most: enough to hide a request's latency behind decoding.
const AHEAD: usize = 8;
/// Bytes fetched ahead and not yet taken, over all decoding threads, at most (the next row group of the thread
/// asking is fetched whatever its size): memory in flight stays bounded when row groups are large.
const AHEAD_BYTES: u64 = 64 << 20;

impl std::fmt::Debug for RemoteParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteParts")
            .field("objects", &self.fingerprint())
            .finish()
    }
}

/// Two listings are the same snapshot when every part has the same name, size, ETag and modification time.
impl PartialEq for RemoteParts {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint() == other.fingerprint()
    }
}

impl RemoteParts {
    /// The parts `objects` (in read order) of `store`, whose URLs start with `root` (`s3://bucket`).
    pub fn new(store: Arc<dyn ObjectStore>, objects: Vec<ObjectMeta>, root: String) -> RemoteParts {
        RemoteParts {
            store,
            objects,
            root,
            ahead: Arc::default(),
        }
    }

    /// Names, sizes, ETags and modification times of the parts: a change means a new upload.
    pub fn fingerprint(&self) -> String {
        self.objects
            .iter()
            .map(|o| {
                format!(
                    "{} {} {} {}",
                    o.location,
                    o.size,
                    o.e_tag.as_deref().unwrap_or("-"),
                    o.last_modified.timestamp_micros()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Bytes of every part together.
    pub fn bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }

    fn url(&self, file: usize) -> String {
        self.objects
            .get(file)
            .map(|o| format!("{}/{}", self.root, o.location))
            .unwrap_or_default()
    }

    fn object(&self, file: usize) -> Result<&ObjectMeta, String> {
        self.objects
            .get(file)
            .ok_or_else(|| format!("no part {file} in the listing"))
    }

    fn invalid(&self, file: usize, message: impl std::fmt::Display) -> SnapshotError {
        SnapshotError::Read {
            path: PathBuf::from(self.url(file)),
            message: message.to_string(),
        }
    }

    /// Fetches `ranges` of part `file` concurrently (the client merges close ones), with retries.
    fn fetch(
        &self,
        op: &'static str,
        file: usize,
        ranges: Vec<Range<u64>>,
    ) -> Result<SparseBytes, SnapshotError> {
        let len = self.object(file).map_err(|e| self.invalid(file, e))?.size;
        let fetched = super::block(self.fetching(op, file, ranges)).and_then(|r| r);
        self.sparse(file, len, fetched)
    }

    fn sparse(
        &self,
        file: usize,
        len: u64,
        fetched: Fetched,
    ) -> Result<SparseBytes, SnapshotError> {
        fetched
            .map(|parts| SparseBytes::new(len, parts))
            .map_err(|message| SnapshotError::Unreachable {
                path: PathBuf::from(self.url(file)),
                message,
            })
    }

    /// The request for `ranges` of part `file`, to run on the storage runtime.
    fn fetching(
        &self,
        op: &'static str,
        file: usize,
        ranges: Vec<Range<u64>>,
    ) -> impl Future<Output = Fetched> + Send + 'static {
        let store = self.store.clone();
        let location = self.objects.get(file).map(|o| o.location.clone());
        let url = self.url(file);
        async move {
            let location = location.ok_or_else(|| format!("no part {file} in the listing"))?;
            retrying(op, &url, || store.get_ranges(&location, &ranges))
                .await
                .map(|bytes| ranges.iter().map(|r| r.start).zip(bytes).collect())
        }
    }

    /// The footer of part `file`: its last 64 KiB, and the rest of the metadata when it is longer.
    pub fn footer(&self, file: usize) -> Result<SparseBytes, SnapshotError> {
        let len = self.object(file).map_err(|e| self.invalid(file, e))?.size;
        if len < 12 {
            return Err(self.invalid(file, format!("{len} bytes is too short for a Parquet file")));
        }
        let guess = self.fetch(
            "footer",
            file,
            std::iter::once(len - FOOTER_GUESS.min(len)..len).collect(),
        )?;
        let tail = guess
            .get_bytes(len - 8, 8)
            .map_err(|e| self.invalid(file, e))?;
        if &tail[4..] != b"PAR1" {
            return Err(self.invalid(file, "not a Parquet file (no PAR1 magic at its end)"));
        }
        let metadata = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
        let needed = (metadata + 8).min(len);
        if needed <= FOOTER_GUESS.min(len) {
            return Ok(guess);
        }
        self.fetch("footer", file, std::iter::once(len - needed..len).collect())
    }

    /// The column chunks of row group `row_group` of part `file` that `mask` selects (fetched concurrently, and
    /// the next row groups' fetched ahead while this one decodes).
    pub fn row_group(
        &self,
        file: usize,
        metadata: &ParquetMetaData,
        row_group: usize,
        mask: &ProjectionMask,
    ) -> Result<SparseBytes, SnapshotError> {
        let len = self.object(file).map_err(|e| self.invalid(file, e))?.size;
        let runtime = super::runtime().map_err(|e| self.invalid(file, e))?;
        let mine = {
            let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
            ahead.taken.insert((file, row_group));
            let ranges = column_ranges(metadata.row_group(row_group), mask);
            // Fetched ahead for other columns (another load of the same listing): fetched again.
            let mine = match ahead.pending.remove(&(file, row_group)) {
                Some((fetching, handle)) if fetching == ranges => Ok(handle),
                Some((_, handle)) => {
                    handle.abort();
                    Err(ranges)
                }
                None => Err(ranges),
            };
            let mut in_flight: u64 = ahead.pending.values().map(|(r, _)| span(r)).sum();
            let next = row_group + 1..(row_group + 1 + AHEAD).min(metadata.num_row_groups());
            for (i, next) in next.enumerate() {
                let key = (file, next);
                if ahead.taken.contains(&key) || ahead.pending.contains_key(&key) {
                    continue;
                }
                let ranges = column_ranges(metadata.row_group(next), mask);
                if i > 0 && in_flight + span(&ranges) > AHEAD_BYTES {
                    break;
                }
                in_flight += span(&ranges);
                let handle = runtime.spawn(self.fetching("get", file, ranges.clone()));
                ahead.pending.insert(key, (ranges, handle));
            }
            mine
        };
        let fetched = match mine {
            Ok(handle) => super::block(async move {
                handle
                    .await
                    .unwrap_or_else(|e| Err(format!("the fetch was abandoned: {e}")))
            }),
            Err(ranges) => super::block(self.fetching("get", file, ranges)),
        };
        self.sparse(file, len, fetched.and_then(|r| r))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // A load that failed midway leaves fetches nobody will take.
        for (_, handle) in self.pending.values() {
            handle.abort();
        }
    }
}

/// Bytes in `ranges`.
fn span(ranges: &[Range<u64>]) -> u64 {
    ranges.iter().map(|r| r.end - r.start).sum()
}

/// The byte ranges of the column chunks of `row_group` that `mask` selects.
fn column_ranges(row_group: &RowGroupMetaData, mask: &ProjectionMask) -> Vec<Range<u64>> {
    row_group
        .columns()
        .iter()
        .enumerate()
        .filter(|(leaf, _)| mask.leaf_included(*leaf))
        .map(|(_, column)| {
            let (start, length) = column.byte_range();
            start..start + length
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_bytes_serve_only_what_was_fetched() {
        let file = SparseBytes::new(
            100,
            vec![
                (50, Bytes::from_static(b"fghij")),
                (10, Bytes::from_static(b"abcde")),
            ],
        );
        assert_eq!(file.len(), 100);
        assert_eq!(file.get_bytes(11, 3).unwrap(), Bytes::from_static(b"bcd"));
        assert_eq!(file.get_bytes(50, 5).unwrap(), Bytes::from_static(b"fghij"));
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut file.get_read(52).unwrap(), &mut rest).unwrap();
        assert_eq!(rest, "hij");
        assert!(file.get_bytes(12, 5).is_err(), "runs past a fetched range");
        assert!(file.get_bytes(0, 1).is_err(), "before every range");
        assert!(file.get_read(30).is_err(), "between ranges");
    }
}
