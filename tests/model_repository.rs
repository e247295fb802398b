//! The model repository over a real socket: a broken folder is reported not ready while the others serve (or
//! refuses the start under --strict-models), folders fixed, added and removed at run time, and the repository
//! routes (index, unload, load) behind the admin token.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use crmscore::{Config, RunningServer};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "s3cret";

/// Copies the shipped model `from` into `models/<to>`.
fn copy_model(from: &str, models: &Path, to: &str) {
    let dest = models.join(to);
    std::fs::create_dir_all(&dest).unwrap();
    for entry in std::fs::read_dir(common::models().join(from)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
}

/// Writes a file atomically (temporary name, then rename), as a deployment should.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `models/<name>`: the churn manifest beside a file that is not an ONNX graph.
fn broken_model(models: &Path, name: &str) {
    copy_model("churn", models, name);
    replace(
        &models.join(name).join("model.onnx"),
        b"this is not an ONNX graph",
    );
}

/// Starts a server that may not become ready, and waits (bounded) until its snapshot serves.
fn start_serving(cfg: Config) -> RunningServer {
    let server = crmscore::start(cfg).expect("the server starts despite broken model folders");
    wait_for(&server, "/v1/snapshot", WAIT, |status, _| status == 200);
    server
}

/// One request with an optional bearer token; status and JSON body.
fn call(
    server: &RunningServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let auth = token.map(|t| format!("Bearer {t}"));
    let result = match method {
        "GET" => {
            let mut req = agent.get(url(server, path));
            if let Some(auth) = &auth {
                req = req.header("authorization", auth);
            }
            req.call()
        }
        _ => {
            let mut req = agent
                .post(url(server, path))
                .header("content-type", "application/json");
            if let Some(auth) = &auth {
                req = req.header("authorization", auth);
            }
            req.send(body)
        }
    };
    let mut resp = result.expect("request reaches the server");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn index(server: &RunningServer, body: &str) -> Vec<Value> {
    let (status, body) = call(server, "POST", "/v2/repository/index", Some(TOKEN), body);
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("the index is a list").clone()
}

fn entry<'a>(index: &'a [Value], name: &str) -> &'a Value {
    index
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not in the index {index:?}"))
}

fn metrics(server: &RunningServer) -> String {
    get_text(server, "/metrics").2
}

fn churn_ids(n: usize) -> Vec<String> {
    ids_of(&sample_rows(n))
}

