//! Sentiment: tokenisation alone, and tokenisation + batched inference through the model's queue, in texts/s at
//! batch 1, 32 and 256. Recommendations: top-10 selection over the 800 item scores after masking owned items, in
//! customers/s, and the full path (queue → two-tower inference → top-k) at 1, 32 and 256 customers.
//! Data: the fixed sentences of tests/fixtures/sentiment_expected.json (cycled) and the first customers of the
//! shipped sample snapshot (scripts/train_models.py, fixed seed). Run: `cargo bench --bench text_and_recommend`.

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crmscore::batching::ModelInput;
use crmscore::model::ModelKind;
use crmscore::model::catalogue::top_k;

const SIZES: [usize; 3] = [1, 32, 256];

fn bench(c: &mut Criterion) {
    let root = common::root();
    let registry = common::registry(&common::cpu_sessions(), 256);

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
                black_box(common::run_blocking(
                    &sentiment.queue,
                    ModelInput::Tokens(tokens),
                    n,
                ))
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
    let rows = common::first_rows(&spec.features, 256);
    let width = spec.features.len();
    let scores = common::run_blocking(
        &recommender.queue,
        ModelInput::Rows(rows[..width].to_vec()),
        1,
    )
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
                let input = ModelInput::Rows(rows[..n * width].to_vec());
                let out = common::run_blocking(&recommender.queue, input, n).values;
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
