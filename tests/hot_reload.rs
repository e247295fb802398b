//! Nightly drops while serving: every event happens under concurrent load, with zero non-2xx answers, and the
//! answers switch to the new data or model only when it is valid.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int16Array, RecordBatch, StringArray};
use common::*;
use crmscore::RunningServer;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// A snapshots folder holding `a.parquet` (the first 2,000 sample customers) and a server on it.
fn serving(tag: &str) -> (TempDir, RunningServer, RecordBatch) {
    let dir = TempDir::new(tag);
    let batch = sample_rows(2000);
    write_parquet(&dir.path().join("a.parquet"), std::slice::from_ref(&batch));
    let server = start_ready(config(dir.path()));
    (dir, server, batch)
}

/// The batch with every customer's tenure set to `months` (scores change, ids stay).
fn with_tenure(batch: &RecordBatch, months: i16) -> RecordBatch {
    let tenure: ArrayRef = Arc::new(Int16Array::from(vec![months; batch.num_rows()]));
    with_column(batch, "tenure_months", Some(tenure))
}

fn snapshot_info(server: &RunningServer) -> serde_json::Value {
    get(server, "/v1/snapshot").1
}

fn wait_snapshot(
    server: &RunningServer,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for(server, "/v1/snapshot", WAIT, |status, body| {
        status == 200 && check(body)
    })
}

/// Lets the watcher run a few polls (the tests poll every 50 ms).
fn a_few_polls() {
    std::thread::sleep(Duration::from_millis(400));
}

#[test]
fn a_new_snapshot_file_swaps_in_under_load() {
    let (dir, server, batch) = serving("new-file");
    let load = Load::start(&server, ids_of(&batch), 4);
    a_few_polls();
    write_parquet(&dir.path().join("b.parquet"), &[with_tenure(&batch, 72)]);
    wait_snapshot(&server, |b| b["version"] == "b.parquet");
    a_few_polls();
    let replies = load.finish_all_ok();
    let versions: Vec<_> = replies.iter().filter_map(|r| r.snapshot.clone()).collect();
    assert!(
        versions.contains(&"a.parquet".to_string()) && versions.contains(&"b.parquet".to_string())
    );
    let last_b = versions.iter().rposition(|v| v == "a.parquet").unwrap() < versions.len() - 1;
    assert!(last_b, "answers end on the new snapshot");
    server.stop();
}

#[test]
fn a_spark_folder_is_picked_up_only_when_success_appears() {
    let (dir, server, batch) = serving("spark-last");
    let load = Load::start(&server, ids_of(&batch), 4);
    let folder = dir.path().join("customers-2026-11-24");
    std::fs::create_dir(&folder).unwrap();
    let changed = with_tenure(&batch, 1);
    write_parquet(
        &folder.join("part-00000.parquet"),
        &[changed.slice(0, 1000)],
    );
    write_parquet(
        &folder.join("part-00001.parquet"),
        &[changed.slice(1000, 1000)],
    );
    a_few_polls();
    assert_eq!(
        snapshot_info(&server)["version"],
        "a.parquet",
        "no _SUCCESS yet: not a snapshot"
    );
    std::fs::write(folder.join("_SUCCESS"), b"").unwrap();
    let info = wait_snapshot(&server, |b| b["version"] == "customers-2026-11-24");
    assert_eq!(info["rows"], 2000);
    load.finish_all_ok();
    server.stop();
}

#[test]
fn a_fixed_path_replaced_by_rename_is_reloaded() {
    let dir = TempDir::new("fixed-path");
    let path = dir.path().join("customers.parquet");
    let batch = sample_rows(2000);
    write_parquet(&path, std::slice::from_ref(&batch));
    let server = start_ready(config(&path));
    let id = ids_of(&batch)[5].clone();
    let before = post(&server, "/v1/churn/score", &json!({"customer_ids": [id]})).1;
    let load = Load::start(&server, ids_of(&batch)[..1500].to_vec(), 4);
    std::thread::sleep(Duration::from_millis(1100)); // a new modification time even on coarse clocks
    write_parquet(&path, &[with_tenure(&batch.slice(0, 1500), 72)]);
    wait_snapshot(&server, |b| b["rows"] == 1500);
    load.finish_all_ok();
    let after = post(&server, "/v1/churn/score", &json!({"customer_ids": [id]})).1;
    assert_ne!(
        before["results"][0]["churn_probability"], after["results"][0]["churn_probability"],
        "new values serve"
    );
    server.stop();
}

