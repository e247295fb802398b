//! Inference statistics of one model version in the shape Triton reports them (request and batch counts, time
//! queued and computing), counted by the batching workers where they already time each job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A count and the total time of what was counted.
#[derive(Debug, Default)]
pub struct Tally {
    count: AtomicU64,
    ns: AtomicU64,
}

impl Tally {
    fn reset(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.ns.store(0, Ordering::Relaxed);
    }

    /// Counts one more, taking `elapsed`.
    pub fn add(&self, elapsed: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// How many were counted.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Their total time in nanoseconds.
    pub fn ns(&self) -> u64 {
        self.ns.load(Ordering::Relaxed)
    }
}

/// Counters of one loaded model version (a reload starts from zero, as Triton's per-version statistics do).
#[derive(Debug, Default)]
pub struct InferenceStats {
    /// Requests answered with output, and their time from enqueue to answer.
    pub success: Tally,
    /// Requests that failed: refused by a full queue, dropped past their deadline, or failed in the runtime.
    pub fail: Tally,
    /// Time answered requests waited in the queue.
    pub queue: Tally,
    /// Time of the inference call(s) that answered each request.
    pub compute_infer: Tally,
    /// Rows (batch elements) answered.
    inference_count: AtomicU64,
    /// Inference calls made (each runs a whole batch).
    execution_count: AtomicU64,
    /// When the last request was answered, in milliseconds since the Unix epoch (0: never).
    last_inference_ms: AtomicU64,
}

impl InferenceStats {
    /// Records an answered request of `rows` rows.
    pub fn answered(&self, rows: usize, queued: Duration, inference: Duration, total: Duration) {
        self.success.add(total);
        self.queue.add(queued);
        self.compute_infer.add(inference);
        self.inference_count
            .fetch_add(rows as u64, Ordering::Relaxed);
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_inference_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Records `calls` inference calls.
    pub fn executed(&self, calls: usize) {
        self.execution_count
            .fetch_add(calls as u64, Ordering::Relaxed);
    }

    /// Starts again from zero (after the load's own warm-up and checks, before clients can reach the model).
    pub fn reset(&self) {
        for tally in [&self.success, &self.fail, &self.queue, &self.compute_infer] {
            tally.reset();
        }
        for counter in [
            &self.inference_count,
            &self.execution_count,
            &self.last_inference_ms,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Rows answered.
    pub fn inference_count(&self) -> u64 {
        self.inference_count.load(Ordering::Relaxed)
    }

    /// Inference calls made.
    pub fn execution_count(&self) -> u64 {
        self.execution_count.load(Ordering::Relaxed)
    }

    /// Milliseconds since the Unix epoch of the last answer (0: never).
    pub fn last_inference_ms(&self) -> u64 {
        self.last_inference_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_add_up() {
        let stats = InferenceStats::default();
        assert_eq!(stats.last_inference_ms(), 0);
        stats.answered(
            3,
            Duration::from_micros(5),
            Duration::from_micros(20),
            Duration::from_micros(30),
        );
        stats.answered(
            2,
            Duration::from_micros(1),
            Duration::from_micros(10),
            Duration::from_micros(12),
        );
        stats.executed(1);
        stats.fail.add(Duration::ZERO);
        assert_eq!(stats.inference_count(), 5);
        assert_eq!(stats.execution_count(), 1);
        assert_eq!((stats.success.count(), stats.success.ns()), (2, 42_000));
        assert_eq!((stats.queue.count(), stats.queue.ns()), (2, 6_000));
        assert_eq!(stats.compute_infer.ns(), 30_000);
        assert_eq!(stats.fail.count(), 1);
        assert!(stats.last_inference_ms() > 0);
        stats.reset();
        assert_eq!(
            (
                stats.inference_count(),
                stats.success.count(),
                stats.fail.ns()
            ),
            (0, 0, 0)
        );
        assert_eq!(stats.last_inference_ms(), 0);
    }
}
