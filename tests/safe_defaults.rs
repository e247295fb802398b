//! Safe defaults: no open admin routes on the network by accident, no empty tokens, and no server file paths in
//! metadata for callers without the admin token.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::*;
use crmscore::{Config, RunningServer, StartError};
use serde_json::Value;

const TOKEN: &str = "s3cret-admin";

fn start_err(config: Config) -> StartError {
    match crmscore::start(config) {
        Ok(server) => {
            let addr = server.addr;
            server.stop();
            panic!("the server started on {addr}; it should have refused");
        }
        Err(e) => e,
    }
}

fn any_interface() -> SocketAddr {
    "0.0.0.0:0".parse().unwrap()
}

#[test]
fn open_admin_routes_on_a_non_loopback_bind_are_refused() {
    let mut cfg = config(&sample_snapshot());
    cfg.bind = any_interface();
    let message = start_err(cfg).to_string();
    assert!(
        message.contains("--allow-open-admin") && message.contains("--admin-token"),
        "{message}"
    );
}

#[test]
fn allow_open_admin_or_a_token_starts_on_any_interface() {
    for (allow, token) in [(true, None), (false, Some(TOKEN.to_string()))] {
        let mut cfg = config(&sample_snapshot());
        cfg.bind = any_interface();
        cfg.allow_open_admin = allow;
        cfg.admin_token = token;
        let server = crmscore::start(cfg).expect("starts");
        let url = format!("http://127.0.0.1:{}/v2/health/live", server.addr.port());
        let status = ureq::get(&url).call().map(|r| r.status().as_u16());
        server.stop();
        assert_eq!(status.ok(), Some(200));
    }
}

#[test]
fn an_empty_admin_token_is_refused() {
    for token in ["", "   "] {
        let mut cfg = config(&sample_snapshot());
        cfg.admin_token = Some(token.to_string());
        let message = start_err(cfg).to_string();
        assert!(
            message.contains("--admin-token") && message.contains("empty"),
            "{message}"
        );
    }
}

/// The binary exits 1 with the reason, from the flag or the environment, before loading anything.
#[test]
fn the_binary_exits_1_on_unsafe_admin_settings() {
    let run = |args: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crmscore"));
        cmd.arg("serve")
            .args(["--state-dir", "", "--models"])
            .arg(models())
            .arg("--snapshots")
            .arg(sample_snapshot())
            .args(args)
            .env_remove("CRMSCORE_ADMIN_TOKEN")
            .env_remove("CRMSCORE_ALLOW_OPEN_ADMIN")
            .env_remove("CRMSCORE_BIND");
        if let Some(value) = env {
            cmd.env("CRMSCORE_ADMIN_TOKEN", value);
        }
        let out = cmd.output().expect("binary runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stderr) = run(&["--bind", "0.0.0.0:0"], None);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--allow-open-admin"), "{stderr}");
    let (code, stderr) = run(&["--bind", "127.0.0.1:0", "--admin-token", ""], None);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--admin-token") && stderr.contains("empty"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--bind", "127.0.0.1:0"], Some(""));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("empty"), "{stderr}");
}

fn get_as(server: &RunningServer, path: &str, token: Option<&str>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut req = agent.get(url(server, path));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let mut resp = req.call().expect("request reaches the server");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

/// A models folder with a copy of the churn model, served with the admin token and the sample snapshot; then the
/// model file is corrupted so its load error (which names the file) shows in metadata.
#[test]
fn metadata_shows_server_paths_only_to_the_admin_token() {
    let dir = TempDir::new("safe-paths");
    let folder = dir.path().join("churn");
    std::fs::create_dir(&folder).unwrap();
    for f in ["model.onnx", "model.toml"] {
        std::fs::copy(models().join("churn").join(f), folder.join(f)).unwrap();
    }
    let mut cfg = Config::for_tests(dir.path(), sample_snapshot());
    cfg.admin_token = Some(TOKEN.to_string());
    let server = start_ready(cfg);
    std::fs::write(folder.join("model.onnx"), b"not an ONNX graph").unwrap();
    let (status, _) = get_as(&server, "/v2/repository/models/churn/load", None);
    assert_eq!(status, 405, "GET is not the load route");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let load = agent
        .post(url(&server, "/v2/repository/models/churn/load"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send_empty()
        .unwrap();
    assert_eq!(
        load.status().as_u16(),
        400,
        "the corrupt version is refused"
    );

    let dir_text = dir.path().display().to_string();
    let snapshot_dir = sample_snapshot().parent().unwrap().display().to_string();
    let (_, open) = get_as(&server, "/v2/models/churn", None);
    let error = open["parameters"]["last_load_error"]
        .as_str()
        .expect("a load error")
        .to_string();
    assert!(error.contains("model.onnx"), "file names stay: {error}");
    assert!(
        !open.to_string().contains(&dir_text),
        "no server path without the token: {open}"
    );
    let (_, admin) = get_as(&server, "/v2/models/churn", Some(TOKEN));
    let error = admin["parameters"]["last_load_error"].as_str().unwrap();
    assert!(
        error.contains(&dir_text),
        "the admin sees the path: {error}"
    );

    let (_, open) = get_as(&server, "/v1/snapshot", None);
    assert_eq!(open["source"], "customers-sample.parquet", "{open}");
    assert!(!open.to_string().contains(&snapshot_dir), "{open}");
    let (_, admin) = get_as(&server, "/v1/snapshot", Some(TOKEN));
    assert_eq!(admin["source"], sample_snapshot().display().to_string());
    server.stop();
}

/// A server that cannot load its snapshot says why in readiness, naming the file but not where it lives.
#[test]
fn readiness_reasons_name_files_not_server_paths() {
    let dir = TempDir::new("safe-ready");
    let bad = dir.path().join("customers.parquet");
    std::fs::write(&bad, b"not parquet").unwrap();
    let mut cfg = Config::for_tests(models(), dir.path());
    cfg.admin_token = Some(TOKEN.to_string());
    let server = crmscore::start(cfg).expect("starts, not ready");
    let dir_text = dir.path().display().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let open = loop {
        let (status, body) = get_as(&server, "/v2/health/ready", None);
        assert_eq!(status, 503, "{body}");
        if body.to_string().contains("customers.parquet") {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no load error yet: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!open.to_string().contains(&dir_text), "{open}");
    let (_, admin) = get_as(&server, "/v2/health/ready", Some(TOKEN));
    assert!(admin.to_string().contains(&dir_text), "{admin}");
    server.stop();
}

/// Without a token (only possible on loopback, or with --allow-open-admin) every caller is the admin: paths show.
#[test]
fn without_a_token_on_loopback_paths_show() {
    let server = start_ready(config(&sample_snapshot()));
    let (_, body) = get_as(&server, "/v1/snapshot", None);
    assert_eq!(body["source"], sample_snapshot().display().to_string());
    server.stop();
}
