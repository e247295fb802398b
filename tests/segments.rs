//! Segmentation over HTTP: the shipped k-means model's distances and segments equal Python ONNX Runtime's, on
//! /v1 (by id and inline rows) and /v2.

mod common;

use common::*;
use serde_json::{Value, json};

fn expected() -> Value {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/segmentation_expected.json"))
        .expect("fixture");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn segments_equal_onnxruntime_on_every_route() {
    let server = start_ready(config(&sample_snapshot()));
    let e = expected();
    let customers = e["customers"].as_array().expect("customers");
    let ids: Vec<&Value> = customers.iter().map(|c| &c["customer_id"]).collect();
    let (status, body) = post(
        &server,
        "/v1/models/segmentation/score",
        &json!({"customer_ids": ids}),
    );
    assert_eq!(status, 200, "{body}");
    let (_, meta) = get(&server, "/v2/models/segmentation");
    let keys: Vec<&str> = meta["parameters"]["segments"]
        .as_array()
        .expect("segments in metadata")
        .iter()
        .map(|s| s["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys.len(), 6, "{meta}");
    for (c, result) in customers
        .iter()
        .zip(body["results"].as_array().expect("results"))
    {
        assert_eq!(result["customer_id"], c["customer_id"]);
        assert_eq!(result["segment"]["key"], c["key"], "{result}");
        assert!(
            result["segment"]["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        );
        assert!(
            result["segment"]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        for (k, want) in keys.iter().zip(c["scores"].as_array().expect("scores")) {
            let got = result["distances"][k].as_f64().expect("distance");
            assert!(
                (got - want.as_f64().expect("f")).abs() < 1e-4,
                "{k}: {got} vs {want}"
            );
        }
    }

    // Inline rows and v2 give the same distances as the snapshot rows (first customer without nulls).
    let features: Vec<String> = meta["parameters"]["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f.as_str().expect("name").to_string())
        .collect();
    let (_, churn) = post(
        &server,
        "/v1/churn/score",
        &json!({"customer_ids": ids, "explain": "all"}),
    );
    let values_of = |i: usize| -> Option<Vec<f64>> {
        let reasons = churn["results"][i]["reasons"].as_array()?;
        features
            .iter()
            .map(|f| {
                reasons
                    .iter()
                    .find(|r| r["name"] == f.as_str())
                    .and_then(|r| r["value"].as_f64())
            })
            .collect()
    };
    let (i, values) = (0..customers.len())
        .find_map(|i| values_of(i).map(|v| (i, v)))
        .expect("a customer without nulls in the segmentation features");
    let row: serde_json::Map<String, Value> = features
        .iter()
        .cloned()
        .zip(values.iter().map(|v| json!(v)))
        .collect();
    let (status, inline) = post(
        &server,
        "/v1/models/segmentation/score",
        &json!({"rows": [row]}),
    );
    assert_eq!(status, 200, "{inline}");
    assert_eq!(inline["results"][0]["segment"]["key"], customers[i]["key"]);
    let body = json!({"inputs": [{"name": "features", "shape": [1, features.len()], "datatype": "FP32", "data": values}]});
    let (status, v2) = post(&server, "/v2/models/segmentation/infer", &body);
    assert_eq!(status, 200, "{v2}");
    let out = &v2["outputs"][0];
    assert_eq!(out["name"], "scores");
    assert_eq!(out["shape"], json!([1, 6]));
    for (got, want) in out["data"]
        .as_array()
        .expect("data")
        .iter()
        .zip(customers[i]["scores"].as_array().expect("scores"))
    {
        assert!((got.as_f64().expect("f") - want.as_f64().expect("f")).abs() < 1e-4);
    }
}
