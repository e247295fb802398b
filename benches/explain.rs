//! TreeSHAP cost for the shipped churn model (models/churn: 25 trees of depth 4 over 21 features, read from its
//! ONNX graph), in explained rows per second: one row per call (`TreeShap::explain`, batch 1) and 100 rows per
//! call (`TreeShap::explain_rows`, one scratch buffer). Setup, once per model or snapshot: reading the tree
//! ensemble from model.onnx (`TreeModel::from_onnx_file`) and counting covers over every snapshot row
//! (`TreeShap::new`).
//! Data: the shipped sample snapshot (100,000 customers; scripts/train_models.py, fixed seed) supplies the covers
//! (all rows) and the explained rows: a 4,096-row pool drawn once with the common xorshift64 generator (fixed
//! seed); each iteration takes the next rows of the pool. Run: `cargo bench --bench explain`; HTML report in
//! target/criterion.

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crmscore::explain::{TreeModel, TreeShap};

use common::XorShift;

/// Rows drawn once for the explained-row pool.
const POOL: usize = 4096;

/// The manifest fields explaining needs, read leniently so the bench does not depend on the rest of the manifest.
#[derive(serde::Deserialize)]
struct Manifest {
    features: Vec<String>,
    labels: Vec<String>,
    positive_label: String,
}

fn bench(c: &mut Criterion) {
    let dir = common::root().join("models/churn");
    let text = std::fs::read_to_string(dir.join("model.toml")).expect("churn manifest");
    let manifest: Manifest = toml::from_str(&text).expect("churn manifest parses");
    let positive = manifest
        .labels
        .iter()
        .position(|l| *l == manifest.positive_label)
        .expect("positive label");
    let width = manifest.features.len();
    let snapshot = common::sample(&manifest.features);
    let layout = snapshot
        .layout(&manifest.features)
        .expect("churn columns present");
    let mut all = Vec::with_capacity(snapshot.rows() * width);
    for row in 0..snapshot.rows() {
        snapshot.gather(row, &layout, &mut all);
    }
    let path = dir.join("model.onnx");
    let n_labels = manifest.labels.len();
    let load = || TreeModel::from_onnx_file(&path, width, n_labels, positive).expect("churn trees");
    let model = load();
    let shap = TreeShap::new(&model, all.chunks_exact(width)).expect("covers");
    let mut rng = XorShift::seeded();
    let mut pool = Vec::with_capacity(POOL * width);
    for _ in 0..POOL {
        let r = rng.below(snapshot.rows());
        pool.extend_from_slice(&all[r * width..][..width]);
    }

    let mut group = c.benchmark_group("tree_shap_churn");
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    let mut out = vec![0.0; width];
    group.bench_function(BenchmarkId::from_parameter(1), |b| {
        b.iter(|| {
            next = (next + 1) % POOL;
            out.fill(0.0);
            shap.explain(&pool[next * width..][..width], &mut out)
                .expect("explains");
            black_box(&out);
        })
    });
    let batch = 100;
    let mut out = vec![0.0; batch * width];
    let mut start = 0;
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function(BenchmarkId::from_parameter(batch), |b| {
        b.iter(|| {
            start = (start + batch) % (POOL - batch);
            shap.explain_rows(&pool[start * width..][..batch * width], &mut out)
                .expect("explains");
            black_box(&out);
        })
    });
    group.finish();

    let mut group = c.benchmark_group("tree_shap_setup");
    group.sample_size(20);
    group.bench_function("parse_churn_onnx", |b| b.iter(|| black_box(load())));
    group.throughput(Throughput::Elements(snapshot.rows() as u64));
    group.bench_function("covers_all_snapshot_rows", |b| {
        b.iter(|| black_box(TreeShap::new(&model, all.chunks_exact(width)).expect("covers")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
