//! The OpenAPI document at /openapi.json: valid under a real validator (openapi-spec-validator, in the venv of
//! `scripts/setup-python.sh --openapi`), listing exactly the routes src/api/mod.rs registers, and every operation
//! in it answering, with real path parameters and bodies, 200 and a body with the fields its schema requires.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use crmscore::RunningServer;
use serde_json::{Value, json};

fn server() -> &'static RunningServer {
    static S: OnceLock<RunningServer> = OnceLock::new();
    S.get_or_init(|| {
        let mut config = config(&sample_snapshot());
        // With a policy, /v1/policy and the insights' next best action answer too.
        config.policy = Some(repo().join("policies/engagement.toml"));
        // With a state folder, erasure answers too.
        let state =
            std::env::temp_dir().join(format!("crmscore-openapi-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        config.state_dir = Some(state);
        // With a logged decision, /v1/admin/report answers too.
        config.feedback_dir = Some(feedback_folder());
        start_ready(config)
    })
}

/// A feedback folder holding one churn decision (the decisions schema of the feedback log), kept for the run.
fn feedback_folder() -> PathBuf {
    use crmscore::feedback::event::{DecisionRow, Row};
    use crmscore::feedback::table::{Kind, to_batch};
    static DIR: OnceLock<TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| TempDir::new("openapi-feedback")).path();
    let day = dir.join("decisions/date=2026-12-01");
    std::fs::create_dir_all(&day).unwrap();
    // Written by the feedback log's own table code: the file is what the server's log writes.
    let decision = Row::Decision(DecisionRow {
        decision_id: "d-openapi-1".into(),
        customer_id: Some("C0000000".into()),
        decided_at: 1_764_547_200_000_000,
        route: "insights".into(),
        model: "churn".into(),
        model_version: "1".into(),
        models: "churn=1".into(),
        score: Some(0.25),
        action: Some("retention_offer".into()),
        ..DecisionRow::default()
    });
    let batch = to_batch(Kind::Decisions, &[&decision]).unwrap();
    write_parquet(&day.join("part-00000.parquet"), &[batch]);
    std::fs::write(day.join("_SUCCESS"), b"").unwrap();
    dir.to_path_buf()
}

fn document() -> Value {
    let (status, doc) = get(server(), "/openapi.json");
    assert_eq!(status, 200, "{doc}");
    doc
}

const METHODS: [&str; 8] = [
    "get", "post", "put", "delete", "patch", "head", "options", "trace",
];

/// Every (METHOD, path) of the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

/// Every (METHOD, pattern) src/api/mod.rs registers: each `resource("...")` with the `web::method()` of its
/// `.route(...)` calls, read from the source so that a route added there without documentation fails here.
fn registered_routes() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(repo().join("src/api/mod.rs")).expect("src/api/mod.rs");
    let marker = "resource(\"";
    let starts: Vec<usize> = source.match_indices(marker).map(|(i, _)| i).collect();
    let mut routes = BTreeSet::new();
    for (n, &start) in starts.iter().enumerate() {
        let rest = &source[start + marker.len()..];
        let pattern = &rest[..rest.find('"').expect("closing quote")];
        let end = starts.get(n + 1).copied().unwrap_or(source.len());
        let body = &source[start..end];
        let methods: Vec<String> = METHODS
            .iter()
            .filter(|m| body.contains(&format!("web::{m}()")))
            .map(|m| m.to_uppercase())
            .collect();
        assert!(!methods.is_empty(), "no method found for {pattern}");
        for method in methods {
            routes.insert((method, pattern.to_string()));
        }
    }
    assert!(routes.len() > 20, "too few routes parsed: {routes:?}");
    routes
}

#[test]
fn the_document_lists_exactly_the_registered_routes() {
    let documented = operations(&document());
    let registered = registered_routes();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented routes the server does not register: {unrouted:?}"
    );
}

fn validator_python() -> Option<PathBuf> {
    let python = repo().join(".venv-openapi/bin/python");
    python.exists().then_some(python)
}

#[test]
fn the_document_is_valid_openapi() {
    let Some(python) = validator_python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but .venv-openapi is missing: run scripts/setup-python.sh --openapi"
        );
        eprintln!(
            "SKIPPED the_document_is_valid_openapi: no .venv-openapi (run scripts/setup-python.sh --openapi)"
        );
        return;
    };
    let doc = document();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let dir = TempDir::new("openapi");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let script = "import json, sys\n\
                  from openapi_spec_validator import validate\n\
                  validate(json.load(open(sys.argv[1])))\n\
                  print('valid')";
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("the validator runs");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator must also refuse a broken document, or the check above proves nothing.
    let mut broken = doc.clone();
    broken["paths"]["/v1/snapshot"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] =
        json!({"$ref": "#/components/schemas/NoSuchSchema"});
    std::fs::write(&file, broken.to_string()).unwrap();
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("the validator runs");
    assert!(
        !out.status.success(),
        "the validator accepted a dangling $ref"
    );
}

/// The shipped model folders.
fn model_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(models())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// One real request for `method path`: its path parameters filled, a body that scores.
struct Call {
    method: String,
    template: String,
    path: String,
    body: Option<Value>,
}

