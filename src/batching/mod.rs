//! Per-model request batching: a bounded queue of jobs and the worker threads that turn them into batches.

pub mod worker;

use std::sync::Arc;
use std::time::Instant;

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

/// The answer a worker sends; the error is the runtime's message.
pub type JobResult = Result<JobOutput, String>;

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
    ) -> Result<oneshot::Receiver<JobResult>, ScoreError> {
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            input,
            rows,
            enqueued_at: Instant::now(),
            reply,
            explain,
        };
        match self.sender.try_send(job) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_)) => {
                self.metrics.rejected.inc();
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
    /// failure to `ScoreError::Inference`.
    pub async fn run(
        &self,
        input: ModelInput,
        rows: usize,
        explain: Option<Arc<ModelExplainer>>,
    ) -> Result<JobOutput, ScoreError> {
        let receiver = self.submit(input, rows, explain)?;
        self.answer(receiver).await
    }

    /// Awaits the answer to a submitted job, mapping a runtime failure to `ScoreError::Inference`.
    pub async fn answer(
        &self,
        receiver: oneshot::Receiver<JobResult>,
    ) -> Result<JobOutput, ScoreError> {
        match receiver.await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(message)) => Err(ScoreError::Inference {
                model: self.model.clone(),
                message,
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
}
