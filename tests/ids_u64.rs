//! Unsigned 64-bit customer ids over HTTP: ids above 2^63 are served exactly (never aliased to another
//! customer), whether a request sends them as JSON numbers or strings.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, UInt64Array};
use arrow_schema::DataType;
use common::*;
use serde_json::{Value, json};

const BIG: u64 = (1 << 63) + 5;

/// Row `row` of `batch` as an inline feature object of the churn model (nulls as JSON null).
fn inline_row(batch: &RecordBatch, features: &[String], row: usize) -> Value {
    let obj: serde_json::Map<String, Value> = features
        .iter()
        .map(|f| {
            let column =
                arrow_cast::cast(batch.column_by_name(f).unwrap(), &DataType::Float32).unwrap();
            let value = if column.is_null(row) {
                Value::Null
            } else {
                json!(column.as_primitive::<Float32Type>().value(row))
            };
            (f.clone(), value)
        })
        .collect();
    Value::Object(obj)
}

fn probability(result: &Value) -> f64 {
    result["churn_probability"]
        .as_f64()
        .unwrap_or_else(|| panic!("no probability in {result}"))
}

#[test]
fn ids_above_two_to_the_63_answer_their_own_rows() {
    let dir = TempDir::new("u64-ids");
    let ids = [7, BIG, u64::MAX];
    let batch = with_column(
        &sample_rows(3),
        "customer_id",
        Some(Arc::new(UInt64Array::from(ids.to_vec())) as ArrayRef),
    );
    write_parquet(&dir.path().join("a.parquet"), std::slice::from_ref(&batch));
    let server = start_ready(config(dir.path()));
    let (_, info) = get(&server, "/v1/snapshot");
    assert_eq!(info["rows"], 3, "{info}");
    assert_eq!(info["id_type"], "integer", "{info}");

    let spec = crmscore::model::ModelSpec::load(&models().join("churn")).unwrap();
    let features = spec.feature_columns();
    let rows: Vec<Value> = (0..3).map(|r| inline_row(&batch, features, r)).collect();
    let (status, inline) = post(&server, "/v1/churn/score", &json!({ "rows": rows }));
    assert_eq!(status, 200, "{inline}");
    let expected: Vec<f64> = inline["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(probability)
        .collect();
    // The three rows differ, so answering another row's customer would show.
    assert!(
        expected[0] != expected[1] || expected[1] != expected[2],
        "{expected:?}"
    );

    // Numbers (JSON integers up to 2^64 - 1) and numeric strings; the 0 and -1 that aliasing would produce are
    // unknown.
    let body = format!(
        r#"{{"customer_ids": [7, {BIG}, {max}, "{max}", "{BIG}", 0, -1, "9223372036854775808"]}}"#,
        max = u64::MAX
    );
    let (status, _, reply) = post_raw(&server, "/v1/churn/score", &body);
    assert_eq!(status, 200, "{reply}");
    let r = reply["results"].as_array().unwrap();
    for (i, row) in [(0, 0), (1, 1), (2, 2), (3, 2), (4, 1)] {
        let p = probability(&r[i]);
        assert!(
            (p - expected[row]).abs() < 1e-6,
            "request id #{i} answers row {row}: {p} vs {} in {reply}",
            expected[row]
        );
    }
    // Ids are echoed as sent: the big ones as exact JSON integers.
    assert_eq!(r[1]["customer_id"], json!(BIG), "{reply}");
    assert_eq!(r[2]["customer_id"], json!(u64::MAX), "{reply}");
    for unknown in &r[5..8] {
        v1_error(unknown, "unknown_customer");
    }
    server.stop();
}

#[test]
fn negative_and_above_i64_ids_in_one_snapshot_are_refused_by_name() {
    let dir = TempDir::new("u64-mixed");
    let folder = dir.path().join("customers-mixed");
    std::fs::create_dir(&folder).unwrap();
    let batch = sample_rows(4);
    let signed = with_column(
        &batch.slice(0, 2),
        "customer_id",
        Some(Arc::new(Int64Array::from(vec![-3, 4])) as ArrayRef),
    );
    let unsigned = with_column(
        &batch.slice(2, 2),
        "customer_id",
        Some(Arc::new(UInt64Array::from(vec![5, BIG])) as ArrayRef),
    );
    write_parquet(&folder.join("part-00000.parquet"), &[signed]);
    write_parquet(&folder.join("part-00001.parquet"), &[unsigned]);
    std::fs::write(folder.join("_SUCCESS"), b"").unwrap();
    let server = crmscore::start(config(dir.path())).expect("server starts");
    let body = wait_for(
        &server,
        "/v2/health/ready",
        Duration::from_secs(30),
        |status, body| {
            status == 503
                && body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("last attempt failed"))
        },
    );
    let message = v2_error(&body);
    assert!(
        message.contains("customer_id")
            && message.contains("-3")
            && message.contains(&BIG.to_string()),
        "{message}"
    );
    server.stop();
}
