//! The batching loop: block for a first job, fill the batch until it is full or the delay is up, run once, fan out.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use super::{Job, JobOutput};
use crate::telemetry::ModelMetrics;

/// Something that turns a batch of input rows into output rows (an ONNX session, or a trivial model in benches).
pub trait BatchRunner: Send {
    /// Runs `rows` rows of `input` (row-major), appending `rows × output_width` values to `out`.
    fn run(&mut self, input: &[f32], rows: usize, out: &mut Vec<f32>) -> Result<(), String>;
    /// Values per output row.
    fn output_width(&self) -> usize;
}

/// How a worker forms batches.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Most rows per inference call; bigger jobs are run in several calls.
    pub max_batch_size: usize,
    /// How long to wait for more jobs, counted from the first job's enqueue.
    pub max_delay: Duration,
}

/// Starts one named thread per runner, all taking jobs from `receiver`; they end when every sender is dropped.
pub fn spawn_workers<R: BatchRunner + 'static>(
    model: &str,
    runners: Vec<R>,
    receiver: Receiver<Job>,
    settings: WorkerSettings,
    metrics: ModelMetrics,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    runners
        .into_iter()
        .enumerate()
        .map(|(i, runner)| {
            let receiver = receiver.clone();
            let metrics = metrics.clone();
            std::thread::Builder::new()
                .name(format!("batch-{model}-{i}"))
                .spawn(move || work(runner, receiver, settings, metrics))
        })
        .collect()
}

