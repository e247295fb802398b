//! The row-drop guard across restarts (`--state-dir`, `--accept-row-drop-once`, `?accept_row_drop=true`), and
//! refused snapshots that must not hide good ones dropped after them (issue 11, defects 3 and 4).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow_array::{ArrayRef, Int16Array, RecordBatch};
use common::*;
use crmscore::{Config, RunningServer};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// A server on `snapshots` keeping its state in `state`.
fn config_with_state(snapshots: &Path, state: &Path) -> Config {
    Config {
        state_dir: Some(state.to_path_buf()),
        ..config(snapshots)
    }
}

fn snapshot_info(server: &RunningServer) -> Value {
    get(server, "/v1/snapshot").1
}

fn failures(server: &RunningServer) -> String {
    let (_, _, metrics) = get_text(server, "/metrics");
    metrics
        .lines()
        .find(|l| l.starts_with("crmscore_snapshot_load_failures_total "))
        .unwrap_or_default()
        .to_string()
}

/// POST with an optional bearer token, returning status and JSON body.
fn post_admin(server: &RunningServer, path: &str, token: Option<&str>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.post(url(server, path));
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut resp = request.send("").unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Waits until readiness is 503 with a reason containing every one of `words`, returning the reason.
fn wait_not_ready(server: &RunningServer, words: &[&str]) -> String {
    let body = wait_for(server, "/v2/health/ready", WAIT, |status, body| {
        status == 503
            && body["error"]
                .as_str()
                .is_some_and(|e| words.iter().all(|w| e.contains(w)))
    });
    v2_error(&body)
}

#[test]
fn a_shrunk_snapshot_is_still_refused_after_a_restart_until_the_operator_accepts_it() {
    let state = TempDir::new("guard-state");
    let snaps = TempDir::new("guard-snaps");
    let path = snaps.path().join("customers.parquet");
    std::fs::copy(sample_snapshot(), &path).unwrap();

    let server = start_ready(config_with_state(&path, state.path()));
    assert_eq!(snapshot_info(&server)["rows"], 100_000);
    server.stop();

    // The nightly export is truncated to a tenth, replacing the file while the server is down.
    write_parquet(&path, &[sample_rows(10_000)]);
    let server = crmscore::start(config_with_state(&path, state.path())).unwrap();
    let reason = wait_not_ready(
        &server,
        &["customers.parquet", "90% fewer", "--max-row-drop"],
    );
    assert!(
        reason.contains("100000 rows") && reason.contains("before the restart"),
        "{reason}"
    );
    let (status, body) = post(
        &server,
        "/v1/churn/score",
        &json!({"customer_ids": ["anyone"]}),
    );
    assert_eq!(status, 503, "nothing is served: {body}");
    // Still refused on the next polls: the refusal is remembered, not retried.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&server, "/v2/health/ready").0, 503);
    server.stop();

    // The operator means it: one restart with --accept-row-drop-once takes the shrink.
    let server = start_ready(Config {
        accept_row_drop_once: true,
        ..config_with_state(&path, state.path())
    });
    assert_eq!(snapshot_info(&server)["rows"], 10_000);
    server.stop();

    // The shrunk snapshot is now the baseline: a plain restart serves it.
    let server = start_ready(config_with_state(&path, state.path()));
    assert_eq!(snapshot_info(&server)["rows"], 10_000);
    server.stop();

    // A corrupt state file is ignored, never fatal (the guard starts empty).
    let file = std::fs::read_dir(state.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a state file in --state-dir");
    std::fs::write(&file, b"{\"snapshots\": 3, garbage").unwrap();
    write_parquet(&path, &[sample_rows(500)]);
    let server = start_ready(config_with_state(&path, state.path()));
    assert_eq!(snapshot_info(&server)["rows"], 500);
    server.stop();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"rows\": 500"), "rewritten: {text}");
}

#[test]
fn the_admin_reload_takes_a_deliberate_shrink_with_accept_row_drop() {
    let state = TempDir::new("guard-admin-state");
    let snaps = TempDir::new("guard-admin-snaps");
    let path = snaps.path().join("customers.parquet");
    write_parquet(&path, &[sample_rows(2000)]);
    let server = start_ready(Config {
        poll_ms: 3_600_000, // only the route rescans after the first load
        admin_token: Some("s3cret".into()),
        ..config_with_state(&path, state.path())
    });
    std::thread::sleep(Duration::from_millis(1100)); // a new modification time even on coarse clocks
    write_parquet(&path, &[sample_rows(100)]);
    let reload = "/v1/admin/snapshot/reload";
    let accept = "/v1/admin/snapshot/reload?accept_row_drop=true";
    assert_eq!(post_admin(&server, accept, None).0, 401);
    let (status, body) = post_admin(&server, reload, Some("s3cret"));
    assert_eq!(status, 422, "{body}");
    let message = v1_error(&body, "snapshot_rejected");
    assert!(
        message.contains("customers.parquet") && message.contains("95% fewer"),
        "{message}"
    );
    let (status, body) = post_admin(&server, accept, Some("s3cret"));
    assert_eq!(
        (status, &body["outcome"], &body["rows"]),
        (200, &json!("loaded"), &json!(100)),
        "{body}"
    );
    assert_eq!(
        post_admin(
            &server,
            "/v1/admin/snapshot/reload?accept_row_drop=maybe",
            Some("s3cret")
        )
        .0,
        400
    );
    server.stop();
}

/// The batch with every customer's tenure set to `months` (scores change, ids stay).
fn with_tenure(batch: &RecordBatch, months: i16) -> RecordBatch {
    let tenure: ArrayRef = Arc::new(Int16Array::from(vec![months; batch.num_rows()]));
    with_column(batch, "tenure_months", Some(tenure))
}

#[test]
fn a_refused_snapshot_from_the_future_does_not_hide_a_later_good_one() {
    let dir = TempDir::new("future-refused");
    let batch = sample_rows(2000);
    write_parquet(&dir.path().join("a.parquet"), std::slice::from_ref(&batch));
    let server = start_ready(config(dir.path()));

    // A truncated export whose clock is a day ahead: refused, and the newest file from now on.
    let future = dir.path().join("c.parquet");
    write_parquet(&future, &[batch.slice(0, 200)]);
    std::fs::File::options()
        .write(true)
        .open(&future)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(86_400))
        .unwrap();
    wait_for(&server, "/v1/snapshot", WAIT, |_, b| {
        b["refused"][0]["version"] == "c.parquet"
    });

    // The good nightly drop that follows is served, although c.parquet is newer.
    write_parquet(&dir.path().join("b.parquet"), &[with_tenure(&batch, 72)]);
    let info = wait_for(&server, "/v1/snapshot", WAIT, |_, b| {
        b["version"] == "b.parquet"
    });
    assert_eq!(info["rows"], 2000);
    let refused = info["refused"].as_array().expect("refused is a list");
    assert_eq!(refused.len(), 1, "{info}");
    assert_eq!(refused[0]["version"], "c.parquet");
    assert!(
        refused[0]["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("c.parquet")),
        "{info}"
    );
    assert!(
        refused[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("90% fewer")),
        "{info}"
    );

    // The refused file is not retried while it is unchanged.
    let before = failures(&server);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(failures(&server), before);

    // The admin reload names the refused newest file instead of saying "unchanged".
    let (status, _, body) = post_raw(&server, "/v1/admin/snapshot/reload", "");
    assert_eq!(status, 422, "{body}");
    let message = v1_error(&body, "snapshot_rejected");
    assert!(
        message.contains("c.parquet") && message.contains("still serving b.parquet"),
        "{message}"
    );
    server.stop();
}
