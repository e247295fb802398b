//! The outcome log's write path alone: `FeedbackLog::record_blocking` → bounded queue → the writer thread (dedup,
//! JSON framing, one append + one fsync per group of queued requests) → oneshot reply. What a POST /v1/outcomes
//! waits for after validation, without HTTP.
//! `feedback_record`: events/s acknowledged for 20,000 events per iteration, in requests of 1 or 100 events,
//! submitted by 1, 8 or 32 concurrent threads, each waiting for its answer before sending the next request (so
//! group commit is what makes more submitters faster: one fsync answers every request queued meanwhile).
//! Data: fresh unique event ids every iteration (no duplicates), fixed other fields; the log lives in a temp folder
//! on the same disk as target/, compaction every 600 s (so none runs inside the measurement unless 200,000 rows
//! wait, which it then does: the figure includes compaction's share).
//! Run: `cargo bench --bench feedback_log`; HTML report in target/criterion.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crmscore::feedback::{FeedbackLog, FeedbackMetrics, Options, OutcomeRow};

/// Events per iteration.
const EVENTS: usize = 20_000;

fn event(n: u64) -> OutcomeRow {
    OutcomeRow {
        event_id: format!("bench-{n:012}"),
        customer_id: format!("C{:07}", n % 1_000_000),
        decision_id: Some("01KBF3Q6W2M9T1X8C4R7N5P0ZD".into()),
        action: "retention_call".into(),
        item_id: Some("plan_upgrade".into()),
        channel: Some("phone".into()),
        outcome: "accepted".into(),
        occurred_at: 1_796_043_900_000_000,
        recorded_at: 0,
        note: None,
    }
}

fn record(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("crmscore-bench-feedback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = Options {
        compact_every: Duration::from_secs(600),
        dedup_max_ids: 2_000_000,
        ..Options::default()
    };
    let log =
        Arc::new(FeedbackLog::open(&dir, options, FeedbackMetrics::new()).expect("log opens"));
    let next = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("feedback_record");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    for per_request in [1usize, 100] {
        for submitters in [1usize, 8, 32] {
            if per_request == 1 && submitters == 1 {
                // 20,000 sequential fsyncs: minutes per sample on a slow disk, and no group to commit.
                continue;
            }
            let id = BenchmarkId::new(format!("{per_request}_per_request"), submitters);
            group.bench_function(id, |b| {
                b.iter(|| {
                    let requests = EVENTS / per_request / submitters;
                    std::thread::scope(|s| {
                        for _ in 0..submitters {
                            let (log, next) = (&log, &next);
                            s.spawn(move || {
                                for _ in 0..requests {
                                    let first =
                                        next.fetch_add(per_request as u64, Ordering::Relaxed);
                                    let rows =
                                        (first..first + per_request as u64).map(event).collect();
                                    let done = log.record_blocking(rows).expect("recorded");
                                    assert_eq!(done.recorded, per_request);
                                }
                            });
                        }
                    });
                });
            });
        }
    }
    group.finish();
    log.close();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, record);
criterion_main!(benches);
