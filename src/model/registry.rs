//! The served models by name: each with its manifest, its graph's I/O, its queue and its batching workers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use ort::session::Session;

use super::ModelError;
use super::catalogue::Catalogue;
use super::explainer::{Explanation, ModelExplainer};
use super::repository::{self, Due, Fingerprint, FolderState};
use super::session::{self, SessionOptions, TensorInfo, TokenInputs};
use super::spec::{Batching, DeviceBatching, ModelKind, ModelSpec};
use crate::batching::{
    BatchQueue, BatchRunner, Call, JobError, ModelInput, WorkerSettings, concat_rows, spawn_workers,
};
use crate::explain::trees::TreeModel;
use crate::snapshot::{FeatureSnapshot, Layout};
use crate::telemetry::Metrics;
use crate::text::TextEncoder;

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
    /// The item catalogue (recommenders).
    pub catalogue: Option<Catalogue>,
    /// The tokenizer (text models).
    pub encoder: Option<TextEncoder>,
    /// When this version was loaded.
    pub loaded_at: SystemTime,
    /// The tree ensemble read from the graph and checked against ONNX Runtime (tabular tree models).
    pub trees: Option<Arc<TreeModel>>,
    /// Why a tabular model is explained by sampling rather than TreeSHAP.
    pub sampling_reason: Option<String>,
    fingerprint: Fingerprint,
    /// The feature layout in the last snapshot it was resolved for (requests share it lock-free).
    layout: ArcSwapOption<Layout>,
    /// The explainer built for the last snapshot (tabular models).
    explainer: ArcSwapOption<ModelExplainer>,
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
    /// Overrides `max_tokens`.
    pub max_tokens: Option<usize>,
}

impl BatchingOverrides {
    /// A flag sets a limit on every device: it is the operator's last word.
    fn apply(&self, b: Batching) -> Batching {
        let max_batch_size = self.max_batch_size.map(|n| n.max(1));
        let max_tokens = self.max_tokens.map(|n| n.max(1));
        Batching {
            max_batch_size: max_batch_size.unwrap_or(b.max_batch_size).max(1),
            max_delay_us: self.max_delay_us.unwrap_or(b.max_delay_us),
            queue_capacity: self.queue_capacity.unwrap_or(b.queue_capacity).max(1),
            workers: self.workers.unwrap_or(b.workers).max(1),
            max_tokens: max_tokens.unwrap_or(b.max_tokens),
            cuda: DeviceBatching {
                max_batch_size: max_batch_size.unwrap_or(b.cuda.max_batch_size),
                max_tokens: max_tokens.unwrap_or(b.cuda.max_tokens),
            },
        }
    }
}

/// The served models by name, swappable one version at a time.
pub struct ModelRegistry {
    pub(super) dir: PathBuf,
    overrides: BatchingOverrides,
    options: SessionOptions,
    pub(super) models: ArcSwap<BTreeMap<String, Arc<ModelHandle>>>,
    /// Every model folder seen that needs remembering: pending changes, failed loads, operator unloads.
    pub(super) folders: Mutex<HashMap<String, FolderState>>,
    /// Deadline of a scoring request that names none (--default-timeout-ms).
    default_timeout: Option<Duration>,
}

/// Outcome of one model reload attempt, for logs and the repository route.
pub enum ModelReload {
    /// The new version serves.
    Loaded(Arc<ModelHandle>),
    /// The old version (if any) keeps serving.
    Failed(ModelError),
}

/// Makes sure the served snapshot has the columns a model about to be served needs (re-reading it with them if
/// need be); Err says why it cannot.
pub type ProvideColumns<'a> = dyn Fn(&ModelSpec) -> Result<(), String> + 'a;

/// What one poll of the models folder changed.
pub enum FolderChange {
    /// A new, changed or fixed folder was loaded (or failed to).
    Reloaded(ModelReload),
    /// The folder is gone and its model unloaded (its queued jobs are answered first).
    Removed,
}

/// An ONNX session fed float feature rows (tabular and recommender models).
struct FeatureRunner {
    session: Session,
    input: String,
    output: String,
    input_width: usize,
    output_width: usize,
    buffer: Vec<f32>,
}