/// A v2 inference request of one row the model takes, built from its metadata.
fn infer_body(model: &str) -> Value {
    let (status, meta) = get(server(), &format!("/v2/models/{model}"));
    assert_eq!(status, 200, "{meta}");
    let input = &meta["inputs"][0];
    let datatype = input["datatype"].as_str().unwrap();
    let (shape, data) = match datatype {
        "BYTES" => (json!([1]), json!(["the service was great"])),
        _ => {
            let width = input["shape"][1].as_i64().unwrap();
            (json!([1, width]), json!(vec![0.0; width as usize]))
        }
    };
    json!({"inputs": [{"name": input["name"], "datatype": datatype, "shape": shape, "data": data}]})
}

fn score_body(model: &str, id: &str) -> Value {
    match model {
        "sentiment" => json!({"texts": ["the service was great"]}),
        "recommendation" => json!({"customer_ids": [id], "k": 3}),
        _ => json!({"customer_ids": [id]}),
    }
}

/// Every operation of the document as real requests: one per model for model routes.
fn calls(doc: &Value, id: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    for (method, template) in operations(doc) {
        let models = match template.contains("{model}") {
            true => model_names(),
            false => vec![String::new()],
        };
        for model in models {
            let version = match template.contains("{version}") {
                true => {
                    let (_, meta) = get(server(), &format!("/v2/models/{model}"));
                    meta["versions"][0].as_str().unwrap().to_string()
                }
                false => String::new(),
            };
            let path = template
                .replace("{model}", &model)
                .replace("{version}", &version)
                .replace("{id}", id);
            let body = match (method.as_str(), template.as_str()) {
                ("POST", t) if t.ends_with("/infer") => Some(infer_body(&model)),
                ("POST", "/v1/models/{model}/score") => Some(score_body(&model, id)),
                ("POST", "/v1/churn/score") => Some(score_body("churn", id)),
                ("POST", "/v1/recommendations") => Some(score_body("recommendation", id)),
                ("POST", "/v1/sentiment") => Some(score_body("sentiment", id)),
                ("POST", "/v1/insights") => Some(json!({"customer_ids": [id]})),
                ("POST", "/v1/outcomes") => Some(json!({"events": [{"event_id": "openapi-1",
                    "customer_id": id, "action": "retention_call", "outcome": "accepted",
                    "occurred_at": "2026-11-30T14:05:00Z"}]})),
                ("POST", "/v2/repository/index") => Some(json!({})),
                ("POST", "/v1/admin/erasures/lift") => Some(json!({"customer_id": id})),
                ("POST", _) => None,
                _ => None,
            };
            calls.push(Call {
                method: method.clone(),
                template: template.clone(),
                path,
                body,
            });
        }
    }
    // The erasure of the customer the others ask about, then its lift, then unloads last (each followed by the
    // load that brings the model back).
    calls.sort_by_key(|c| match (c.method.as_str(), c.template.as_str()) {
        ("DELETE", _) => 1,
        (_, "/v1/admin/erasures/lift") => 2,
        (_, t) if t.ends_with("/unload") => 3,
        _ => 0,
    });
    calls
}

/// The schema `reference` points at, following `$ref`s into the components.
fn resolve<'d>(doc: &'d Value, schema: &'d Value) -> &'d Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The fields the schema requires are in the body (top level, and the first element of arrays).
fn check_required(doc: &Value, schema: &Value, body: &Value, what: &str) {
    let schema = resolve(doc, schema);
    if let (Some(items), Some(first)) =
        (schema.get("items"), body.as_array().and_then(|a| a.first()))
    {
        return check_required(doc, items, first, what);
    }
    for field in schema["required"].as_array().into_iter().flatten() {
        let field = field.as_str().unwrap();
        assert!(
            body.get(field).is_some(),
            "{what}: the reply lacks the required field '{field}': {body}"
        );
    }
}

fn send(call: &Call) -> (u16, Value) {
    match (call.method.as_str(), &call.body) {
        ("GET", _) => get(server(), &call.path),
        ("POST", Some(body)) => post(server(), &call.path, body),
        ("POST", None) => {
            let (status, _, body) = post_raw(server(), &call.path, "");
            (status, body)
        }
        ("DELETE", _) => {
            let mut resp = agent()
                .delete(url(server(), &call.path))
                .call()
                .expect("request reaches the server");
            let status = resp.status().as_u16();
            (status, resp.body_mut().read_json().unwrap_or(Value::Null))
        }
        (other, _) => panic!("no client for {other}"),
    }
}

#[test]
fn every_documented_operation_answers_as_documented() {
    let doc = document();
    let id = ids_of(&sample_rows(1)).remove(0);
    let calls = calls(&doc, &id);
    assert!(calls.len() > 40, "{}", calls.len());
    for call in &calls {
        let what = format!("{} {}", call.method, call.path);
        let (status, body) = send(call);
        let op = &doc["paths"][&call.template][call.method.to_lowercase()];
        let listed = op["responses"].as_object().unwrap();
        assert!(
            listed.contains_key(&status.to_string()),
            "{what} answered {status}, which the document does not list ({:?}): {body}",
            listed.keys().collect::<Vec<_>>()
        );
        assert_eq!(status, 200, "{what}: {body}");
        if let Some(schema) = op["responses"]["200"]["content"]
            .get("application/json")
            .map(|c| &c["schema"])
        {
            check_required(&doc, schema, &body, &what);
        }
        if call.template.ends_with("/unload") {
            let load = call.path.replace("/unload", "/load");
            let (status, _, body) = post_raw(server(), &load, "");
            assert_eq!(status, 200, "POST {load} after the unload: {body}");
        }
    }
}
