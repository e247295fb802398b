//! The batching loop: block for a first job, fill the batch until it is full or the delay is up, run once, fan out.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use super::{Job, JobError, JobOutput, ModelInput};
use crate::model::explainer::{Explanation, ModelExplainer};
use crate::telemetry::ModelMetrics;

/// One inference call a runner made: its rows and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// Rows in the call.
    pub rows: usize,
    /// Time of the call.
    pub elapsed: Duration,
}

/// Something that turns the inputs of several jobs into output rows (an ONNX session, or a trivial model in
/// benches), in as many calls as its limits need.
pub trait BatchRunner: Send {
    /// Runs every row of `inputs` in order, appending `rows × output_width` values to `out`; each call made is
    /// recorded in `calls`. `max_rows` bounds the rows of one call.
    fn run(
        &mut self,
        inputs: &[&ModelInput],
        max_rows: usize,
        out: &mut Vec<f32>,
        calls: &mut Vec<Call>,
    ) -> Result<(), String>;
    /// Values per output row.
    fn output_width(&self) -> usize;
    /// Explains one job's rows after they were scored (the sampling method runs the model again).
    fn explain(
        &mut self,
        input: &ModelInput,
        explainer: &ModelExplainer,
        max_rows: usize,
    ) -> Result<Explanation, String> {
        let _ = (input, explainer, max_rows);
        Err("this model cannot explain its outputs".into())
    }
}

/// Concatenates float rows of several jobs into `buffer` (cleared first); token inputs are an error.
pub fn concat_rows(inputs: &[&ModelInput], buffer: &mut Vec<f32>) -> Result<(), String> {
    buffer.clear();
    for input in inputs {
        match input {
            ModelInput::Rows(values) => buffer.extend_from_slice(values),
            ModelInput::Tokens(_) => {
                return Err("a float-feature model was sent token sequences".into());
            }
        }
    }
    Ok(())
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
            let name = model.to_string();
            std::thread::Builder::new()
                .name(format!("batch-{model}-{i}"))
                .spawn(move || work(&name, runner, receiver, settings, metrics))
        })
        .collect()
}

fn work<R: BatchRunner>(
    model: &str,
    mut runner: R,
    receiver: Receiver<Job>,
    settings: WorkerSettings,
    metrics: ModelMetrics,
) {
    let max_rows = settings.max_batch_size.max(1);
    let mut jobs: Vec<Job> = Vec::with_capacity(max_rows);
    let mut output: Vec<f32> = Vec::new();
    let mut calls: Vec<Call> = Vec::new();
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
            model,
            &mut runner,
            &mut jobs,
            &mut output,
            &mut calls,
            max_rows,
            &metrics,
        );
        jobs.clear();
    }
}

/// Runs the live jobs in as few calls as the runner's limits allow and answers each job; when the batch fails,
/// reruns its jobs one by one so only the failing job gets the error.
fn run_batch<R: BatchRunner>(
    model: &str,
    runner: &mut R,
    jobs: &mut Vec<Job>,
    output: &mut Vec<f32>,
    calls: &mut Vec<Call>,
    max_rows: usize,
    metrics: &ModelMetrics,
) {
    skip_dead_jobs(jobs, metrics);
    if jobs.is_empty() {
        return;
    }
    let (result, started, inference_us) = run_jobs(runner, jobs, output, calls, max_rows, metrics);
    match result {
        Err(message) if jobs.len() > 1 => {
            metrics.batch_retries.inc();
            tracing::warn!(
                model,
                jobs = jobs.len(),
                error = %message,
                "a batch failed; rerunning its jobs one by one"
            );
            let mut single = Vec::with_capacity(1);
            for job in jobs.drain(..) {
                single.push(job);
                let (result, started, inference_us) =
                    run_jobs(runner, &single, output, calls, max_rows, metrics);
                answer_jobs(
                    runner,
                    &mut single,
                    result,
                    output,
                    started,
                    inference_us,
                    max_rows,
                    metrics,
                );
            }
        }
        result => answer_jobs(
            runner,
            jobs,
            result,
            output,
            started,
            inference_us,
            max_rows,
            metrics,
        ),
    }
}

