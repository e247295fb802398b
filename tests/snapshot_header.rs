//! The `x-snapshot-version` reply header over HTTP: every scoring and insights reply that read the snapshot names
//! the version that answered it (equal to the body's `snapshot` field, also for requests racing a swap), and
//! replies that read none (inline rows, texts) carry no header.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow_array::{ArrayRef, Int16Array, RecordBatch};
use common::*;
use crmscore::RunningServer;
use serde_json::{Value, json};

const HEADER: &str = "x-snapshot-version";

/// A snapshots folder holding `a.parquet` (the first 500 sample customers), and a server with the shipped policy.
fn serving(tag: &str) -> (TempDir, RunningServer, RecordBatch) {
    let dir = TempDir::new(tag);
    let batch = sample_rows(500);
    write_parquet(&dir.path().join("a.parquet"), std::slice::from_ref(&batch));
    let mut config = config(dir.path());
    config.policy = Some(repo().join("policies/engagement.toml"));
    (dir, start_ready(config), batch)
}

/// The header's value, if any.
fn header(headers: &ureq::http::HeaderMap) -> Option<String> {
    headers
        .get(HEADER)
        .map(|v| v.to_str().expect("ASCII header").to_string())
}

/// GET with the reply's header and JSON body.
fn get_json(server: &RunningServer, path: &str) -> (u16, Option<String>, Value) {
    let (status, headers, text) = get_text(server, path);
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, header(&headers), body)
}

/// POST with the reply's header and JSON body.
fn post_json(server: &RunningServer, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let (status, headers, body) = post_raw(server, path, &body.to_string());
    (status, header(&headers), body)
}

#[test]
fn every_reply_that_read_the_snapshot_names_it() {
    let (_dir, server, batch) = serving("header-routes");
    let ids = ids_of(&batch);
    let some = json!({ "customer_ids": [ids[0], ids[1]] });
    for path in [
        "/v1/churn/score",
        "/v1/models/churn/score",
        "/v1/recommendations",
        "/v1/insights",
    ] {
        let (status, version, body) = post_json(&server, path, &some);
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(version.as_deref(), Some("a.parquet"), "{path}");
        assert_eq!(body["snapshot"], "a.parquet", "{path}: {body}");
    }
    let (status, version, body) = get_json(&server, &format!("/v1/customers/{}/insights", ids[2]));
    assert_eq!(status, 200, "{body}");
    assert_eq!(version.as_deref(), Some("a.parquet"));
    assert_eq!(body["snapshot"], "a.parquet");
    server.stop();
}

#[test]
fn replies_that_read_no_snapshot_carry_no_header() {
    let (_dir, server, _) = serving("header-inline");
    let spec = crmscore::model::ModelSpec::load(&models().join("churn")).expect("churn manifest");
    let (_, rows) = sample_features("churn", 1);
    let row: serde_json::Map<String, Value> = (spec.feature_columns().iter())
        .zip(&rows[0])
        .map(|(name, v)| {
            (
                name.to_string(),
                if v.is_nan() { Value::Null } else { json!(v) },
            )
        })
        .collect();
    let (status, version, body) = post_json(&server, "/v1/churn/score", &json!({ "rows": [row] }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(version, None);
    assert!(body.get("snapshot").is_none_or(Value::is_null), "{body}");
    let (status, version, body) = post_json(
        &server,
        "/v1/sentiment",
        &json!({ "texts": ["great service"] }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(version, None);
    server.stop();
}

#[test]
fn under_a_swap_the_header_names_the_version_that_answered() {
    let (dir, server, batch) = serving("header-swap");
    let ids = ids_of(&batch);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|t| {
            let (stop, url, ids) = (stop.clone(), url(&server, "/v1/churn/score"), ids.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut seen = Vec::new();
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    i = (i + 7) % ids.len();
                    let body = json!({ "customer_ids": [ids[i]] }).to_string();
                    let mut resp = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(&body)
                        .expect("request reaches the server");
                    let version = header(resp.headers());
                    let text = resp.body_mut().read_to_string().unwrap_or_default();
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                    seen.push((resp.status().as_u16(), version, body));
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let tenure: ArrayRef = Arc::new(Int16Array::from(vec![72; batch.num_rows()]));
    let changed = with_column(&batch, "tenure_months", Some(tenure));
    write_parquet(&dir.path().join("b.parquet"), &[changed]);
    wait_for(&server, "/v1/snapshot", Duration::from_secs(30), |s, b| {
        s == 200 && b["version"] == "b.parquet"
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect();
    for (status, version, body) in &seen {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(version.as_deref(), body["snapshot"].as_str(), "{body}");
    }
    let versions: Vec<_> = seen.iter().filter_map(|(_, v, _)| v.as_deref()).collect();
    assert!(versions.contains(&"a.parquet") && versions.contains(&"b.parquet"));
    assert_eq!(versions.last(), Some(&"b.parquet"));
    server.stop();
}
