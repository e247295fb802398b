//! `crmscore score-batch`: score every customer of a snapshot with the served models, manifests and policy,
//! streaming row groups in (rayon, per-thread sessions) and Parquet out, with shards and atomic publication.

pub mod columns;
pub mod plan;
pub mod progress;
pub mod rank;
pub mod read;
pub mod score;
pub mod stream;
pub mod write;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{RankBy, ScoreBatchArgs};
use crate::engagement::insights::{
    Ask, CHURN_MODEL, Engagement, RECOMMENDATION_MODEL, SEGMENTATION_MODEL,
};
use crate::engagement::{PolicyError, PolicyStore};
use crate::model::explainer::ModelExplainer;
use crate::model::registry::BatchingOverrides;
use crate::model::session::SessionOptions;
use crate::model::spec::{MissingPolicy, ModelKind, snapshot_columns};
use crate::model::{ModelError, ModelRegistry, ModelSpec};
use crate::snapshot::SnapshotError;
use crate::snapshot::load::ID_COLUMN;
use columns::IdType;
use plan::Target;
use score::{Answering, Scorer};

/// Why a batch run failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Flags or inputs that do not fit together.
    #[error("{0}")]
    Invalid(String),
    #[error("model '{model}' failed on a chunk: {message}")]
    Inference { model: String, message: String },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{dir} is not complete: missing {missing:?}")]
    Incomplete { dir: PathBuf, missing: Vec<String> },
    #[error("cannot start a thread: {0}")]
    Thread(String),
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Customers scored.
    pub rows: usize,
    /// Rows written (fewer than scored with --top).
    pub written: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Where the rows went.
    pub output: PathBuf,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        write!(
            f,
            "scored {} customers in {seconds:.2}s ({:.0} rows/s); wrote {} rows to {}",
            self.rows,
            self.rows as f64 / seconds.max(1e-9),
            self.written,
            self.output.display()
        )
    }
}

/// Most offers or reasons per customer (the insights route's limit).
const MAX_PER_CUSTOMER: usize = 50;

/// The models a batch run may score, by the role insights give them.
const MODELS: [&str; 3] = [CHURN_MODEL, SEGMENTATION_MODEL, RECOMMENDATION_MODEL];

/// Runs `score-batch` (or, with --finalize, only completes the part folder).
pub fn run(args: &ScoreBatchArgs) -> Result<Summary, BatchError> {
    if args.finalize {
        let (_, parts) = args.shard.unwrap_or((0, 1));
        write::finalize(&args.output, parts)?;
        return Ok(Summary {
            rows: 0,
            written: 0,
            elapsed: Duration::ZERO,
            output: args.output.clone(),
        });
    }
    check_flags(args)?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let threads = threads.max(1);
    let specs = (args.models.iter())
        .map(|name| ModelSpec::load(&args.model_repository.join(name)))
        .collect::<Result<Vec<_>, _>>()?;
    // The policy before the snapshot: its features are columns to read.
    let policy = match args.insights {
        true => {
            let (vocab, _) = crate::engagement::check::model_vocabulary(&args.model_repository)
                .map_err(BatchError::Invalid)?;
            Some(PolicyStore::open(&args.policy, &vocab)?.current())
        }
        false => None,
    };
    let mut columns = snapshot_columns(&specs);
    for f in policy.iter().flat_map(|p| p.features_used()) {
        if !columns.contains(f) {
            columns.push(f.clone());
        }
    }
    let owned = specs.iter().find_map(|s| s.owned_column());
    // The snapshot is checked before any model loads, so a bad file fails in milliseconds.
    let snapshot = read::open(&args.snapshot, &columns, owned)?;
    crate::model::runtime::environment(args.onnxruntime_lib.as_deref())?;
    let options = SessionOptions::cpu(1);
    // One batching worker each: the registry's queue only serves its load checks; scoring threads own sessions.
    let overrides = BatchingOverrides {
        workers: Some(1),
        ..BatchingOverrides::default()
    };
    let metrics = crate::telemetry::Metrics::new();
    let registry = ModelRegistry::load_named(
        &args.model_repository,
        &args.models,
        &overrides,
        &options,
        &metrics,
    )?;
    let (churn, segmentation, recommender) = (
        registry.get(CHURN_MODEL),
        registry.get(SEGMENTATION_MODEL),
        registry.get(RECOMMENDATION_MODEL),
    );
    let explainer = match (&churn, args.explain) {
        (Some(churn), 1..) => Some(explainer(&snapshot, churn)?),
        _ => None,
    };
    let masks = match (
        &policy,
        recommender.as_ref().and_then(|r| r.catalogue.as_ref()),
    ) {
        (Some(p), Some(c)) => Some(Engagement::new(None).masks(p, c)),
        _ => None,
    };
    let layout = columns::Layout {
        ids: (snapshot.schema())
            .and_then(|s| s.field_with_name(ID_COLUMN).ok())
            .map_or(IdType::Str, |f| IdType::of(f.data_type())),
        churn: churn.is_some(),
        reasons: churn.is_some() && args.explain > 0,
        segment: segmentation.is_some(),
        offers: recommender.is_some(),
        action: policy.is_some(),
        error: registry
            .all()
            .iter()
            .any(|m| m.spec.missing() == MissingPolicy::Reject),
    };
    let answering = Answering {
        churn,
        segmentation,
        recommender,
        policy,
        masks,
        explainer,
        ask: Ask {
            offers: args.offers,
            reasons: args.explain,
        },
    };
    let scorer = Scorer::new(answering, threads, options);

    let unit_rows = snapshot.unit_rows();
    let unit_files: Vec<usize> = (0..unit_rows.len())
        .map(|u| snapshot.unit_file(u).unwrap_or(0))
        .collect();
    let units = plan::shard_units(
        &unit_files,
        snapshot.source().files.len(),
        args.shard.unwrap_or((0, 1)),
    );
    let chunks = plan::chunks(&unit_rows, units.clone(), args.chunk_rows as usize);
    let first_rows: Vec<u64> = chunks
        .iter()
        .map(|c| unit_rows[..c.start].iter().sum::<usize>() as u64)
        .collect();
    let total: usize = unit_rows[units].iter().sum();
    let target = Target::of(&args.output, args.shard);
    tracing::info!(
        snapshot = %snapshot.source().path.display(),
        rows = total,
        chunks = chunks.len(),
        threads,
        models = ?args.models,
        shard = ?args.shard,
        "scoring"
    );

    let work = stream::Work {
        chunks,
        first_rows,
        total,
    };
    let top = args.top.map(|n| (n, args.rank_by));
    let (rows, written, elapsed) =
        stream::run(snapshot, scorer, layout, work, threads, top, &target)?;
    Ok(Summary {
        rows,
        written,
        elapsed,
        output: args.output.clone(),
    })
}