fn work<R: BatchRunner>(
    mut runner: R,
    receiver: Receiver<Job>,
    settings: WorkerSettings,
    metrics: ModelMetrics,
) {
    let max_rows = settings.max_batch_size.max(1);
    let mut jobs: Vec<Job> = Vec::with_capacity(max_rows);
    let mut input: Vec<f32> = Vec::new();
    let mut output: Vec<f32> = Vec::new();
    while let Ok(first) = receiver.recv() {
        let deadline = first.enqueued_at + settings.max_delay;
        let mut rows = first.rows;
        jobs.push(first);
        while rows < max_rows {
            // Take what is already queued before deciding whether to wait.
            let next = match receiver.try_recv() {
                Ok(job) => Ok(job),
                Err(TryRecvError::Empty) if Instant::now() < deadline => {
                    receiver.recv_deadline(deadline)
                }
                Err(TryRecvError::Empty) => Err(RecvTimeoutError::Timeout),
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            };
            match next {
                Ok(job) => {
                    rows += job.rows;
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        run_batch(
            &mut runner,
            &mut jobs,
            &mut input,
            &mut output,
            max_rows,
            &metrics,
        );
        jobs.clear();
    }
}

/// Runs the live jobs as one input buffer (in calls of at most `max_rows`) and answers each job.
fn run_batch<R: BatchRunner>(
    runner: &mut R,
    jobs: &mut Vec<Job>,
    input: &mut Vec<f32>,
    output: &mut Vec<f32>,
    max_rows: usize,
    metrics: &ModelMetrics,
) {
    let before = jobs.len();
    jobs.retain(|job| !job.reply.is_closed());
    metrics.cancelled.inc_by((before - jobs.len()) as u64);
    if jobs.is_empty() {
        return;
    }
    input.clear();
    output.clear();
    let mut total_rows = 0;
    for job in jobs.iter() {
        input.extend_from_slice(&job.input);
        total_rows += job.rows;
    }
    let width = input.len() / total_rows.max(1);
    let started = Instant::now();
    let mut result = Ok(());
    let mut done = 0;
    while done < total_rows && result.is_ok() {
        let n = (total_rows - done).min(max_rows);
        let call = Instant::now();
        result = runner.run(&input[done * width..(done + n) * width], n, output);
        metrics
            .inference_seconds
            .observe(call.elapsed().as_secs_f64());
        metrics.batch_rows.observe(n as f64);
        done += n;
    }
    let inference_us = started.elapsed().as_micros() as u64;
    let out_width = runner.output_width();
    let mut offset = 0;
    for job in jobs.drain(..) {
        let queue = started.saturating_duration_since(job.enqueued_at);
        metrics.queue_seconds.observe(queue.as_secs_f64());
        let answer = match &result {
            Ok(()) => {
                let end = offset + job.rows * out_width;
                let values = output.get(offset..end).map(<[f32]>::to_vec);
                offset = end;
                values
                    .map(|values| JobOutput {
                        values,
                        queue_us: queue.as_micros() as u64,
                        inference_us,
                    })
                    .ok_or_else(|| {
                        format!("the model returned fewer than {} output rows", total_rows)
                    })
            }
            Err(message) => Err(message.clone()),
        };
        // The caller may have gone since the check above; nothing to do then.
        let _ = job.reply.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::BatchQueue;
    use crate::telemetry::Metrics;
    use std::sync::{Arc, Mutex};

    /// Sums each row; records the batch sizes it saw.
    struct RowSum {
        batches: Arc<Mutex<Vec<usize>>>,
        fail: bool,
        sleep: Duration,
    }

    impl BatchRunner for RowSum {
        fn run(&mut self, input: &[f32], rows: usize, out: &mut Vec<f32>) -> Result<(), String> {
            std::thread::sleep(self.sleep);
            if self.fail {
                return Err("boom".into());
            }
            self.batches.lock().unwrap().push(rows);
            let width = input.len() / rows;
            out.extend(input.chunks(width).map(|r| r.iter().sum::<f32>()));
            Ok(())
        }
        fn output_width(&self) -> usize {
            1
        }
    }

    fn queue(
        max_batch: usize,
        delay_ms: u64,
        capacity: usize,
        fail: bool,
    ) -> (BatchQueue, Arc<Mutex<Vec<usize>>>) {
        slow_queue(max_batch, delay_ms, capacity, fail, Duration::ZERO)
    }

    fn slow_queue(
        max_batch: usize,
        delay_ms: u64,
        capacity: usize,
        fail: bool,
        sleep: Duration,
    ) -> (BatchQueue, Arc<Mutex<Vec<usize>>>) {
        let metrics = Metrics::new().for_model("t");
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let batches = Arc::new(Mutex::new(Vec::new()));
        let settings = WorkerSettings {
            max_batch_size: max_batch,
            max_delay: Duration::from_millis(delay_ms),
        };
        let runner = RowSum {
            batches: batches.clone(),
            fail,
            sleep,
        };
        spawn_workers("t", vec![runner], rx, settings, metrics.clone()).unwrap();
        (BatchQueue::new("t", capacity, tx, metrics), batches)
    }

    #[test]
    fn concurrent_jobs_share_one_batch_and_get_their_own_rows() {
        let (q, batches) = queue(64, 200, 16, false);
        let receivers: Vec<_> = (0..5)
            .map(|i| {
                q.submit(vec![i as f32, 1.0, 2.0 * i as f32, 1.0], 2)
                    .unwrap()
            })
            .collect();
        for (i, r) in receivers.into_iter().enumerate() {
            let out = r.blocking_recv().unwrap().unwrap();
            assert_eq!(out.values, vec![i as f32 + 1.0, 2.0 * i as f32 + 1.0]);
        }
        assert_eq!(
            *batches.lock().unwrap(),
            vec![10],
            "all five jobs ran as one call"
        );
    }

    #[test]
    fn a_job_larger_than_the_batch_is_split_into_calls() {
        let (q, batches) = queue(4, 0, 4, false);
        let out = q
            .submit((0..10).map(|v| v as f32).collect(), 10)
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
        assert_eq!(out.values, (0..10).map(|v| v as f32).collect::<Vec<_>>());
        assert_eq!(*batches.lock().unwrap(), vec![4, 4, 2]);
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        // A slow call occupies the worker; capacity 1 then holds one job and refuses the rest.
        let (q, _) = slow_queue(1, 0, 1, false, Duration::from_millis(200));
        let mut accepted = Vec::new();
        let mut refused = 0;
        for _ in 0..20 {
            match q.submit(vec![1.0], 1) {
                Ok(r) => accepted.push(r),
                Err(e) => {
                    assert_eq!(e.code(), "queue_full");
                    refused += 1;
                }
            }
        }
        assert!(
            refused > 0,
            "a capacity-1 queue must refuse some of 20 instant submissions"
        );
        for r in accepted {
            assert!(r.blocking_recv().unwrap().is_ok());
        }
    }

    #[test]
    fn runtime_errors_reach_every_job_and_cancelled_jobs_are_skipped() {
        let (q, _) = queue(8, 50, 8, true);
        let gone = q.submit(vec![1.0], 1).unwrap();
        drop(gone);
        let r = q.submit(vec![1.0], 1).unwrap();
        assert_eq!(r.blocking_recv().unwrap().unwrap_err(), "boom");
    }
}
