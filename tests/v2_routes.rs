//! The rest of the v2 model routes over a real socket: versioned routes (only the served version), Triton's model
//! configuration and statistics shapes, the extensions the server reports, and missing values (NaN / null) in JSON
//! tensors scoring exactly like the same customer's snapshot row.

mod common;

use std::sync::OnceLock;

use common::*;
use crmscore::RunningServer;
use serde_json::{Value, json};

/// One server for the whole file.
fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| start_ready(config(&sample_snapshot())))
}

/// A churn infer body of `rows` (NaN as JSON null).
fn churn_request(rows: &[Vec<f32>]) -> Value {
    let width = rows[0].len();
    json!({"inputs": [{"name": "features", "shape": [rows.len(), width], "datatype": "FP32", "data": rows}]})
}

#[test]
fn server_metadata_lists_the_extensions() {
    let (status, body) = get(server(), "/v2");
    assert_eq!(status, 200);
    let extensions = body["extensions"].as_array().unwrap();
    for e in ["binary_tensor_data", "model_configuration", "statistics"] {
        assert!(extensions.contains(&json!(e)), "{body}");
    }
}

#[test]
fn versioned_routes_serve_only_the_served_version() {
    let s = server();
    let (_, meta) = get(s, "/v2/models/churn");
    let version = meta["versions"][0].as_str().unwrap().to_string();
    let (status, versioned) = get(s, &format!("/v2/models/churn/versions/{version}"));
    assert_eq!(status, 200);
    assert_eq!(versioned["name"], meta["name"]);
    assert_eq!(versioned["inputs"], meta["inputs"]);
    let (status, ready) = get(s, &format!("/v2/models/churn/versions/{version}/ready"));
    assert_eq!((status, &ready["ready"]), (200, &json!(true)));

    let (_, rows) = sample_features("churn", 3);
    let body = churn_request(&rows);
    let (status, plain) = post(s, "/v2/models/churn/infer", &body);
    assert_eq!(status, 200, "{plain}");
    let (status, reply) = post(
        s,
        &format!("/v2/models/churn/versions/{version}/infer"),
        &body,
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["outputs"], plain["outputs"]);
    assert_eq!(reply["model_version"], json!(version));

    let other = "7";
    assert_ne!(version, other);
    for path in ["", "/ready", "/config", "/stats"] {
        let (status, body) = get(s, &format!("/v2/models/churn/versions/{other}{path}"));
        assert_eq!(status, 404, "{path}: {body}");
        let message = v2_error(&body);
        assert!(
            message.contains("version '7'")
                && message.contains(&format!("served version is '{version}'")),
            "{message}"
        );
    }
    let (status, body) = post(
        s,
        &format!("/v2/models/churn/versions/{other}/infer"),
        &body,
    );
    assert_eq!(status, 404);
    assert!(v2_error(&body).contains("not served"));
    let (status, body) = get(s, "/v2/models/nope/versions/1");
    assert_eq!(status, 404);
    assert!(v2_error(&body).contains("nope"));
}

#[test]
fn config_has_triton_shape() {
    let s = server();
    let (status, config) = get(s, "/v2/models/churn/config");
    assert_eq!(status, 200, "{config}");
    let (_, meta) = get(s, "/v2/models/churn");
    let width = meta["parameters"]["features"].as_array().unwrap().len();
    assert_eq!(config["name"], "churn");
    assert_eq!(config["platform"], "onnxruntime_onnx");
    assert_eq!(
        config["max_batch_size"],
        meta["parameters"]["batching"]["max_batch_size"]
    );
    assert_eq!(
        config["input"],
        json!([{"name": "features", "data_type": "TYPE_FP32", "dims": [width]}])
    );
    assert_eq!(
        config["output"],
        json!([
            {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [2]},
            {"name": "contributions", "data_type": "TYPE_FP32", "dims": [width + 1]},
        ])
    );
    assert_eq!(
        config["dynamic_batching"]["max_queue_delay_microseconds"],
        meta["parameters"]["batching"]["max_delay_us"]
    );
    assert_eq!(config["instance_group"][0]["kind"], "KIND_CPU");
    let (_, versioned) = get(s, "/v2/models/churn/versions/1/config");
    assert_eq!(versioned, config);

    let (status, text) = get(s, "/v2/models/sentiment/config");
    assert_eq!(status, 200);
    assert_eq!(
        text["input"],
        json!([{"name": "text", "data_type": "TYPE_STRING", "dims": [1], "reshape": {"shape": []}}])
    );
    assert_eq!(get(s, "/v2/models/nope/config").0, 404);
}

/// The one entry of a model's statistics reply.
fn stats_of(path: &str) -> Value {
    let (status, body) = get(server(), path);
    assert_eq!(status, 200, "{body}");
    let stats = body["model_stats"].as_array().unwrap();
    assert_eq!(stats.len(), 1, "{body}");
    stats[0].clone()
}