/// Drops `name` into the folder while under load and checks it is refused with `reason`, the old one serving.
fn refused(tag: &str, write: impl Fn(&Path, &RecordBatch), name: &str, reason: &str) {
    let (dir, server, batch) = serving(tag);
    let load = Load::start(&server, ids_of(&batch), 4);
    write(&dir.path().join(name), &batch);
    let info = wait_snapshot(&server, |b| {
        b["last_error"].as_str().is_some_and(|e| e.contains(name))
    });
    a_few_polls();
    let replies = load.finish_all_ok();
    assert!(
        replies
            .iter()
            .all(|r| r.snapshot.as_deref() == Some("a.parquet")),
        "the old snapshot keeps serving"
    );
    assert_eq!(info["version"], "a.parquet");
    let error = info["last_error"].as_str().unwrap();
    assert!(error.contains(reason), "{error} should say {reason}");
    let (_, _, metrics) = get_text(&server, "/metrics");
    assert!(
        metrics.contains("crmscore_snapshot_load_failures_total 1"),
        "{metrics}"
    );
    assert_eq!(
        get(&server, "/v2/health/ready").0,
        200,
        "a refused drop does not make the server unready"
    );
    server.stop();
}

#[test]
fn a_half_written_file_is_ignored() {
    refused(
        "half",
        |path, _| {
            let bytes = std::fs::read(sample_snapshot()).unwrap();
            std::fs::write(path, &bytes[..bytes.len() / 3]).unwrap();
        },
        "c.parquet",
        "not a readable Parquet file",
    );
}

#[test]
fn a_snapshot_missing_a_column_is_refused() {
    let feature = crmscore::model::ModelSpec::load(&models().join("churn"))
        .unwrap()
        .feature_columns()[3]
        .clone();
    refused(
        "no-col",
        |path, batch| write_parquet(path, &[with_column(batch, &feature, None)]),
        "c.parquet",
        "is missing",
    );
}

#[test]
fn a_snapshot_with_duplicate_ids_is_refused() {
    refused(
        "dups",
        |path, batch| {
            let mut ids = ids_of(batch);
            ids[1999] = ids[0].clone();
            let ids: ArrayRef = Arc::new(StringArray::from(ids));
            write_parquet(path, &[with_column(batch, "customer_id", Some(ids))]);
        },
        "c.parquet",
        "duplicate customer_id",
    );
}

#[test]
fn a_snapshot_with_a_tenth_of_the_rows_is_refused() {
    refused(
        "tenth",
        |path, batch| write_parquet(path, &[batch.slice(0, 200)]),
        "c.parquet",
        "90% fewer",
    );
}

/// A models folder with a copy of the shipped churn model, and a server on it with the sample snapshot.
fn serving_models(tag: &str, token: Option<&str>) -> (TempDir, RunningServer) {
    let dir = TempDir::new(tag);
    std::fs::create_dir(dir.path().join("churn")).unwrap();
    for f in ["model.onnx", "model.toml"] {
        std::fs::copy(
            models().join("churn").join(f),
            dir.path().join("churn").join(f),
        )
        .unwrap();
    }
    let mut cfg = crmscore::Config::for_tests(dir.path(), sample_snapshot());
    cfg.admin_token = token.map(str::to_string);
    (dir, start_ready(cfg))
}

/// Writes a file atomically (temporary name, then rename), as a model deployment should.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn bump_version(models: &Path, version: &str) {
    let manifest = models.join("churn/model.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("version = \"1\"", &format!("version = \"{version}\""));
    replace(&manifest, text.as_bytes());
}

fn sample_ids() -> Vec<String> {
    ids_of(&sample_rows(2000))
}

