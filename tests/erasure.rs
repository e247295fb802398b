//! Erasure of a customer (GDPR art. 17) through the real front doors: DELETE over HTTP (hidden at once, through
//! a restart and a new snapshot drop, back after a lift), `crmscore erase` on Parquet outputs, and logs that
//! never carry customer ids or texts.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use common::*;
use crmscore::{Config, RunningServer};
use serde_json::{Value, json};

const ADMIN: &str = "erasure-admin-token";
const WAIT: Duration = Duration::from_secs(30);

fn with_state(snapshots: &Path, state: &Path) -> Config {
    let mut cfg = config(snapshots);
    cfg.state_dir = Some(state.to_path_buf());
    cfg.admin_token = Some(ADMIN.into());
    cfg
}

fn send(req: ureq::RequestBuilder<ureq::typestate::WithoutBody>) -> (u16, Value) {
    let mut resp = req.call().expect("request reaches the server");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn erase(server: &RunningServer, id: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = agent().delete(url(server, &format!("/v1/customers/{id}")));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    send(req)
}

fn lift(server: &RunningServer, id: &str) -> (u16, Value) {
    let mut resp = agent()
        .post(url(server, "/v1/admin/erasures/lift"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .send_json(json!({ "customer_id": id }))
        .expect("request reaches the server");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().unwrap_or(Value::Null))
}

/// The churn result of each id: Ok(probability) or Err(error code).
fn churn(server: &RunningServer, ids: &[&str]) -> Vec<Result<f64, String>> {
    let (status, body) = post(server, "/v1/churn/score", &json!({ "customer_ids": ids }));
    assert_eq!(status, 200, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| match r["churn_probability"].as_f64() {
            Some(p) => Ok(p),
            None => Err(r["error"]["code"].as_str().unwrap_or("?").to_string()),
        })
        .collect()
}

fn unknown() -> Result<f64, String> {
    Err("unknown_customer".into())
}

fn rows_served(server: &RunningServer) -> u64 {
    get(server, "/v1/snapshot").1["rows"].as_u64().unwrap()
}

fn wait_version(server: &RunningServer, version: &str) {
    wait_for(server, "/v1/snapshot", WAIT, |status, body| {
        status == 200 && body["version"] == version
    });
}

fn audit_lines(state: &Path) -> Vec<Value> {
    std::fs::read_to_string(state.join("erasure-audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
        .collect()
}

#[test]
fn an_erased_customer_stays_unknown_through_restarts_and_drops_until_lifted() {
    let dir = TempDir::new("erase-http");
    let (snapshots, state) = (dir.path().join("snapshots"), dir.path().join("state"));
    std::fs::create_dir_all(&snapshots).unwrap();
    let batch = sample_rows(2000);
    let ids = ids_of(&batch);
    let (gone, kept) = (ids[5].as_str(), ids[6].as_str());
    write_parquet(&snapshots.join("a.parquet"), std::slice::from_ref(&batch));
    let server = start_ready(with_state(&snapshots, &state));
    assert!(churn(&server, &[gone])[0].is_ok());

    let (status, body) = erase(&server, gone, None);
    assert_eq!(status, 401, "{body}");
    v1_error(&body, "unauthorized");
    let (status, body) = erase(&server, gone, Some("wrong"));
    assert_eq!(status, 401, "{body}");
    assert!(
        churn(&server, &[gone])[0].is_ok(),
        "a refused erasure changes nothing"
    );

    let (status, body) = erase(&server, gone, Some(ADMIN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["already_erased"], false);
    assert_eq!(body["snapshot_rows_hidden"], 1);
    let hash = body["customer"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64, "a SHA-256 hex: {body}");
    assert!(
        !body.to_string().contains(gone),
        "the reply names the hash only: {body}"
    );

    // At once, on every route that looks customers up; the others are untouched.
    let scored = churn(&server, &[gone, kept]);
    assert_eq!(scored[0], unknown());
    assert!(scored[1].is_ok(), "{scored:?}");
    let (status, body) = post(
        &server,
        "/v1/insights",
        &json!({"customer_ids": [gone, kept]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["error"]["code"], "unknown_customer",
        "{body}"
    );
    assert!(body["results"][1]["churn"].is_object(), "{body}");
    let (status, body) = get(&server, &format!("/v1/customers/{gone}/insights"));
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(
        &server,
        "/v1/recommendations",
        &json!({"customer_ids": [gone, kept], "k": 3}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["cold_start"], true,
        "treated as unknown: {body}"
    );
    assert_eq!(body["results"][1]["cold_start"], false, "{body}");
    let (status, body) = post(
        &server,
        "/v1/models/churn/score",
        &json!({"customer_ids": [gone]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["error"]["code"], "unknown_customer");
    assert_eq!(rows_served(&server), 1999);

    // Idempotent.
    let (status, body) = erase(&server, gone, Some(ADMIN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["already_erased"], true);
    assert_eq!(body["snapshot_rows_hidden"], 0);
    assert_eq!(body["customer"], hash.as_str());

    // The list holds the hash, never the id; the audit log has both calls.
    let list = std::fs::read_to_string(state.join("erasures.json")).unwrap();
    assert!(!list.contains(gone) && list.contains(&hash), "{list}");
    let audit = audit_lines(&state);
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(
        audit
            .iter()
            .all(|a| a["action"] == "erase" && a["customer"] == hash.as_str())
    );
    assert_eq!(
        (audit[0]["changed"].clone(), audit[1]["changed"].clone()),
        (json!(true), json!(false))
    );
    assert!(audit[0]["time"].as_str().unwrap().ends_with('Z'));
    server.stop();

    // A restart on the same state folder: still erased, at load.
    let server = start_ready(with_state(&snapshots, &state));
    assert_eq!(churn(&server, &[gone, kept])[0], unknown());
    assert_eq!(rows_served(&server), 1999);

    // A new drop that still holds them: the load keeps them out.
    write_parquet(&snapshots.join("b.parquet"), std::slice::from_ref(&batch));
    wait_version(&server, "b.parquet");
    let scored = churn(&server, &[gone, kept]);
    assert_eq!(scored[0], unknown());
    assert!(scored[1].is_ok());
    assert_eq!(rows_served(&server), 1999);

    // Lifted: still hidden in the served snapshot, back with the next load.
    let (status, body) = lift(&server, gone);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lifted"], true);
    assert_eq!(churn(&server, &[gone])[0], unknown());
    write_parquet(&snapshots.join("c.parquet"), std::slice::from_ref(&batch));
    wait_version(&server, "c.parquet");
    assert!(churn(&server, &[gone])[0].is_ok());
    assert_eq!(rows_served(&server), 2000);
    let (_, body) = lift(&server, gone);
    assert_eq!(body["lifted"], false, "nothing left to lift");
    let audit = audit_lines(&state);
    assert_eq!(audit.iter().filter(|a| a["action"] == "lift").count(), 2);
    server.stop();
}

#[test]
fn erasure_needs_a_state_folder_and_a_good_id() {
    let server = start_ready(config(&sample_snapshot()));
    let (status, body) = erase(&server, "C0000001", None);
    assert_eq!(status, 503, "{body}");
    assert!(v1_error(&body, "erasure_unavailable").contains("--state-dir"));
    server.stop();

    let dir = TempDir::new("erase-bad-id");
    let mut cfg = with_state(&sample_snapshot(), dir.path());
    cfg.admin_token = None;
    let server = start_ready(cfg);
    let (status, body) = erase(&server, "C%01X", None);
    assert_eq!(status, 400, "{body}");
    v1_error(&body, "bad_request");
    let (status, body) = post(&server, "/v1/admin/erasures/lift", &json!({"id": "x"}));
    assert_eq!(status, 400, "{body}");
    server.stop();
}

#[test]
fn a_corrupt_erasure_list_refuses_the_start() {
    let dir = TempDir::new("erase-corrupt");
    std::fs::write(dir.path().join("erasures.json"), b"{half a file").unwrap();
    let err = crmscore::start(with_state(&sample_snapshot(), dir.path()))
        .err()
        .expect("no start on a corrupt erasure list")
        .to_string();
    assert!(err.contains("erasures.json"), "{err}");
}

fn output(ids: ArrayRef) -> RecordBatch {
    let n = ids.len();
    RecordBatch::try_from_iter([
        ("customer_id", ids),
        (
            "churn_probability",
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| i as f64 / 10.0),
            )) as ArrayRef,
        ),
    ])
    .unwrap()
}

fn read_ids(path: &Path) -> Vec<String> {
    use arrow_array::cast::AsArray;
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let text = arrow_cast::cast(batch.column(0), &arrow_schema::DataType::Utf8).unwrap();
        ids.extend(
            text.as_string::<i32>()
                .iter()
                .map(|v| v.unwrap().to_string()),
        );
    }
    ids
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crmscore"))
        .arg("erase")
        .args(args)
        .env_remove("CRMSCORE_STATE_DIR")
        .env_remove("CRMSCORE_FEEDBACK_DIR")
        .output()
        .expect("binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_erase_command_rewrites_outputs_holding_the_customer_only() {
    let dir = TempDir::new("erase-cli");
    let (outputs, state) = (dir.path().join("scores"), dir.path().join("state"));
    std::fs::create_dir_all(&outputs).unwrap();
    let holds = outputs.join("part-00000.parquet");
    let other = outputs.join("part-00001.parquet");
    let ints = dir.path().join("export.parquet");
    write_parquet(
        &holds,
        &[output(Arc::new(StringArray::from(vec![
            "CX-1", "CX-GONE", "CX-2",
        ])))],
    );
    write_parquet(
        &other,
        &[output(Arc::new(StringArray::from(vec!["CX-3", "CX-4"])))],
    );
    write_parquet(
        &ints,
        &[output(Arc::new(Int64Array::from(vec![17, 4242, 18])))],
    );
    let untouched = std::fs::read(&other).unwrap();

    let (ok, text) = cli(&[
        "--id",
        "CX-GONE",
        "--state-dir",
        state.to_str().unwrap(),
        "--outputs",
        outputs.to_str().unwrap(),
        ints.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("1 file(s) rewritten, 1 row(s) removed"),
        "{text}"
    );
    assert_eq!(read_ids(&holds), ["CX-1", "CX-2"]);
    assert_eq!(
        std::fs::read(&other).unwrap(),
        untouched,
        "a file without the customer is left alone"
    );
    assert_eq!(read_ids(&ints), ["17", "4242", "18"]);
    let names: Vec<_> = std::fs::read_dir(&outputs)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");

    // An integer id column matches the id's decimal form.
    let (ok, text) = cli(&[
        "--id",
        "4242",
        "--state-dir",
        state.to_str().unwrap(),
        "--outputs",
        ints.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert_eq!(read_ids(&ints), ["17", "18"]);

    let list = std::fs::read_to_string(state.join("erasures.json")).unwrap();
    assert!(
        !list.contains("CX-GONE") && !list.contains("4242"),
        "{list}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&list).unwrap()["erased"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let audit = audit_lines(&state);
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0]["via"], "cli");
    assert_eq!(audit[0]["files"][0]["rows_removed"], 1);
    assert!(!audit_text(&state).contains("CX-GONE"));

    // The server honours what the command listed, and lifting goes through the command too.
    let (ok, text) = cli(&[
        "--id",
        "CX-GONE",
        "--lift",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("lifted"), "{text}");
    let list: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("erasures.json")).unwrap())
            .unwrap();
    assert_eq!(list["erased"].as_array().unwrap().len(), 1);
}

fn audit_text(state: &Path) -> String {
    std::fs::read_to_string(state.join("erasure-audit.jsonl")).unwrap()
}

#[test]
fn the_erase_command_stays_off_a_state_folder_a_server_holds() {
    let dir = TempDir::new("erase-held");
    let server = start_ready(with_state(&sample_snapshot(), dir.path()));
    let (ok, text) = cli(&[
        "--id",
        "C0000001",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains("DELETE /v1/customers/{id}"), "{text}");
    server.stop();
}

#[test]
fn logs_never_carry_customer_ids_or_texts_even_at_trace() {
    let dir = TempDir::new("erase-logs");
    let state = dir.path().to_str().unwrap().to_string();
    let served = Served::start(
        &[
            "--log-format",
            "json",
            "--access-log",
            "--state-dir",
            &state,
        ],
        "trace",
    );
    let line = served
        .wait_line(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["message"] == "listening"));
    let addr = serde_json::from_str::<Value>(&line).unwrap()["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("http://{addr}");
    wait_ready_at(&base);
    let known = ids_of(&sample_rows(3));
    let (erased, known) = (known[0].clone(), known[1].clone());
    let unknown = "ZQLEAKPROBE-UNKNOWN-7731";
    let word = "Quixoticfrobnication";
    let post = |path: &str, body: Value| {
        let status = agent()
            .post(format!("{base}{path}"))
            .send_json(body)
            .expect("request reaches the server")
            .status()
            .as_u16();
        assert!(status < 500, "{path}: {status}");
    };
    let ids = json!([known, unknown, erased]);
    post(
        "/v1/churn/score",
        json!({ "customer_ids": ids, "explain": 2 }),
    );
    post(
        "/v1/recommendations",
        json!({ "customer_ids": ids, "k": 3 }),
    );
    post("/v1/insights", json!({ "customer_ids": ids }));
    post("/v1/models/churn/score", json!({ "customer_ids": ids }));
    post(
        "/v1/sentiment",
        json!({ "texts": [format!("the {word} was awful"), format!("{word} is lovely")] }),
    );
    // Malformed requests whose error replies quote what they were sent.
    post(
        "/v1/churn/score",
        json!({ "customer_ids": [unknown, { word: known }] }),
    );
    post("/v1/sentiment", json!({ "texts": word }));
    post(
        "/v2/models/churn/infer",
        json!({ "inputs": [{ "name": word, "datatype": "BYTES", "shape": [1], "data": [unknown] }] }),
    );
    for path in [
        format!("/v1/customers/{known}/insights"),
        format!("/v1/customers/{unknown}/insights"),
        format!("/v1/customers/{unknown}/nothing-here"),
    ] {
        let _ = agent().get(format!("{base}{path}")).call();
    }
    for id in [&erased, &erased, &unknown.to_string()] {
        let status = agent()
            .delete(format!("{base}/v1/customers/{id}"))
            .call()
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 200);
    }
    post("/v1/admin/erasures/lift", json!({ "customer_id": erased }));
    post("/v1/churn/score", json!({ "customer_ids": [erased] }));
    std::thread::sleep(Duration::from_millis(300));
    let lines = served.stop();
    assert!(
        lines.iter().any(|l| l.contains("customer erased")),
        "the erasure itself is logged (by its hash)"
    );
    assert!(
        lines.iter().any(|l| l.contains(r#""level":"TRACE""#)),
        "trace lines were captured: {} lines",
        lines.len()
    );
    eprintln!("{} log lines scanned", lines.len());
    for secret in [erased.as_str(), known.as_str(), unknown, word] {
        let leaks: Vec<_> = lines.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} leaked into the log: {leaks:#?}");
    }
}

/// The customer ids in every Parquet file under `dir` (the feedback log's day folders), read back with pyarrow.
fn logged_customers(python: &Path, dir: &Path) -> Vec<String> {
    let script = "import sys, pathlib, pyarrow.parquet as pq\n\
        for f in sorted(pathlib.Path(sys.argv[1]).rglob('part-*.parquet')):\n\
        \x20   for c in pq.read_table(f, columns=['customer_id']).column('customer_id').to_pylist():\n\
        \x20       print(c)\n";
    run_python(python, script, &[dir.to_str().unwrap()])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn erasure_removes_the_customer_from_the_outcome_and_decision_logs() {
    let Some(python) = dataeng_python() else {
        return;
    };
    let state = TempDir::new("erase-feedback-state");
    let feedback = TempDir::new("erase-feedback-logs");
    let mut cfg = with_state(&sample_snapshot(), state.path());
    cfg.feedback_dir = Some(feedback.path().to_path_buf());
    let server = start_ready(cfg);
    let (erased, kept) = ("C0000003", "C0000004");
    // A logged decision (insights are sampled at 1.0) and an outcome for each, compacted into Parquet at once.
    let (status, body) = post(
        &server,
        "/v1/insights",
        &json!({"customer_ids": [erased, kept]}),
    );
    assert_eq!(status, 200, "{body}");
    let events: Vec<Value> = [erased, kept]
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"event_id": format!("ev-{i}"), "customer_id": c, "action": "retention_call",
                   "outcome": "retained", "occurred_at": "2026-12-01T10:00:00Z"})
        })
        .collect();
    let (status, body) = post(&server, "/v1/outcomes", &json!({ "events": events }));
    assert_eq!(status, 200, "{body}");
    server
        .state
        .feedback
        .as_ref()
        .unwrap()
        .compact_now()
        .unwrap();
    // One more outcome stays in the write-ahead log only: erasure must reach it there too.
    let late = json!({"events": [{"event_id": "ev-late", "customer_id": erased, "action": "retention_call",
                                   "outcome": "churned", "occurred_at": "2026-12-01T11:00:00Z"}]});
    assert_eq!(post(&server, "/v1/outcomes", &late).0, 200);
    let before = logged_customers(&python, feedback.path());
    assert_eq!(
        before.iter().filter(|c| *c == erased).count(),
        2,
        "{before:?}"
    );

    let (status, report) = erase(&server, erased, Some(ADMIN));
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["rows_removed"], 3,
        "two in Parquet, one in the log: {report}"
    );
    let files = report["files_rewritten"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["path"].as_str().unwrap().contains("wal")),
        "{report}"
    );

    server
        .state
        .feedback
        .as_ref()
        .unwrap()
        .compact_now()
        .unwrap();
    let after = logged_customers(&python, feedback.path());
    assert!(!after.iter().any(|c| c == erased), "{after:?}");
    assert_eq!(after.iter().filter(|c| *c == kept).count(), 2, "{after:?}");
    let audit = audit_lines(state.path());
    assert_eq!(
        audit.last().unwrap()["files"].as_array().unwrap().len(),
        files.len()
    );
    server.stop();
}

#[test]
fn the_erase_command_removes_the_customer_from_a_stopped_servers_logs() {
    let Some(python) = dataeng_python() else {
        return;
    };
    let feedback = TempDir::new("erase-cli-feedback");
    let state = TempDir::new("erase-cli-feedback-state");
    let mut cfg = config(&sample_snapshot());
    cfg.feedback_dir = Some(feedback.path().to_path_buf());
    let server = start_ready(cfg);
    let (erased, kept) = ("C0000005", "C0000006");
    let (status, body) = post(
        &server,
        "/v1/insights",
        &json!({"customer_ids": [erased, kept]}),
    );
    assert_eq!(status, 200, "{body}");
    let events: Vec<Value> = [erased, kept]
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"event_id": format!("cli-{i}"), "customer_id": c, "action": "retention_call",
                   "outcome": "churned", "occurred_at": "2026-12-01T10:00:00Z"})
        })
        .collect();
    assert_eq!(
        post(&server, "/v1/outcomes", &json!({ "events": events })).0,
        200
    );
    // Stopping compacts the log into Parquet: what `crmscore erase` finds with the server down.
    server.stop();
    let before = logged_customers(&python, feedback.path());
    assert_eq!(
        before.iter().filter(|c| *c == erased).count(),
        2,
        "{before:?}"
    );

    let (ok, text) = cli(&[
        "--id",
        erased,
        "--state-dir",
        state.path().to_str().unwrap(),
        "--feedback-dir",
        feedback.path().to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("2 row(s) removed"), "{text}");
    let after = logged_customers(&python, feedback.path());
    assert!(!after.iter().any(|c| c == erased), "{after:?}");
    assert_eq!(after.iter().filter(|c| *c == kept).count(), 2, "{after:?}");
    let audit = audit_lines(state.path());
    assert_eq!(
        audit.last().unwrap()["files"].as_array().unwrap().len(),
        2,
        "{audit:?}"
    );
}
