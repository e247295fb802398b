//! POST /v1/outcomes and the decision log over real HTTP and real files: validation, idempotent replays, decision
//! ids joined to outcomes as pyarrow and DuckDB read the folders, and no acknowledged event lost to `kill -9`.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use crmscore::feedback::compact;
use crmscore::feedback::table::{self, Kind};
use serde_json::{Value, json};

fn event(id: &str, customer: impl Into<Value>) -> Value {
    let customer: Value = customer.into();
    json!({"event_id": id, "customer_id": customer, "action": "retention_call", "outcome": "retained",
           "occurred_at": "2026-11-30T14:05:00Z", "channel": "phone", "note": "called back"})
}

fn feedback_server(dir: &Path) -> crmscore::RunningServer {
    let mut config = config(&sample_snapshot());
    config.feedback_dir = Some(dir.to_path_buf());
    config.max_items_per_request = 20;
    start_ready(config)
}

/// Every event id in the outcome Parquet files, with how often it appears (read with plain arrow).
fn stored_event_ids(dir: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for day in compact::days(dir, Kind::Outcomes).unwrap() {
        for part in compact::parts(&compact::day_dir(dir, Kind::Outcomes, &day)).unwrap() {
            for batch in compact::read_file(&part, Some("event_id")).unwrap() {
                for id in table::text_column(&batch, "event_id").unwrap() {
                    *counts.entry(id.unwrap()).or_insert(0) += 1;
                }
            }
        }
    }
    counts
}

#[test]
fn bad_batches_are_refused_whole_naming_the_event_and_field() {
    let tmp = TempDir::new("outcomes-validate");
    let server = feedback_server(tmp.path());
    let mut bad = event("e2", "C1");
    bad["outcome"] = json!("maybe");
    let (status, body) = post(
        &server,
        "/v1/outcomes",
        &json!({"events": [event("e1", "C1"), bad]}),
    );
    assert_eq!(status, 400);
    let message = v1_error(&body, "bad_request");
    assert!(message.contains("events[1].outcome"), "{message}");
    for allowed in ["accepted", "declined", "no_response", "churned", "retained"] {
        assert!(message.contains(allowed), "{message}");
    }
    let cases = [
        ("action", Value::Null, "events[0].action"),
        ("occurred_at", json!("30/11/2026"), "events[0].occurred_at"),
        ("event_id", json!(""), "events[0].event_id"),
        ("note", json!("x".repeat(2_001)), "events[0].note"),
        ("customer_id", json!(1.5), "events[0].customer_id"),
    ];
    for (field, value, named) in cases {
        let mut e = event("e3", "C1");
        match value {
            Value::Null => {
                e.as_object_mut().unwrap().remove(field);
            }
            v => e[field] = v,
        }
        let (status, body) = post(&server, "/v1/outcomes", &json!({"events": [e]}));
        assert_eq!(status, 400, "{field}: {body}");
        assert!(v1_error(&body, "bad_request").contains(named), "{body}");
    }
    let too_many: Vec<Value> = (0..21).map(|i| event(&format!("m{i}"), "C1")).collect();
    let (status, body) = post(&server, "/v1/outcomes", &json!({"events": too_many}));
    assert_eq!(status, 400, "{body}");
    let (status, _) = post(&server, "/v1/outcomes", &json!({"events": []}));
    assert_eq!(status, 400);
    let (status, body) = post(&server, "/v1/outcomes", &json!({"event": []}));
    assert_eq!(status, 400, "{body}");
    // Nothing of a refused batch was stored: e1 is new here.
    let (status, body) = post(
        &server,
        "/v1/outcomes",
        &json!({"events": [event("e1", "C1")]}),
    );
    assert_eq!(
        (status, &body),
        (200, &json!({"recorded": 1, "duplicates": 0}))
    );
    server.stop();
    assert_eq!(stored_event_ids(tmp.path()).len(), 1);
}

