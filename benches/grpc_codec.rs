//! The gRPC front door's codec, in bytes per second of the protobuf message (`Throughput::Bytes`; the time per
//! iteration is the time per call).
//! Decode: `ModelInferRequest` bytes as tonic hands them over (`prost::Message::decode`), then
//! `crmscore::grpc::convert::infer_call` (the tensors as the inference use case takes them), for one FP32 [1, 21]
//! churn row and 256 rows in `raw_input_contents` (what tritonclient.grpc sends), and one row in typed
//! `contents.fp32_contents`.
//! Encode: a `ModelInferResponse` with one FP32 [n, 2] output in `raw_output_contents` (`raw::encode_f32`, then
//! `prost::Message::encode_to_vec`), for 1 and 256 rows; `convert::infer_response` needs a scored call, so this
//! mirrors what it builds.
//! Data: the first rows of the shipped sample snapshot in the churn model's feature order (`common::first_rows`);
//! output values from an xorshift64 generator with a fixed seed. Run: `cargo bench --bench grpc_codec`.

mod common;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crmscore::grpc::convert;
use crmscore::grpc::proto::model_infer_request::InferInputTensor;
use crmscore::grpc::proto::model_infer_response::InferOutputTensor;
use crmscore::grpc::proto::{InferTensorContents, ModelInferRequest, ModelInferResponse};
use crmscore::inference::raw;
use prost::Message;

use common::XorShift;

fn request(rows: &[f32], width: usize, typed: bool) -> Vec<u8> {
    let n = (rows.len() / width) as i64;
    let mut bytes = Vec::new();
    raw::encode_f32(rows, &mut bytes);
    let input = InferInputTensor {
        name: "features".into(),
        datatype: "FP32".into(),
        shape: vec![n, width as i64],
        parameters: HashMap::new(),
        contents: typed.then(|| InferTensorContents {
            fp32_contents: rows.to_vec(),
            ..Default::default()
        }),
    };
    ModelInferRequest {
        model_name: "churn".into(),
        inputs: vec![input],
        raw_input_contents: if typed { vec![] } else { vec![bytes] },
        ..Default::default()
    }
    .encode_to_vec()
}

fn decode(body: &[u8]) {
    let request = ModelInferRequest::decode(body).expect("a valid message");
    let call = convert::infer_call(request.inputs, request.raw_input_contents, request.outputs);
    black_box(call.expect("a valid call"));
}

fn reply(scores: &[f32], rows: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(scores.len() * 4);
    raw::encode_f32(scores, &mut bytes);
    ModelInferResponse {
        model_name: "churn".into(),
        model_version: "1".into(),
        outputs: vec![InferOutputTensor {
            name: "probabilities".into(),
            datatype: "FP32".into(),
            shape: vec![rows as i64, 2],
            ..Default::default()
        }],
        raw_output_contents: vec![bytes],
        ..Default::default()
    }
    .encode_to_vec()
}

fn bench(c: &mut Criterion) {
    let features = common::churn_spec().feature_columns().to_vec();
    let width = features.len();
    let rows = common::first_rows(&features, 256);
    let mut group = c.benchmark_group("grpc_decode");
    for (name, body) in [
        ("infer_raw_1_row", request(&rows[..width], width, false)),
        ("infer_raw_256_rows", request(&rows, width, false)),
        ("infer_typed_1_row", request(&rows[..width], width, true)),
    ] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| decode(black_box(body)))
        });
    }
    group.finish();

    let mut rng = XorShift::seeded();
    let mut group = c.benchmark_group("grpc_encode");
    for n in [1usize, 256] {
        let scores: Vec<f32> = (0..n * 2).map(|_| rng.unit()).collect();
        group.throughput(Throughput::Bytes(reply(&scores, n).len() as u64));
        group.bench_function(
            BenchmarkId::from_parameter(format!("infer_reply_{n}_rows")),
            |b| b.iter(|| black_box(reply(black_box(&scores), n))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