impl BatchRunner for FeatureRunner {
    fn run(
        &mut self,
        inputs: &[&ModelInput],
        max_rows: usize,
        out: &mut Vec<f32>,
        calls: &mut Vec<Call>,
    ) -> Result<(), String> {
        concat_rows(inputs, &mut self.buffer)?;
        let width = self.input_width.max(1);
        let rows = self.buffer.len() / width;
        let mut done = 0;
        while done < rows {
            let n = (rows - done).min(max_rows.max(1));
            let started = Instant::now();
            session::run_tabular(
                &mut self.session,
                &self.input,
                &self.output,
                &self.buffer[done * width..(done + n) * width],
                n,
                out,
            )?;
            calls.push(Call {
                rows: n,
                elapsed: started.elapsed(),
            });
            done += n;
        }
        Ok(())
    }

    fn output_width(&self) -> usize {
        self.output_width
    }

    fn explain(
        &mut self,
        input: &ModelInput,
        explainer: &ModelExplainer,
        max_rows: usize,
    ) -> Result<Explanation, String> {
        let ModelInput::Rows(rows) = input else {
            return Err("a float-feature model was sent token sequences".into());
        };
        let width = self.input_width.max(1);
        let (session, input_name, output_name) = (&mut self.session, &self.input, &self.output);
        explainer.explain(rows, &mut |perturbed: &[f32], out: &mut Vec<f32>| {
            // Sampling runs the model on many rows per explained row: in calls of at most max_rows.
            for chunk in perturbed.chunks(max_rows.max(1) * width) {
                session::run_tabular(
                    session,
                    input_name,
                    output_name,
                    chunk,
                    chunk.len() / width,
                    out,
                )?;
            }
            Ok(())
        })
    }
}

/// An ONNX session fed token sequences (text models): sequences are sorted by length and cut into calls of at
/// most `max_rows` texts and `max_tokens` padded tokens, so one long text does not pad a whole batch.
struct TextRunner {
    session: Session,
    names: TokenInputs,
    output: String,
    output_width: usize,
    max_tokens: usize,
    logits: Vec<f32>,
}

impl BatchRunner for TextRunner {
    fn run(
        &mut self,
        inputs: &[&ModelInput],
        max_rows: usize,
        out: &mut Vec<f32>,
        calls: &mut Vec<Call>,
    ) -> Result<(), String> {
        let mut sequences: Vec<&[i64]> = Vec::new();
        for input in inputs {
            match input {
                ModelInput::Tokens(seqs) => sequences.extend(seqs.iter().map(Vec::as_slice)),
                ModelInput::Rows(_) => return Err("a text model was sent float rows".into()),
            }
        }
        let mut order: Vec<usize> = (0..sequences.len()).collect();
        order.sort_by_key(|&i| sequences[i].len());
        let width = self.output_width;
        let base = out.len();
        out.resize(base + sequences.len() * width, 0.0);
        let mut start = 0;
        while start < order.len() {
            // Sorted ascending, so the last sequence taken is the longest of the call. A call also ends before
            // padding would exceed the real tokens (one long text must not pad many short ones).
            let mut end = start + 1;
            let mut real = sequences[order[start]].len();
            while end < order.len() && end - start < max_rows.max(1) {
                let len = sequences[order[end]].len();
                let padded = (end + 1 - start) * len;
                if padded > self.max_tokens || padded > 2 * (real + len) {
                    break;
                }
                real += len;
                end += 1;
            }
            let chunk: Vec<&[i64]> = order[start..end].iter().map(|&i| sequences[i]).collect();
            self.logits.clear();
            let started = Instant::now();
            session::run_text(
                &mut self.session,
                &self.names,
                &self.output,
                &chunk,
                &mut self.logits,
            )?;
            calls.push(Call {
                rows: chunk.len(),
                elapsed: started.elapsed(),
            });
            for (k, &i) in order[start..end].iter().enumerate() {
                out[base + i * width..base + (i + 1) * width]
                    .copy_from_slice(&self.logits[k * width..(k + 1) * width]);
            }
            start = end;
        }
        Ok(())
    }