#[test]
fn replays_are_acknowledged_and_stored_once_across_a_restart() {
    let tmp = TempDir::new("outcomes-replay");
    let server = feedback_server(tmp.path());
    let batch = json!({"events": [event("r1", "C1"), event("r2", 42), event("r1", "C1")]});
    let (status, body) = post(&server, "/v1/outcomes", &batch);
    assert_eq!(
        (status, &body),
        (200, &json!({"recorded": 2, "duplicates": 1}))
    );
    let (_, body) = post(&server, "/v1/outcomes", &batch);
    assert_eq!(body, json!({"recorded": 0, "duplicates": 3}));
    let (_, metrics) = get_text_body(&server, "/metrics");
    assert!(
        metrics.contains("crmscore_outcomes_recorded_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("crmscore_outcomes_duplicates_total 4"),
        "{metrics}"
    );
    server.stop();
    let server = feedback_server(tmp.path());
    let (_, body) = post(
        &server,
        "/v1/outcomes",
        &json!({"events": [event("r2", 42), event("r3", "C3")]}),
    );
    assert_eq!(body, json!({"recorded": 1, "duplicates": 1}));
    server.stop();
    let stored = stored_event_ids(tmp.path());
    assert_eq!(stored.len(), 3);
    assert!(stored.values().all(|&n| n == 1), "{stored:?}");
}

fn get_text_body(server: &crmscore::RunningServer, path: &str) -> (u16, String) {
    let (status, _, text) = get_text(server, path);
    (status, text)
}

#[test]
fn recording_off_is_a_clear_503() {
    let server = start_ready(config(&sample_snapshot()));
    let (status, body) = post(
        &server,
        "/v1/outcomes",
        &json!({"events": [event("x", "C1")]}),
    );
    assert_eq!(status, 503);
    v1_error(&body, "feedback_disabled");
    // Ids are in replies even with recording off.
    let id = ids_of(&sample_rows(1)).remove(0);
    let (_, body) = post(&server, "/v1/churn/score", &json!({"customer_ids": [id]}));
    assert_eq!(
        body["results"][0]["decision_id"].as_str().unwrap().len(),
        26,
        "{body}"
    );
    server.stop();
}

const JOIN_SCRIPT: &str = r#"
import json, sys
import pyarrow.dataset as ds
import duckdb
root = sys.argv[1]
out = {}
outcomes = ds.dataset(root + "/outcomes", format="parquet", partitioning="hive").to_table()
decisions = ds.dataset(root + "/decisions", format="parquet", partitioning="hive").to_table()
out["outcome_types"] = {f.name: str(f.type) for f in outcomes.schema}
out["decision_types"] = {f.name: str(f.type) for f in decisions.schema}
joined = outcomes.join(decisions, "decision_id", join_type="inner", right_suffix="_d")
out["pyarrow_joined"] = sorted(joined.column("event_id").to_pylist())
out["pyarrow_routes"] = sorted(set(decisions.column("route").to_pylist()))
frame = decisions.to_pandas()
out["features"] = frame["features"].notna().all().item()
con = duckdb.connect()
rows = con.execute(f"""
  select o.event_id, d.route, d.customer_id = o.customer_id
  from read_parquet('{root}/outcomes/*/*.parquet', hive_partitioning = true) o
  join read_parquet('{root}/decisions/*/*.parquet', hive_partitioning = true) d using (decision_id)
  order by o.event_id""").fetchall()
out["duckdb_joined"] = [[r[0], r[1], r[2]] for r in rows]
out["duckdb_dates"] = [str(r[0]) for r in con.execute(
  f"select distinct date from read_parquet('{root}/outcomes/*/*.parquet', hive_partitioning = true)").fetchall()]
print(json.dumps(out))
"#;

#[test]
fn decision_ids_join_outcomes_as_pyarrow_and_duckdb_read_the_folders() {
    let Some(python) = dataeng_python() else {
        return;
    };
    let tmp = TempDir::new("outcomes-join");
    let mut config = config(&sample_snapshot());
    config.feedback_dir = Some(tmp.path().to_path_buf());
    config.policy = Some(repo().join("policies/engagement.toml"));
    config.decision_log_sample = 1.0;
    config.decision_log_features = true;
    let server = start_ready(config);
    let ids = ids_of(&sample_rows(3));
    let (status, insights) = post(&server, "/v1/insights", &json!({"customer_ids": ids}));
    assert_eq!(status, 200, "{insights}");
    let (status, churn) = post(
        &server,
        "/v1/churn/score",
        &json!({"customer_ids": [ids[0]]}),
    );
    assert_eq!(status, 200, "{churn}");
    let (status, one) = get(&server, &format!("/v1/customers/{}/insights", ids[1]));
    assert_eq!(status, 200, "{one}");
    let mut decisions: Vec<String> = insights["results"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&churn["results"][0], &one["result"]])
        .map(|r| {
            r["decision_id"]
                .as_str()
                .expect("every result has a decision id")
                .to_string()
        })
        .collect();
    assert_eq!(
        decisions.iter().collect::<HashSet<_>>().len(),
        5,
        "{decisions:?}"
    );
    let events: Vec<Value> = ids
        .iter()
        .zip(&decisions)
        .enumerate()
        .map(|(i, (customer, decision))| {
            let mut e = event(&format!("join-{i}"), customer.as_str());
            e["decision_id"] = json!(decision);
            e
        })
        .chain([event("join-none", "C404")])
        .collect();
    let (status, body) = post(&server, "/v1/outcomes", &json!({"events": events}));
    assert_eq!(status, 200, "{body}");
    server.stop();
    decisions.sort();
    let out = run_python(&python, JOIN_SCRIPT, &[tmp.path().to_str().unwrap()]);
    let out: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        out["pyarrow_joined"],
        json!(["join-0", "join-1", "join-2"]),
        "{out}"
    );
    assert_eq!(
        out["duckdb_joined"],
        json!([
            ["join-0", "insights", true],
            ["join-1", "insights", true],
            ["join-2", "insights", true]
        ]),
        "{out}"
    );
    assert_eq!(
        out["pyarrow_routes"],
        json!(["churn_score", "insights"]),
        "{out}"
    );
    assert_eq!(out["features"], json!(true), "{out}");
    assert_eq!(
        out["outcome_types"]["occurred_at"], "timestamp[us, tz=UTC]",
        "{out}"
    );
    assert_eq!(out["decision_types"]["score"], "double", "{out}");
    assert_eq!(out["duckdb_dates"].as_array().unwrap().len(), 1, "{out}");
}

