//! Scoring one chunk of customers: each thread runs its own ONNX Runtime sessions, and every answer (missing
//! values, risk band, reasons, segment, offers, next best action) comes from the code the HTTP routes use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ort::session::Session;

use super::BatchError;
use crate::engagement::insights::{Ask, Insight, OfferMasks, Parts};
use crate::engagement::policy::Policy;
use crate::model::explainer::ModelExplainer;
use crate::model::session::{self, SessionOptions};
use crate::model::spec::ModelKind;
use crate::model::{ModelHandle, ModelSpec};
use crate::scoring::{self, Explained, Scored};
use crate::snapshot::FeatureSnapshot;

/// Most rows per ONNX Runtime call (bounds the session's working memory on large row groups).
const ROWS_PER_CALL: usize = 8192;

/// What a run answers with: its models, policy and explainer.
pub struct Answering {
    /// The churn model, when scored.
    pub churn: Option<Arc<ModelHandle>>,
    /// The segmentation model, when scored.
    pub segmentation: Option<Arc<ModelHandle>>,
    /// The recommender, when scored.
    pub recommender: Option<Arc<ModelHandle>>,
    /// The engagement policy (--insights).
    pub policy: Option<Arc<Policy>>,
    /// Its offer-filter masks over the recommender's catalogue.
    pub masks: Option<Arc<OfferMasks>>,
    /// The churn model's explainer (--explain > 0).
    pub explainer: Option<Arc<ModelExplainer>>,
    /// Offers and reasons per customer.
    pub ask: Ask,
}

/// [`Answering`] and each scoring thread's sessions.
pub struct Scorer {
    answering: Answering,
    /// Per scoring thread (rayon's thread index; the last slot for any other thread): model name → session.
    sessions: Vec<Mutex<HashMap<String, Session>>>,
    options: SessionOptions,
}

impl Scorer {
    /// A scorer for `threads` scoring threads whose sessions are opened on first use with `options`.
    pub fn new(answering: Answering, threads: usize, options: SessionOptions) -> Scorer {
        Scorer {
            answering,
            sessions: (0..=threads).map(|_| Mutex::new(HashMap::new())).collect(),
            options,
        }
    }

    /// Every customer of `chunk`, answered in row order.
    pub fn score(&self, chunk: &FeatureSnapshot) -> Result<Vec<Insight>, BatchError> {
        let ids = chunk.customer_ids();
        let rows: Vec<Option<usize>> = (0..ids.len()).map(Some).collect();
        let run = |model: &Option<Arc<ModelHandle>>, explainer: Option<&Arc<ModelExplainer>>| {
            model
                .as_ref()
                .map(|m| self.run_model(m, chunk, &ids, &rows, explainer))
                .transpose()
        };
        let a = &self.answering;
        let churn = run(&a.churn, a.explainer.as_ref())?;
        let segmentation = run(&a.segmentation, None)?;
        let recommender = run(&a.recommender, None)?;
        let features = a
            .policy
            .as_ref()
            .map(|p| chunk.layout(p.features_used()))
            .transpose()
            .map_err(|column| {
                BatchError::Invalid(format!(
                    "the engagement policy names '{column}', which the snapshot lacks"
                ))
            })?;
        let parts = Parts {
            snapshot: chunk,
            churn: churn.as_ref(),
            segmentation: segmentation.as_ref(),
            recommender: recommender.as_ref(),
            policy: a.policy.as_ref(),
            masks: a.masks.clone(),
            ask: a.ask,
        };
        Ok(ids
            .iter()
            .enumerate()
            .map(|(i, id)| parts.insight(i, id, rows[i], features.as_ref(), None))
            .collect())
    }

    /// Gathers the chunk's rows for `model` (its missing-value policy applied), runs them on this thread's
    /// session and explains them when asked: what the model's batching worker answers over HTTP.
    fn run_model(
        &self,
        model: &Arc<ModelHandle>,
        chunk: &FeatureSnapshot,
        ids: &[crate::snapshot::CustomerId],
        rows: &[Option<usize>],
        explainer: Option<&Arc<ModelExplainer>>,
    ) -> Result<Scored, BatchError> {
        let (items, input, n) = scoring::gather_customers(model, chunk, ids, rows)
            .map_err(|e| BatchError::Invalid(e.to_string()))?;
        let (input_name, output_name) = io_names(&model.spec);
        let width = model.spec.feature_columns().len().max(1);
        let slot = rayon::current_thread_index()
            .unwrap_or(self.sessions.len() - 1)
            .min(self.sessions.len() - 1);
        let mut sessions = self.sessions[slot]
            .lock()
            .map_err(|_| BatchError::Invalid("a scoring thread panicked".into()))?;
        let session = match sessions.entry(model.spec.name.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(session::open(&model.spec, &self.options)?.session)
            }
        };
        let failed = |message: String| BatchError::Inference {
            model: model.spec.name.clone(),
            message,
        };
        // Rows go to the session ROWS_PER_CALL at a time: one call's tensors stay a few MB whatever the chunk.
        let mut run = |rows: &[f32], out: &mut Vec<f32>| -> Result<(), String> {
            for part in rows.chunks(ROWS_PER_CALL * width) {
                session::run_tabular(
                    session,
                    input_name,
                    output_name,
                    part,
                    part.len() / width,
                    out,
                )?;
            }
            Ok(())
        };
        let mut outputs = Vec::with_capacity(n * model.output_width());
        run(&input, &mut outputs).map_err(failed)?;
        let explained = match explainer {
            Some(explainer) => {
                let explanation = explainer.explain(&input, &mut run).map_err(failed)?;
                Some(Explained {
                    explainer: explainer.clone(),
                    explanation,
                    inputs: input,
                })
            }
            None => None,
        };
        Ok(Scored {
            model: model.clone(),
            snapshot: None,
            stale: false,
            items,
            snapshot_rows: rows.to_vec(),
            outputs,
            width: model.output_width(),
            queue_us: 0,
            inference_us: 0,
            explained,
        })
    }
}

/// The input and output tensor names of a float-feature model.
fn io_names(spec: &ModelSpec) -> (&str, &str) {
    match &spec.kind {
        ModelKind::Tabular(t) => (&t.input, &t.output),
        ModelKind::Recommender(r) => (&r.input, &r.output),
        ModelKind::Segmentation(g) => (&g.input, &g.output),
        ModelKind::Text(t) => (&t.input_ids, &t.output),
    }
}
