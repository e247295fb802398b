//! The recommender end to end over HTTP: top-k lists equal what Python ONNX Runtime gives for the same snapshot
//! rows (fixture written by scripts/train_recommender.py), owned items are excluded, unknown customers get a
//! flagged cold-start list, and bad input is a clear 4xx.

mod common;

use std::sync::OnceLock;

use common::*;
use crmscore::RunningServer;
use serde_json::{Value, json};

fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| start_ready(config(&sample_snapshot())))
}

fn expected() -> Value {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/recommendation_expected.json"))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn top_k_matches_onnxruntime_and_excludes_owned_items() {
    let e = expected();
    let customers = e["customers"].as_array().unwrap();
    let ids: Vec<&str> = customers
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap())
        .collect();
    let (status, body) = post(
        server(),
        "/v1/recommendations",
        &json!({"customer_ids": ids, "k": e["k"]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"]["name"], "recommendation");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), customers.len());
    let mut with_owned = 0;
    for (want, got) in customers.iter().zip(results) {
        assert_eq!(got["customer_id"], want["customer_id"]);
        assert_eq!(got["cold_start"], false);
        let got_items = got["items"].as_array().unwrap();
        let want_items = want["top"].as_array().unwrap();
        assert_eq!(got_items.len(), want_items.len());
        for (g, w) in got_items.iter().zip(want_items) {
            assert_eq!(g["item_id"], w["item_id"], "{}: {got}", want["customer_id"]);
            let (gs, ws) = (g["score"].as_f64().unwrap(), w["score"].as_f64().unwrap());
            assert!((gs - ws).abs() < 1e-4, "score {gs} vs {ws}");
            assert!(
                g["name"].is_string() && g["category"].is_string() && g["price_band"].is_string()
            );
        }
        let owned: Vec<&Value> = want["owned"].as_array().unwrap().iter().collect();
        with_owned += usize::from(!owned.is_empty());
        assert!(
            got_items.iter().all(|g| !owned.contains(&&g["item_id"])),
            "owned items are excluded"
        );
    }
    assert!(with_owned > 5, "the fixture must exercise owned items");
}

#[test]
fn exclusion_only_removes_owned_items_from_the_plain_ranking() {
    let e = expected();
    for c in e["customers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["owned"].as_array().unwrap().is_empty())
    {
        let id = &c["customer_id"];
        let plain = json!({"customer_ids": [id], "k": 100, "exclude_owned": false});
        let (status, all) = post(server(), "/v1/models/recommendation/score", &plain);
        assert_eq!(status, 200, "{all}");
        let all: Vec<Value> = all["results"][0]["items"].as_array().unwrap().clone();
        let scores: Vec<f64> = all.iter().map(|i| i["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first");
        let owned: Vec<&Value> = c["owned"].as_array().unwrap().iter().collect();
        let want: Vec<&Value> = all
            .iter()
            .map(|i| &i["item_id"])
            .filter(|i| !owned.contains(i))
            .take(10)
            .collect();
        let (_, excluded) = post(
            server(),
            "/v1/recommendations",
            &json!({"customer_ids": [id]}),
        );
        let got: Vec<&Value> = excluded["results"][0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| &i["item_id"])
            .collect();
        assert_eq!(
            got, want,
            "k defaults to 10 and exclusion only drops owned items"
        );
    }
}

#[test]
fn unknown_customers_get_a_flagged_cold_start() {
    let (status, body) = post(
        server(),
        "/v1/recommendations",
        &json!({"customer_ids": ["NOBODY", "C0000001"], "k": 5}),
    );
    assert_eq!(status, 200, "{body}");
    let cold = &body["results"][0];
    assert_eq!(cold["cold_start"], true);
    assert_eq!(cold["items"].as_array().unwrap().len(), 5);
    assert_eq!(body["results"][1]["cold_start"], false);
    let (_, again) = post(
        server(),
        "/v1/recommendations",
        &json!({"customer_ids": ["SOMEONE-ELSE"], "k": 5}),
    );
    assert_eq!(
        again["results"][0]["items"], cold["items"],
        "cold start is the popularity list"
    );
}

#[test]
fn bad_recommendation_requests_are_4xx() {
    let cases = [
        (
            json!({"customer_ids": ["C0000001"], "k": 0}),
            "'k' must be between 1 and 100",
        ),
        (
            json!({"customer_ids": ["C0000001"], "k": 101}),
            "'k' must be between 1 and 100",
        ),
        (json!({"customer_ids": []}), "empty"),
        (json!({"k": 3}), "customer_ids"),
        (
            json!({"customer_ids": ["C0000001"], "rows": [{}]}),
            "'rows' does not apply to a recommender model",
        ),
        (json!({"texts": ["hi"]}), "'texts' does not apply"),
    ];
    for (body, needle) in cases {
        let (status, reply) = post(server(), "/v1/recommendations", &body);
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(
            v1_error(&reply, "bad_request").contains(needle),
            "{reply} should mention {needle}"
        );
    }
    let (status, reply) = post(
        server(),
        "/v1/recommendations",
        &json!({"customer_ids": ["C0000001"], "k": "ten"}),
    );
    assert_eq!(status, 400);
    v1_error(&reply, "invalid_json");
    let (status, reply) = post(
        server(),
        "/v1/churn/score",
        &json!({"customer_ids": ["C0000001"], "k": 3}),
    );
    assert_eq!(status, 400, "{reply}");
}

#[test]
fn v2_metadata_and_infer_for_the_recommender() {
    let (status, meta) = get(server(), "/v2/models/recommendation");
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["parameters"]["kind"], "recommender");
    assert_eq!(meta["parameters"]["items"], 800);
    assert_eq!(meta["outputs"][0]["name"], "scores");
    let width = meta["inputs"][0]["shape"][1].as_i64().unwrap() as usize;
    let req = json!({"inputs": [{"name": "features", "shape": [2, width], "datatype": "FP32", "data": vec![1.0; 2 * width]}]});
    let (status, body) = post(server(), "/v2/models/recommendation/infer", &req);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["shape"], json!([2, 800]));
    assert_eq!(body["outputs"][0]["data"].as_array().unwrap().len(), 1600);
}
