//! Deadlines: a client says how long it will wait (`x-request-timeout-ms`, or `parameters.timeout` on v2 infer);
//! a job still queued when its deadline passes is dropped before inference and answered 504 `deadline_exceeded`,
//! while a generous deadline is served. Bad values are a 400.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use crmscore::RunningServer;
use serde_json::{Value, json};

/// Every worker waits this long to fill a batch it cannot fill, so every job waits in the queue about as long.
const FILL_DELAY: Duration = Duration::from_millis(700);

fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        start_ready(crmscore::Config {
            max_delay_us: Some(FILL_DELAY.as_micros() as u64),
            max_batch_size: Some(100_000),
            ..config(&sample_snapshot())
        })
    })
}

fn post_with(path: &str, timeout: Option<&str>, body: &Value) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent
        .post(url(server(), path))
        .header("content-type", "application/json");
    if let Some(t) = timeout {
        request = request.header("x-request-timeout-ms", t);
    }
    let mut resp = request.send(body.to_string()).expect("reaches the server");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn texts() -> Value {
    json!({ "texts": ["the service was great"] })
}

fn v2_texts(parameters: Value) -> Value {
    json!({
        "parameters": parameters,
        "inputs": [{ "name": "text", "shape": [1], "datatype": "BYTES", "data": ["the service was great"] }]
    })
}

fn expired_jobs() -> u64 {
    let (_, _, text) = get_text(server(), "/metrics");
    text.lines()
        .filter(|l| l.starts_with("crmscore_jobs_expired_total{model=\"sentiment\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_request_whose_deadline_passes_in_the_queue_gets_504_and_no_inference() {
    let before = expired_jobs();
    let started = Instant::now();
    let (status, body) = post_with("/v1/sentiment", Some("1"), &texts());
    assert_eq!(status, 504, "{body}");
    let message = v1_error(&body, "deadline_exceeded");
    assert!(message.contains("1 ms"), "names the deadline: {message}");
    assert!(
        started.elapsed() < FILL_DELAY,
        "answered at the deadline, not after the queue wait"
    );
    // The worker drops the job when its batch closes, before inference.
    let limit = Instant::now() + Duration::from_secs(10);
    while expired_jobs() <= before {
        assert!(
            Instant::now() < limit,
            "crmscore_jobs_expired_total never moved"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_generous_deadline_is_served() {
    let (status, body) = post_with("/v1/sentiment", Some("60000"), &texts());
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_with("/v1/sentiment", None, &texts());
    assert_eq!(
        status, 200,
        "no header, no server default: no deadline: {body}"
    );
}

#[test]
fn a_bad_timeout_header_is_400() {
    for bad in ["abc", "-5", "0", "1.5", ""] {
        let (status, body) = post_with("/v1/sentiment", Some(bad), &texts());
        assert_eq!(status, 400, "{bad:?}: {body}");
        let message = v1_error(&body, "bad_request");
        assert!(message.contains("x-request-timeout-ms"), "{message}");
    }
    let (status, body) = post_with(
        "/v2/models/sentiment/infer",
        Some("soon"),
        &v2_texts(json!({})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(v2_error(&body).contains("x-request-timeout-ms"));
}

#[test]
fn v2_infer_takes_parameters_timeout_and_the_header() {
    let path = "/v2/models/sentiment/infer";
    let (status, body) = post_with(path, None, &v2_texts(json!({ "timeout": 1 })));
    assert_eq!(status, 504, "{body}");
    assert!(v2_error(&body).contains("deadline of 1 ms"), "{body}");
    let (status, body) = post_with(path, Some("1"), &v2_texts(json!({})));
    assert_eq!(status, 504, "{body}");
    let (status, body) = post_with(path, None, &v2_texts(json!({ "timeout": 60_000_000 })));
    assert_eq!(status, 200, "{body}");
    for bad in [json!("soon"), json!(0), json!(-1), json!(2.5)] {
        let (status, body) = post_with(path, None, &v2_texts(json!({ "timeout": bad })));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(v2_error(&body).contains("parameters.timeout"), "{body}");
    }
}

#[test]
fn the_server_default_applies_to_requests_that_name_no_deadline() {
    let server = start_ready(crmscore::Config {
        max_delay_us: Some(FILL_DELAY.as_micros() as u64),
        max_batch_size: Some(100_000),
        default_timeout_ms: Some(1),
        ..config(&sample_snapshot())
    });
    let (status, body) = post(&server, "/v1/sentiment", &texts());
    assert_eq!(status, 504, "{body}");
    v1_error(&body, "deadline_exceeded");
    server.stop();
}

#[test]
fn insights_take_the_deadline_header() {
    let id = ids_of(&sample_rows(1)).remove(0);
    let body = json!({ "customer_ids": [id] });
    let (status, reply) = post_with("/v1/insights", Some("1"), &body);
    assert_eq!(status, 504, "{reply}");
    v1_error(&reply, "deadline_exceeded");
    let (status, reply) = post_with("/v1/insights", Some("soon"), &body);
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = post_with("/v1/insights", Some("60000"), &body);
    assert_eq!(status, 200, "{reply}");
}