#[test]
fn a_broken_folder_is_not_ready_while_the_others_serve_and_fixing_it_serves_it() {
    let dir = TempDir::new("repo-broken");
    for model in ["churn", "recommendation", "segmentation", "sentiment"] {
        copy_model(model, dir.path(), model);
    }
    broken_model(dir.path(), "broken");
    let mut cfg = Config::for_tests(dir.path(), sample_snapshot());
    cfg.admin_token = Some(TOKEN.into());
    let server = start_serving(cfg);
    let root = dir.path().to_string_lossy().to_string();

    // The good models score.
    let ids = churn_ids(3);
    let (status, body) = post(&server, "/v1/churn/score", &json!({ "customer_ids": ids }));
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &server,
        "/v1/sentiment",
        &json!({ "texts": ["great service"] }),
    );
    assert_eq!(status, 200, "{body}");

    // The broken one is not ready, with the reason, and never a 404.
    let (status, body) = get(&server, "/v2/models/broken/ready");
    assert_eq!(status, 503, "{body}");
    let reason = v2_error(&body);
    assert!(
        reason.contains("broken") && reason.contains("model.onnx"),
        "{reason}"
    );
    assert!(
        !reason.contains(&root),
        "no server paths without the token: {reason}"
    );
    let (status, body) = post(
        &server,
        "/v1/models/broken/score",
        &json!({ "customer_ids": ids }),
    );
    assert_eq!(status, 503, "{body}");
    assert!(v1_error(&body, "model_unavailable").contains("model.onnx"));
    let infer = json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 1], "data": [0.0]}]});
    let (status, body) = post(&server, "/v2/models/broken/infer", &infer);
    assert_eq!(status, 503, "{body}");

    // The server is not ready, naming it.
    let (status, body) = get(&server, "/v2/health/ready");
    assert_eq!(status, 503, "{body}");
    let reason = v2_error(&body);
    assert!(
        reason.contains("model 'broken'") && reason.contains("model.onnx"),
        "{reason}"
    );
    assert!(!reason.contains(&root), "{reason}");

    // Metadata: not ready, the load error with file names (paths only for the token's holder).
    let (status, meta) = get(&server, "/v2/models/broken");
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["parameters"]["ready"], false, "{meta}");
    assert_eq!(
        meta["versions"],
        json!(["1"]),
        "the manifest parses: {meta}"
    );
    let error = meta["parameters"]["last_load_error"].as_str().unwrap();
    assert!(
        error.contains("model.onnx") && !error.contains(&root),
        "{error}"
    );
    let (_, meta) = call(&server, "GET", "/v2/models/broken", Some(TOKEN), "");
    let error = meta["parameters"]["last_load_error"].as_str().unwrap();
    assert!(error.contains(&root), "the admin sees the path: {error}");

    let text = metrics(&server);
    for line in [
        r#"crmscore_model_ready{model="broken"} 0"#,
        r#"crmscore_model_ready{model="churn"} 1"#,
        r#"crmscore_model_load_failures_total{model="broken"} 1"#,
    ] {
        assert!(text.contains(line), "metrics lack {line}");
    }

    // Fixing the files serves it without a restart.
    replace(
        &dir.path().join("broken/model.onnx"),
        &std::fs::read(common::models().join("churn/model.onnx")).unwrap(),
    );
    wait_for(&server, "/v2/models/broken/ready", WAIT, |status, _| {
        status == 200
    });
    let (status, body) = post(
        &server,
        "/v1/models/broken/score",
        &json!({ "customer_ids": ids }),
    );
    assert_eq!(status, 200, "{body}");
    wait_for(&server, "/v2/health/ready", WAIT, |status, _| status == 200);
    let (_, meta) = get(&server, "/v2/models/broken");
    assert!(meta["parameters"]["last_load_error"].is_null(), "{meta}");
    let text = metrics(&server);
    for line in [
        r#"crmscore_model_ready{model="broken"} 1"#,
        r#"crmscore_model_loads_total{model="broken"} 1"#,
    ] {
        assert!(text.contains(line), "metrics lack {line}");
    }
    server.stop();
}

