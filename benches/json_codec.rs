//! JSON decode of the request bodies and encode of the reply bodies the server handles, with the real wire types
//! of `crmscore::api::dto`, in bytes per second (`Throughput::Bytes` of the body decoded or encoded; the time per
//! iteration is the time per request).
//! Decode (`serde_json::from_slice`, as actix's `web::Json` does, then `ScoreRequest::validate` for the model's
//! kind): `/v1/churn/score` with 1 and 100 customer ids, a v2 infer request of one FP32 [1, 21] row, and a
//! `/v1/sentiment` request with one text. The v2 tensor checks (`feature_input` in src/api/v2.rs) are private and
//! not included.
//! Encode (the reply structs built from the model outputs, then `serde_json::to_vec`, as `HttpResponse::json`
//! does): the churn reply (`ScoreReply<ChurnResult>`, decision ids included) for 1 and 100 customers, the v2
//! infer reply (`InferResponse`, one [1, 2] FP32 output) and the sentiment reply (`ScoreReply<TextResult>`, one
//! text, its decision id included). The reply builders of src/api/score.rs are private; this mirrors what
//! `tabular_reply`/`text_reply` do.
//! Data: real customer ids and one real feature row (without missing values) of the shipped sample snapshot, drawn
//! by an xorshift64 generator with a fixed seed; probabilities and logits from the same generator; the text is the
//! first sentence of tests/fixtures/sentiment_expected.json. Run: `cargo bench --bench json_codec`.

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crmscore::api::dto::{
    ChurnResult, InferOutput, InferRequest, InferResponse, ItemKey, ModelRef, ScoreReply,
    ScoreRequest, TextResult,
};
use crmscore::feedback::DecisionIds;
use crmscore::model::{ModelKind, ModelSpec};
use crmscore::text::softmax;
use serde_json::json;

use common::XorShift;

const SNAPSHOT_VERSION: &str = "customers-sample.parquet";

fn bench_decode(c: &mut Criterion, name: &str, body: &[u8], decode: impl Fn(&[u8])) {
    let mut group = c.benchmark_group("json_decode");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
        b.iter(|| decode(black_box(body)))
    });
    group.finish();
}

fn bench_encode(c: &mut Criterion, name: &str, encode: impl Fn() -> Vec<u8>) {
    let bytes = encode().len();
    let mut group = c.benchmark_group("json_encode");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter(|| black_box(encode()))
    });
    group.finish();
}

fn decode_score(body: &[u8], kind: &str) {
    let request: ScoreRequest = serde_json::from_slice(body).expect("valid request");
    black_box(request.validate(kind).expect("valid for the kind"));
}

fn bench(c: &mut Criterion) {
    let root = common::root();
    let churn = common::churn_spec();
    let sentiment = ModelSpec::load(&root.join("models/sentiment")).expect("sentiment manifest");
    let ModelKind::Tabular(tabular) = &churn.kind else {
        panic!("churn is tabular")
    };
    let ModelKind::Text(text_spec) = &sentiment.kind else {
        panic!("sentiment is a text model")
    };

    let snapshot = common::sample(churn.feature_columns());
    let mut rng = XorShift::seeded();
    let ids = common::draw_ids(&snapshot, &mut rng, 100);
    let layout = snapshot
        .layout(churn.feature_columns())
        .expect("churn columns present");
    let mut row = Vec::new();
    while row.is_empty() || row.iter().any(|v: &f32| v.is_nan()) {
        row.clear();
        snapshot.gather(rng.below(snapshot.rows()), &layout, &mut row);
    }

    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/sentiment_expected.json"))
            .expect("sentiment fixture"),
    )
    .expect("fixture is JSON");
    let sentence = fixture["cases"][0]["text"]
        .as_str()
        .expect("first case has a text")
        .to_string();

    // Requests, as clients send them.
    let churn_1 = json!({ "customer_ids": &ids[..1] }).to_string();
    let churn_100 = json!({ "customer_ids": &ids }).to_string();
    let v2_infer = json!({
        "inputs": [{
            "name": tabular.input,
            "shape": [1, row.len()],
            "datatype": "FP32",
            "data": row,
        }]
    })
    .to_string();
    let sentiment_1 = json!({ "texts": [sentence] }).to_string();

    bench_decode(c, "churn_1_id", churn_1.as_bytes(), |b| {
        decode_score(b, "tabular")
    });
    bench_decode(c, "churn_100_ids", churn_100.as_bytes(), |b| {
        decode_score(b, "tabular")
    });
    bench_decode(c, "v2_infer_1_row", v2_infer.as_bytes(), |b| {
        let request: InferRequest = serde_json::from_slice(b).expect("valid v2 request");
        black_box(request);
    });
    bench_decode(c, "sentiment_1_text", sentiment_1.as_bytes(), |b| {
        decode_score(b, "text")
    });

    // Replies: what the model returned, then the reply built and serialised as the handlers do.
    let probabilities: Vec<f32> = (0..100).map(|_| rng.unit()).collect();
    let logits: Vec<f32> = (0..text_spec.labels.len())
        .map(|_| rng.unit() * 6.0 - 3.0)
        .collect();
    let churn_reply = |n: usize| {
        let made = DecisionIds::reserve(n);
        let results: Vec<ChurnResult> = ids[..n]
            .iter()
            .zip(&probabilities)
            .enumerate()
            .map(|(i, (id, &p))| ChurnResult {
                key: ItemKey::CustomerId(id),
                decision_id: Some(made.get(i)),
                churn_probability: Some(p),
                risk: tabular.risk.map(|r| r.band(p)),
                reasons: None,
                error: None,
            })
            .collect();
        serde_json::to_vec(&ScoreReply {
            model: ModelRef {
                name: &churn.name,
                version: &churn.version,
            },
            snapshot: Some(SNAPSHOT_VERSION),
            stale: false,
            explanation: None,
            results,
        })
        .expect("reply serialises")
    };
    bench_encode(c, "churn_1_result", || churn_reply(1));
    bench_encode(c, "churn_100_results", || churn_reply(100));
    bench_encode(c, "v2_infer_1_row", || {
        let p = probabilities[0];
        let data = [1.0 - p, p];
        serde_json::to_vec(&InferResponse {
            model_name: &churn.name,
            model_version: &churn.version,
            id: None,
            outputs: vec![InferOutput {
                name: &tabular.output,
                shape: vec![1, data.len()],
                datatype: "FP32",
                parameters: None,
                data: Some(&data),
            }],
        })
        .expect("reply serialises")
    });
    bench_encode(c, "sentiment_1_text", || {
        let probs = softmax(&logits);
        let best = probs
            .iter()
            .enumerate()
            .fold(0, |best, (i, v)| if *v > probs[best] { i } else { best });
        let results = vec![TextResult {
            decision_id: Some(DecisionIds::reserve(1).get(0)),
            label: &text_spec.labels[best],
            scores: text_spec
                .labels
                .iter()
                .map(String::as_str)
                .zip(probs.iter().copied())
                .collect::<BTreeMap<_, _>>(),
        }];
        serde_json::to_vec(&ScoreReply {
            model: ModelRef {
                name: &sentiment.name,
                version: &sentiment.version,
            },
            snapshot: None,
            stale: false,
            explanation: None,
            results,
        })
        .expect("reply serialises")
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
