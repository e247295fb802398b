//! API keys over a real socket: every route but the probes needs a key, the admin routes take the admin token
//! instead, the keys file rotates without a restart, a bad edit keeps the served keys, and metrics count requests
//! by key name without ever showing a key.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use crmscore::RunningServer;
use crmscore::api_keys::digest_hex;
use serde_json::{Value, json};

const ADMIN: &str = "admin-s3cret";
const WEB_KEY: &str = "k-web-4b1d3c9a0e7f";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// One request with an optional bearer credential: status, headers, body (a JSON string when not JSON).
fn call(
    server: &RunningServer,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (u16, ureq::http::HeaderMap, Value) {
    let url = url(server, path);
    let auth = bearer.map(|key| format!("Bearer {key}"));
    let result = match (method, body) {
        ("GET", _) => {
            let mut req = agent().get(&url);
            if let Some(auth) = &auth {
                req = req.header("authorization", auth);
            }
            req.call()
        }
        (_, body) => {
            let mut req = agent()
                .post(&url)
                .header("content-type", "application/json");
            if let Some(auth) = &auth {
                req = req.header("authorization", auth);
            }
            req.send(body.map_or(String::new(), Value::to_string))
        }
    };
    let mut resp = result.expect("request reaches the server");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, json)
}

fn write_keys(path: &Path, text: &str) {
    // Renamed into place, as an operator's tooling should: the watcher never sees a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn start_with_keys(keys_file: &Path) -> RunningServer {
    let mut cfg = config(&sample_snapshot());
    cfg.api_keys_file = Some(keys_file.to_path_buf());
    cfg.admin_token = Some(ADMIN.into());
    // Readiness is open, so the shared helper can wait on it without a key.
    start_ready(cfg)
}

/// The value of one sample line (`name{labels} value`) of the Prometheus text, if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn assert_401(status: u16, headers: &ureq::http::HeaderMap, what: &str) {
    assert_eq!(status, 401, "{what}");
    assert_eq!(
        headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer"),
        "{what}"
    );
}