#[test]
fn a_new_model_version_swaps_in_under_load() {
    let (dir, server) = serving_models("model-v2", None);
    let load = Load::start(&server, sample_ids(), 4);
    a_few_polls();
    bump_version(dir.path(), "2");
    wait_for(&server, "/v2/models/churn", WAIT, |_, b| {
        b["versions"] == json!(["2"])
    });
    a_few_polls();
    let replies = load.finish_all_ok();
    let versions: Vec<_> = replies
        .iter()
        .filter_map(|r| r.model_version.clone())
        .collect();
    assert!(
        versions.contains(&"1".into()) && versions.last() == Some(&"2".into()),
        "answers switch to version 2"
    );
    let (_, _, metrics) = get_text(&server, "/metrics");
    // The start-up load and the new version.
    assert!(
        metrics.contains(r#"crmscore_model_loads_total{model="churn"} 2"#),
        "{metrics}"
    );
    server.stop();
}

#[test]
fn a_corrupt_model_file_leaves_the_old_version_serving() {
    let (dir, server) = serving_models("model-corrupt", None);
    let load = Load::start(&server, sample_ids(), 4);
    replace(
        &dir.path().join("churn/model.onnx"),
        b"this is not an ONNX graph",
    );
    bump_version(dir.path(), "2");
    let meta = wait_for(&server, "/v2/models/churn", WAIT, |_, b| {
        b["parameters"]["last_load_error"].is_string()
    });
    a_few_polls();
    let replies = load.finish_all_ok();
    assert!(
        replies
            .iter()
            .all(|r| r.model_version.as_deref() == Some("1")),
        "version 1 keeps serving"
    );
    assert_eq!(meta["versions"], json!(["1"]));
    let error = meta["parameters"]["last_load_error"].as_str().unwrap();
    assert!(
        error.contains("churn") && error.contains("model.onnx"),
        "{error}"
    );
    let (_, _, metrics) = get_text(&server, "/metrics");
    assert!(
        metrics.contains(r#"crmscore_model_load_failures_total{model="churn"} 1"#),
        "{metrics}"
    );
    server.stop();
}

#[test]
fn repository_load_route_reloads_behind_the_admin_token() {
    let (dir, server) = serving_models("repo-load", Some("s3cret"));
    let path = "/v2/repository/models/churn/load";
    let (status, _, body) = post_raw(&server, path, "");
    assert_eq!(status, 401, "{body}");
    assert!(v2_error(&body).contains("admin token"));
    // The watcher may pick the change up first; either way the route answers with the served version.
    bump_version(dir.path(), "3");
    let resp = ureq_post_with_token(&server, path, "s3cret");
    assert_eq!(resp.0, 200, "{}", resp.1);
    assert_eq!(resp.1["version"], "3");
    assert_eq!(
        ureq_post_with_token(&server, "/v2/repository/models/nope/load", "s3cret").0,
        404
    );
    assert_eq!(
        ureq_post_with_token(&server, "/v2/repository/models/..%2Fchurn/load", "s3cret").0,
        404
    );
    server.stop();
}

fn ureq_post_with_token(
    server: &RunningServer,
    path: &str,
    token: &str,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(url(server, path))
        .header("authorization", &format!("Bearer {token}"))
        .send("")
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[test]
fn admin_reload_route_reports_loaded_and_refused_drops() {
    let dir = TempDir::new("admin-reload");
    let batch = sample_rows(2000);
    write_parquet(&dir.path().join("a.parquet"), std::slice::from_ref(&batch));
    let mut cfg = config(dir.path());
    cfg.poll_ms = 3_600_000; // only the route rescans after the first load
    let server = start_ready(cfg);
    let (status, _, body) = post_raw(&server, "/v1/admin/snapshot/reload", "");
    assert_eq!(
        (status, &body["outcome"]),
        (200, &json!("unchanged")),
        "{body}"
    );
    write_parquet(&dir.path().join("b.parquet"), &[with_tenure(&batch, 12)]);
    let (status, _, body) = post_raw(&server, "/v1/admin/snapshot/reload", "");
    assert_eq!(
        (status, &body["outcome"], &body["snapshot"]),
        (200, &json!("loaded"), &json!("b.parquet")),
        "{body}"
    );
    write_parquet(&dir.path().join("c.parquet"), &[batch.slice(0, 100)]);
    let (status, _, body) = post_raw(&server, "/v1/admin/snapshot/reload", "");
    assert_eq!(status, 422, "{body}");
    let message = v1_error(&body, "snapshot_rejected");
    assert!(
        message.contains("c.parquet") && message.contains("still serving b.parquet"),
        "{message}"
    );
    server.stop();
}

#[test]
fn a_stale_snapshot_is_flagged_or_refused_by_policy() {
    let dir = TempDir::new("stale");
    let batch = sample_rows(500);
    write_parquet(&dir.path().join("a.parquet"), std::slice::from_ref(&batch));
    std::thread::sleep(Duration::from_millis(1100));
    let id = ids_of(&batch)[0].clone();
    let mut cfg = config(dir.path());
    cfg.max_snapshot_age = Some(0);
    let server = start_ready(cfg.clone());
    let (status, body) = post(&server, "/v1/churn/score", &json!({"customer_ids": [id]}));
    assert_eq!((status, &body["stale"]), (200, &json!(true)), "{body}");
    let (status, ready) = get(&server, "/v2/health/ready");
    assert_eq!((status, &ready["stale"]), (200, &json!(true)));
    assert_eq!(snapshot_info(&server)["stale"], true);
    server.stop();

    cfg.stale_policy = crmscore::config::StalePolicy::Refuse;
    let server = crmscore::start(cfg).unwrap();
    let body = wait_for(&server, "/v2/health/ready", WAIT, |s, b| {
        s == 503
            && b["error"]
                .as_str()
                .is_some_and(|e| e.contains("max-snapshot-age"))
    });
    assert!(v2_error(&body).contains("a.parquet"));
    let (status, body) = post(&server, "/v1/churn/score", &json!({"customer_ids": [id]}));
    assert_eq!(status, 503);
    v1_error(&body, "snapshot_stale");
    server.stop();
}

#[test]
fn a_pyarrow_snapshot_with_row_groups_dictionaries_int64_ids_and_nulls_serves() {
    let fixture = repo().join("tests/fixtures/pyarrow_rowgroups.parquet");
    let server = start_ready(config(&fixture));
    let info = snapshot_info(&server);
    assert_eq!(
        (info["rows"].clone(), info["id_type"].clone()),
        (json!(1000), json!("integer"))
    );
    let file = std::fs::File::open(&fixture).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert!(reader.metadata().num_row_groups() > 4);
    let batch = reader
        .with_batch_size(1000)
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let ids: Vec<i64> = ids_of(&batch).iter().map(|s| s.parse().unwrap()).collect();
    let (status, body) = post(&server, "/v1/churn/score", &json!({ "customer_ids": ids }));
    assert_eq!(status, 200);
    let results = body["results"].as_array().unwrap();
    assert!(
        results.iter().all(|r| r["churn_probability"].is_number()),
        "every id of the file is found"
    );
    server.stop();
}

#[test]
fn check_snapshot_reports_and_exits_by_verdict() {
    let bin = env!("CARGO_BIN_EXE_crmscore");
    let out = std::process::Command::new(bin)
        .args(["check-snapshot", "--models"])
        .arg(models())
        .arg(repo().join("tests/fixtures/pyarrow_rowgroups.parquet"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "rows     1000",
        "customer_id (Int64)",
        "nps_score",
        "Int8",
        "verdict  OK",
    ] {
        assert!(text.contains(want), "report lacks {want}:\n{text}");
    }
    let dir = TempDir::new("check-dup");
    let batch = sample_rows(100);
    let mut ids = ids_of(&batch);
    ids[99] = ids[3].clone();
    let ids: ArrayRef = Arc::new(StringArray::from(ids));
    let bad = dir.path().join("dup.parquet");
    write_parquet(&bad, &[with_column(&batch, "customer_id", Some(ids))]);
    let out = std::process::Command::new(bin)
        .args(["check-snapshot", "--models"])
        .arg(models())
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("verdict  FAIL") && text.contains("duplicate customer_id"),
        "{text}"
    );
}
