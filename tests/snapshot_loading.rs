//! Readiness and snapshot loading over HTTP: not ready until a complete snapshot is served, bad snapshots are
//! reported with the file and column and never served, Spark part folders and integer ids work.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, Int64Array, StringArray};
use common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn ready_error(server: &crmscore::RunningServer) -> String {
    let body = wait_for(server, "/v2/health/ready", WAIT, |status, body| {
        status == 503
            && body["error"]
                .as_str()
                .is_some_and(|e| e.contains("last attempt failed"))
    });
    v2_error(&body)
}

fn first_feature() -> String {
    let spec = crmscore::model::ModelSpec::load(&models().join("churn")).unwrap();
    spec.feature_columns()[0].clone()
}

#[test]
fn not_ready_until_a_snapshot_is_dropped_then_serves_it() {
    let dir = TempDir::new("drop");
    let server = crmscore::start(config(dir.path())).unwrap();

    let (status, body) = get(&server, "/v2/health/ready");
    assert_eq!(status, 503, "{body}");
    assert!(v2_error(&body).contains("no snapshot"));
    let (status, headers, body) = post_raw(
        &server,
        "/v1/churn/score",
        r#"{"customer_ids": ["C0000001"]}"#,
    );
    assert_eq!(status, 503);
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    v1_error(&body, "not_ready");
    let (status, body) = get(&server, "/v1/snapshot");
    assert_eq!(status, 503);
    v1_error(&body, "not_ready");
    // The model itself is loaded: v2 readiness of the model and inline scoring work already.
    assert_eq!(get(&server, "/v2/models/churn/ready").0, 200);

    // A file still being written (temporary name) is not picked up; its rename is.
    let batch = sample_rows(1000);
    write_parquet(
        &dir.path().join("customers-2026-11-23.parquet"),
        std::slice::from_ref(&batch),
    );
    wait_ready(&server, WAIT);
    let id = batch
        .column_by_name("customer_id")
        .unwrap()
        .as_string::<i32>()
        .value(7)
        .to_string();
    let (status, body) = post(&server, "/v1/churn/score", &json!({ "customer_ids": [id] }));
    assert_eq!(status, 200, "{body}");
    assert!(body["results"][0]["churn_probability"].is_number());
    assert_eq!(body["snapshot"], "customers-2026-11-23.parquet");
    let (_, info) = get(&server, "/v1/snapshot");
    assert_eq!(info["rows"], 1000);
    server.stop();
}

#[test]
fn a_snapshot_missing_a_model_column_is_never_served() {
    let dir = TempDir::new("missing-col");
    let feature = first_feature();
    write_parquet(
        &dir.path().join("bad.parquet"),
        &[with_column(&sample_rows(500), &feature, None)],
    );
    let server = crmscore::start(config(dir.path())).unwrap();
    let error = ready_error(&server);
    assert!(
        error.contains("bad.parquet") && error.contains(&feature) && error.contains("missing"),
        "{error}"
    );
    server.stop();
}

#[test]
fn duplicate_ids_are_rejected_with_the_id() {
    let dir = TempDir::new("dup");
    let batch = sample_rows(300);
    let ids = batch
        .column_by_name("customer_id")
        .unwrap()
        .as_string::<i32>();
    let mut dup: Vec<String> = ids.iter().map(|v| v.unwrap().to_string()).collect();
    dup[250] = dup[10].clone();
    let dup_id = dup[10].clone();
    let array: ArrayRef = Arc::new(StringArray::from(dup));
    write_parquet(
        &dir.path().join("dups.parquet"),
        &[with_column(&batch, "customer_id", Some(array))],
    );
    let server = crmscore::start(config(dir.path())).unwrap();
    let error = ready_error(&server);
    assert!(
        error.contains("duplicate customer_id") && error.contains(&dup_id),
        "{error}"
    );
    server.stop();
}