#[test]
fn stats_count_every_inference() {
    // Only this test uses the segmentation model, so the counts move by exactly what it sends.
    let s = server();
    let path = "/v2/models/segmentation/stats";
    let before = stats_of(path);
    assert_eq!(before["name"], "segmentation");
    assert_eq!(before["version"], "1");
    let count = |v: &Value, field: &str| v["inference_stats"][field]["count"].as_u64().unwrap();
    let ns = |v: &Value, field: &str| v["inference_stats"][field]["ns"].as_u64().unwrap();
    let n = |v: &Value, field: &str| v[field].as_u64().unwrap();
    // Nothing has used it yet: the load's warm-up is not counted.
    assert_eq!(
        (n(&before, "inference_count"), n(&before, "execution_count")),
        (0, 0)
    );
    assert_eq!(count(&before, "success"), 0);
    assert_eq!(n(&before, "last_inference"), 0);

    let (_, rows) = sample_features("segmentation", 5);
    let width = rows[0].len();
    let body = json!({"inputs": [{"name": "features", "shape": [5, width], "datatype": "FP32", "data": rows}]});
    for _ in 0..2 {
        let (status, reply) = post(s, "/v2/models/segmentation/infer", &body);
        assert_eq!(status, 200, "{reply}");
    }
    let bad = json!({"inputs": [{"name": "features", "shape": [1, width], "datatype": "FP32", "data": vec![1.0; width]}], "parameters": {"timeout": 0}});
    assert_eq!(post(s, "/v2/models/segmentation/infer", &bad).0, 400);

    let after = stats_of(path);
    assert_eq!(
        n(&after, "inference_count") - n(&before, "inference_count"),
        10
    );
    assert_eq!(count(&after, "success") - count(&before, "success"), 2);
    assert_eq!(count(&after, "queue") - count(&before, "queue"), 2);
    assert_eq!(
        count(&after, "compute_infer") - count(&before, "compute_infer"),
        2
    );
    let executions = n(&after, "execution_count") - n(&before, "execution_count");
    assert!(
        (1..=2).contains(&executions),
        "{executions} calls for 2 requests"
    );
    // A request refused before the queue is not an inference failure.
    assert_eq!(count(&after, "fail"), count(&before, "fail"));
    assert!(ns(&after, "success") > ns(&before, "success"));
    assert!(ns(&after, "compute_infer") > ns(&before, "compute_infer"));
    assert!(n(&after, "last_inference") >= n(&before, "last_inference"));
    assert!(
        n(&after, "last_inference") > 1_600_000_000_000,
        "milliseconds since the epoch"
    );
    assert_eq!(
        stats_of("/v2/models/segmentation/versions/1/stats")["inference_count"],
        after["inference_count"]
    );

    let (status, all) = get(s, "/v2/models/stats");
    assert_eq!(status, 200);
    let names: Vec<&str> = all["model_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for model in ["churn", "recommendation", "segmentation", "sentiment"] {
        assert!(names.contains(&model), "{names:?}");
    }
    assert_eq!(get(s, "/v2/models/nope/stats").0, 404);
}

#[test]
fn nan_and_null_rows_score_like_the_snapshot_row() {
    let s = server();
    let (ids, rows) = sample_features("churn", 200);
    let (id, row) = ids
        .iter()
        .zip(&rows)
        .find(|(_, r)| r.iter().filter(|v| v.is_nan()).count() >= 2)
        .expect("the sample has a customer with two missing features");
    let (status, v1) = post(s, "/v1/churn/score", &json!({"customer_ids": [id]}));
    assert_eq!(status, 200, "{v1}");
    let snapshot_p = v1["results"][0]["churn_probability"].as_f64().unwrap() as f32;

    // The same row three ways: bare NaN tokens (Python's json and tritonclient), null, and NaN in a nested row.
    let values = |missing: &str| {
        row.iter()
            .map(|v| {
                if v.is_nan() {
                    missing.to_string()
                } else {
                    serde_json::to_string(v).unwrap()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let width = row.len();
    let body = format!(
        r#"{{"inputs": [{{"name": "features", "shape": [3, {width}], "datatype": "FP32",
            "data": [{}, {}, [{}]]}}]}}"#,
        values("NaN"),
        values("null"),
        values("NaN"),
    );
    let (status, _, reply) = post_raw(s, "/v2/models/churn/infer", &body);
    assert_eq!(status, 200, "{reply}");
    let probabilities = reply["outputs"][0]["data"].as_array().unwrap();
    for r in 0..3 {
        let p = probabilities[r * 2 + 1].as_f64().unwrap() as f32;
        assert_eq!(
            p.to_bits(),
            snapshot_p.to_bits(),
            "row {r}: {p} vs the snapshot's {snapshot_p}"
        );
    }

    // The rule matters: the same row with its missing values read as 0 scores differently.
    let zeros: Vec<f32> = row
        .iter()
        .map(|v| if v.is_nan() { 0.0 } else { *v })
        .collect();
    let (_, zero_reply) = post(s, "/v2/models/churn/infer", &churn_request(&[zeros]));
    let zero_p = zero_reply["outputs"][0]["data"][1].as_f64().unwrap() as f32;
    assert_ne!(
        zero_p, snapshot_p,
        "this customer's missing values should matter to the model"
    );

    // Infinity is no missing value: refused as out of range, naming the tensor.
    for token in ["Infinity", "-Infinity"] {
        let body = format!(
            r#"{{"inputs": [{{"name": "features", "shape": [1, {width}], "datatype": "FP32", "data": [{token}{}]}}]}}"#,
            ", 1".repeat(width - 1)
        );
        let (status, _, reply) = post_raw(s, "/v2/models/churn/infer", &body);
        assert_eq!(status, 400, "{reply}");
        let message = v2_error(&reply);
        assert!(
            message.contains("'features'") && message.contains("out of the float32 range"),
            "{message}"
        );
    }
    // A text that says NaN is still a text.
    let body =
        r#"{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["NaN"]}]}"#;
    let (status, _, reply) = post_raw(s, "/v2/models/sentiment/infer", body);
    assert_eq!(status, 200, "{reply}");
}
