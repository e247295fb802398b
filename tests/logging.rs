//! Logs of the real binary: JSON lines on request, no colour codes off a terminal, an access log without ids, and
//! client errors kept out of the WARN/ERROR levels.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Started with JSON logs, the access log and debug level; returns the server and its address.
fn json_server() -> (Served, SocketAddr) {
    let served = Served::start(
        &["--log-format", "json", "--access-log"],
        "info,crmscore=debug",
    );
    let line = served
        .wait_line(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["message"] == "listening"));
    let listening: Value = serde_json::from_str(&line).expect("JSON line");
    let addr: SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();
    wait_ready_at(&format!("http://{addr}"));
    (served, addr)
}

#[test]
fn json_log_lines_and_an_access_log_without_ids() {
    let (served, addr) = json_server();
    let status = agent()
        .get(format!(
            "http://{addr}/v1/customers/SECRET-ID-4711/insights"
        ))
        .call()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let lines = served.stop();
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "no ANSI codes off a terminal: {lines:#?}"
    );
    let records = json_lines(&lines);
    assert!(
        records
            .iter()
            .all(|r| r["level"].is_string() && r["timestamp"].is_string())
    );
    let access: Vec<_> = records
        .iter()
        .filter(|r| r["target"] == "crmscore::access")
        .collect();
    let insights: Vec<_> = access
        .iter()
        .filter(|r| r["route"] == "/v1/customers/{id}/insights")
        .collect();
    assert_eq!(
        insights.len(),
        1,
        "one access line per request: {access:#?}"
    );
    let line = insights[0];
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert!(line["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(line["bytes"].as_u64().unwrap() > 0);
    assert!(
        lines.iter().all(|l| !l.contains("SECRET")),
        "no ids or query strings in the log: {lines:#?}"
    );
}

#[test]
fn client_errors_are_not_logged_as_warn_or_error() {
    let (served, addr) = json_server();
    let before = served.lines().len();
    let bad = agent()
        .post(format!("http://{addr}/v1/churn/score"))
        .header("content-type", "application/json")
        .send("{not json")
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let missing = agent().get(format!("http://{addr}/nope")).call().unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    // A malformed request line: actix answers 400 itself, before any route.
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"GARBAGE\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = raw.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    served.wait_line(|l| l.contains("client error") && l.contains("404"));
    std::thread::sleep(Duration::from_millis(200));
    let lines = served.stop();
    let after = json_lines(&lines[before..]);
    let loud: Vec<_> = after
        .iter()
        .filter(|r| r["level"] == "WARN" || r["level"] == "ERROR")
        .collect();
    assert!(loud.is_empty(), "client errors logged loudly: {loud:#?}");
    let client: Vec<_> = after
        .iter()
        .filter(|r| r["message"] == "client error")
        .collect();
    assert!(client.iter().all(|r| r["level"] == "DEBUG"), "{client:#?}");
    assert!(
        client
            .iter()
            .any(|r| r["status"] == 400 && r["route"] == "/v1/churn/score")
    );
}

#[test]
fn text_logs_carry_no_colour_codes_off_a_terminal() {
    let served = Served::start(&["--log-format", "text"], "info");
    served.wait_line(|l| l.contains("listening"));
    let lines = served.stop();
    assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" INFO ") && l.contains("listening")),
        "{lines:#?}"
    );
}
