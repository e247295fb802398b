//! The churn model end to end over HTTP on the shipped model and sample snapshot: scores equal what ONNX Runtime
//! gives for the same snapshot rows, order is kept, and every kind of bad input gets a clear 4xx.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::sync::OnceLock;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_schema::DataType;
use common::*;
use crmscore::model::ModelSpec;
use crmscore::model::spec::ModelKind;
use crmscore::{Config, RunningServer};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

/// One server for the whole file (starting one costs a model load and a snapshot load).
fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut cfg = config(&sample_snapshot());
        cfg.max_items_per_request = 2_000;
        cfg.max_body_bytes = 256 * 1024;
        start_ready(cfg)
    })
}

struct Expected {
    ids: Vec<String>,
    features: Vec<String>,
    /// Feature rows (manifest order, nulls as NaN), as an independent reader sees them.
    rows: Vec<Vec<f32>>,
    /// P(positive class) that ONNX Runtime gives for each row, run directly on the model file.
    probability: Vec<f32>,
    risk_medium: f64,
    risk_high: f64,
}

/// Reads every 97th customer of the sample snapshot with plain arrow (serially, no crmscore code) and runs the
/// ONNX model on those rows with a fresh ORT session.
fn expected() -> &'static Expected {
    static EXPECTED: OnceLock<Expected> = OnceLock::new();
    EXPECTED.get_or_init(|| {
        let spec = ModelSpec::load(&models().join("churn")).unwrap();
        let ModelKind::Tabular(t) = &spec.kind else {
            panic!("churn is tabular")
        };
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(File::open(sample_snapshot()).unwrap())
                .unwrap()
                .build()
                .unwrap();
        let (mut ids, mut rows) = (Vec::new(), Vec::new());
        let mut seen = 0usize;
        for batch in reader {
            let batch = batch.unwrap();
            let id_col = arrow_cast::cast(
                batch.column_by_name("customer_id").unwrap(),
                &DataType::Utf8,
            )
            .unwrap();
            let cols: Vec<_> = t
                .features
                .iter()
                .map(|f| {
                    arrow_cast::cast(batch.column_by_name(f).unwrap(), &DataType::Float32).unwrap()
                })
                .collect();
            for r in 0..batch.num_rows() {
                if (seen + r).is_multiple_of(97) {
                    ids.push(id_col.as_string::<i32>().value(r).to_string());
                    rows.push(
                        cols.iter()
                            .map(|c| {
                                let c = c.as_primitive::<Float32Type>();
                                if c.is_null(r) { f32::NAN } else { c.value(r) }
                            })
                            .collect::<Vec<f32>>(),
                    );
                }
            }
            seen += batch.num_rows();
        }
        // The server's process-wide ORT environment is the library; the session is our own.
        server();
        let env = crmscore::model::runtime::environment(None).unwrap();
        let mut session = ort::session::Session::builder(env)
            .unwrap()
            .commit_from_file(spec.onnx_path())
            .unwrap();
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let tensor = ort::value::TensorRef::from_array_view((
            [rows.len(), t.features.len()],
            flat.as_slice(),
        ))
        .unwrap();
        let outputs = session
            .run(ort::inputs![t.input.as_str() => tensor])
            .unwrap();
        let (_, probs) = outputs[t.output.as_str()]
            .try_extract_tensor::<f32>()
            .unwrap();
        let probability = probs
            .chunks(t.labels.len())
            .map(|p| p[t.positive])
            .collect();
        let risk = t.risk.expect("the churn manifest defines risk bands");
        Expected {
            ids,
            features: t.features.clone(),
            rows,
            probability,
            risk_medium: risk.medium,
            risk_high: risk.high,
        }
    })
}

fn band(e: &Expected, p: f32) -> &'static str {
    let p = f64::from(p);
    if p >= e.risk_high {
        "high"
    } else if p >= e.risk_medium {
        "medium"
    } else {
        "low"
    }
}

