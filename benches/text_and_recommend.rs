//! Sentiment: tokenisation alone, and tokenisation + batched inference through the model's queue, in texts/s at
//! batch 1, 32 and 256. Recommendations: top-10 selection over the 800 item scores after masking owned items, in
//! customers/s, and the full path (queue → two-tower inference → top-k) at 1, 32 and 256 customers.
//! Data: the fixed sentences of tests/fixtures/sentiment_expected.json (cycled) and the first customers of the
//! shipped sample snapshot (scripts/train_models.py, fixed seed). Run: `cargo bench --bench text_and_recommend`.

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crmscore::batching::ModelInput;
use crmscore::config::Device;
use crmscore::model::catalogue::top_k;
use crmscore::model::registry::BatchingOverrides;
use crmscore::model::session::SessionOptions;
use crmscore::model::{ModelKind, ModelRegistry};
use crmscore::snapshot::{find_snapshots, load_snapshot};
use crmscore::telemetry::Metrics;

const SIZES: [usize; 3] = [1, 32, 256];

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    crmscore::model::runtime::environment(None)
        .expect("ONNX Runtime (run scripts/setup-onnxruntime.sh)");
    let options = SessionOptions {
        device: Device::Cpu,
        intra_threads: 1,
    };
    let overrides = BatchingOverrides {
        max_batch_size: Some(256),
        max_delay_us: Some(0),
        ..Default::default()
    };
    let metrics = Metrics::new();
    let registry =
        ModelRegistry::load(&root.join("models"), &overrides, &options, &metrics).expect("models");

    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/sentiment_expected.json"))
            .expect("fixture"),
    )
    .expect("json");
    let sentences: Vec<String> = fixture["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| c["text"].as_str().expect("text").to_string())
        .collect();
    let sentiment = registry.get("sentiment").expect("sentiment model");
    let encoder = sentiment.encoder.as_ref().expect("tokenizer");
    let mut group = c.benchmark_group("sentiment");
    for n in SIZES {
        let texts: Vec<&String> = sentences.iter().cycle().take(n).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("tokenize", n), &n, |b, _| {
            b.iter(|| {
                black_box(
                    texts
                        .iter()
                        .map(|t| encoder.encode(t).expect("tokens"))
                        .collect::<Vec<_>>(),
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("tokenize_and_infer", n), &n, |b, _| {
            b.iter(|| {
                let tokens = texts
                    .iter()
                    .map(|t| encoder.encode(t).expect("tokens"))
                    .collect();
                let reply = sentiment
                    .queue
                    .submit(ModelInput::Tokens(tokens), n)
                    .expect("queue has room");
                black_box(
                    reply
                        .blocking_recv()
                        .expect("worker answers")
                        .expect("inference"),
                )
            })
        });
    }
    group.finish();

    let recommender = registry
        .get("recommendation")
        .expect("recommendation model");
    let ModelKind::Recommender(spec) = &recommender.spec.kind else {
        panic!("recommender kind")
    };
    let catalogue = recommender.catalogue.as_ref().expect("catalogue");
    let source =
        &find_snapshots(&root.join("snapshots/customers-sample.parquet")).expect("sample")[0];
    let snapshot = load_snapshot(source, &spec.features).expect("sample loads");
    let layout = snapshot.layout(&spec.features).expect("columns");
    let mut rows = Vec::new();
    for r in 0..256 {
        snapshot.gather(r, &layout, &mut rows);
    }
    let width = spec.features.len();
    let scores = recommender
        .queue
        .submit(ModelInput::Rows(rows[..width].to_vec()), 1)
        .expect("room");
    let scores = scores
        .blocking_recv()
        .expect("answer")
        .expect("inference")
        .values;
    let owned: Vec<u32> = (0..8).map(|i| i * 97 % catalogue.len() as u32).collect();
    let mut group = c.benchmark_group("recommend");
    group.throughput(Throughput::Elements(1));
    group.bench_function("top10_of_800", |b| {
        b.iter(|| black_box(top_k(&scores, 10, &owned)))
    });
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("infer_and_top10", n), &n, |b, &n| {
            b.iter(|| {
                let reply = recommender
                    .queue
                    .submit(ModelInput::Rows(rows[..n * width].to_vec()), n)
                    .expect("room");
                let out = reply
                    .blocking_recv()
                    .expect("answer")
                    .expect("inference")
                    .values;
                black_box(
                    out.chunks(catalogue.len())
                        .map(|s| top_k(s, 10, &owned))
                        .collect::<Vec<_>>(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