    fn output_width(&self) -> usize {
        self.output_width
    }
}

/// Refuses a tokenizer that can produce ids past the rows of the graph's embedding table (such ids fail
/// inference); when the graph does not reveal the table's size, the check is skipped (logged at debug).
fn check_vocabulary(
    spec: &ModelSpec,
    input_ids: &str,
    encoder: &TextEncoder,
) -> Result<(), String> {
    let path = spec.onnx_path();
    let rows = std::fs::read(&path)
        .ok()
        .and_then(|bytes| {
            <crate::explain::onnx::ModelProto as prost::Message>::decode(prost::bytes::Bytes::from(
                bytes,
            ))
            .ok()
        })
        .and_then(|graph| crate::text::embedding_rows(&graph, input_ids));
    let (Some(rows), Some(max_id)) = (rows, encoder.max_id()) else {
        tracing::debug!(
            model = %spec.name,
            graph = %path.display(),
            "the graph does not reveal the embedding size of '{input_ids}'; tokenizer vocabulary not checked"
        );
        return Ok(());
    };
    let needed = i64::from(max_id) + 1;
    if needed > rows {
        return Err(format!(
            "the tokenizer can produce token ids up to {max_id} (a vocabulary of {needed}), but the graph's \
             embedding table for '{input_ids}' has only {rows} rows"
        ));
    }
    Ok(())
}

/// One runner type for the worker threads, whatever the model's kind.
enum Runner {
    Features(FeatureRunner),
    Text(TextRunner),
}

impl BatchRunner for Runner {
    fn run(
        &mut self,
        inputs: &[&ModelInput],
        max_rows: usize,
        out: &mut Vec<f32>,
        calls: &mut Vec<Call>,
    ) -> Result<(), String> {
        match self {
            Runner::Features(r) => r.run(inputs, max_rows, out, calls),
            Runner::Text(r) => r.run(inputs, max_rows, out, calls),
        }
    }

    fn output_width(&self) -> usize {
        match self {
            Runner::Features(r) => r.output_width(),
            Runner::Text(r) => r.output_width(),
        }
    }

    fn explain(
        &mut self,
        input: &ModelInput,
        explainer: &ModelExplainer,
        max_rows: usize,
    ) -> Result<Explanation, String> {
        match self {
            Runner::Features(r) => r.explain(input, explainer, max_rows),
            Runner::Text(r) => r.explain(input, explainer, max_rows),
        }
    }
}