#[test]
fn churn_probabilities_match_onnxruntime_for_snapshot_rows() {
    let e = expected();
    assert!(e.ids.len() > 500, "sample too small: {}", e.ids.len());
    assert!(
        e.rows.iter().flatten().any(|v| v.is_nan()),
        "the sample should exercise nulls"
    );
    let (status, body) = post(
        server(),
        "/v1/churn/score",
        &json!({ "customer_ids": e.ids }),
    );
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), e.ids.len());
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["customer_id"], e.ids[i], "order is preserved");
        let got = r["churn_probability"].as_f64().unwrap() as f32;
        assert!(
            (got - e.probability[i]).abs() < 1e-5,
            "{}: server {got} vs onnxruntime {}",
            e.ids[i],
            e.probability[i]
        );
        assert_eq!(r["risk"], band(e, got));
    }
    assert_eq!(body["model"]["name"], "churn");
    assert_eq!(body["snapshot"], "customers-sample.parquet");
}

#[test]
fn generic_route_reports_probability_label_and_scores() {
    let e = expected();
    let ids: Vec<&str> = e.ids.iter().take(20).map(String::as_str).collect();
    let (status, body) = post(
        server(),
        "/v1/models/churn/score",
        &json!({ "customer_ids": ids }),
    );
    assert_eq!(status, 200, "{body}");
    for (i, r) in body["results"].as_array().unwrap().iter().enumerate() {
        let p = r["probability"].as_f64().unwrap() as f32;
        assert!((p - e.probability[i]).abs() < 1e-5);
        let scores = r["scores"].as_object().unwrap();
        let total: f64 = scores.values().map(|v| v.as_f64().unwrap()).sum();
        assert!(
            (total - 1.0).abs() < 1e-4,
            "probabilities sum to 1: {total}"
        );
        let label = if p >= 0.5 { "churned" } else { "retained" };
        assert_eq!(r["label"], label, "{r}");
    }
}

#[test]
fn inline_rows_score_like_the_snapshot_rows() {
    let e = expected();
    let rows: Vec<Value> = e.rows[..50]
        .iter()
        .map(|row| {
            let obj: serde_json::Map<String, Value> = e
                .features
                .iter()
                .zip(row)
                .map(|(f, v)| (f.clone(), if v.is_nan() { Value::Null } else { json!(v) }))
                .collect();
            Value::Object(obj)
        })
        .collect();
    let (status, body) = post(server(), "/v1/churn/score", &json!({ "rows": rows }));
    assert_eq!(status, 200, "{body}");
    for (i, r) in body["results"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r["row"], i);
        let p = r["churn_probability"].as_f64().unwrap() as f32;
        assert!(
            (p - e.probability[i]).abs() < 1e-5,
            "row {i}: {p} vs {}",
            e.probability[i]
        );
    }
    assert!(
        body.get("snapshot").is_none(),
        "inline rows do not come from a snapshot"
    );
}

#[test]
fn v2_infer_gives_the_same_probabilities_flat_and_nested() {
    let e = expected();
    let n = 8;
    // NaN cannot travel in JSON: pick rows without nulls.
    let rows: Vec<&Vec<f32>> = e
        .rows
        .iter()
        .filter(|r| r.iter().all(|v| !v.is_nan()))
        .take(n)
        .collect();
    let want: Vec<f32> = e
        .rows
        .iter()
        .zip(&e.probability)
        .filter(|(r, _)| r.iter().all(|v| !v.is_nan()))
        .take(n)
        .map(|(_, p)| *p)
        .collect();
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    let width = e.features.len();
    for (data, datatype) in [(json!(flat), "FP32"), (json!(rows), "FP64")] {
        let req = json!({"id": "req-1", "inputs": [{"name": "features", "shape": [n, width], "datatype": datatype, "data": data}]});
        let (status, body) = post(server(), "/v2/models/churn/infer", &req);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], "req-1");
        assert_eq!(body["model_name"], "churn");
        let out = &body["outputs"][0];
        assert_eq!(out["name"], "probabilities");
        assert_eq!(out["datatype"], "FP32");
        assert_eq!(out["shape"], json!([n, 2]));
        let data: Vec<f64> = out["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for i in 0..n {
            assert!((data[i * 2 + 1] as f32 - want[i]).abs() < 1e-5, "row {i}");
        }
    }
}