/// Refuses flags that do not fit together, before anything is read.
fn check_flags(args: &ScoreBatchArgs) -> Result<(), BatchError> {
    let bad = |m: String| Err(BatchError::Invalid(m));
    if args.models.is_empty() {
        return bad(
            "--models is empty: name at least one of churn, segmentation, recommendation".into(),
        );
    }
    if let Some(unknown) = args.models.iter().find(|m| !MODELS.contains(&m.as_str())) {
        return bad(format!(
            "--models names '{unknown}'; score-batch scores {MODELS:?} (the models insights answer with)"
        ));
    }
    if args.offers == 0 || args.offers > MAX_PER_CUSTOMER || args.explain > MAX_PER_CUSTOMER {
        return bad(format!(
            "--offers must be between 1 and {MAX_PER_CUSTOMER} and --explain at most {MAX_PER_CUSTOMER}, as over HTTP"
        ));
    }
    let has = |m: &str| args.models.iter().any(|x| x == m);
    if args.explain > 0 && !has(CHURN_MODEL) {
        return bad("--explain gives churn reasons: add churn to --models".into());
    }
    match (args.top, args.rank_by) {
        (Some(0), _) => return bad("--top must be at least 1".into()),
        (Some(_), RankBy::ExpectedValue) if !args.insights => {
            return bad(
                "--rank-by expected_value needs --insights (the policy gives the expected value)"
                    .into(),
            );
        }
        (Some(_), RankBy::ChurnProbability) if !has(CHURN_MODEL) => {
            return bad("--rank-by churn_probability needs churn in --models".into());
        }
        _ => {}
    }
    if args.insights && !args.policy.is_file() {
        return bad(format!(
            "--insights needs the engagement policy, and {} is not a file (--policy)",
            args.policy.display()
        ));
    }
    Ok(())
}

/// The churn model's explainer built from the reference sample the server would draw from this snapshot.
pub fn explainer(
    snapshot: &crate::snapshot::load::OpenedSnapshot,
    churn: &crate::model::ModelHandle,
) -> Result<Arc<ModelExplainer>, BatchError> {
    let ModelKind::Tabular(t) = &churn.spec.kind else {
        return Err(BatchError::Invalid(format!(
            "model '{}' is not tabular: no reasons to give",
            churn.spec.name
        )));
    };
    let features = churn.spec.feature_columns();
    let rows = read::reference_sample(snapshot, &|chunk| chunk.layout(features))?;
    let explainer = ModelExplainer::from_reference(
        churn.trees.as_deref(),
        rows,
        features.len(),
        0,
        t.missing,
        t.positive,
        t.labels.len(),
    )
    .map_err(|e| BatchError::Invalid(format!("cannot explain '{}': {e}", churn.spec.name)))?;
    Ok(Arc::new(explainer))
}
