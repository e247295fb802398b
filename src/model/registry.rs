//! The served models by name: each with its manifest, its graph's I/O, its queue and its batching workers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ort::session::Session;

use super::ModelError;
use super::session::{self, SessionOptions, TensorInfo};
use super::spec::{Batching, ModelKind, ModelSpec};
use crate::batching::{BatchQueue, BatchRunner, WorkerSettings, spawn_workers};
use crate::telemetry::Metrics;

/// One served model.
pub struct ModelHandle {
    /// The manifest, with batching overrides applied.
    pub spec: ModelSpec,
    /// The graph's inputs.
    pub inputs: Vec<TensorInfo>,
    /// The graph's outputs.
    pub outputs: Vec<TensorInfo>,
    /// Execution provider the sessions run on.
    pub provider: &'static str,
    /// Where requests enqueue their rows.
    pub queue: BatchQueue,
}

/// Batching settings given on the command line, overriding every manifest.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchingOverrides {
    /// Overrides `max_batch_size`.
    pub max_batch_size: Option<usize>,
    /// Overrides `max_delay_us`.
    pub max_delay_us: Option<u64>,
    /// Overrides `queue_capacity`.
    pub queue_capacity: Option<usize>,
    /// Overrides `workers`.
    pub workers: Option<usize>,
}

impl BatchingOverrides {
    fn apply(&self, b: Batching) -> Batching {
        Batching {
            max_batch_size: self.max_batch_size.unwrap_or(b.max_batch_size).max(1),
            max_delay_us: self.max_delay_us.unwrap_or(b.max_delay_us),
            queue_capacity: self.queue_capacity.unwrap_or(b.queue_capacity).max(1),
            workers: self.workers.unwrap_or(b.workers).max(1),
        }
    }
}

/// Every model of the repository, by name.
pub struct ModelRegistry {
    models: BTreeMap<String, Arc<ModelHandle>>,
}

/// An ONNX session feeding a tabular model's batches.
struct TabularRunner {
    session: Session,
    input: String,
    output: String,
    output_width: usize,
}

impl BatchRunner for TabularRunner {
    fn run(&mut self, input: &[f32], rows: usize, out: &mut Vec<f32>) -> Result<(), String> {
        session::run_tabular(
            &mut self.session,
            &self.input,
            &self.output,
            input,
            rows,
            out,
        )
    }

    fn output_width(&self) -> usize {
        self.output_width
    }
}

impl ModelRegistry {
    /// Loads every `<dir>/<name>/model.toml`, checks each graph against its manifest, starts its workers and
    /// runs one warm-up inference through its queue.
    pub fn load(
        dir: &Path,
        overrides: &BatchingOverrides,
        options: &SessionOptions,
        metrics: &Metrics,
    ) -> Result<ModelRegistry, ModelError> {
        let io = |source| ModelError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut folders: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?
            .into_iter()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        folders.sort();
        let mut models = BTreeMap::new();
        for folder in folders {
            if !folder.join("model.toml").is_file() {
                if folder.join("model.onnx").is_file() {
                    return Err(ModelError::manifest(
                        &folder,
                        "model.onnx has no model.toml beside it",
                    ));
                }
                continue;
            }
            let mut spec = ModelSpec::load(&folder)?;
            spec.batching = overrides.apply(spec.batching);
            let handle = Self::start_model(spec, options, metrics)?;
            tracing::info!(
                model = %handle.spec.name,
                version = %handle.spec.version,
                provider = handle.provider,
                workers = handle.spec.batching.workers,
                max_batch_size = handle.spec.batching.max_batch_size,
                max_delay_us = handle.spec.batching.max_delay_us,
                "model ready"
            );
            models.insert(handle.spec.name.clone(), Arc::new(handle));
        }
        if models.is_empty() {
            return Err(ModelError::Empty(dir.to_path_buf()));
        }
        Ok(ModelRegistry { models })
    }

    fn start_model(
        spec: ModelSpec,
        options: &SessionOptions,
        metrics: &Metrics,
    ) -> Result<ModelHandle, ModelError> {
        let ModelKind::Tabular(tab) = &spec.kind;
        let mut runners = Vec::with_capacity(spec.batching.workers);
        let mut first_io = None;
        let mut provider = "CPUExecutionProvider";
        for _ in 0..spec.batching.workers {
            let open = session::open(&spec, options)?;
            if first_io.is_none() {
                let (inputs, outputs) = (
                    session::inputs(&open.session),
                    session::outputs(&open.session),
                );
                let problems = session::io_problems(&spec, &inputs, &outputs);
                if !problems.is_empty() {
                    return Err(ModelError::Mismatch {
                        model: spec.name.clone(),
                        message: format!(
                            "the ONNX graph does not match model.toml: {}",
                            problems.join("; ")
                        ),
                    });
                }
                first_io = Some((inputs, outputs));
                provider = open.provider;
            }
            runners.push(TabularRunner {
                session: open.session,
                input: tab.input.clone(),
                output: tab.output.clone(),
                output_width: tab.labels.len(),
            });
        }
        let (inputs, outputs) = first_io.unwrap_or_default();
        let model_metrics = metrics.for_model(&spec.name);
        let (sender, receiver) = crossbeam_channel::bounded(spec.batching.queue_capacity);
        let settings = WorkerSettings {
            max_batch_size: spec.batching.max_batch_size,
            max_delay: Duration::from_micros(spec.batching.max_delay_us),
        };
        spawn_workers(
            &spec.name,
            runners,
            receiver,
            settings,
            model_metrics.clone(),
        )
        .map_err(|e| ModelError::Runtime {
            model: spec.name.clone(),
            message: format!("cannot start batching threads: {e}"),
        })?;
        let queue = BatchQueue::new(
            &spec.name,
            spec.batching.queue_capacity,
            sender,
            model_metrics,
        );
        let handle = ModelHandle {
            inputs,
            outputs,
            provider,
            queue,
            spec,
        };
        handle.warm_up()?;
        Ok(handle)
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<ModelHandle>> {
        self.models.get(name)
    }

    /// Every model, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ModelHandle>> {
        self.models.values()
    }

    /// Snapshot columns needed by any model, in first-use order (models by name), each once.
    pub fn feature_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = Vec::new();
        for model in self.models.values() {
            for f in model.spec.feature_columns() {
                if !columns.contains(f) {
                    columns.push(f.clone());
                }
            }
        }
        columns
    }
}

impl ModelHandle {
    /// One inference through the real queue and workers, so the first request pays no lazy initialisation.
    fn warm_up(&self) -> Result<(), ModelError> {
        let ModelKind::Tabular(tab) = &self.spec.kind;
        let rows = vec![0.0_f32; tab.features.len()];
        let fail = |message: String| ModelError::Runtime {
            model: self.spec.name.clone(),
            message: format!("warm-up inference failed: {message}"),
        };
        let receiver = self
            .queue
            .submit(rows, 1)
            .map_err(|e| fail(e.to_string()))?;
        let output = receiver
            .blocking_recv()
            .map_err(|_| fail("the batching worker stopped".into()))?
            .map_err(fail)?;
        if output.values.len() != tab.labels.len() {
            return Err(fail(format!(
                "expected {} output values for one row, got {}",
                tab.labels.len(),
                output.values.len()
            )));
        }
        Ok(())
    }
}
