//! Text models end to end over HTTP: the shipped sentiment model and a Hugging Face BERT export dropped in with
//! only a manifest. Token ids and softmaxed logits equal what Python tokenizers + ONNX Runtime give (fixtures
//! written by scripts/train_sentiment.py and scripts/make_bert_fixture.py), in order, however the batch is cut.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::*;
use crmscore::RunningServer;
use crmscore::text::{TextEncoder, softmax};
use serde_json::{Value, json};

const LABELS: [&str; 3] = ["negative", "neutral", "positive"];

fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| start_ready(config(&sample_snapshot())))
}

fn fixture(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join(path)).unwrap()).unwrap()
}

fn texts(cases: &Value) -> Vec<String> {
    cases
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect()
}

/// The token ids Python's tokenizer gave for a fixture case.
fn input_ids(case: &Value) -> Vec<i64> {
    case["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

/// Checks each result's scores against softmax(expected logits) and its label against their argmax.
fn assert_matches(results: &[Value], cases: &Value, labels: &[&str]) {
    let cases = cases.as_array().unwrap();
    assert_eq!(results.len(), cases.len());
    for (got, case) in results.iter().zip(cases) {
        let logits: Vec<f32> = case["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let want = softmax(&logits);
        for (label, p) in labels.iter().zip(&want) {
            let g = got["scores"][label].as_f64().unwrap() as f32;
            assert!(
                (g - p).abs() < 1e-5,
                "{:?} {label}: {g} vs {p}",
                case["text"]
            );
        }
        let best = want
            .iter()
            .enumerate()
            .fold(0, |b, (i, v)| if *v > want[b] { i } else { b });
        assert_eq!(got["label"], labels[best], "{:?}", case["text"]);
    }
}

#[test]
fn tokenization_matches_the_python_tokenizer() {
    let e = fixture("tests/fixtures/sentiment_expected.json");
    let max_length = e["max_length"].as_u64().unwrap() as usize;
    let encoder =
        TextEncoder::load(&models().join("sentiment/tokenizer.json"), max_length).unwrap();
    let mut truncated = 0;
    for case in e["cases"].as_array().unwrap() {
        let want = input_ids(case);
        let got = encoder.encode(case["text"].as_str().unwrap()).unwrap();
        assert_eq!(got, want, "{:?}", case["text"]);
        truncated += usize::from(got.len() == max_length);
    }
    assert!(truncated >= 1, "the fixture must exercise truncation");
}

#[test]
fn sentiment_scores_match_onnxruntime_in_order() {
    let e = fixture("tests/fixtures/sentiment_expected.json");
    let (status, body) = post(
        server(),
        "/v1/sentiment",
        &json!({ "texts": texts(&e["cases"]) }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"]["name"], "sentiment");
    assert_matches(body["results"].as_array().unwrap(), &e["cases"], &LABELS);
    let (status, body) = post(
        server(),
        "/v1/models/sentiment/score",
        &json!({ "texts": [texts(&e["cases"])[0]] }),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_small_token_budget_splits_batches_without_changing_answers() {
    let dir = TempDir::new("token-budget");
    let model = dir.path().join("sentiment");
    std::fs::create_dir(&model).unwrap();
    for f in ["model.onnx", "tokenizer.json"] {
        std::fs::copy(models().join("sentiment").join(f), model.join(f)).unwrap();
    }
    let manifest = std::fs::read_to_string(models().join("sentiment/model.toml")).unwrap();
    let manifest = manifest
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("max_tokens") {
                "max_tokens = 200"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(model.join("model.toml"), manifest).unwrap();
    let mut cfg = crmscore::Config::for_tests(dir.path(), sample_snapshot());
    cfg.max_delay_us = Some(20_000);
    let server = start_ready(cfg);
    let e = fixture("tests/fixtures/sentiment_expected.json");
    let (status, body) = post(
        &server,
        "/v1/sentiment",
        &json!({ "texts": texts(&e["cases"]) }),
    );
    assert_eq!(status, 200, "{body}");
    assert_matches(body["results"].as_array().unwrap(), &e["cases"], &LABELS);
    let (_, _, metrics) = get_text(&server, "/metrics");
    let calls = metrics
        .lines()
        .find(|l| l.starts_with(r#"crmscore_batch_size_count{model="sentiment"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(
        calls > 3,
        "30 texts under a 200-token budget need several calls, got {calls}"
    );
    server.stop();
}

#[test]
fn bad_text_requests_are_4xx() {
    let long = "great service ".repeat(400);
    let too_many: Vec<&str> = vec!["ok"; 10_001];
    let cases = [
        (json!({"texts": []}), "bad_request", "empty"),
        (
            json!({"texts": ["fine", ""]}),
            "bad_request",
            "texts[1] is empty",
        ),
        (
            json!({"texts": ["fine", "   "]}),
            "bad_request",
            "texts[1] is empty",
        ),
        (
            json!({"texts": ["fine", 5]}),
            "bad_request",
            "texts[1] must be a string, got a number",
        ),
        (
            json!({"texts": [null]}),
            "bad_request",
            "must be a string, got null",
        ),
        (json!({"texts": [long]}), "bad_request", "at most 5000"),
        (json!({"texts": too_many}), "bad_request", "at most 10000"),
        (
            json!({"customer_ids": ["C0000001"]}),
            "bad_request",
            "does not apply to a text model",
        ),
        (json!({"texts": "just one"}), "invalid_json", ""),
    ];
    for (body, code, needle) in cases {
        let (status, reply) = post(server(), "/v1/sentiment", &body);
        assert_eq!(status, 400, "{reply}");
        assert!(
            v1_error(&reply, code).contains(needle),
            "{reply} should mention {needle}"
        );
    }
    let (status, reply) = post(server(), "/v1/churn/score", &json!({"texts": ["hi"]}));
    assert_eq!(status, 400, "{reply}");
}

#[test]
fn v2_infer_takes_bytes_and_returns_logits() {
    let e = fixture("tests/fixtures/sentiment_expected.json");
    let cases = &e["cases"].as_array().unwrap()[..3];
    let data: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let req =
        json!({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": data}]});
    let (status, body) = post(server(), "/v2/models/sentiment/infer", &req);
    assert_eq!(status, 200, "{body}");
    let out = &body["outputs"][0];
    assert_eq!(out["shape"], json!([3, 3]));
    let logits: Vec<f64> = out["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (i, c) in cases.iter().enumerate() {
        for j in 0..3 {
            let want = c["logits"][j].as_f64().unwrap();
            assert!(
                (logits[i * 3 + j] - want).abs() < 1e-4,
                "{i},{j}: {} vs {want}",
                logits[i * 3 + j]
            );
        }
    }
    let (status, meta) = get(server(), "/v2/models/sentiment");
    assert_eq!(status, 200);
    assert_eq!(
        meta["inputs"],
        json!([{"name": "text", "datatype": "BYTES", "shape": [-1]}])
    );
    assert_eq!(meta["parameters"]["labels"], json!(LABELS));
    let bad =
        json!({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["one"]}]});
    let (status, body) = post(server(), "/v2/models/sentiment/infer", &bad);
    assert_eq!(status, 400);
    assert!(v2_error(&body).contains("needs 2 strings"));
}

/// The Hugging Face export fixture, dropped into a models folder with a manifest written here.
fn drop_in_bert(dir: &Path) {
    let model = dir.join("tinybert");
    std::fs::create_dir(&model).unwrap();
    for f in ["model.onnx", "tokenizer.json"] {
        std::fs::copy(
            repo().join("tests/fixtures/tiny-bert").join(f),
            model.join(f),
        )
        .unwrap();
    }
    let e = fixture("tests/fixtures/tiny-bert/expected.json");
    let manifest = format!(
        "kind = \"text\"\nversion = \"hf-1\"\ntokenizer = \"tokenizer.json\"\nmax_length = {}\noutput = \"logits\"\nlabels = {}\n",
        e["max_length"], e["labels"]
    );
    std::fs::write(model.join("model.toml"), manifest).unwrap();
}

#[test]
fn a_hugging_face_bert_export_is_a_drop_in() {
    let dir = TempDir::new("tiny-bert");
    drop_in_bert(dir.path());
    let server = start_ready(crmscore::Config::for_tests(dir.path(), sample_snapshot()));
    let e = fixture("tests/fixtures/tiny-bert/expected.json");
    let labels: Vec<&str> = e["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let encoder = TextEncoder::load(
        &dir.path().join("tinybert/tokenizer.json"),
        e["max_length"].as_u64().unwrap() as usize,
    )
    .unwrap();
    for case in e["cases"].as_array().unwrap() {
        let want = input_ids(case);
        assert_eq!(
            encoder.encode(case["text"].as_str().unwrap()).unwrap(),
            want
        );
    }
    let (status, body) = post(
        &server,
        "/v1/models/tinybert/score",
        &json!({ "texts": texts(&e["cases"]) }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"]["version"], "hf-1");
    assert_matches(body["results"].as_array().unwrap(), &e["cases"], &labels);
    let (_, meta) = get(&server, "/v2/models/tinybert");
    let graph: Vec<&str> = meta["parameters"]["graph_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(graph.contains(&"token_type_ids"), "{meta}");
    server.stop();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crmscore"))
        .arg("inspect-model")
        .arg(dir.path().join("tinybert"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("token types (zeros)") && text.contains("OK"),
        "{text}"
    );
}
