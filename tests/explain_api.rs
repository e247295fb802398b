//! Reasons over HTTP: TreeSHAP of every exporter's fixture equals Python shap (same trees, same covers) and adds
//! up to ONNX Runtime's margin; sampled Shapley values of non-tree graphs match exact enumeration; the shipped
//! churn model's reasons; inline rows; the v2 `contributions` output; and the errors.

mod common;

use std::sync::OnceLock;

use common::*;
use crmscore::{Config, RunningServer};
use serde_json::{Value, json};

fn fixtures() -> std::path::PathBuf {
    repo().join("tests/fixtures/explain")
}

fn expected() -> &'static Value {
    static E: OnceLock<Value> = OnceLock::new();
    E.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("fixture");
        serde_json::from_str(&text).expect("fixture json")
    })
}

/// One server on every fixture model, explaining against the fixture customers.
fn fixture_server() -> &'static RunningServer {
    static S: OnceLock<RunningServer> = OnceLock::new();
    S.get_or_init(|| {
        start_ready(Config::for_tests(
            fixtures().join("models"),
            fixtures().join("data.parquet"),
        ))
    })
}

/// One server on the shipped models and sample snapshot.
fn shipped_server() -> &'static RunningServer {
    static S: OnceLock<RunningServer> = OnceLock::new();
    S.get_or_init(|| start_ready(config(&sample_snapshot())))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Contributions of one result's `reasons` (explain "all"), in the order of `features`.
fn contributions(result: &Value, features: &[String]) -> Vec<f64> {
    let reasons = result["reasons"].as_array().expect("reasons");
    assert_eq!(
        reasons.len(),
        features.len(),
        "explain all lists every feature"
    );
    features
        .iter()
        .map(|name| {
            let r = reasons
                .iter()
                .find(|r| r["name"] == name.as_str())
                .unwrap_or_else(|| panic!("no reason for {name} in {result}"));
            f(&r["contribution"])
        })
        .collect()
}

fn features_of(e: &Value) -> Vec<String> {
    e["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|v| v.as_str().expect("name").to_string())
        .collect()
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b} (tolerance {tol})");
}

#[test]
fn every_fixture_matches_shap_and_adds_up_to_the_margin() {
    let server = fixture_server();
    let e = expected();
    let features = features_of(e);
    let models = e["models"].as_object().expect("models");
    assert!(models.len() >= 9, "fixtures of every exporter");
    for (name, m) in models {
        let rows = m["rows"].as_array().expect("rows");
        let ids: Vec<&Value> = rows.iter().map(|r| &r["customer_id"]).collect();
        let (status, body) = post(
            server,
            &format!("/v1/models/{name}/score"),
            &json!({"customer_ids": ids, "explain": "all"}),
        );
        assert_eq!(status, 200, "{name}: {body}");
        let info = &body["explanation"];
        assert_eq!(info["method"], m["method"], "{name}: {info}");
        assert_eq!(info["space"], m["space"], "{name}: {info}");
        let base = f(&info["base_value"]);
        close(
            base,
            f(&m["base_value"]),
            1e-4,
            &format!("{name} base value"),
        );
        for (row, result) in rows
            .iter()
            .zip(body["results"].as_array().expect("results"))
        {
            let id = &row["customer_id"];
            assert_eq!(&result["customer_id"], id);
            let got = contributions(result, &features);
            let sum: f64 = got.iter().sum();
            // Additivity against ONNX Runtime's margin (the graph with post_transform NONE, or the logit).
            close(
                base + sum,
                f(&row["margin"]),
                1e-4,
                &format!("{name} {id} additivity"),
            );
            close(
                f(&result["probability"]),
                f(&row["output"]),
                1e-5,
                &format!("{name} {id} output"),
            );
            let reasons = result["reasons"].as_array().expect("reasons");
            for (j, want) in row["contributions"]
                .as_array()
                .expect("c")
                .iter()
                .enumerate()
            {
                let want = f(want);
                let tol = match m["method"].as_str() {
                    // Sampled: within the reported 95% bound, widened for the tails, or exact for linear margins.
                    Some("sampling") => {
                        let bound = reasons
                            .iter()
                            .find(|r| r["name"] == features[j].as_str())
                            .map_or(0.0, |r| f(&r["error_bound"]));
                        1e-4 + 3.0 * bound
                    }
                    _ => 1e-4,
                };
                close(got[j], want, tol, &format!("{name} {id} {}", features[j]));
            }
        }
    }
}