impl ModelRegistry {
    /// Loads every model folder of `dir` (see [`repository::is_model_folder`]), checks each graph against its
    /// manifest, starts its workers and runs one warm-up inference through its queue; fails on the first folder
    /// that does not load, and when there is none (--strict-models).
    pub fn load(
        dir: &Path,
        overrides: &BatchingOverrides,
        options: &SessionOptions,
        metrics: &Metrics,
    ) -> Result<ModelRegistry, ModelError> {
        let registry = Self::empty(dir, overrides, options);
        let folders = repository::scan(dir).map_err(|source| ModelError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for name in folders.keys() {
            let handle = Self::start_model(&dir.join(name), overrides, options, metrics)?;
            registry.serve(Arc::new(handle), metrics);
        }
        if registry.all().is_empty() {
            return Err(ModelError::Empty(dir.to_path_buf()));
        }
        Ok(registry)
    }

    /// Loads only the model folders `names` of `dir`, failing on the first that does not load (for commands
    /// that need a few models, such as `score-batch`).
    pub fn load_named(
        dir: &Path,
        names: &[String],
        overrides: &BatchingOverrides,
        options: &SessionOptions,
        metrics: &Metrics,
    ) -> Result<ModelRegistry, ModelError> {
        let registry = Self::empty(dir, overrides, options);
        for name in names {
            let handle = Self::start_model(&dir.join(name), overrides, options, metrics)?;
            registry.serve(Arc::new(handle), metrics);
        }
        Ok(registry)
    }

    /// Loads every model folder of `dir` like [`ModelRegistry::load`], but serves those that load: a folder that
    /// does not is remembered as not ready with its reason (logged at ERROR), and an unreadable or empty `dir`
    /// gives a registry serving nothing. The watcher retries a failed folder when its files change.
    pub fn load_available(
        dir: &Path,
        overrides: &BatchingOverrides,
        options: &SessionOptions,
        metrics: &Metrics,
    ) -> ModelRegistry {
        let registry = Self::empty(dir, overrides, options);
        match repository::scan(dir) {
            Ok(folders) => {
                for (name, fingerprint) in folders {
                    let result = Self::start_model(&dir.join(&name), overrides, options, metrics);
                    let mut states = registry.folders();
                    registry.commit(
                        &mut states,
                        &name,
                        result.map(Arc::new),
                        fingerprint,
                        metrics,
                    );
                }
            }
            Err(error) => {
                tracing::error!(models = %dir.display(), %error, "cannot read the models folder");
            }
        }
        if registry.all().is_empty() {
            tracing::error!(
                models = %dir.display(),
                "no model loaded: the server starts not ready and loads model folders as they appear or are fixed"
            );
        }
        registry
    }

    fn empty(dir: &Path, overrides: &BatchingOverrides, options: &SessionOptions) -> ModelRegistry {
        ModelRegistry {
            dir: dir.to_path_buf(),
            overrides: *overrides,
            options: options.clone(),
            models: ArcSwap::from_pointee(BTreeMap::new()),
            folders: Mutex::new(HashMap::new()),
            default_timeout: None,
        }
    }

    /// Serves `handle` under its name (replacing any served version) and counts the load.
    fn serve(&self, handle: Arc<ModelHandle>, metrics: &Metrics) {
        let name = handle.spec.name.clone();
        let mut next = BTreeMap::clone(&self.models.load());
        next.insert(name.clone(), Arc::clone(&handle));
        self.models.store(Arc::new(next));
        metrics.model_loads.with_label_values(&[&name]).inc();
        metrics.set_model_ready(&name, true);
        metrics.set_model_info(&name, &handle.spec.version, handle.provider);
    }

    /// The remembered folder states (a poisoned lock is taken over: the states stay consistent field by field).
    pub(super) fn folders(&self) -> MutexGuard<'_, HashMap<String, FolderState>> {
        self.folders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the deadline of scoring requests that name none (--default-timeout-ms; None: no deadline).
    pub fn with_default_timeout(mut self, timeout: Option<Duration>) -> ModelRegistry {
        self.default_timeout = timeout;
        self
    }

    /// The deadline of scoring requests that name none.
    pub fn default_timeout(&self) -> Option<Duration> {
        self.default_timeout
    }

    /// Loads, checks, warms up and logs one model folder.
    fn start_model(
        folder: &Path,
        overrides: &BatchingOverrides,
        options: &SessionOptions,
        metrics: &Metrics,
    ) -> Result<ModelHandle, ModelError> {
        // Fingerprint first: a change during the load is then seen as a newer version on the next poll.
        let fingerprint = Fingerprint::of(folder);
        if !folder.join("model.toml").is_file() && folder.join("model.onnx").is_file() {
            return Err(ModelError::manifest(
                folder,
                "model.onnx has no model.toml beside it",
            ));
        }
        let mut spec = ModelSpec::load(folder)?;
        spec.batching = overrides.apply(spec.batching);
        let handle = Self::start_spec(spec, fingerprint, options, metrics)?;
        tracing::info!(
            model = %handle.spec.name,
            version = %handle.spec.version,
            provider = handle.provider,
            workers = handle.spec.batching.workers,
            max_batch_size = handle.spec.batching.max_batch_size,
            max_delay_us = handle.spec.batching.max_delay_us,
            "model ready"
        );
        Ok(handle)
    }

    fn start_spec(
        mut spec: ModelSpec,
        fingerprint: Fingerprint,
        options: &SessionOptions,
        metrics: &Metrics,
    ) -> Result<ModelHandle, ModelError> {
        let fail = |message: String| ModelError::Mismatch {
            model: spec.name.clone(),
            message,
        };
        let catalogue = match &spec.kind {
            ModelKind::Recommender(r) => Some(Catalogue::load(&r.items).map_err(fail)?),
            _ => None,
        };
        let encoder = match &spec.kind {
            ModelKind::Text(t) => {
                let encoder = TextEncoder::load(&t.tokenizer, t.max_length).map_err(fail)?;
                check_vocabulary(&spec, &t.input_ids, &encoder).map_err(fail)?;
                Some(encoder)
            }
            _ => None,
        };
        let items = catalogue.as_ref().map_or(0, Catalogue::len);
        let mut runners = Vec::with_capacity(spec.batching.workers);
        let mut first = None;
        for _ in 0..spec.batching.workers {
            let open = session::open(&spec, options)?;
            let (inputs, outputs) = (
                session::inputs(&open.session),
                session::outputs(&open.session),
            );
            let mut spec_io = spec.clone();
            session::adopt_token_types(&mut spec_io, &inputs);
            if first.is_none() {
                let problems = session::io_problems(&spec_io, &inputs, &outputs, items);
                if !problems.is_empty() {
                    return Err(fail(format!(
                        "the ONNX graph does not match model.toml: {}",
                        problems.join("; ")
                    )));
                }
                first = Some((inputs, outputs, open.provider));
                spec.batching = spec.batching.on(open.provider);
            }
            runners.push(match &spec_io.kind {
                ModelKind::Tabular(t) => Runner::Features(FeatureRunner {
                    session: open.session,
                    input: t.input.clone(),
                    output: t.output.clone(),
                    input_width: t.features.len(),
                    output_width: t.labels.len(),
                    buffer: Vec::new(),
                }),
                ModelKind::Recommender(r) => Runner::Features(FeatureRunner {
                    session: open.session,
                    input: r.input.clone(),
                    output: r.output.clone(),
                    input_width: r.features.len(),
                    output_width: items,
                    buffer: Vec::new(),
                }),
                ModelKind::Segmentation(g) => Runner::Features(FeatureRunner {
                    session: open.session,
                    input: g.input.clone(),
                    output: g.output.clone(),
                    input_width: g.features.len(),
                    output_width: g.segments.len(),
                    buffer: Vec::new(),
                }),
                ModelKind::Text(t) => Runner::Text(TextRunner {
                    session: open.session,
                    names: TokenInputs {
                        input_ids: t.input_ids.clone(),
                        attention_mask: t.attention_mask.clone(),
                        token_type_ids: t.token_type_ids.clone(),
                    },
                    output: t.output.clone(),
                    output_width: t.labels.len(),
                    max_tokens: spec.batching.max_tokens.max(1),
                    logits: Vec::new(),
                }),
            });
        }
        let (inputs, outputs, provider) =
            first.ok_or_else(|| fail("no batching workers".into()))?;
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
        let (trees, sampling_reason) = match &spec.kind {
            ModelKind::Tabular(t) => {
                match TreeModel::from_onnx_file(
                    &spec.onnx_path(),
                    t.features.len(),
                    t.labels.len(),
                    t.positive,
                ) {
                    Ok(trees) => (Some(Arc::new(trees)), None),
                    Err(e) => (None, Some(e.for_model(&spec.name))),
                }
            }
            _ => (None, None),
        };
        let mut handle = ModelHandle {
            inputs,
            outputs,
            provider,
            queue,
            spec,
            catalogue,
            encoder,
            loaded_at: SystemTime::now(),
            trees,
            sampling_reason,
            fingerprint,
            layout: ArcSwapOption::empty(),
            explainer: ArcSwapOption::empty(),
        };
        handle.warm_up()?;
        if let Some(reason) = handle.check_trees() {
            tracing::warn!(model = %handle.spec.name, %reason, "explaining by sampling instead of TreeSHAP");
            handle.trees = None;
            handle.sampling_reason = Some(reason);
        }
        // Statistics count clients' requests, not the load's own warm-up and checks.
        handle.queue.stats().reset();
        Ok(handle)
    }

    /// Whether `models/<name>` is a model folder (for names made only of letters, digits, '-' and '_').
    pub fn has_folder(&self, name: &str) -> bool {
        let safe = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        safe && repository::is_model_folder(&self.dir.join(name))
    }

    /// The served version of the model called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<ModelHandle>> {
        self.models.load().get(name).cloned()
    }