/// Drops the jobs whose deadline has passed (answered `Expired`) or whose caller has gone, before inference.
fn skip_dead_jobs(jobs: &mut Vec<Job>, metrics: &ModelMetrics) {
    let now = Instant::now();
    let mut i = 0;
    while i < jobs.len() {
        let job = &jobs[i];
        if job.deadline.is_some_and(|d| d <= now) {
            metrics.expired.inc();
            metrics
                .stats
                .fail
                .add(now.saturating_duration_since(job.enqueued_at));
            let job = jobs.remove(i);
            let _ = job.reply.send(Err(JobError::Expired));
        } else if job.reply.is_closed() {
            metrics.cancelled.inc();
            jobs.remove(i);
        } else {
            i += 1;
        }
    }
}

/// One run of `jobs` together: the result (checked for the expected number of values), when it started and how
/// long it took in microseconds.
fn run_jobs<R: BatchRunner>(
    runner: &mut R,
    jobs: &[Job],
    output: &mut Vec<f32>,
    calls: &mut Vec<Call>,
    max_rows: usize,
    metrics: &ModelMetrics,
) -> (Result<(), String>, Instant, u64) {
    output.clear();
    calls.clear();
    let total_rows: usize = jobs.iter().map(|j| j.rows).sum();
    let inputs: Vec<&ModelInput> = jobs.iter().map(|j| &j.input).collect();
    let started = Instant::now();
    let result = runner.run(&inputs, max_rows, output, calls);
    drop(inputs);
    for call in calls.iter() {
        metrics
            .inference_seconds
            .observe(call.elapsed.as_secs_f64());
        metrics.batch_rows.observe(call.rows as f64);
    }
    metrics.stats.executed(calls.len());
    let inference_us = started.elapsed().as_micros() as u64;
    let out_width = runner.output_width();
    let result = result.and_then(|()| {
        if output.len() == total_rows * out_width {
            Ok(())
        } else {
            Err(format!(
                "the model returned {} values for {total_rows} rows of {out_width}",
                output.len()
            ))
        }
    });
    (result, started, inference_us)
}

/// Sends every job its rows of `output` (or the error), then explains the jobs that asked for it.
#[allow(clippy::too_many_arguments)]
fn answer_jobs<R: BatchRunner>(
    runner: &mut R,
    jobs: &mut Vec<Job>,
    result: Result<(), String>,
    output: &[f32],
    started: Instant,
    inference_us: u64,
    max_rows: usize,
    metrics: &ModelMetrics,
) {
    let out_width = runner.output_width();
    // Plain jobs are answered first: an explained job in the same batch must not delay them.
    let mut offset = 0;
    let mut explained = Vec::new();
    for job in jobs.drain(..) {
        let queue = started.saturating_duration_since(job.enqueued_at);
        metrics.queue_seconds.observe(queue.as_secs_f64());
        let end = offset + job.rows * out_width;
        let answer = match &result {
            Ok(()) => Ok(JobOutput {
                values: output[offset..end].to_vec(),
                queue_us: queue.as_micros() as u64,
                inference_us,
                explanation: None,
            }),
            Err(message) => Err(JobError::Failed(message.clone())),
        };
        offset = end;
        match (answer, job.explain.clone()) {
            (Ok(answer), Some(explainer)) => explained.push((job, answer, explainer)),
            // The caller may have gone since the check above: its rows were inferred for nothing.
            (answer, _) => {
                if job.reply.is_closed() {
                    metrics.late_rows.inc_by(job.rows as u64);
                }
                record(metrics, &job, &answer);
                let _ = job.reply.send(answer);
            }
        }
    }
    for (job, mut answer, explainer) in explained {
        if job.reply.is_closed() {
            continue;
        }
        let started = Instant::now();
        let explanation = runner.explain(&job.input, &explainer, max_rows);
        metrics
            .explain_seconds
            .observe(started.elapsed().as_secs_f64());
        let answer = explanation
            .map(|e| {
                answer.explanation = Some(e);
                answer
            })
            .map_err(JobError::Failed);
        record(metrics, &job, &answer);
        let _ = job.reply.send(answer);
    }
}