/// The address a served binary logs.
fn address(served: &Served) -> String {
    let line = served.wait_line(|l| l.contains("listening") && l.contains("addr="));
    let addr = line
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the server logs its address")
        .to_string();
    format!("http://{addr}")
}

fn post_to(base: &str, body: &Value) -> Result<(u16, Value), String> {
    let mut resp = agent()
        .post(format!("{base}/v1/outcomes"))
        .header("content-type", "application/json")
        .send(body.to_string())
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Distinctive values that must never reach the log.
const SECRET_CUSTOMER: &str = "CUSTSECRET";
const SECRET_NOTE: &str = "NOTESECRET-do-not-log";

#[test]
fn kill_9_under_load_loses_no_acknowledged_event_and_shows_no_half_file() {
    let tmp = TempDir::new("outcomes-kill");
    let dir = tmp.path().to_str().unwrap().to_string();
    let args = [
        "--feedback-dir",
        &dir,
        "--feedback-compact-s",
        "1",
        "--http-workers",
        "2",
    ];
    let served = Served::start(&args, "trace");
    let base = address(&served);
    wait_ready_at(&base);
    // A refused batch is logged (at debug) without its values too.
    let mut bad = event("kill-bad", SECRET_CUSTOMER);
    bad["note"] = json!(SECRET_NOTE);
    bad["outcome"] = json!(SECRET_NOTE);
    let (status, _) = post_to(&base, &json!({ "events": [bad] })).unwrap();
    assert_eq!(status, 400);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|t| {
            let (acked, stop, base) = (acked.clone(), stop.clone(), base.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let ids: Vec<String> = (0..50).map(|i| format!("kill-{t}-{n}-{i}")).collect();
                    n += 1;
                    let events: Vec<Value> = ids
                        .iter()
                        .map(|id| {
                            let mut e = event(id, format!("{SECRET_CUSTOMER}-{t}"));
                            e["note"] = json!(SECRET_NOTE);
                            e
                        })
                        .collect();
                    match post_to(&base, &json!({ "events": events })) {
                        Ok((200, body)) => {
                            assert_eq!(body["recorded"], 50, "{body}");
                            acked.lock().unwrap().extend(ids);
                        }
                        Ok((status, body)) => panic!("{status}: {body}"),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    // Long enough for several compactions to publish files while requests keep coming.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 5_000 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1_500));
    let mut first_lines = served.stop(); // SIGKILL, mid-load
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(acked.len() >= 500, "too little load: {}", acked.len());

    let served = Served::start(&args, "trace");
    let base = address(&served);
    wait_ready_at(&base);
    // A replay of acknowledged events after the crash is stored once.
    let replay: Vec<Value> = acked[..10]
        .iter()
        .map(|id| event(id, SECRET_CUSTOMER))
        .collect();
    let (status, body) = post_to(&base, &json!({ "events": replay })).unwrap();
    assert_eq!(
        (status, &body),
        (200, &json!({"recorded": 0, "duplicates": 10}))
    );
    let second = served.stop();
    let recovered = second.iter().find(|l| l.contains("outcome log recovered"));
    println!(
        "{} events acknowledged before the kill; restart: {recovered:?}",
        acked.len()
    );
    first_lines.extend(second);

    let stored = stored_event_ids(tmp.path());
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        missing.first()
    );
    let doubled: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "stored twice: {doubled:?}");
    // Readers see only whole files: every visible file reads, no temp file is left.
    for kind in [Kind::Outcomes, Kind::Decisions] {
        for day in compact::days(tmp.path(), kind).unwrap() {
            for entry in std::fs::read_dir(compact::day_dir(tmp.path(), kind, &day)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                assert!(!name.ends_with(".tmp"), "{name} left behind");
                assert!(name.starts_with("part-") || name == "_SUCCESS", "{name}");
            }
        }
    }
    assert!(
        first_lines
            .iter()
            .any(|l| l.contains("TRACE") || l.contains("DEBUG")),
        "trace logging is on"
    );
    let leaked: Vec<&String> = first_lines
        .iter()
        .filter(|l| l.contains(SECRET_CUSTOMER) || l.contains(SECRET_NOTE) || l.contains("kill-0-"))
        .collect();
    assert!(leaked.is_empty(), "the log shows ids or notes: {leaked:?}");
}