    /// Every served model, by name.
    pub fn all(&self) -> Vec<Arc<ModelHandle>> {
        self.models.load().values().cloned().collect()
    }

    /// Why the last load of `name` failed, if it did (the previous version, if any, still serves).
    pub fn last_error(&self, name: &str) -> Option<String> {
        self.folders().get(name).and_then(|w| w.last_error.clone())
    }

    /// Loads `models/<name>` as a new version beside the served one and swaps it in once it is checked against its
    /// manifest, warmed up, and `provide` (which makes sure the served snapshot, if any, has the columns the
    /// manifest names) accepts it. The old version's queue drains before its sessions drop (they go with the last
    /// request holding it). On failure the old version keeps serving, or the model stays not ready. The operator's
    /// call: it also serves a model the operator had unloaded.
    pub fn reload(
        &self,
        name: &str,
        provide: &ProvideColumns<'_>,
        metrics: &Metrics,
    ) -> ModelReload {
        let (result, fingerprint) = self.start_checked(name, provide, metrics);
        let mut folders = self.folders();
        self.commit(&mut folders, name, result, fingerprint, metrics)
    }

    /// [`ModelRegistry::reload`] for the watcher: None when the operator unloaded the model while it loaded (the
    /// new version is dropped; the operator's unload wins).
    fn reload_unless_unloaded(
        &self,
        name: &str,
        provide: &ProvideColumns<'_>,
        metrics: &Metrics,
    ) -> Option<ModelReload> {
        let (result, fingerprint) = self.start_checked(name, provide, metrics);
        let mut folders = self.folders();
        if folders.get(name).is_some_and(|f| f.unloaded) {
            return None;
        }
        Some(self.commit(&mut folders, name, result, fingerprint, metrics))
    }

