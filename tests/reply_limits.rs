//! One request cannot cause an unbounded reply: recommendations (customers × k), v2 outputs (rows × width) and
//! reasons (rows × features) past their limits are a 413 naming the limit and its flag; at the limit they answer.

mod common;

use std::sync::OnceLock;

use common::*;
use crmscore::RunningServer;
use serde_json::{Value, json};

fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut config = config(&sample_snapshot());
        config.max_recommendations = 20_000;
        config.max_output_values = 80_000;
        start_ready(config)
    })
}

fn ids(n: usize) -> Vec<String> {
    ids_of(&sample_rows(n))
}

fn too_large(body: &Value, needles: &[&str]) {
    let message = v1_error(body, "reply_too_large");
    for needle in needles {
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
}

#[test]
fn recommendations_are_capped_by_customers_times_k() {
    let (status, body) = post(
        server(),
        "/v1/recommendations",
        &json!({"customer_ids": ids(201), "k": 100}),
    );
    assert_eq!(status, 413, "{body}");
    too_large(
        &body,
        &[
            "20100",
            "201 customers × k=100",
            "20000",
            "--max-recommendations",
        ],
    );
    // At the limit the reply comes, shaped off the HTTP worker (over the inline threshold).
    let (status, body) = post(
        server(),
        "/v1/recommendations",
        &json!({"customer_ids": ids(200), "k": 100}),
    );
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 200);
    assert!(
        results
            .iter()
            .all(|r| r["items"].as_array().unwrap().len() == 100)
    );
}

#[test]
fn v2_outputs_are_capped_by_rows_times_width() {
    // The recommender scores all 800 catalogue items per row: 101 rows are 80,800 values.
    let width = 21;
    let rows = |n: usize| {
        json!({"inputs": [{"name": "features", "shape": [n, width], "datatype": "FP32",
                           "data": vec![0.5; n * width]}]})
    };
    let (status, _, body) = post_raw(
        server(),
        "/v2/models/recommendation/infer",
        &rows(101).to_string(),
    );
    assert_eq!(status, 413, "{body}");
    let message = v2_error(&body);
    assert!(
        message.contains("80800") && message.contains("--max-output-values"),
        "{message}"
    );
    let (status, _, body) = post_raw(
        server(),
        "/v2/models/recommendation/infer",
        &rows(100).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["shape"], json!([100, 800]));
}

#[test]
fn reasons_are_capped_by_rows_times_features() {
    // 21 features: "all" reasons for 3,810 customers are 80,010 values; top-3 for them fit.
    let many = ids(3_810);
    let (status, body) = post(
        server(),
        "/v1/churn/score",
        &json!({"customer_ids": many, "explain": "all"}),
    );
    assert_eq!(status, 413, "{body}");
    too_large(&body, &["80010", "3810 rows × 21", "--max-output-values"]);
    let (status, body) = post(
        server(),
        "/v1/churn/score",
        &json!({"customer_ids": many, "explain": 3}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["reasons"].as_array().unwrap().len(), 3);
}

#[test]
fn insights_are_capped_by_customers_times_offers_and_reasons() {
    let many = ids(2_001);
    let (status, body) = post(
        server(),
        "/v1/insights",
        &json!({"customer_ids": many, "k": 10, "reasons": 0}),
    );
    assert_eq!(status, 413, "{body}");
    too_large(
        &body,
        &["20010", "2001 customers × k=10", "--max-recommendations"],
    );
    let (status, body) = post(
        server(),
        "/v1/insights",
        &json!({"customer_ids": many, "k": 1, "reasons": 40}),
    );
    assert_eq!(status, 413, "{body}");
    too_large(&body, &["80040", "--max-output-values"]);
    let (status, body) = post(
        server(),
        "/v1/insights",
        &json!({"customer_ids": many, "k": 9, "reasons": 3}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 2_001);
}
