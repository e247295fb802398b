//! The feedback log handle: recovers a leftover write-ahead log at open, then feeds the writer thread through
//! bounded queues (outcomes wait for their fsync; decisions never wait and are dropped when the queue is full).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError, bounded};

use super::compact;
use super::dedup::{Dedup, fingerprint};
use super::erase::ErasedFiles;
use super::event::{DecisionRow, OutcomeRow, day_of, now_micros};
use super::metrics::FeedbackMetrics;
use super::table::Kind;
use super::wal;
use super::writer::{Command, Writer};
use super::{FeedbackError, Options, Recorded};

/// Queued decision messages (one per sampled reply) before new ones are dropped.
const DECISION_QUEUE: usize = 256;

/// The outcome and decision log of one server.
pub struct FeedbackLog {
    dir: PathBuf,
    options: Options,
    commands: Sender<Command>,
    decisions: Sender<Vec<DecisionRow>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    metrics: FeedbackMetrics,
    /// Outcome events queued for the writer and not yet answered.
    queued: Arc<AtomicUsize>,
}

impl std::fmt::Debug for FeedbackLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedbackLog")
            .field("dir", &self.dir)
            .finish()
    }
}

impl FeedbackLog {
    /// Opens the log in `dir`: compacts whatever a previous run left in the write-ahead log (a torn tail is
    /// dropped; rows already in Parquet are not written twice), loads the dedup window, starts the writer.
    pub fn open(
        dir: &Path,
        options: Options,
        metrics: FeedbackMetrics,
    ) -> Result<FeedbackLog, FeedbackError> {
        let next_segment = recover(dir)?;
        let dedup = load_window(dir, options.dedup_days, options.dedup_max_ids)?;
        let (commands, command_rx) = bounded(options.queue_capacity.max(1));
        let (decisions, decision_rx) = bounded(DECISION_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            queued: queued.clone(),
            dir: dir.to_path_buf(),
            segment: None,
            next_segment,
            pending: Vec::new(),
            dedup,
            metrics: metrics.clone(),
            compact_every: options.compact_every,
            max_pending_rows: options.max_pending_rows.max(1),
        };
        let thread = std::thread::Builder::new()
            .name("feedback-writer".into())
            .spawn(move || writer.run(command_rx, decision_rx))
            .map_err(|e| FeedbackError::io("starting the writer for", dir, e))?;
        Ok(FeedbackLog {
            dir: dir.to_path_buf(),
            options,
            commands,
            decisions,
            writer: Mutex::new(Some(thread)),
            metrics,
            queued,
        })
    }

    /// The feedback folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How it runs.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Its metrics.
    pub fn metrics(&self) -> &FeedbackMetrics {
        &self.metrics
    }

    fn send(&self, command: Command) -> Result<(), FeedbackError> {
        self.commands.try_send(command).map_err(|e| match e {
            TrySendError::Full(_) => FeedbackError::Busy,
            TrySendError::Disconnected(_) => FeedbackError::Closed,
        })
    }