    /// Loads `models/<name>` and lets `provide` check it; with the folder's fingerprint from before the load.
    fn start_checked(
        &self,
        name: &str,
        provide: &ProvideColumns<'_>,
        metrics: &Metrics,
    ) -> (Result<Arc<ModelHandle>, ModelError>, Fingerprint) {
        let folder = self.dir.join(name);
        let fingerprint = Fingerprint::of(&folder);
        let result = Self::start_model(&folder, &self.overrides, &self.options, metrics).and_then(
            |handle| match provide(&handle.spec) {
                Ok(()) => Ok(Arc::new(handle)),
                Err(message) => Err(ModelError::Mismatch {
                    model: name.to_string(),
                    message: format!(
                        "the snapshot cannot give this version its columns: {message}"
                    ),
                }),
            },
        );
        (result, fingerprint)
    }

    /// Serves a loaded folder (clearing an operator's unload) or records why it failed (`fingerprint`: its files
    /// before the load), logged at ERROR once per set of files.
    fn commit(
        &self,
        folders: &mut HashMap<String, FolderState>,
        name: &str,
        result: Result<Arc<ModelHandle>, ModelError>,
        fingerprint: Fingerprint,
        metrics: &Metrics,
    ) -> ModelReload {
        let entry = folders.entry(name.to_string()).or_default();
        entry.pending = None;
        entry.unloaded = false;
        match result {
            Ok(handle) => {
                (entry.failed, entry.last_error, entry.declared) = (None, None, None);
                self.serve(handle.clone(), metrics);
                ModelReload::Loaded(handle)
            }
            Err(error) => {
                if self.models.load().contains_key(name) {
                    tracing::error!(model = name, %error, "model version not loaded; the served version stays");
                } else {
                    tracing::error!(
                        model = name,
                        %error,
                        "model not loaded: it is not ready until its files change or it is loaded again"
                    );
                    metrics.set_model_ready(name, false);
                    entry.declared = ModelSpec::load(&self.dir.join(name)).ok();
                }
                entry.failed = Some(fingerprint);
                entry.last_error = Some(error.to_string());
                metrics.model_load_failures.with_label_values(&[name]).inc();
                ModelReload::Failed(error)
            }
        }
    }

