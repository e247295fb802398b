//! The batcher alone, with a trivial model, so the figures are pure queue + batch + wake-up + oneshot overhead:
//! `BatchQueue::submit` → bounded crossbeam channel → one worker thread filling a batch (`spawn_workers`) →
//! `BatchRunner::run` → oneshot reply. The runner sums each row (one output value per row), about a nanosecond
//! per row, so nothing here is inference.
//! `batcher_throughput`: jobs/s for 1024 one-row jobs per iteration, submitted by 1, 16 or 64 concurrent tasks on
//! one actix (tokio current-thread) runtime, as an HTTP worker submits them, each task awaiting its reply before
//! sending its next job; max_batch_size 256, max_delay_us 0 (the default), and once at 64 in flight with a
//! 200 us window (the worker then waits it out, as 64 jobs never fill a 256-row batch).
//! `batcher_lone_job`: the time one job sees when it is alone in the queue (submit from a plain thread, then
//! `blocking_recv`), for max_delay_us 0, 50, 200 and 1000. The worker waits until the first job's enqueue time
//! plus max_delay for more jobs, so at low load a request pays the whole window: the curve is what max_delay_us
//! costs when traffic is light. Time per iteration is that latency (no throughput is set).
//! Data: rows of 21 features (the churn model's width) holding the fixed values 0, 1, …, 20; no randomness.
//! Run: `cargo bench --bench batcher`; HTML report in target/criterion.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crmscore::batching::{
    BatchQueue, BatchRunner, Call, ModelInput, WorkerSettings, spawn_workers,
};
use crmscore::telemetry::Metrics;

/// Features per row (the churn model's).
const WIDTH: usize = 21;
/// Jobs per iteration of the throughput group.
const JOBS: usize = 1024;
const MAX_BATCH: usize = 256;
const CAPACITY: usize = 1024;

/// The trivial model: one output per row, the sum of its features.
struct RowSum;

impl BatchRunner for RowSum {
    fn run(
        &mut self,
        inputs: &[&ModelInput],
        max_rows: usize,
        out: &mut Vec<f32>,
        calls: &mut Vec<Call>,
    ) -> Result<(), String> {
        let started = Instant::now();
        let before = out.len();
        for input in inputs {
            let ModelInput::Rows(values) = input else {
                return Err("RowSum takes float rows".into());
            };
            out.extend(
                values
                    .chunks_exact(WIDTH)
                    .map(|row| row.iter().sum::<f32>()),
            );
        }
        // Report the calls a model bounded by max_rows would have made.
        let mut rows = out.len() - before;
        let elapsed = started.elapsed();
        while rows > 0 {
            let n = rows.min(max_rows);
            calls.push(Call { rows: n, elapsed });
            rows -= n;
        }
        Ok(())
    }

    fn output_width(&self) -> usize {
        1
    }
}

/// A queue with one RowSum worker; the worker ends when the queue is dropped.
fn queue(max_delay_us: u64) -> BatchQueue {
    let metrics = Metrics::new().for_model("bench");
    let (sender, receiver) = crossbeam_channel::bounded(CAPACITY);
    let settings = WorkerSettings {
        max_batch_size: MAX_BATCH,
        max_delay: Duration::from_micros(max_delay_us),
    };
    spawn_workers("bench", vec![RowSum], receiver, settings, metrics.clone())
        .expect("worker thread starts");
    BatchQueue::new("bench", CAPACITY, sender, metrics)
}

fn row() -> Vec<f32> {
    (0..WIDTH).map(|v| v as f32).collect()
}

/// `in_flight` tasks share `JOBS` one-row jobs, each awaiting its reply before submitting the next.
async fn stream(queue: Arc<BatchQueue>, in_flight: usize) {
    let per_task = JOBS / in_flight;
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let queue = queue.clone();
            actix_web::rt::spawn(async move {
                let row = row();
                for _ in 0..per_task {
                    let out = queue
                        .run(ModelInput::Rows(row.clone()), 1, None, None)
                        .await
                        .expect("the trivial model answers");
                    black_box(out);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task completes");
    }
}

fn throughput(c: &mut Criterion) {
    let system = actix_web::rt::System::new();
    let mut group = c.benchmark_group("batcher_throughput");
    group.throughput(Throughput::Elements(JOBS as u64));
    for (max_delay_us, in_flight) in [(0, 1), (0, 16), (0, 64), (200, 64)] {
        let queue = Arc::new(queue(max_delay_us));
        let id = BenchmarkId::new(format!("delay_{max_delay_us}us"), in_flight);
        group.bench_with_input(id, &in_flight, |b, &in_flight| {
            b.iter(|| system.block_on(stream(queue.clone(), in_flight)))
        });
    }
    group.finish();
}

fn lone_job(c: &mut Criterion) {
    let mut group = c.benchmark_group("batcher_lone_job");
    let row = row();
    for max_delay_us in [0u64, 50, 200, 1000] {
        let queue = queue(max_delay_us);
        group.bench_with_input(
            BenchmarkId::new("max_delay_us", max_delay_us),
            &max_delay_us,
            |b, _| {
                b.iter(|| {
                    black_box(common::run_blocking(
                        &queue,
                        ModelInput::Rows(row.clone()),
                        1,
                    ))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, throughput, lone_job);
criterion_main!(benches);