    /// Queues `rows` for the writer, within the queue's request and row bounds (the writer gives the rows back
    /// to the row budget once it has answered them).
    fn enqueue(
        &self,
        rows: Vec<OutcomeRow>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Recorded, FeedbackError>>, FeedbackError>
    {
        let n = rows.len();
        let before = self.queued.fetch_add(n, Ordering::SeqCst);
        // One batch alone always fits, however large: the request size limit bounds it.
        if before > 0 && before + n > self.options.max_queued_rows {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(FeedbackError::Busy);
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Command::Record { rows, reply })
            .inspect_err(|_| {
                self.queued.fetch_sub(n, Ordering::SeqCst);
            })?;
        Ok(answer)
    }

    /// Stores `rows` (validated) and answers once they are durable (never blocks the caller's thread).
    pub async fn record(&self, rows: Vec<OutcomeRow>) -> Result<Recorded, FeedbackError> {
        let answer = self.enqueue(rows)?;
        answer.await.map_err(|_| FeedbackError::Closed)?
    }

    /// [`FeedbackLog::record`] for plain threads (benches, tools); not on an async worker.
    pub fn record_blocking(&self, rows: Vec<OutcomeRow>) -> Result<Recorded, FeedbackError> {
        let answer = self.enqueue(rows)?;
        answer.blocking_recv().map_err(|_| FeedbackError::Closed)?
    }

    /// Queues decisions for the log without waiting; when the queue is full they are dropped and counted.
    pub fn log_decisions(&self, rows: Vec<DecisionRow>) {
        if rows.is_empty() {
            return;
        }
        let n = rows.len() as u64;
        if self.decisions.try_send(rows).is_err() {
            self.metrics.decisions_dropped.inc_by(n);
        }
    }

    fn ask<T>(
        &self,
        command: impl FnOnce(std::sync::mpsc::Sender<Result<T, FeedbackError>>) -> Command,
    ) -> Result<T, FeedbackError> {
        let (reply, answer) = std::sync::mpsc::channel();
        // Control requests wait for room rather than fail: they are rare and their callers can wait.
        self.commands
            .send(command(reply))
            .map_err(|_| FeedbackError::Closed)?;
        answer.recv().map_err(|_| FeedbackError::Closed)?
    }

    /// Removes every outcome and decision row of `customer_id` (write-ahead log and Parquet), serialised with
    /// the writer's appends. Blocks until done: call it off the async workers (`web::block`).
    pub fn erase_customer(&self, customer_id: &str) -> Result<ErasedFiles, FeedbackError> {
        let customer_id = customer_id.to_string();
        self.ask(|reply| Command::Erase { customer_id, reply })
    }

    /// Compacts the write-ahead log into Parquet now (blocks until done).
    pub fn compact_now(&self) -> Result<(), FeedbackError> {
        self.ask(|reply| Command::Compact { reply })
    }

    /// Compacts what is left and stops the writer (idempotent; also on drop).
    pub fn close(&self) {
        let thread = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(thread) = thread {
            let _ = self.commands.send(Command::Close);
            let _ = thread.join();
        }
    }
}

impl Drop for FeedbackLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Compacts the segments a previous run left (rows already published are skipped: a crash can fall between
/// publishing a file and removing the log), removes them, closes finished days; returns the next segment number.
fn recover(dir: &Path) -> Result<u64, FeedbackError> {
    if !dir.exists() {
        return Ok(0);
    }
    let temps = compact::remove_temps(dir)?;
    let segments = wal::segments(dir)?;
    let mut rows = Vec::new();
    let mut torn = 0;
    for &n in &segments {
        let read = wal::read_segment(dir, n)?;
        torn += read.torn_bytes;
        rows.extend(read.rows);
    }
    let found = rows.len();
    let mut published: BTreeMap<(Kind, String), HashSet<String>> = BTreeMap::new();
    for row in &rows {
        let key = (Kind::of(row), day_of(row.recorded_at()));
        if let std::collections::btree_map::Entry::Vacant(entry) = published.entry(key) {
            let (kind, day) = entry.key();
            let ids = compact::day_ids(dir, *kind, day)?;
            entry.insert(ids);
        }
    }
    let mut seen = HashSet::new();
    rows.retain(|row| {
        let key = (Kind::of(row), day_of(row.recorded_at()));
        let done = published
            .get(&key)
            .is_some_and(|ids| ids.contains(row.id()));
        !done && seen.insert((key.0, row.id().to_string()))
    });
    let resumed = rows.len();
    compact::compact(dir, &mut rows)?;
    for &n in &segments {
        wal::remove_segment(dir, n)?;
    }
    compact::close_days(dir, &day_of(now_micros()))?;
    if !segments.is_empty() || temps > 0 {
        tracing::info!(
            segments = segments.len(),
            rows = found,
            compacted = resumed,
            torn_bytes = torn,
            removed_temp_files = temps,
            "outcome log recovered"
        );
    }
    Ok(segments.last().map_or(0, |n| n + 1))
}

/// The event ids of the outcome folders within the last `days` UTC days.
fn load_window(dir: &Path, days: usize, max_ids: usize) -> Result<Dedup, FeedbackError> {
    let mut dedup = Dedup::new(days, max_ids);
    let span = (days.max(1) as i64 - 1) * 86_400_000_000;
    let oldest = day_of(now_micros() - span);
    for day in compact::days(dir, Kind::Outcomes)? {
        if day >= oldest {
            for id in compact::day_ids(dir, Kind::Outcomes, &day)? {
                dedup.insert(&day, fingerprint(&id));
            }
        }
    }
    Ok(dedup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::event::Row;

    fn event(id: &str, customer: &str) -> OutcomeRow {
        OutcomeRow {
            recorded_at: 0,
            ..OutcomeRow::sample(id, customer, "retained", 1)
        }
    }

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("crmscore-log-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn outcome_ids(dir: &Path) -> Vec<String> {
        let mut ids: Vec<String> = compact::days(dir, Kind::Outcomes)
            .unwrap()
            .iter()
            .flat_map(|d| compact::day_ids(dir, Kind::Outcomes, d).unwrap())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn replays_are_stored_once_across_restarts_and_compaction() {
        let dir = temp("replay");
        let log = FeedbackLog::open(&dir, Options::default(), FeedbackMetrics::new()).unwrap();
        let done = log.record_blocking(vec![event("a", "C1"), event("b", "C2"), event("a", "C1")]);
        assert_eq!(
            done.unwrap(),
            Recorded {
                recorded: 2,
                duplicates: 1
            }
        );
        log.log_decisions(vec![DecisionRow {
            decision_id: "d1".into(),
            ..Default::default()
        }]);
        log.compact_now().unwrap();
        assert!(wal::segments(&dir).unwrap().is_empty());
        log.close();
        let log = FeedbackLog::open(&dir, Options::default(), FeedbackMetrics::new()).unwrap();
        let done = log
            .record_blocking(vec![event("b", "C2"), event("c", "C3")])
            .unwrap();
        assert_eq!(
            done,
            Recorded {
                recorded: 1,
                duplicates: 1
            }
        );
        drop(log);
        assert_eq!(outcome_ids(&dir), ["a", "b", "c"]);
        let day = day_of(now_micros());
        assert_eq!(
            compact::day_ids(&dir, Kind::Decisions, &day).unwrap().len(),
            1
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_leftover_log_with_a_torn_tail_resumes_without_doubles() {
        let dir = temp("recover");
        // A run that died: two acknowledged rows, one of them already published, then a torn record.
        let now = now_micros();
        let mut a = event("a", "C1");
        a.recorded_at = now;
        let mut b = event("b", "C1");
        b.recorded_at = now;
        compact::compact(&dir, &mut vec![Row::Outcome(a.clone())]).unwrap();
        let mut seg = wal::Segment::create(&dir, 3).unwrap();
        let mut bytes = Vec::new();
        wal::encode(&[Row::Outcome(a), Row::Outcome(b)], &mut bytes).unwrap();
        bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2]);
        seg.append_durably(&bytes).unwrap();
        let log = FeedbackLog::open(&dir, Options::default(), FeedbackMetrics::new()).unwrap();
        assert_eq!(outcome_ids(&dir), ["a", "b"]);
        assert!(wal::segments(&dir).unwrap().is_empty());
        let done = log.record_blocking(vec![event("b", "C9")]).unwrap();
        assert_eq!(done.duplicates, 1);
        let erased = log.erase_customer("C1").unwrap();
        assert_eq!(erased.rows_removed, 2);
        drop(log);
        assert!(outcome_ids(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_live_erase_reaches_rows_still_in_the_log() {
        let dir = temp("erase");
        let log = FeedbackLog::open(&dir, Options::default(), FeedbackMetrics::new()).unwrap();
        log.record_blocking(vec![event("a", "C1"), event("b", "C2")])
            .unwrap();
        let erased = log.erase_customer("C1").unwrap();
        assert_eq!(erased.rows_removed, 1);
        log.record_blocking(vec![event("c", "C1")]).unwrap();
        drop(log);
        assert_eq!(outcome_ids(&dir), ["b", "c"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
