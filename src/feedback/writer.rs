//! The writer thread: takes every queued request, stamps and dedups its rows, appends them to the write-ahead log
//! with one fsync for the whole group, then answers them all (group commit); compacts into Parquet on a timer,
//! when enough rows wait, on request and at close; erases customers between two groups.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};

use super::compact;
use super::dedup::{Dedup, fingerprint};
use super::erase::{self, ErasedFiles};
use super::event::{DecisionRow, OutcomeRow, Row, day_of, now_micros};
use super::metrics::FeedbackMetrics;
use super::wal::{self, Segment};
use super::{FeedbackError, Recorded};

/// Most outcome rows one group commit takes (later requests wait for the next group).
const MAX_GROUP_ROWS: usize = 100_000;

/// A request to the writer.
pub enum Command {
    /// Store these outcome events and answer once they are durable.
    Record {
        /// The validated events (recorded_at is stamped by the writer).
        rows: Vec<OutcomeRow>,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<Result<Recorded, FeedbackError>>,
    },
    /// Remove a customer's rows everywhere.
    Erase {
        /// The customer.
        customer_id: String,
        /// Where the answer goes.
        reply: std::sync::mpsc::Sender<Result<ErasedFiles, FeedbackError>>,
    },
    /// Compact now.
    Compact {
        /// Where the answer goes.
        reply: std::sync::mpsc::Sender<Result<(), FeedbackError>>,
    },
    /// Compact and stop.
    Close,
}

/// The writer's state (owned by its thread).
pub struct Writer {
    /// The feedback folder.
    pub dir: PathBuf,
    /// The open segment (None until the first row: the folder is created when first written).
    pub segment: Option<Segment>,
    /// The number the next segment gets.
    pub next_segment: u64,
    /// Rows in the write-ahead log not yet in Parquet.
    pub pending: Vec<Row>,
    /// The replay window.
    pub dedup: Dedup,
    /// Metrics.
    pub metrics: FeedbackMetrics,
    /// Compaction period.
    pub compact_every: Duration,
    /// Compaction threshold in rows.
    pub max_pending_rows: usize,
    /// Outcome events queued and not yet answered (shared with the handle's row budget).
    pub queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

type Reply = tokio::sync::oneshot::Sender<Result<Recorded, FeedbackError>>;

impl Writer {
    /// Runs until Close (or until every sender is gone), then compacts what is left.
    pub fn run(mut self, commands: Receiver<Command>, decisions: Receiver<Vec<DecisionRow>>) {
        let mut last_compaction = Instant::now();
        loop {
            let wait = self.compact_every.saturating_sub(last_compaction.elapsed());
            let mut records: Vec<(Vec<OutcomeRow>, Reply)> = Vec::new();
            let mut decided: Vec<DecisionRow> = Vec::new();
            let mut controls = Vec::new();
            let mut closing = false;
            let take = |command: Command, records: &mut Vec<_>, controls: &mut Vec<_>| match command
            {
                Command::Record { rows, reply } => records.push((rows, reply)),
                other => controls.push(other),
            };
            select! {
                recv(commands) -> c => match c {
                    Ok(c) => take(c, &mut records, &mut controls),
                    Err(_) => closing = true,
                },
                recv(decisions) -> d => if let Ok(d) = d { decided.extend(d) },
                default(wait) => {}
            }
            // Everything else already queued joins this group: one write and one fsync for all of it.
            let mut rows = records.iter().map(|(r, _)| r.len()).sum::<usize>();
            while rows < MAX_GROUP_ROWS && controls.is_empty() {
                match commands.try_recv() {
                    Ok(c) => {
                        rows += match &c {
                            Command::Record { rows, .. } => rows.len(),
                            _ => 0,
                        };
                        take(c, &mut records, &mut controls);
                    }
                    Err(_) => break,
                }
            }
            while decided.len() < MAX_GROUP_ROWS {
                match decisions.try_recv() {
                    Ok(d) => decided.extend(d),
                    Err(_) => break,
                }
            }
            self.commit(records, decided);
            for control in controls {
                match control {
                    Command::Erase { customer_id, reply } => {
                        let _ = reply.send(self.erase(&customer_id));
                    }
                    Command::Compact { reply } => {
                        let _ = reply.send(self.compact());
                        last_compaction = Instant::now();
                    }
                    Command::Close => closing = true,
                    Command::Record { .. } => {}
                }
            }
            if closing {
                self.compact_logged();
                return;
            }
            if last_compaction.elapsed() >= self.compact_every
                || self.pending.len() >= self.max_pending_rows
            {
                self.compact_logged();
                last_compaction = Instant::now();
            }
        }
    }