    /// One poll of the models folder: loads new folders and changed ones (served, or retried after a failed load)
    /// once their files stayed unchanged for a poll, like [`ModelRegistry::reload`], and unloads models whose
    /// folder is gone. Folders the operator unloaded are left alone. An unreadable models folder changes nothing.
    pub fn reload_changed(
        &self,
        provide: &ProvideColumns<'_>,
        metrics: &Metrics,
    ) -> Vec<(String, FolderChange)> {
        let on_disk = match repository::scan(&self.dir) {
            Ok(folders) => folders,
            Err(error) => {
                tracing::debug!(models = %self.dir.display(), %error, "cannot read the models folder; nothing changes");
                return Vec::new();
            }
        };
        let due = {
            let served = self.models.load();
            let files = served
                .iter()
                .map(|(name, handle)| (name.as_str(), &handle.fingerprint))
                .collect();
            repository::due(&on_disk, &files, &mut self.folders())
        };
        due.into_iter()
            .filter_map(|due| match due {
                Due::Load(name) => self
                    .reload_unless_unloaded(&name, provide, metrics)
                    .map(|outcome| (name, FolderChange::Reloaded(outcome))),
                Due::Remove(name) => {
                    self.forget(&name, metrics);
                    Some((name, FolderChange::Removed))
                }
            })
            .collect()
    }

    /// Builds every tabular model's explainer for `snapshot` (the watcher does this after each swap, so requests
    /// find it ready).
    pub fn prepare_explainers(&self, snapshot: &FeatureSnapshot) {
        for model in self.all() {
            if matches!(model.spec.kind, ModelKind::Tabular(_))
                && let Err(error) = model.explainer_for(snapshot)
            {
                tracing::warn!(model = %model.spec.name, %error, "no explainer for the served snapshot");
            }
        }
    }

    /// The snapshot list column of owned items that a recommender reads (the first one named).
    pub fn owned_column(&self) -> Option<String> {
        self.models
            .load()
            .values()
            .find_map(|m| m.spec.owned_column().map(str::to_string))
    }

    /// Snapshot columns needed by any model, in first-use order (models by name), each once.
    pub fn feature_columns(&self) -> Vec<String> {
        super::spec::snapshot_columns(self.models.load().values().map(|m| &m.spec))
    }
}

impl ModelHandle {
    /// Values per output row: class probabilities or logits, or one score per catalogue item.
    pub fn output_width(&self) -> usize {
        match &self.spec.kind {
            ModelKind::Tabular(t) => t.labels.len(),
            ModelKind::Text(t) => t.labels.len(),
            ModelKind::Recommender(_) => self.catalogue.as_ref().map_or(0, Catalogue::len),
            ModelKind::Segmentation(g) => g.segments.len(),
        }
    }

    /// The explainer of this model for `snapshot`, built now when the watcher has not built it yet; Err when
    /// the model is not tabular (nothing to explain feature by feature) or lacks a snapshot column.
    pub fn explainer_for(&self, snapshot: &FeatureSnapshot) -> Result<Arc<ModelExplainer>, String> {
        if let Some(cached) = self.explainer.load_full()
            && cached.snapshot == snapshot.serial()
        {
            return Ok(cached);
        }
        let ModelKind::Tabular(t) = &self.spec.kind else {
            return Err(format!(
                "model '{}' is a {} model; only tabular models (float features in, scores out) can be explained",
                self.spec.name,
                self.spec.kind.name()
            ));
        };
        let layout = self.layout_in(snapshot).map_err(|column| {
            format!(
                "the served snapshot lacks column '{column}' of model '{}'",
                self.spec.name
            )
        })?;
        let explainer = Arc::new(ModelExplainer::build(
            self.trees.as_deref(),
            snapshot,
            &layout,
            t.missing,
            t.positive,
            t.labels.len(),
        )?);
        self.explainer.store(Some(explainer.clone()));
        Ok(explainer)
    }