#[test]
fn unknown_ids_are_per_item_errors_in_order() {
    let e = expected();
    let ids = json!([e.ids[3], "NO-SUCH-CUSTOMER", e.ids[1], 12345, e.ids[3]]);
    let (status, body) = post(server(), "/v1/churn/score", &json!({ "customer_ids": ids }));
    assert_eq!(status, 200, "{body}");
    let r = body["results"].as_array().unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(r[0]["customer_id"], e.ids[3]);
    assert_eq!(r[1]["customer_id"], "NO-SUCH-CUSTOMER");
    v1_error(&r[1], "unknown_customer");
    assert!(r[1].get("churn_probability").is_none());
    assert_eq!(r[2]["customer_id"], e.ids[1]);
    assert_eq!(r[3]["customer_id"], 12345);
    v1_error(&r[3], "unknown_customer");
    assert_eq!(
        r[0]["churn_probability"], r[4]["churn_probability"],
        "a repeated id scores the same"
    );
    let (status, body) = post(
        server(),
        "/v1/churn/score",
        &json!({ "customer_ids": ["nobody"] }),
    );
    assert_eq!(
        status, 200,
        "all-unknown is still a 200 with per-item errors: {body}"
    );
}

#[test]
fn timing_headers_are_present() {
    let e = expected();
    let (status, headers, _) = post_raw(
        server(),
        "/v1/churn/score",
        &json!({"customer_ids": [e.ids[0]]}).to_string(),
    );
    assert_eq!(status, 200);
    for h in ["x-queue-time-us", "x-inference-time-us", "x-total-time-us"] {
        let v = headers.get(h).unwrap_or_else(|| panic!("missing {h}"));
        v.to_str().unwrap().parse::<u64>().unwrap();
    }
}