#[test]
fn sampled_explanations_say_so_with_error_bounds() {
    let server = fixture_server();
    let (status, body) = post(
        server,
        "/v1/models/mlp/score",
        &json!({"customer_ids": ["X0001", "X0002"], "explain": 3}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["explanation"]["method"], "sampling");
    for result in body["results"].as_array().expect("results") {
        let reasons = result["reasons"].as_array().expect("reasons");
        assert_eq!(reasons.len(), 3);
        assert!(reasons.iter().all(|r| f(&r["error_bound"]) >= 0.0));
    }
    // A linear margin (scaler + logistic regression) is estimated exactly: every bound is zero.
    let (_, body) = post(
        server,
        "/v1/models/logreg/score",
        &json!({"customer_ids": ["X0003"], "explain": "all"}),
    );
    for r in body["results"][0]["reasons"].as_array().expect("reasons") {
        assert!(f(&r["error_bound"]) < 1e-3, "{r}");
    }
    let (_, meta) = get(server, "/v2/models/logreg");
    assert_eq!(
        meta["parameters"]["explain"]["method"], "sampling",
        "{meta}"
    );
    let (_, meta) = get(server, "/v2/models/xgboost");
    assert_eq!(
        meta["parameters"]["explain"]["method"], "tree_shap",
        "{meta}"
    );
}

#[test]
fn churn_reasons_are_ordered_signed_and_described() {
    let server = shipped_server();
    let text = std::fs::read_to_string(repo().join("tests/fixtures/churn_explain_expected.json"))
        .expect("fixture");
    let e: Value = serde_json::from_str(&text).expect("json");
    let manifest = crmscore::model::ModelSpec::load(&models().join("churn")).expect("manifest");
    let features = manifest.feature_columns().to_vec();
    let rows = e["rows"].as_array().expect("rows");
    let ids: Vec<&Value> = rows.iter().map(|r| &r["customer_id"]).collect();

    let (status, body) = post(
        server,
        "/v1/churn/score",
        &json!({"customer_ids": ids, "explain": "all"}),
    );
    assert_eq!(status, 200, "{body}");
    let base = f(&body["explanation"]["base_value"]);
    close(base, f(&e["base_value"]), 1e-4, "churn base value");
    assert_eq!(body["explanation"]["method"], "tree_shap");
    assert_eq!(body["explanation"]["space"], "log_odds");
    for (row, result) in rows
        .iter()
        .zip(body["results"].as_array().expect("results"))
    {
        let got = contributions(result, &features);
        for (j, want) in row["contributions"]
            .as_array()
            .expect("c")
            .iter()
            .enumerate()
        {
            close(
                got[j],
                f(want),
                1e-4,
                &format!("{} {}", row["customer_id"], features[j]),
            );
        }
        // base + Σ is the log-odds of the probability the reply reports.
        let margin = base + got.iter().sum::<f64>();
        close(
            1.0 / (1.0 + (-margin).exp()),
            f(&result["churn_probability"]),
            1e-5,
            "sigmoid(margin)",
        );
    }

    let (status, body) = post(
        server,
        "/v1/churn/score",
        &json!({"customer_ids": ids, "explain": 3}),
    );
    assert_eq!(status, 200, "{body}");
    for result in body["results"].as_array().expect("results") {
        let reasons = result["reasons"].as_array().expect("reasons");
        assert_eq!(reasons.len(), 3, "{result}");
        let sizes: Vec<f64> = reasons
            .iter()
            .map(|r| f(&r["contribution"]).abs())
            .collect();
        assert!(
            sizes.windows(2).all(|w| w[0] >= w[1]),
            "largest first: {sizes:?}"
        );
        for r in reasons {
            let c = f(&r["contribution"]);
            let want = if c > 0.0 { "raises" } else { "lowers" };
            assert_eq!(r["direction"], want, "{r}");
            let name = r["name"].as_str().expect("name");
            let info = &manifest.feature_info[name];
            assert_eq!(r["description"], info.description.as_str(), "{r}");
        }
    }
}

#[test]
fn inline_rows_explain_like_their_snapshot_customer() {
    let server = shipped_server();
    let (_, by_id) = post(
        server,
        "/v1/churn/score",
        &json!({"customer_ids": ["C0004211"], "explain": "all"}),
    );
    let reasons = by_id["results"][0]["reasons"].as_array().expect("reasons");
    let row: serde_json::Map<String, Value> = reasons
        .iter()
        .map(|r| {
            (
                r["name"].as_str().expect("name").to_string(),
                r["value"].clone(),
            )
        })
        .collect();
    let (status, inline) = post(
        server,
        "/v1/models/churn/score",
        &json!({"rows": [row], "explain": "all"}),
    );
    assert_eq!(status, 200, "{inline}");
    assert_eq!(inline["results"][0]["row"], 0);
    let features: Vec<String> = row.keys().cloned().collect();
    let a = contributions(&by_id["results"][0], &features);
    let b = contributions(&inline["results"][0], &features);
    for (x, y) in a.iter().zip(&b) {
        close(*x, *y, 1e-6, "inline vs id");
    }
}

#[test]
fn v2_returns_contributions_when_asked_by_name() {
    let server = shipped_server();
    let (_, by_id) = post(
        server,
        "/v1/churn/score",
        &json!({"customer_ids": ["C0000042", "C0004211"], "explain": "all"}),
    );
    let features = crmscore::model::ModelSpec::load(&models().join("churn"))
        .expect("manifest")
        .feature_columns()
        .to_vec();
    let mut data = Vec::new();
    for result in by_id["results"].as_array().expect("results") {
        for name in &features {
            let r = result["reasons"]
                .as_array()
                .expect("reasons")
                .iter()
                .find(|r| r["name"] == name.as_str())
                .expect("reason");
            data.push(r["value"].as_f64().unwrap_or(f64::NAN));
        }
    }
    // JSON has no NaN: missing values travel as the model's missing policy allows (0 is a real value here),
    // so compare against the /v1 explanation of the same inline rows instead.
    let data: Vec<f64> = data
        .into_iter()
        .map(|v| if v.is_nan() { 0.0 } else { v })
        .collect();
    let rows: Vec<serde_json::Map<String, Value>> = data
        .chunks(features.len())
        .map(|r| {
            features
                .iter()
                .cloned()
                .zip(r.iter().map(|v| json!(v)))
                .collect()
        })
        .collect();
    let (_, v1) = post(
        server,
        "/v1/models/churn/score",
        &json!({"rows": rows, "explain": "all"}),
    );
    let body = json!({
        "inputs": [{"name": "features", "shape": [2, features.len()], "datatype": "FP32", "data": data}],
        "outputs": [{"name": "probabilities"}, {"name": "contributions"}],
    });
    let (status, reply) = post(server, "/v2/models/churn/infer", &body);
    assert_eq!(status, 200, "{reply}");
    let outputs = reply["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 2, "{reply}");
    let c = &outputs[1];
    assert_eq!(c["name"], "contributions");
    assert_eq!(c["datatype"], "FP32");
    assert_eq!(c["shape"], json!([2, features.len() + 1]));
    let values: Vec<f64> = c["data"].as_array().expect("data").iter().map(f).collect();
    for (i, result) in v1["results"]
        .as_array()
        .expect("results")
        .iter()
        .enumerate()
    {
        let want = contributions(result, &features);
        let row = &values[i * (features.len() + 1)..(i + 1) * (features.len() + 1)];
        for (j, w) in want.iter().enumerate() {
            close(row[j], *w, 1e-6, "v2 contribution");
        }
        close(
            row[features.len()],
            f(&v1["explanation"]["base_value"]),
            1e-6,
            "bias last",
        );
    }
    // Only contributions: the probabilities are left out.
    let body = json!({
        "inputs": [{"name": "features", "shape": [2, features.len()], "datatype": "FP32", "data": data}],
        "outputs": [{"name": "contributions"}],
    });
    let (_, reply) = post(server, "/v2/models/churn/infer", &body);
    assert_eq!(
        reply["outputs"].as_array().map(Vec::len),
        Some(1),
        "{reply}"
    );
    // Without `outputs`, no contributions are computed.
    let body = json!({
        "inputs": [{"name": "features", "shape": [2, features.len()], "datatype": "FP32", "data": data}],
    });
    let (_, reply) = post(server, "/v2/models/churn/infer", &body);
    assert_eq!(reply["outputs"][0]["name"], "probabilities", "{reply}");
    assert_eq!(reply["outputs"].as_array().map(Vec::len), Some(1));
    let (_, meta) = get(server, "/v2/models/churn");
    assert!(
        meta["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .any(|o| o["name"] == "contributions"),
        "{meta}"
    );
}

#[test]
fn explaining_what_cannot_be_explained_is_a_clear_400() {
    let server = shipped_server();
    let cases = [
        (
            "/v1/recommendations",
            json!({"customer_ids": ["C0000042"], "explain": 3}),
            "not_explainable",
        ),
        (
            "/v1/sentiment",
            json!({"texts": ["great"], "explain": 3}),
            "not_explainable",
        ),
        (
            "/v1/models/segmentation/score",
            json!({"customer_ids": ["C0000042"], "explain": 3}),
            "not_explainable",
        ),
        (
            "/v1/churn/score",
            json!({"customer_ids": ["C0000042"], "explain": 0}),
            "invalid_json",
        ),
        (
            "/v1/churn/score",
            json!({"customer_ids": ["C0000042"], "explain": "some"}),
            "invalid_json",
        ),
    ];
    for (path, body, code) in cases {
        let (status, reply) = post(server, path, &body);
        assert_eq!(status, 400, "{path} {body}: {reply}");
        let message = v1_error(&reply, code);
        assert!(message.contains("explain"), "{message}");
    }
    let body = json!({
        "inputs": [{"name": "features", "shape": [1, 21], "datatype": "FP32", "data": vec![0.0; 21]}],
        "outputs": [{"name": "contributions"}],
    });
    let (status, reply) = post(server, "/v2/models/recommendation/infer", &body);
    assert_eq!(status, 400, "{reply}");
    assert!(v2_error(&reply).contains("contributions"), "{reply}");
    // Unknown customers stay per-item errors when explaining.
    let (status, reply) = post(
        server,
        "/v1/churn/score",
        &json!({"customer_ids": ["C9999999", "C0000042"], "explain": 2}),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["results"][0]["error"]["code"], "unknown_customer");
    assert_eq!(
        reply["results"][1]["reasons"].as_array().map(Vec::len),
        Some(2)
    );
}
