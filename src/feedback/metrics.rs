//! Prometheus metrics of the feedback log (registered by `telemetry::Metrics`).

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

/// The feedback log's handles (cheap clones sharing the same series).
#[derive(Clone)]
pub struct FeedbackMetrics {
    /// Outcome events stored (acknowledged after fsync).
    pub recorded: IntCounter,
    /// Outcome events acknowledged as replays of an id already stored.
    pub duplicates: IntCounter,
    /// Group commits: one write and one fsync for every batch of queued requests.
    pub fsyncs: IntCounter,
    /// Time of one group commit (write + fsync).
    pub fsync_seconds: Histogram,
    /// Compactions of the write-ahead log into Parquet that published files.
    pub compactions: IntCounter,
    /// Compactions or write-ahead log writes that failed (retried; nothing acknowledged is lost).
    pub failures: IntCounter,
    /// Decisions written to the log.
    pub decisions_logged: IntCounter,
    /// Sampled decisions dropped because the writer's queue was full (scoring never waits for the log).
    pub decisions_dropped: IntCounter,
    /// Rows in the write-ahead log not yet compacted into Parquet.
    pub pending_rows: IntGauge,
}

impl Default for FeedbackMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl FeedbackMetrics {
    /// Unregistered handles (a `Metrics` registers them; benches and unit tests use them as they are).
    pub fn new() -> FeedbackMetrics {
        let counter =
            |name, help| IntCounter::new(name, help).expect("static metric definition is valid");
        FeedbackMetrics {
            recorded: counter("crmscore_outcomes_recorded_total", "Outcome events stored"),
            duplicates: counter(
                "crmscore_outcomes_duplicates_total",
                "Outcome events acknowledged as replays of an event id already stored",
            ),
            fsyncs: counter(
                "crmscore_feedback_fsyncs_total",
                "Group commits of the feedback write-ahead log (one fsync each)",
            ),
            fsync_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "crmscore_feedback_fsync_duration_seconds",
                    "Time of one group commit of the feedback write-ahead log (write + fsync)",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
                ]),
            )
            .expect("static metric definition is valid"),
            compactions: counter(
                "crmscore_feedback_compactions_total",
                "Compactions of the feedback write-ahead log into Parquet day folders",
            ),
            failures: counter(
                "crmscore_feedback_failures_total",
                "Feedback log writes or compactions that failed",
            ),
            decisions_logged: counter(
                "crmscore_decisions_logged_total",
                "Sampled decisions written to the decision log",
            ),
            decisions_dropped: counter(
                "crmscore_decisions_dropped_total",
                "Sampled decisions dropped because the feedback writer's queue was full",
            ),
            pending_rows: IntGauge::new(
                "crmscore_feedback_pending_rows",
                "Rows in the feedback write-ahead log not yet compacted into Parquet",
            )
            .expect("static metric definition is valid"),
        }
    }

    /// Registers every series in `registry`.
    pub fn register(&self, registry: &Registry) {
        let all: [Box<dyn Collector>; 9] = [
            Box::new(self.recorded.clone()),
            Box::new(self.duplicates.clone()),
            Box::new(self.fsyncs.clone()),
            Box::new(self.fsync_seconds.clone()),
            Box::new(self.compactions.clone()),
            Box::new(self.failures.clone()),
            Box::new(self.decisions_logged.clone()),
            Box::new(self.decisions_dropped.clone()),
            Box::new(self.pending_rows.clone()),
        ];
        for c in all {
            registry.register(c).expect("metric names are unique");
        }
    }
}