    /// Compares the trees read from the graph with ONNX Runtime on a few rows; Some(reason) when they disagree
    /// (TreeSHAP would then explain a different model, so sampling is used).
    fn check_trees(&self) -> Option<String> {
        let (Some(trees), ModelKind::Tabular(t)) = (self.trees.as_deref(), &self.spec.kind) else {
            return None;
        };
        let width = t.features.len();
        let probes: Vec<f32> = [0.0_f32, f32::NAN, 1.0, -1.0, 100.0]
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, width))
            .collect();
        let rows = probes.len() / width.max(1);
        let output = match self
            .queue
            .submit(ModelInput::Rows(probes.clone()), rows, None, None)
        {
            Ok(receiver) => match receiver.blocking_recv() {
                Ok(Ok(output)) => output.values,
                _ => return Some("the tree check inference failed".into()),
            },
            Err(e) => return Some(format!("the tree check inference failed: {e}")),
        };
        let labels = t.labels.len();
        for (i, row) in probes.chunks_exact(width.max(1)).enumerate() {
            let margin = match trees.margin(row) {
                Ok(m) => m,
                Err(e) => return Some(e.to_string()),
            };
            // A softmax margin has no output of its own to compare: the parse is trusted then.
            let ours = trees.output_of_margin(margin)?;
            let theirs = f64::from(output[i * labels + t.positive]);
            if (ours - theirs).abs() > 1e-4 {
                return Some(format!(
                    "the trees read from the graph give {ours} where ONNX Runtime gives {theirs}"
                ));
            }
        }
        None
    }

    /// Where this model's feature columns sit in `snapshot`'s rows, resolved once per snapshot; Err names the
    /// first column the snapshot lacks.
    pub fn layout_in(&self, snapshot: &FeatureSnapshot) -> Result<Arc<Layout>, String> {
        if let Some(cached) = self.layout.load_full()
            && cached.snapshot == snapshot.serial()
        {
            return Ok(cached);
        }
        let layout = Arc::new(snapshot.layout(self.spec.feature_columns())?);
        self.layout.store(Some(layout.clone()));
        Ok(layout)
    }

    /// One inference through the real queue and workers, so the first request pays no lazy initialisation.
    fn warm_up(&self) -> Result<(), ModelError> {
        let fail = |message: String| ModelError::Runtime {
            model: self.spec.name.clone(),
            message: format!("warm-up inference failed: {message}"),
        };
        let input = match (&self.spec.kind, &self.encoder) {
            (ModelKind::Text(_), Some(encoder)) => {
                ModelInput::Tokens(vec![encoder.encode("warm up").map_err(fail)?])
            }
            _ => ModelInput::Rows(vec![0.0_f32; self.spec.feature_columns().len()]),
        };
        let width = self.output_width();
        let receiver = self
            .queue
            .submit(input, 1, None, None)
            .map_err(|e| fail(e.to_string()))?;
        let output = receiver
            .blocking_recv()
            .map_err(|_| fail("the batching worker stopped".into()))?
            .map_err(|e| match e {
                JobError::Failed(message) => fail(message),
                JobError::Expired => fail("the job expired".into()),
            })?;
        if output.values.len() != width {
            return Err(fail(format!(
                "expected {width} output values for one row, got {}",
                output.values.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_both_devices() {
        let flags = BatchingOverrides {
            max_batch_size: Some(32),
            max_tokens: Some(2048),
            ..BatchingOverrides::default()
        };
        let b = flags.apply(Batching::default());
        assert_eq!((b.max_batch_size, b.max_tokens), (32, 2048));
        let gpu = b.on("CUDAExecutionProvider");
        assert_eq!((gpu.max_batch_size, gpu.max_tokens), (32, 2048));
        let none = BatchingOverrides::default().apply(Batching::default());
        assert_eq!(none.on("CUDAExecutionProvider").max_batch_size, 1024);
    }
}