#[test]
fn insights_and_the_policy_work_without_the_churn_model() {
    let dir = TempDir::new("repo-no-churn");
    for model in ["recommendation", "segmentation"] {
        copy_model(model, dir.path(), model);
    }
    broken_model(dir.path(), "churn");
    let mut cfg = Config::for_tests(dir.path(), sample_snapshot());
    cfg.policy = Some(repo().join("policies/engagement.toml"));
    // The policy names churn features: the broken model's manifest still vouches for them.
    let server = start_serving(cfg);
    let (status, body) = post(
        &server,
        "/v1/insights",
        &json!({"customer_ids": ["C0000042"]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["missing"], json!(["churn"]), "{body}");
    assert!(body["results"][0]["segment"].is_object(), "{body}");
    let (status, body) = post(
        &server,
        "/v1/churn/score",
        &json!({"customer_ids": ["C0000042"]}),
    );
    assert_eq!(status, 503, "{body}");
    let message = v1_error(&body, "model_unavailable");
    assert!(
        message.contains("churn") && message.contains("model.onnx"),
        "{message}"
    );
    let (status, policy) = get(&server, "/v1/policy");
    assert_eq!(status, 200, "{policy}");
    // Fixed at run time, churn joins in.
    replace(
        &dir.path().join("churn/model.onnx"),
        &std::fs::read(common::models().join("churn/model.onnx")).unwrap(),
    );
    wait_for(&server, "/v2/health/ready", WAIT, |status, _| status == 200);
    let (status, body) = post(
        &server,
        "/v1/insights",
        &json!({"customer_ids": ["C0000042"]}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.get("missing").is_none(), "{body}");
    assert!(
        body["results"][0]["churn"]["probability"].is_number(),
        "{body}"
    );
    server.stop();
}

/// Runs the binary until it exits (bounded), returning its exit code and stderr.
fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crmscore"));
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the binary did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn strict_models_refuses_to_start_and_without_it_an_empty_folder_starts_not_ready() {
    let dir = TempDir::new("repo-strict");
    copy_model("churn", dir.path(), "churn");
    broken_model(dir.path(), "broken");
    let mut cfg = Config::for_tests(dir.path(), sample_snapshot());
    cfg.strict_models = true;
    let error = match crmscore::start(cfg) {
        Ok(_) => panic!("--strict-models must refuse a broken folder"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("broken") && error.contains("model.onnx"),
        "{error}"
    );

    let models = dir.path().to_string_lossy().to_string();
    let snapshot = sample_snapshot().to_string_lossy().to_string();
    let args = [
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--models",
        &models,
        "--snapshots",
        &snapshot,
        "--state-dir",
        "",
    ];
    let (code, stderr) = run_binary(&args, &[("CRMSCORE_STRICT_MODELS", "true")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("broken"), "{stderr}");

    let empty = TempDir::new("repo-empty");
    let mut cfg = Config::for_tests(empty.path(), sample_snapshot());
    cfg.strict_models = true;
    assert!(
        crmscore::start(cfg.clone()).is_err(),
        "strict: no models, no start"
    );
    cfg.strict_models = false;
    let server = start_serving(cfg);
    let (status, body) = get(&server, "/v2/health/ready");
    assert_eq!(status, 503, "{body}");
    assert!(v2_error(&body).contains("no model is served"), "{body}");
    server.stop();
}

#[test]
fn folders_added_at_run_time_serve_and_removed_ones_unload_after_answering() {
    let dir = TempDir::new("repo-add-remove");
    let server = start_serving(Config::for_tests(dir.path(), sample_snapshot()));
    // A new folder, copied in place under a hidden name first (hidden folders are not models) and renamed.
    // Its batcher waits 2 s for a batch to fill, so a request stays in flight long enough to remove the folder.
    let staging = dir.path().join(".slow");
    copy_model("churn", dir.path(), ".slow");
    let manifest = std::fs::read_to_string(staging.join("model.toml"))
        .unwrap()
        .replace("max_delay_us = 0", "max_delay_us = 2000000");
    std::fs::write(staging.join("model.toml"), manifest).unwrap();
    std::fs::rename(&staging, dir.path().join("slow")).unwrap();
    wait_for(&server, "/v2/health/ready", WAIT, |status, _| status == 200);
    let ids = churn_ids(1);
    let (status, body) = post(
        &server,
        "/v1/models/slow/score",
        &json!({ "customer_ids": ids }),
    );
    assert_eq!(status, 200, "{body}");
    assert!(metrics(&server).contains(r#"crmscore_model_loads_total{model="slow"} 1"#));

    // A request in flight while the folder goes still gets its answer; new ones get 404 once it is gone.
    let body = json!({ "customer_ids": ids }).to_string();
    let ((status, answer, answered_at), gone_at) = std::thread::scope(|scope| {
        let in_flight = scope.spawn(|| {
            let (status, answer) = call(&server, "POST", "/v1/models/slow/score", None, &body);
            (status, answer, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(500));
        std::fs::remove_dir_all(dir.path().join("slow")).unwrap();
        wait_for(&server, "/v2/models/slow/ready", WAIT, |status, _| {
            status == 404
        });
        let gone_at = Instant::now();
        let (status, body) = post(
            &server,
            "/v1/models/slow/score",
            &json!({ "customer_ids": ids }),
        );
        assert_eq!(status, 404, "{body}");
        v1_error(&body, "unknown_model");
        (in_flight.join().unwrap(), gone_at)
    });
    assert_eq!(status, 200, "the in-flight request is answered: {answer}");
    assert!(
        answered_at > gone_at,
        "it was answered after the model was unloaded"
    );
    let text = metrics(&server);
    assert!(
        text.contains(r#"crmscore_model_unloads_total{model="slow"} 1"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"crmscore_model_ready{model="slow"}"#),
        "{text}"
    );
    server.stop();
}

#[test]
fn the_repository_routes_list_unload_and_load_behind_the_admin_token() {
    let dir = TempDir::new("repo-routes");
    copy_model("churn", dir.path(), "churn");
    copy_model("churn", dir.path(), "badkind");
    let manifest = dir.path().join("badkind/model.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("kind = \"tabular\"", "kind = \"vision\"");
    std::fs::write(&manifest, text).unwrap();
    let mut cfg = Config::for_tests(dir.path(), sample_snapshot());
    cfg.admin_token = Some(TOKEN.into());
    let server = start_serving(cfg);

    // The index lists every folder with its state.
    let (status, body) = call(&server, "POST", "/v2/repository/index", None, "{}");
    assert_eq!(status, 401, "{body}");
    let all = index(&server, "{}");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(entry(&all, "churn")["state"], "READY");
    assert_eq!(entry(&all, "churn")["version"], "1");
    let bad = entry(&all, "badkind");
    assert_eq!(bad["state"], "UNAVAILABLE");
    assert!(
        bad["reason"]
            .as_str()
            .unwrap()
            .contains("unknown kind 'vision'"),
        "{bad}"
    );
    assert_eq!(index(&server, ""), all, "an empty body lists everything");
    let ready = index(&server, r#"{"ready": true}"#);
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert_eq!(ready[0]["name"], "churn");
    let (status, body) = call(&server, "POST", "/v2/repository/index", Some(TOKEN), "{");
    assert_eq!(status, 400, "{body}");

    // Unload needs the token, then stops serving; the watcher does not bring it back when its files change.
    let unload = "/v2/repository/models/churn/unload";
    let (status, body) = call(&server, "POST", unload, None, "");
    assert_eq!(status, 401, "{body}");
    let (status, body) = call(&server, "POST", unload, Some(TOKEN), "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&server, "/v2/models/churn/ready");
    assert_eq!(status, 503, "{body}");
    assert!(v2_error(&body).contains("unloaded"), "{body}");
    let (status, body) = post(
        &server,
        "/v1/churn/score",
        &json!({"customer_ids": churn_ids(1)}),
    );
    assert_eq!(status, 503, "{body}");
    v1_error(&body, "model_unavailable");
    let churn_manifest = dir.path().join("churn/model.toml");
    let bumped = std::fs::read_to_string(&churn_manifest)
        .unwrap()
        .replace("version = \"1\"", "version = \"2\"");
    replace(&churn_manifest, bumped.as_bytes());
    std::thread::sleep(Duration::from_millis(600)); // a dozen polls
    let churn = index(&server, "{}");
    assert_eq!(entry(&churn, "churn")["state"], "UNAVAILABLE", "{churn:?}");
    assert!(
        entry(&churn, "churn")["reason"]
            .as_str()
            .unwrap()
            .contains("unloaded")
    );
    assert!(metrics(&server).contains(r#"crmscore_model_unloads_total{model="churn"} 1"#));
    let (status, _) = call(
        &server,
        "POST",
        "/v2/repository/models/nope/unload",
        Some(TOKEN),
        "",
    );
    assert_eq!(status, 404);

    // Load brings it back, at the folder's current version.
    let (status, body) = call(
        &server,
        "POST",
        "/v2/repository/models/churn/load",
        Some(TOKEN),
        "",
    );
    assert_eq!((status, &body["version"]), (200, &json!("2")), "{body}");
    let (status, body) = post(
        &server,
        "/v1/churn/score",
        &json!({"customer_ids": churn_ids(1)}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(entry(&index(&server, "{}"), "churn")["state"], "READY");
    server.stop();
}
