//! Per-model request batching: a bounded queue of jobs and the worker threads that turn them into batches.

pub mod stats;
pub mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

use crate::error::ScoreError;
use crate::model::explainer::{Explanation, ModelExplainer};
use crate::telemetry::ModelMetrics;

pub use worker::{BatchRunner, Call, WorkerSettings, concat_rows, spawn_workers};

/// What a job gets back: its output rows and where the time went.
#[derive(Debug)]
pub struct JobOutput {
    /// Output values, row-major, `rows × output width`.
    pub values: Vec<f32>,
    /// Microseconds between enqueue and the start of the inference call.
    pub queue_us: u64,
    /// Microseconds the inference call(s) took.
    pub inference_us: u64,
    /// The rows' contributions, when the job asked for them.
    pub explanation: Option<Explanation>,
}

/// Why a worker did not answer a job with output.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// The runtime failed on this job's rows (its message).
    Failed(String),
    /// The job's deadline passed while it was queued; it was dropped before inference.
    Expired,
}

/// The answer a worker sends.
pub type JobResult = Result<JobOutput, JobError>;

/// When a caller stops waiting: the instant, and the timeout it came from (to name it in errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// The instant after which the answer is useless.
    pub at: Instant,
    /// The timeout the caller gave, counted from when the request arrived.
    pub timeout: Duration,
}

impl Deadline {
    /// `timeout` from now; None when the instant would overflow (an effectively infinite timeout).
    pub fn after(timeout: Duration) -> Option<Deadline> {
        Instant::now()
            .checked_add(timeout)
            .map(|at| Deadline { at, timeout })
    }
}

/// What a job feeds the model.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelInput {
    /// Float features, row-major, a fixed width per row.
    Rows(Vec<f32>),
    /// Token id sequences (already truncated), one per text.
    Tokens(Vec<Vec<i64>>),
}

/// One request's rows, waiting to be batched.
pub struct Job {
    /// The rows or sequences to run.
    pub input: ModelInput,
    /// Number of rows (or sequences) in `input`.
    pub rows: usize,
    /// When the job entered the queue.
    pub enqueued_at: Instant,
    /// Past this instant the job is dropped before inference and answered [`JobError::Expired`].
    pub deadline: Option<Instant>,
    /// Where the worker sends the result.
    pub reply: oneshot::Sender<JobResult>,
    /// Explain the rows with this after scoring them (on the worker, never on an HTTP thread).
    pub explain: Option<Arc<ModelExplainer>>,
}

/// The sending side of a model's bounded queue.
pub struct BatchQueue {
    model: String,
    capacity: usize,
    sender: Sender<Job>,
    metrics: ModelMetrics,
}

impl BatchQueue {
    /// Wraps the sender of a bounded channel of `capacity` jobs.
    pub fn new(
        model: &str,
        capacity: usize,
        sender: Sender<Job>,
        metrics: ModelMetrics,
    ) -> BatchQueue {
        BatchQueue {
            model: model.to_string(),
            capacity,
            sender,
            metrics,
        }
    }

    /// Enqueues rows without blocking; a full queue is an immediate `QueueFull`.
    pub fn submit(
        &self,
        input: ModelInput,
        rows: usize,
        explain: Option<Arc<ModelExplainer>>,
        deadline: Option<Deadline>,
    ) -> Result<oneshot::Receiver<JobResult>, ScoreError> {
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            input,
            rows,
            enqueued_at: Instant::now(),
            deadline: deadline.map(|d| d.at),
            reply,
            explain,
        };
        match self.sender.try_send(job) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_)) => {
                self.metrics.rejected.inc();
                self.metrics.stats.fail.add(Duration::ZERO);
                Err(ScoreError::QueueFull {
                    model: self.model.clone(),
                    capacity: self.capacity,
                })
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(ScoreError::ModelUnavailable(self.model.clone()))
            }
        }
    }

    /// Submits and waits for the answer (with the rows' explanation when `explain` is given), mapping a runtime
    /// failure to `ScoreError::Inference` and a passed deadline to `ScoreError::DeadlineExceeded`.
    pub async fn run(
        &self,
        input: ModelInput,
        rows: usize,
        explain: Option<Arc<ModelExplainer>>,
        deadline: Option<Deadline>,
    ) -> Result<JobOutput, ScoreError> {
        let receiver = self.submit(input, rows, explain, deadline)?;
        self.answer(receiver, deadline).await
    }

    /// Awaits the answer to a submitted job, mapping a runtime failure to `ScoreError::Inference`; with a
    /// deadline, stops waiting when it passes (the dropped receiver makes the worker skip the job).
    pub async fn answer(
        &self,
        receiver: oneshot::Receiver<JobResult>,
        deadline: Option<Deadline>,
    ) -> Result<JobOutput, ScoreError> {
        let expired = |d: Deadline| ScoreError::DeadlineExceeded {
            model: self.model.clone(),
            timeout_ms: d.timeout.as_millis() as u64,
        };
        let answer = match deadline {
            None => receiver.await,
            Some(d) => {
                let left = d.at.saturating_duration_since(Instant::now());
                match actix_web::rt::time::timeout(left, receiver).await {
                    Ok(answer) => answer,
                    Err(_) => return Err(expired(d)),
                }
            }
        };
        match answer {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(JobError::Failed(message))) => Err(ScoreError::Inference {
                model: self.model.clone(),
                message,
            }),
            Ok(Err(JobError::Expired)) => Err(match deadline {
                Some(d) => expired(d),
                None => ScoreError::DeadlineExceeded {
                    model: self.model.clone(),
                    timeout_ms: 0,
                },
            }),
            // The worker dropped the job without answering: it is shutting down.
            Err(_) => Err(ScoreError::ModelUnavailable(self.model.clone())),
        }
    }

    /// Jobs waiting now.
    pub fn depth(&self) -> usize {
        self.sender.len()
    }

    /// Most jobs that may wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The inference statistics of this model version.
    pub fn stats(&self) -> &stats::InferenceStats {
        &self.metrics.stats
    }
}