/// Counts a job's answer in the model's inference statistics.
fn record(metrics: &ModelMetrics, job: &Job, answer: &Result<JobOutput, JobError>) {
    let total = job.enqueued_at.elapsed();
    match answer {
        Ok(output) => metrics.stats.answered(
            job.rows,
            Duration::from_micros(output.queue_us),
            Duration::from_micros(output.inference_us),
            total,
        ),
        Err(_) => metrics.stats.fail.add(total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::BatchQueue;
    use crate::telemetry::Metrics;
    use std::sync::{Arc, Mutex};

    /// Sums each row of `width` values; records the batch sizes it saw.
    struct RowSum {
        width: usize,
        batches: Arc<Mutex<Vec<usize>>>,
        fail: bool,
        sleep: Duration,
        /// Fails any call whose rows hold this value.
        poison: Option<f32>,
    }

    impl BatchRunner for RowSum {
        fn run(
            &mut self,
            inputs: &[&ModelInput],
            max_rows: usize,
            out: &mut Vec<f32>,
            calls: &mut Vec<Call>,
        ) -> Result<(), String> {
            std::thread::sleep(self.sleep);
            if self.fail {
                return Err("boom".into());
            }
            let mut buffer = Vec::new();
            concat_rows(inputs, &mut buffer)?;
            if let Some(p) = self.poison
                && buffer.contains(&p)
            {
                return Err(format!("row value {p} is poison"));
            }
            let rows: Vec<&[f32]> = buffer.chunks(self.width).collect();
            for chunk in rows.chunks(max_rows) {
                self.batches.lock().unwrap().push(chunk.len());
                calls.push(Call {
                    rows: chunk.len(),
                    elapsed: Duration::ZERO,
                });
                out.extend(chunk.iter().map(|r| r.iter().sum::<f32>()));
            }
            Ok(())
        }
        fn output_width(&self) -> usize {
            1
        }
    }

    struct Setup {
        width: usize,
        max_batch: usize,
        delay_ms: u64,
        capacity: usize,
        fail: bool,
        sleep: Duration,
        poison: Option<f32>,
    }

    impl Default for Setup {
        fn default() -> Self {
            Setup {
                width: 1,
                max_batch: 64,
                delay_ms: 0,
                capacity: 16,
                fail: false,
                sleep: Duration::ZERO,
                poison: None,
            }
        }
    }

    fn queue(s: Setup) -> (BatchQueue, Arc<Mutex<Vec<usize>>>) {
        let (q, batches, _) = queue_with_metrics(s);
        (q, batches)
    }

    fn queue_with_metrics(s: Setup) -> (BatchQueue, Arc<Mutex<Vec<usize>>>, ModelMetrics) {
        let metrics = Metrics::new().for_model("t");
        let (tx, rx) = crossbeam_channel::bounded(s.capacity);
        let batches = Arc::new(Mutex::new(Vec::new()));
        let settings = WorkerSettings {
            max_batch_size: s.max_batch,
            max_delay: Duration::from_millis(s.delay_ms),
        };
        let runner = RowSum {
            width: s.width,
            batches: batches.clone(),
            fail: s.fail,
            sleep: s.sleep,
            poison: s.poison,
        };
        spawn_workers("t", vec![runner], rx, settings, metrics.clone()).unwrap();
        (
            BatchQueue::new("t", s.capacity, tx, metrics.clone()),
            batches,
            metrics,
        )
    }

    fn rows(values: Vec<f32>) -> ModelInput {
        ModelInput::Rows(values)
    }

    #[test]
    fn concurrent_jobs_share_one_batch_and_get_their_own_rows() {
        let (q, batches) = queue(Setup {
            width: 2,
            delay_ms: 200,
            ..Setup::default()
        });
        let receivers: Vec<_> = (0..5)
            .map(|i| {
                q.submit(
                    rows(vec![i as f32, 1.0, 2.0 * i as f32, 1.0]),
                    2,
                    None,
                    None,
                )
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
        let (q, batches) = queue(Setup {
            max_batch: 4,
            capacity: 4,
            ..Setup::default()
        });
        let out = q
            .submit(rows((0..10).map(|v| v as f32).collect()), 10, None, None)
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
        let sleep = Duration::from_millis(200);
        let (q, _) = queue(Setup {
            max_batch: 1,
            capacity: 1,
            sleep,
            ..Setup::default()
        });
        let mut accepted = Vec::new();
        let mut refused = 0;
        for _ in 0..20 {
            match q.submit(rows(vec![1.0]), 1, None, None) {
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
        let (q, _) = queue(Setup {
            delay_ms: 50,
            fail: true,
            ..Setup::default()
        });
        let gone = q.submit(rows(vec![1.0]), 1, None, None).unwrap();
        drop(gone);
        let r = q.submit(rows(vec![1.0]), 1, None, None).unwrap();
        assert_eq!(
            r.blocking_recv().unwrap().unwrap_err(),
            JobError::Failed("boom".into())
        );
    }

    #[test]
    fn a_failing_job_is_isolated_and_the_rest_of_its_batch_is_answered() {
        let (q, batches, metrics) = queue_with_metrics(Setup {
            delay_ms: 200,
            poison: Some(13.0),
            ..Setup::default()
        });
        let values = [1.0, 2.0, 13.0, 4.0, 5.0];
        let receivers: Vec<_> = values
            .iter()
            .map(|&v| q.submit(rows(vec![v]), 1, None, None).unwrap())
            .collect();
        for (v, r) in values.iter().zip(receivers) {
            let answer = r.blocking_recv().unwrap();
            if *v == 13.0 {
                assert_eq!(
                    answer.unwrap_err(),
                    JobError::Failed("row value 13 is poison".into())
                );
            } else {
                assert_eq!(answer.unwrap().values, vec![*v], "job {v}");
            }
        }
        // The batch of five failed once, then four jobs ran alone (the poisoned one failed again).
        assert_eq!(*batches.lock().unwrap(), vec![1, 1, 1, 1]);
        assert_eq!(metrics.batch_retries.get(), 1);
    }

    #[test]
    fn a_job_past_its_deadline_is_dropped_before_inference() {
        let (q, batches, metrics) = queue_with_metrics(Setup {
            delay_ms: 100,
            ..Setup::default()
        });
        let late = crate::batching::Deadline::after(Duration::from_millis(1));
        let soon = q.submit(rows(vec![1.0]), 1, None, late).unwrap();
        let fine = crate::batching::Deadline::after(Duration::from_secs(60));
        let patient = q.submit(rows(vec![2.0]), 1, None, fine).unwrap();
        assert_eq!(
            soon.blocking_recv().unwrap().unwrap_err(),
            JobError::Expired
        );
        assert_eq!(patient.blocking_recv().unwrap().unwrap().values, vec![2.0]);
        assert_eq!(
            *batches.lock().unwrap(),
            vec![1],
            "only the patient job ran"
        );
        assert_eq!(metrics.expired.get(), 1);
        assert_eq!(metrics.cancelled.get(), 0);
    }

    #[test]
    fn rows_inferred_for_a_caller_that_left_during_inference_are_counted_late() {
        let (q, _, metrics) = queue_with_metrics(Setup {
            sleep: Duration::from_millis(200),
            ..Setup::default()
        });
        let gone = q.submit(rows(vec![1.0, 2.0]), 2, None, None).unwrap();
        let stays = q.submit(rows(vec![3.0]), 1, None, None).unwrap();
        // The batch is running (it sleeps 200 ms) when the first caller leaves.
        std::thread::sleep(Duration::from_millis(50));
        drop(gone);
        assert_eq!(stays.blocking_recv().unwrap().unwrap().values, vec![3.0]);
        assert_eq!(metrics.late_rows.get(), 2);
    }
}
