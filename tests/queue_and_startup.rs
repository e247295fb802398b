//! Back-pressure (a full queue answers 503 + Retry-After at once) and start-up checks (a model that does not match
//! its manifest under --strict-models, a missing ONNX Runtime), through the library and the real binary.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[test]
fn a_full_queue_answers_503_with_retry_after_and_nothing_hangs() {
    let mut cfg = config(&sample_snapshot());
    // One worker running one row per call, one waiting job: big requests keep it busy, the rest are refused.
    cfg.queue_capacity = Some(1);
    cfg.max_batch_size = Some(1);
    cfg.max_delay_us = Some(0);
    cfg.batch_workers = Some(1);
    let server = start_ready(cfg);
    let ids: Vec<String> = (0..5_000).map(|i| format!("C{:07}", i * 7)).collect();
    let body = json!({ "customer_ids": ids }).to_string();
    let started = Instant::now();
    let outcomes: Vec<(u16, Option<String>, serde_json::Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    let (status, headers, json) = post_raw(&server, "/v1/churn/score", &body);
                    let retry = headers
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_string());
                    (status, retry, json)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "requests must not hang"
    );
    let refused: Vec<_> = outcomes.iter().filter(|(s, _, _)| *s == 503).collect();
    let served = outcomes.iter().filter(|(s, _, _)| *s == 200).count();
    assert_eq!(
        refused.len() + served,
        outcomes.len(),
        "only 200 or 503: {outcomes:?}"
    );
    assert!(
        !refused.is_empty(),
        "12 concurrent 5,000-row jobs must overflow a 1-job queue"
    );
    assert!(served >= 1);
    for (_, retry, json) in refused {
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(v1_error(json, "queue_full").contains("churn"));
    }
    let (_, _, metrics) = get_text(&server, "/metrics");
    assert!(
        metrics.contains(r#"crmscore_queue_rejected_total{model="churn"}"#),
        "{metrics}"
    );
    server.stop();
}

/// A models folder holding the shipped churn graph with a rewritten manifest.
fn models_with_manifest(tag: &str, edit: impl Fn(String) -> String) -> TempDir {
    let dir = TempDir::new(tag);
    let model = dir.path().join("churn");
    std::fs::create_dir(&model).unwrap();
    std::fs::copy(models().join("churn/model.onnx"), model.join("model.onnx")).unwrap();
    let manifest = std::fs::read_to_string(models().join("churn/model.toml")).unwrap();
    std::fs::write(model.join("model.toml"), edit(manifest)).unwrap();
    dir
}

fn drop_last_feature(manifest: String) -> String {
    let spec = crmscore::model::ModelSpec::load(&models().join("churn")).unwrap();
    let last = spec.feature_columns().last().unwrap().clone();
    manifest
        .replace(&format!(", \"{last}\""), "")
        .replace(&format!("\"{last}\","), "")
        .replace(&format!("\"{last}\""), "")
}

/// The start-up error under --strict-models (without it the other models serve and this one is not ready: see
/// tests/model_repository.rs).
fn start_error(models: &Path) -> String {
    let mut cfg = crmscore::Config::for_tests(models, sample_snapshot());
    cfg.strict_models = true;
    match crmscore::start(cfg) {
        Ok(_) => panic!("start must fail for {}", models.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_graph_that_does_not_match_its_manifest_fails_a_strict_start() {
    let fewer = models_with_manifest("fewer", drop_last_feature);
    let err = start_error(fewer.path());
    assert!(
        err.contains("model 'churn'")
            && err.contains("input 'features'")
            && err.contains("columns but the manifest lists"),
        "{err}"
    );

    let renamed = models_with_manifest("renamed", |m| {
        m.replace("input = \"features\"", "input = \"feats\"")
    });
    let err = start_error(renamed.path());
    assert!(
        err.contains("input tensor 'feats' is not in the graph"),
        "{err}"
    );

    let kind = models_with_manifest("kind", |m| {
        m.replace("kind = \"tabular\"", "kind = \"vision\"")
    });
    assert!(start_error(kind.path()).contains("unknown kind 'vision'"));

    let empty = TempDir::new("empty-models");
    assert!(start_error(empty.path()).contains("no models found"));
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crmscore"))
}

#[test]
fn inspect_model_reports_match_and_mismatch_with_exit_codes() {
    let out = binary()
        .args(["inspect-model"])
        .arg(models().join("churn"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("features") && text.contains("FP32") && text.contains("OK"),
        "{text}"
    );

    let fewer = models_with_manifest("inspect-fewer", drop_last_feature);
    let out = binary()
        .args(["inspect-model"])
        .arg(fewer.path().join("churn"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("MISMATCH") && text.contains("columns but the manifest lists"),
        "{text}"
    );
}

#[test]
fn a_missing_onnxruntime_names_the_setup_script() {
    let out = binary()
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--onnxruntime-lib",
            "/nonexistent/libonnxruntime.so",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("scripts/setup-onnxruntime.sh"), "{stderr}");
}

#[test]
fn help_explains_every_flag_and_its_variable() {
    let out = binary().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bind",
        "--models",
        "--snapshots",
        "--max-batch-size",
        "--max-delay-us",
        "--queue-capacity",
        "--batch-workers",
        "--intra-threads",
        "--device",
        "CRMSCORE_BIND",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}: {text}");
    }
}