#[test]
fn bad_v1_input_gets_4xx_with_the_error_envelope() {
    let s = server();
    let too_many: Vec<String> = (0..2_001).map(|i| format!("C{i:07}")).collect();
    let huge = format!(r#"{{"customer_ids": ["{}"]}}"#, "x".repeat(300 * 1024));
    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        (
            "/v1/churn/score",
            "{not json".into(),
            400,
            "invalid_json",
            "",
        ),
        ("/v1/churn/score", "".into(), 400, "invalid_json", ""),
        (
            "/v1/churn/score",
            r#"{"customer_ids": "C1"}"#.into(),
            400,
            "invalid_json",
            "sequence",
        ),
        (
            "/v1/churn/score",
            r#"{"customer_ids": [1.5]}"#.into(),
            400,
            "invalid_json",
            "customer id",
        ),
        (
            "/v1/churn/score",
            r#"{"customer_ids": [null]}"#.into(),
            400,
            "invalid_json",
            "",
        ),
        (
            "/v1/churn/score",
            r#"{"customer_ids": []}"#.into(),
            400,
            "bad_request",
            "empty",
        ),
        (
            "/v1/churn/score",
            json!({ "customer_ids": too_many }).to_string(),
            400,
            "bad_request",
            "at most 2000",
        ),
        ("/v1/churn/score", huge, 413, "payload_too_large", "262144"),
        (
            "/v1/churn/score",
            r#"{}"#.into(),
            400,
            "bad_request",
            "customer_ids",
        ),
        (
            "/v1/churn/score",
            r#"{"customer_ids": ["a"], "rows": []}"#.into(),
            400,
            "bad_request",
            "not both",
        ),
        (
            "/v1/churn/score",
            r#"{"customer_id": ["a"]}"#.into(),
            400,
            "invalid_json",
            "customer_id",
        ),
        (
            "/v1/churn/score",
            r#"{"rows": [{"tenure_months": 1}]}"#.into(),
            400,
            "bad_request",
            "rows[0]",
        ),
        (
            "/v1/churn/score",
            r#"{"rows": []}"#.into(),
            400,
            "bad_request",
            "empty",
        ),
        (
            "/v1/churn/score",
            r#"{"rows": [5]}"#.into(),
            400,
            "invalid_json",
            "",
        ),
        (
            "/v1/models/nope/score",
            r#"{"customer_ids": ["a"]}"#.into(),
            404,
            "unknown_model",
            "nope",
        ),
    ];
    for (path, body, status, code, needle) in cases {
        let (got, _, json) = post_raw(s, path, &body);
        assert_eq!(
            got,
            status,
            "{path} {}: {json}",
            &body[..body.len().min(80)]
        );
        let message = v1_error(&json, code);
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
    let e = expected();
    let mut row: serde_json::Map<String, Value> =
        e.features.iter().map(|f| (f.clone(), json!(1))).collect();
    row.insert(e.features[2].clone(), json!("high"));
    let (status, body) = post(s, "/v1/churn/score", &json!({ "rows": [row] }));
    assert_eq!(status, 400);
    assert!(v1_error(&body, "bad_request").contains(&format!(
        "'{}' must be a number, got a string",
        e.features[2]
    )));
}

#[test]
fn unknown_routes_and_methods_are_json_errors() {
    let s = server();
    let (status, body) = get(s, "/v1/nothing");
    assert_eq!(status, 404);
    v1_error(&body, "not_found");
    let (status, body) = get(s, "/v1/churn/score");
    assert_eq!(status, 405);
    v1_error(&body, "method_not_allowed");
    let (status, body) = get(s, "/v2/models/nope");
    assert_eq!(status, 404);
    assert!(v2_error(&body).contains("nope"));
}

#[test]
fn bad_v2_input_gets_4xx_with_the_v2_envelope() {
    let s = server();
    let width = expected().features.len();
    let row = vec![1.0; width];
    let input = |name: &str, shape: Value, datatype: &str, data: Value| {
        json!({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]})
            .to_string()
    };
    let cases = vec![
        ("{bad".to_string(), 400, ""),
        (json!({"inputs": []}).to_string(), 400, "exactly one input"),
        (input("x", json!([1, width]), "FP32", json!(row)), 400, "unknown input 'x'"),
        (input("features", json!([1, width]), "COMPLEX64", json!(row)), 400, "FP32 or FP64"),
        (input("features", json!([1, width + 1]), "FP32", json!(row)), 400, "features per row"),
        (input("features", json!([2, width]), "FP32", json!(row)), 400, "needs"),
        (input("features", json!([width]), "FP32", json!(row)), 400, "must be [batch"),
        (input("features", json!([0, width]), "FP32", json!([])), 400, "between 1 and"),
        (input("features", json!([1, width]), "FP32", json!(["a"])), 400, "number"),
        (json!({"inputs": [{"name": "features", "shape": [1, width], "datatype": "FP32", "data": row}], "outputs": [{"name": "label"}]}).to_string(), 400, "not served"),
    ];
    for (body, status, needle) in cases {
        let (got, _, json) = post_raw(s, "/v2/models/churn/infer", &body);
        assert_eq!(got, status, "{body}: {json}");
        let message = v2_error(&json);
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
}

#[test]
fn metadata_health_snapshot_and_metrics_routes() {
    let s = server();
    let (status, body) = get(s, "/v2/health/live");
    assert_eq!((status, &body["live"]), (200, &json!(true)));
    let (status, body) = get(s, "/v2/health/ready");
    assert_eq!((status, &body["ready"]), (200, &json!(true)));
    let (status, body) = get(s, "/v2");
    assert_eq!(status, 200);
    assert_eq!(body["name"], "crmscore");

    let (status, body) = get(s, "/v2/models/churn");
    assert_eq!(status, 200, "{body}");
    let width = expected().features.len() as i64;
    assert_eq!(
        body["inputs"],
        json!([{"name": "features", "datatype": "FP32", "shape": [-1, width]}])
    );
    assert_eq!(body["outputs"][0]["name"], "probabilities");
    assert_eq!(body["outputs"][0]["shape"], json!([-1, 2]));
    assert_eq!(
        body["parameters"]["features"].as_array().unwrap().len() as i64,
        width
    );
    assert_eq!(
        body["parameters"]["execution_provider"],
        "CPUExecutionProvider"
    );
    assert!(body["parameters"]["metadata"]["roc_auc"].as_f64().unwrap() > 0.7);

    let (status, body) = get(s, "/v2/models/churn/ready");
    assert_eq!((status, &body["ready"]), (200, &json!(true)));

    let (status, body) = get(s, "/v1/snapshot");
    assert_eq!(status, 200);
    assert_eq!(body["version"], "customers-sample.parquet");
    assert_eq!(body["rows"], 100_000);
    assert_eq!(body["id_type"], "string");
    assert!(body["columns"].as_array().unwrap().len() as i64 >= width);

    post(
        s,
        "/v1/churn/score",
        &json!({"customer_ids": [expected().ids[0]]}),
    );
    get(s, "/v2/models/churn/infer"); // wrong method: labelled with its route
    get(s, "/v1/no/such/route/C0000001");
    let (status, _, text) = get_text(s, "/metrics");
    assert_eq!(status, 200);
    let series: HashMap<&str, bool> = [
        r#"crmscore_http_requests_total{method="POST",route="/v1/churn/score",status="200"}"#,
        r#"crmscore_http_requests_total{method="GET",route="/v2/models/{model}/infer",status="405"}"#,
        r#"crmscore_http_requests_total{method="GET",route="/v2/models/{model}/ready",status="200"}"#,
        r#"crmscore_http_requests_total{method="GET",route="unmatched",status="404"}"#,
        r#"crmscore_http_request_duration_seconds_bucket{method="POST",route="/v1/churn/score",status="200""#,
        r#"crmscore_batch_size_bucket{model="churn""#,
        r#"crmscore_inference_duration_seconds_bucket{model="churn""#,
        r#"crmscore_queue_depth{model="churn"}"#,
        "crmscore_snapshot_rows 100000",
        "crmscore_snapshot_age_seconds",
    ]
    .into_iter()
    .map(|s| (s, text.contains(s)))
    .collect();
    assert!(
        series.values().all(|&found| found),
        "missing series: {series:?}\n{text}"
    );
    assert!(
        !text.contains("C00"),
        "customer ids never appear in metric labels"
    );
}

#[test]
fn a_named_route_refuses_a_model_of_another_kind() {
    // The churn (tabular) model dropped in under the sentiment route's name.
    let models = TempDir::new("wrong-kind");
    let folder = models.path().join("sentiment");
    std::fs::create_dir_all(&folder).unwrap();
    for file in ["model.onnx", "model.toml"] {
        std::fs::copy(common::models().join("churn").join(file), folder.join(file)).unwrap();
    }
    let server = start_ready(Config::for_tests(models.path(), sample_snapshot()));
    let s = &server;

    let (status, body) = post(s, "/v1/sentiment", &json!({"texts": ["hello"]}));
    assert_eq!(status, 400, "{body}");
    let message = v1_error(&body, "wrong_model_kind");
    assert!(
        message.contains("sentiment") && message.contains("tabular"),
        "{message}"
    );

    // The generic route takes any kind, and v2 metadata finds the model by name.
    let id = expected().ids[0].clone();
    let (status, body) = post(
        s,
        "/v1/models/sentiment/score",
        &json!({"customer_ids": [id]}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(s, "/v2/models/sentiment");
    assert_eq!(
        (status, &body["name"]),
        (200, &json!("sentiment")),
        "{body}"
    );
    let (status, body) = get(s, "/v2/models/churn");
    assert_eq!(status, 404, "{body}");
    assert!(v2_error(&body).contains("churn"), "{body}");
}
