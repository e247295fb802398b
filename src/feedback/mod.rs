//! Outcomes and decisions recorded durably for retraining: a write-ahead log with group commit (`log`, `writer`,
//! `wal`), compacted into Parquet day folders (`compact`, `table`), with replay dedup (`dedup`) and erasure of a
//! customer's rows (`erase`).
//!
//! Layout under the feedback folder: `wal/segment-NNNNNNNNNN.log` (internal), then
//! `outcomes/date=YYYY-MM-DD/part-NNNNN.parquet` and `decisions/date=...`, a day folder closed with `_SUCCESS`
//! once that UTC day is over and compacted. Rows never reach the log text: no customer ids, notes or features.

pub mod compact;
pub mod decision_id;
pub mod dedup;
pub mod erase;
pub mod event;
mod log;
pub mod metrics;
pub mod table;
pub mod wal;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use decision_id::{DecisionId, DecisionIds};
pub use erase::{ErasedFiles, erase_customer};
pub use event::{DecisionRow, OUTCOMES, OutcomeRow, Row};
pub use log::FeedbackLog;
pub use metrics::FeedbackMetrics;

/// What can go wrong in the feedback log.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// A file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`writing`, `renaming`, ...).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file could not be encoded or decoded.
    #[error("{0}")]
    Corrupt(String),
    /// The writer's queue is full; the request recorded nothing.
    #[error("the outcome log is busy; nothing was recorded, retry shortly")]
    Busy,
    /// The log is closed (the server is stopping).
    #[error("the outcome log is closed")]
    Closed,
    /// Writing the log failed; the request recorded nothing.
    #[error("writing the outcome log failed; nothing was recorded: {0}")]
    Write(String),
}

impl FeedbackError {
    /// An I/O error while doing `action` to `path`.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> FeedbackError {
        FeedbackError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How the log runs (from the `--feedback-*` and `--decision-log-*` flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// How often the write-ahead log is compacted into Parquet.
    pub compact_every: Duration,
    /// Also compact once this many rows wait in the write-ahead log (bounds the writer's memory).
    pub max_pending_rows: usize,
    /// UTC days (by recorded day) within which a replayed event id is stored once.
    pub dedup_days: usize,
    /// Most event ids the dedup window holds.
    pub dedup_max_ids: usize,
    /// Requests that may wait for the writer; past it POST /v1/outcomes answers 503.
    pub queue_capacity: usize,
    /// Outcome events that may wait for the writer (bounds the memory of the queue); past it, 503.
    pub max_queued_rows: usize,
    /// Fraction of plain scoring decisions logged.
    pub decision_sample: f64,
    /// Fraction of insights decisions logged.
    pub decision_sample_insights: f64,
    /// Whether logged decisions carry their features.
    pub decision_features: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            compact_every: Duration::from_secs(60),
            max_pending_rows: 200_000,
            dedup_days: 7,
            dedup_max_ids: 5_000_000,
            queue_capacity: 1024,
            max_queued_rows: 500_000,
            decision_sample: 0.0,
            decision_sample_insights: 1.0,
            decision_features: false,
        }
    }
}

/// What one accepted batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Recorded {
    /// Events stored.
    pub recorded: usize,
    /// Events whose id was already stored (acknowledged, not stored again).
    pub duplicates: usize,
}
