//! One bad input must not fail a whole batch: a tokenizer whose ids exceed the graph's embedding table is refused
//! at load (naming both sizes), so texts can never reach inference with ids the model cannot embed. (The
//! isolation of a failing job inside a batch is unit-tested in src/batching/worker.rs.)

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// Copies tests/fixtures/tiny-bert into `<root>/tinybert` with a manifest, adding `extra` tokens to the end of
/// its tokenizer's vocabulary; returns the largest token id the tokenizer then has.
fn tiny_bert_with_extra_tokens(root: &Path, extra: u64) -> u64 {
    let fixture = repo().join("tests/fixtures/tiny-bert");
    let model = root.join("tinybert");
    std::fs::create_dir(&model).unwrap();
    std::fs::copy(fixture.join("model.onnx"), model.join("model.onnx")).unwrap();
    let mut tokenizer: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("tokenizer.json")).unwrap())
            .unwrap();
    let vocab = tokenizer["model"]["vocab"].as_object_mut().unwrap();
    let mut max = vocab.values().map(|v| v.as_u64().unwrap()).max().unwrap();
    for i in 0..extra {
        max += 1;
        vocab.insert(format!("zzextra{i}"), max.into());
    }
    std::fs::write(model.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json")).unwrap())
            .unwrap();
    let manifest = format!(
        "kind = \"text\"\nversion = \"hf-1\"\ntokenizer = \"tokenizer.json\"\nmax_length = {}\noutput = \"logits\"\nlabels = {}\n",
        expected["max_length"], expected["labels"]
    );
    std::fs::write(model.join("model.toml"), manifest).unwrap();
    max
}

#[test]
fn a_tokenizer_larger_than_the_embedding_table_is_refused_at_start() {
    let dir = TempDir::new("vocab-too-big");
    let max_id = tiny_bert_with_extra_tokens(dir.path(), 100);
    let mut cfg = crmscore::Config::for_tests(dir.path(), sample_snapshot());
    cfg.strict_models = true;
    let err = match crmscore::start(cfg) {
        Ok(_) => panic!("a tokenizer with ids up to {max_id} must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("tinybert"), "{err}");
    assert!(
        err.contains(&max_id.to_string()),
        "names the largest id: {err}"
    );
    // The table's size is the fixture's vocabulary (its ids run 0..=max_id-100).
    let rows = max_id + 1 - 100;
    assert!(
        err.contains(&format!("{rows} rows")),
        "names the table size: {err}"
    );
}

#[test]
fn a_tokenizer_within_the_embedding_table_is_served() {
    let dir = TempDir::new("vocab-fits");
    tiny_bert_with_extra_tokens(dir.path(), 0);
    let server = start_ready(crmscore::Config::for_tests(dir.path(), sample_snapshot()));
    let (status, body) = post(
        &server,
        "/v1/models/tinybert/score",
        &serde_json::json!({ "texts": ["a fine day"] }),
    );
    assert_eq!(status, 200, "{body}");
}