#[test]
fn every_route_but_the_probes_needs_a_key_and_admin_routes_take_the_admin_token() {
    let dir = TempDir::new("api-keys");
    let keys = dir.path().join("keys.txt");
    write_keys(
        &keys,
        &format!(
            "# test keys\nweb:{}\n\nbatch:{}\n",
            digest_hex(WEB_KEY),
            digest_hex("other")
        ),
    );
    let server = start_with_keys(&keys);
    let score = json!({"customer_ids": ["nobody"]});

    for probe in ["/v2/health/live", "/v2/health/ready"] {
        assert_eq!(
            call(&server, "GET", probe, None, None).0,
            200,
            "{probe} is open"
        );
    }

    // No key, a wrong key: 401 in the route's envelope, and the same answer for every wrong key.
    let (status, headers, body) = call(&server, "POST", "/v1/churn/score", None, Some(&score));
    assert_401(status, &headers, "no key on /v1");
    assert!(v1_error(&body, "unauthorized").contains("Authorization: Bearer"));
    let (status, headers, wrong) = call(
        &server,
        "POST",
        "/v1/churn/score",
        Some("guess"),
        Some(&score),
    );
    assert_401(status, &headers, "wrong key on /v1");
    v1_error(&wrong, "unauthorized");
    let (_, _, other_wrong) = call(
        &server,
        "POST",
        "/v1/churn/score",
        Some("web"),
        Some(&score),
    );
    assert_eq!(
        wrong, other_wrong,
        "a key name is no key, and the answer does not say so"
    );
    let (status, headers, body) = call(&server, "GET", "/v2/models/churn", Some("guess"), None);
    assert_401(status, &headers, "wrong key on /v2");
    assert!(v2_error(&body).contains("not valid"));
    for path in ["/v2", "/v1/snapshot", "/metrics", "/no/such/route"] {
        let (status, headers, _) = call(&server, "GET", path, None, None);
        assert_401(status, &headers, path);
    }

    // The right key, on /v1 and /v2 routes; with it an unknown route is a plain 404.
    let (status, _, body) = call(
        &server,
        "POST",
        "/v1/churn/score",
        Some(WEB_KEY),
        Some(&score),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["error"]["code"], "unknown_customer",
        "{body}"
    );
    let (status, _, body) = call(&server, "GET", "/v2/models/churn", Some(WEB_KEY), None);
    assert_eq!(
        (status, body["name"].as_str()),
        (200, Some("churn")),
        "{body}"
    );
    assert_eq!(call(&server, "GET", "/v2", Some(WEB_KEY), None).0, 200);
    assert_eq!(
        call(&server, "GET", "/v1/snapshot", Some("other"), None).0,
        200
    );
    assert_eq!(
        call(&server, "GET", "/no/such/route", Some(WEB_KEY), None).0,
        404
    );

    // Admin routes: the admin token, not an API key.
    let reload = "/v1/admin/snapshot/reload";
    let (status, _, body) = call(&server, "POST", reload, Some(WEB_KEY), None);
    assert_eq!(status, 401);
    assert!(v1_error(&body, "unauthorized").contains("admin token"));
    let (status, _, body) = call(&server, "POST", reload, Some(ADMIN), None);
    assert_eq!(status, 200, "{body}");
    let load = "/v2/repository/models/nope/load";
    assert_eq!(call(&server, "POST", load, Some(WEB_KEY), None).0, 401);
    assert_eq!(
        call(&server, "POST", load, Some(ADMIN), None).0,
        404,
        "admin token passes"
    );

    // Metrics: requests by key name, refusals by reason, and never a key.
    let (status, _, metrics) = call(&server, "GET", "/metrics", Some(WEB_KEY), None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().expect("metrics are text").to_string();
    let requests = |name: &str| {
        sample(
            &metrics,
            &format!("crmscore_api_key_requests_total{{key=\"{name}\"}}"),
        )
    };
    assert!(requests("web").is_some_and(|n| n >= 5.0), "{metrics}");
    assert_eq!(requests("batch"), Some(1.0), "{metrics}");
    assert!(metrics.contains("crmscore_api_key_rejected_total{reason=\"missing\"}"));
    assert!(metrics.contains("crmscore_api_key_rejected_total{reason=\"invalid\"}"));
    assert_eq!(
        sample(&metrics, "crmscore_api_keys_file_refused"),
        Some(0.0)
    );
    assert!(
        metrics.contains(r#"route="/v1/churn/score",status="401""#),
        "a refusal is counted under its route: {metrics}"
    );
    for secret in [WEB_KEY, "other", &digest_hex(WEB_KEY), ADMIN] {
        assert!(!metrics.contains(secret), "metrics show {secret}");
    }
    server.stop();
}

#[test]
fn the_keys_file_rotates_without_a_restart_and_a_bad_edit_keeps_the_served_keys() {
    let dir = TempDir::new("api-keys-rotate");
    let keys = dir.path().join("keys.txt");
    write_keys(&keys, &format!("web:{}\n", digest_hex(WEB_KEY)));
    let server = start_with_keys(&keys);
    let status_with = |key: &str| call(&server, "GET", "/v1/snapshot", Some(key), None).0;
    assert_eq!(status_with(WEB_KEY), 200);

    // Rotate: a new key replaces the old one; the watcher polls every 50 ms.
    let new_key = "k-web-rotated-77e2";
    write_keys(&keys, &format!("# rotated\nweb:{}\n", digest_hex(new_key)));
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_with(new_key) != 200 {
        assert!(Instant::now() < deadline, "the new key was not taken up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status_with(WEB_KEY), 401, "the old key stops working");

    // A bad edit: refused (metric set), and the served key keeps working.
    write_keys(&keys, &format!("web:{}\nbroken line\n", digest_hex("next")));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, metrics) = call(&server, "GET", "/metrics", Some(new_key), None);
        let metrics = metrics.as_str().unwrap_or_default().to_string();
        if sample(&metrics, "crmscore_api_keys_file_refused") == Some(1.0) {
            let failures = sample(&metrics, "crmscore_api_keys_load_failures_total");
            assert_eq!(failures, Some(1.0), "{metrics}");
            let loads = sample(&metrics, "crmscore_api_keys_loads_total");
            assert_eq!(loads, Some(1.0), "the rotation: {metrics}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bad edit was not noticed: {metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status_with(new_key), 200, "the served key stays");
    assert_eq!(
        status_with("next"),
        401,
        "the refused file's key is not served"
    );
    server.stop();
}

#[test]
fn a_bad_keys_file_refuses_start_up_naming_the_line() {
    let dir = TempDir::new("api-keys-bad");
    let keys = dir.path().join("keys.txt");
    let good = format!("web:{}\n", digest_hex(WEB_KEY));
    let cases = [
        (format!("# keys\n{good}raw-key-pasted\n"), "line 3"),
        (format!("{good}web:{}\n", digest_hex("other")), "line 2"),
        (format!("{good}app:{}\n", &digest_hex("x")[..10]), "line 2"),
        ("# nothing yet\n".to_string(), "no keys"),
    ];
    for (text, expected) in cases {
        write_keys(&keys, &text);
        let mut cfg = config(&sample_snapshot());
        cfg.api_keys_file = Some(keys.clone());
        let Err(error) = crmscore::start(cfg) else {
            panic!("started with a bad keys file: {text}")
        };
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
        assert!(message.contains("keys.txt"), "{message}");
        assert!(!message.contains("raw-key-pasted"), "{message}");
    }
    let mut cfg = config(&sample_snapshot());
    cfg.api_keys_file = Some(dir.path().join("missing.txt"));
    let Err(error) = crmscore::start(cfg) else {
        panic!("started without its keys file")
    };
    assert!(error.to_string().contains("missing.txt"), "{error}");
}
