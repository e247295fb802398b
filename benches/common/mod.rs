//! Helpers shared by the benches (each includes this with `mod common;`; a folder under benches/ is not a bench
//! target itself): the fixed-seed generator; the shipped sample snapshot, its rows and its real customer ids; the
//! shipped models on CPU, and one job through a model's queue.

// Each bench crate compiles this whole module but uses only part of it; the rest would warn as dead code there.
#![allow(dead_code)]

use std::path::Path;

use crmscore::batching::{BatchQueue, JobOutput, ModelInput};
use crmscore::model::registry::BatchingOverrides;
use crmscore::model::session::SessionOptions;
use crmscore::model::{ModelRegistry, ModelSpec};
use crmscore::snapshot::{
    CustomerId, FeatureSnapshot, SnapshotSource, find_snapshots, load_snapshot,
};
use crmscore::telemetry::Metrics;

/// The seed every bench's generator starts from.
pub const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// The shipped sample snapshot, relative to the crate root.
pub const SAMPLE: &str = "snapshots/customers-sample.parquet";

/// xorshift64: a tiny fixed-seed generator, so the ids, rows and values drawn are the same on every run.
pub struct XorShift(u64);

impl XorShift {
    /// The generator at [`SEED`].
    pub fn seeded() -> XorShift {
        XorShift(SEED)
    }

    /// The next 64 bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The crate root, where models/, snapshots/ and tests/fixtures/ are.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped churn model's manifest.
pub fn churn_spec() -> ModelSpec {
    ModelSpec::load(&root().join("models/churn")).expect("churn manifest")
}

/// Starts ONNX Runtime and returns the session options the model benches use: CPU, one intra-op thread.
pub fn cpu_sessions() -> SessionOptions {
    crmscore::model::runtime::environment(None)
        .expect("ONNX Runtime (run scripts/setup-onnxruntime.sh)");
    SessionOptions::cpu(1)
}

/// The shipped models with `options`, batching up to `max_batch_size` rows and no batch window (max_delay_us 0).
pub fn registry(options: &SessionOptions, max_batch_size: usize) -> ModelRegistry {
    let overrides = BatchingOverrides {
        max_batch_size: Some(max_batch_size),
        max_delay_us: Some(0),
        ..Default::default()
    };
    ModelRegistry::load(&root().join("models"), &overrides, options, &Metrics::new())
        .expect("models")
}

/// The first snapshot found at `path` (a Parquet file or a snapshot folder).
pub fn source(path: &Path) -> SnapshotSource {
    find_snapshots(path).expect("snapshot")[0].clone()
}

/// The snapshot at `path`, loaded with `columns` (a model spec's feature columns, or several models').
pub fn load(path: &Path, columns: &[String]) -> FeatureSnapshot {
    load_snapshot(&source(path), columns).expect("snapshot loads")
}

/// The shipped sample snapshot (scripts/train_models.py, fixed seed), loaded with `columns`.
pub fn sample(columns: &[String]) -> FeatureSnapshot {
    load(&root().join(SAMPLE), columns)
}

/// The first `n` customers of the sample snapshot, `columns` of each, one row after another.
pub fn first_rows(columns: &[String], n: usize) -> Vec<f32> {
    let snapshot = sample(columns);
    let layout = snapshot.layout(columns).expect("columns present");
    let mut out = Vec::new();
    for row in 0..n {
        snapshot.gather(row, &layout, &mut out);
    }
    out
}

/// One job through a model's queue from a plain thread: submit it, then block until the worker replies.
pub fn run_blocking(queue: &BatchQueue, input: ModelInput, rows: usize) -> JobOutput {
    queue
        .submit(input, rows, None, None)
        .expect("queue has room")
        .blocking_recv()
        .expect("worker answers")
        .expect("inference")
}

/// `n` real ids of `snapshot`, each at a row drawn by `rng`, as requests would send them.
pub fn draw_ids(snapshot: &FeatureSnapshot, rng: &mut XorShift, n: usize) -> Vec<CustomerId> {
    let all = snapshot.customer_ids();
    (0..n).map(|_| all[rng.below(all.len())].clone()).collect()
}