    /// Stamps, dedups, appends and fsyncs one group, then answers each request.
    pub fn commit(&mut self, records: Vec<(Vec<OutcomeRow>, Reply)>, decided: Vec<DecisionRow>) {
        if records.is_empty() && decided.is_empty() {
            return;
        }
        let queued: usize = records.iter().map(|(r, _)| r.len()).sum();
        let now = now_micros();
        let day = day_of(now);
        let mut rows = Vec::new();
        let mut fresh = Vec::new();
        let mut answers = Vec::with_capacity(records.len());
        for (events, reply) in records {
            let mut done = Recorded::default();
            for mut event in events {
                let id = fingerprint(&event.event_id);
                if self.dedup.insert(&day, id) {
                    event.recorded_at = now;
                    rows.push(Row::Outcome(event));
                    fresh.push(id);
                    done.recorded += 1;
                } else {
                    done.duplicates += 1;
                }
            }
            answers.push((reply, done));
        }
        let decisions = decided.len();
        rows.extend(decided.into_iter().map(|mut d| {
            d.decided_at = now;
            Row::Decision(d)
        }));
        let written = match rows.is_empty() {
            true => Ok(()),
            false => self.append(&rows),
        };
        self.queued
            .fetch_sub(queued, std::sync::atomic::Ordering::SeqCst);
        match written {
            Ok(()) => {
                let recorded: usize = answers.iter().map(|(_, d)| d.recorded).sum();
                let duplicates: usize = answers.iter().map(|(_, d)| d.duplicates).sum();
                self.metrics.recorded.inc_by(recorded as u64);
                self.metrics.duplicates.inc_by(duplicates as u64);
                self.metrics.decisions_logged.inc_by(decisions as u64);
                self.pending.extend(rows);
                self.metrics.pending_rows.set(self.pending.len() as i64);
                for (reply, done) in answers {
                    let _ = reply.send(Ok(done));
                }
            }
            Err(error) => {
                // Nothing of this group is acknowledged: a retry must store it, so the window forgets it.
                for id in fresh {
                    self.dedup.remove(id);
                }
                self.metrics.failures.inc();
                tracing::error!(%error, "writing the outcome log failed; the group was refused");
                let message = error.to_string();
                for (reply, _) in answers {
                    let _ = reply.send(Err(FeedbackError::Write(message.clone())));
                }
            }
        }
    }

    /// Appends rows to the open segment with one fsync. After a failure the segment is abandoned (its tail may
    /// be torn, which reading tolerates only at the end) and the next group opens a new one.
    fn append(&mut self, rows: &[Row]) -> Result<(), FeedbackError> {
        let mut encoded = Vec::with_capacity(rows.len() * 256);
        wal::encode(rows, &mut encoded)?;
        let segment = match &mut self.segment {
            Some(segment) => segment,
            None => {
                let segment = Segment::create(&self.dir, self.next_segment)?;
                self.next_segment += 1;
                self.segment.insert(segment)
            }
        };
        let started = Instant::now();
        let path = wal::segment_path(&self.dir, segment.number);
        let result = segment
            .append_durably(&encoded)
            .map_err(|e| FeedbackError::io("appending to", &path, e));
        self.metrics.fsyncs.inc();
        self.metrics
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.segment = None;
        }
        result
    }

    /// Compacts, logging a failure (the rows stay in the log and are retried next time).
    fn compact_logged(&mut self) {
        if let Err(error) = self.compact() {
            self.metrics.failures.inc();
            tracing::error!(%error, pending = self.pending.len(), "compacting the outcome log failed; retrying later");
        }
    }

    /// Writes the pending rows to Parquet, then drops the write-ahead log they came from, then closes the days
    /// that are over.
    pub fn compact(&mut self) -> Result<(), FeedbackError> {
        if !self.pending.is_empty() {
            let started = Instant::now();
            let rows = self.pending.len();
            let files = compact::compact(&self.dir, &mut self.pending);
            self.metrics.pending_rows.set(self.pending.len() as i64);
            let files = files?;
            // Only now is every acknowledged row durable in Parquet: the log may go.
            self.segment = None;
            for n in wal::segments(&self.dir)? {
                wal::remove_segment(&self.dir, n)?;
            }
            self.metrics.compactions.inc();
            tracing::debug!(
                rows,
                files = files.len(),
                ms = started.elapsed().as_millis() as u64,
                "outcome log compacted"
            );
        }
        let closed = compact::close_days(&self.dir, &day_of(now_micros()))?;
        if !closed.is_empty() {
            tracing::info!(days = ?closed, "feedback day folders closed");
        }
        Ok(())
    }

    /// Removes the customer's rows from memory, the write-ahead log and the Parquet files.
    fn erase(&mut self, customer_id: &str) -> Result<ErasedFiles, FeedbackError> {
        self.pending
            .retain(|r| r.customer_id() != Some(customer_id));
        self.metrics.pending_rows.set(self.pending.len() as i64);
        let mut erased = erase::erase_wal(&self.dir, customer_id)?;
        if erased.rows_removed > 0 {
            // The open file was replaced by a rename: append to the new one from here on.
            if let Some(segment) = &self.segment {
                self.segment = Some(Segment::create(&self.dir, segment.number)?);
            }
        }
        let parquet = erase::erase_parquet(&self.dir, customer_id)?;
        erased.files.extend(parquet.files);
        erased.rows_removed += parquet.rows_removed;
        Ok(erased)
    }
}