#[test]
fn a_text_feature_column_is_rejected_with_its_type() {
    let dir = TempDir::new("text-col");
    let feature = first_feature();
    let batch = sample_rows(200);
    let text: ArrayRef = Arc::new(StringArray::from(vec!["twelve"; 200]));
    write_parquet(
        &dir.path().join("text.parquet"),
        &[with_column(&batch, &feature, Some(text))],
    );
    let server = crmscore::start(config(dir.path())).unwrap();
    let error = ready_error(&server);
    assert!(
        error.contains(&feature) && error.contains("Utf8"),
        "{error}"
    );
    server.stop();
}

#[test]
fn a_truncated_file_is_reported_not_half_loaded() {
    let dir = TempDir::new("truncated");
    let bytes = std::fs::read(sample_snapshot()).unwrap();
    std::fs::write(dir.path().join("cut.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let server = crmscore::start(config(dir.path())).unwrap();
    let error = ready_error(&server);
    assert!(
        error.contains("cut.parquet") && error.contains("not a readable Parquet file"),
        "{error}"
    );
    server.stop();
}

#[test]
fn newest_complete_snapshot_wins_and_bad_newer_ones_fall_back() {
    let dir = TempDir::new("newest");
    let batch = sample_rows(400);
    write_parquet(&dir.path().join("a-old.parquet"), &[batch.slice(0, 100)]);
    std::thread::sleep(Duration::from_millis(20));
    write_parquet(&dir.path().join("b-new.parquet"), &[batch.slice(0, 300)]);
    std::thread::sleep(Duration::from_millis(20));
    // A Spark folder without _SUCCESS yet is ignored, however new.
    std::fs::create_dir(dir.path().join("c-writing")).unwrap();
    write_parquet(
        &dir.path().join("c-writing/part-00000.parquet"),
        std::slice::from_ref(&batch),
    );
    // A newer file with a missing column is skipped for the newest one that loads.
    std::thread::sleep(Duration::from_millis(20));
    write_parquet(
        &dir.path().join("d-bad.parquet"),
        &[with_column(&batch, &first_feature(), None)],
    );
    let server = start_ready(config(dir.path()));
    let (_, info) = get(&server, "/v1/snapshot");
    assert_eq!(info["version"], "b-new.parquet", "{info}");
    assert_eq!(info["rows"], 300);
    server.stop();
}

#[test]
fn spark_part_folder_with_success_marker_and_integer_ids() {
    let dir = TempDir::new("spark");
    let folder = dir.path().join("customers-2026-11-23");
    std::fs::create_dir(&folder).unwrap();
    let batch = sample_rows(600);
    let ints: ArrayRef = Arc::new(Int64Array::from_iter_values(
        (0..600).map(|i| 1_000_000 + i),
    ));
    let batch = with_column(&batch, "customer_id", Some(ints));
    write_parquet(&folder.join("part-00000.parquet"), &[batch.slice(0, 250)]);
    write_parquet(&folder.join("part-00001.parquet"), &[batch.slice(250, 350)]);
    std::fs::write(folder.join("_SUCCESS"), b"").unwrap();
    let server = start_ready(config(dir.path()));
    let (_, info) = get(&server, "/v1/snapshot");
    assert_eq!(info["version"], "customers-2026-11-23");
    assert_eq!(info["rows"], 600);
    assert_eq!(info["id_type"], "integer");
    // Integer ids match as JSON integers or numeric strings; rows from both parts are found.
    let (status, body) = post(
        &server,
        "/v1/churn/score",
        &json!({"customer_ids": [1_000_010, "1000590", 5]}),
    );
    assert_eq!(status, 200, "{body}");
    let r = body["results"].as_array().unwrap();
    assert!(
        r[0]["churn_probability"].is_number() && r[1]["churn_probability"].is_number(),
        "{body}"
    );
    v1_error(&r[2], "unknown_customer");
    server.stop();
}
