//! Drift checks at swap, over the real front doors: a second snapshot where one feature changed unit (months to
//! days) and another lost half its values is reported in `/v1/snapshot`, the metrics and `check-snapshot
//! --against`, with PSI values equal to an independent numpy computation; under `--max-psi 0.25` it is refused,
//! naming those features, and the old snapshot keeps serving until the operator accepts it.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int16Type};
use arrow_array::{ArrayRef, Float64Array, Int16Array, RecordBatch};
use common::*;
use crmscore::{Config, RunningServer};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const ROWS: usize = 3000;

/// The drifted copy of `batch`: tenure in days instead of months, every other monthly charge null.
fn drifted(batch: &RecordBatch) -> RecordBatch {
    let tenure = batch.column_by_name("tenure_months").unwrap();
    let days: ArrayRef = Arc::new(Int16Array::from_iter(
        tenure
            .as_primitive::<Int16Type>()
            .iter()
            .map(|m| m.map(|m| m * 30)),
    ));
    let charges = batch.column_by_name("monthly_charges").unwrap();
    let halved: ArrayRef = Arc::new(Float64Array::from_iter(
        charges
            .as_primitive::<Float64Type>()
            .iter()
            .enumerate()
            .map(|(i, v)| v.filter(|_| i % 2 == 0)),
    ));
    let batch = with_column(batch, "tenure_months", Some(days));
    with_column(&batch, "monthly_charges", Some(halved))
}

/// A snapshots folder with `a.parquet` (the first sample customers), the drifted `b.parquet` kept aside until
/// dropped, and a server on the folder.
fn serving(
    tag: &str,
    config: impl FnOnce(&Path) -> Config,
) -> (TempDir, RunningServer, RecordBatch) {
    let dir = TempDir::new(tag);
    let batch = sample_rows(ROWS);
    write_parquet(&dir.path().join("a.parquet"), std::slice::from_ref(&batch));
    let server = start_ready(config(dir.path()));
    (dir, server, batch)
}

fn feature<'v>(info: &'v Value, name: &str) -> &'v Value {
    info["drift"]["features"]
        .as_array()
        .unwrap_or_else(|| panic!("no drift features in {info}"))
        .iter()
        .find(|f| f["feature"] == name)
        .unwrap_or_else(|| panic!("no {name} in {info}"))
}

/// PSI of `column` between two Parquet files, computed with numpy alone: deciles of the old values ("lower"
/// quantiles, duplicates merged), right-open bins, nulls as their own bin, shares floored at 1e-4.
const NUMPY_PSI: &str = r#"
import sys, numpy as np, pyarrow.parquet as pq
def values(path, column):
    return pq.read_table(path, columns=[column])[column].to_numpy(zero_copy_only=False).astype(np.float32)
def shares(v, edges):
    nulls = np.isnan(v)
    counts = np.bincount(np.searchsorted(edges, v[~nulls], side="right"), minlength=len(edges) + 1)
    return np.append(counts, nulls.sum()) / len(v)
old, new = values(sys.argv[1], sys.argv[3]), values(sys.argv[2], sys.argv[3])
finite = np.sort(old[~np.isnan(old)])
edges = np.unique(np.quantile(finite, np.arange(1, 10) / 10, method="lower"))
e, a = np.maximum(shares(old, edges), 1e-4), np.maximum(shares(new, edges), 1e-4)
print(repr(float(np.sum((a - e) * np.log(a / e)))))
"#;

#[test]
fn a_drifted_drop_is_reported_per_feature_in_snapshot_info_metrics_and_the_log() {
    let (dir, server, batch) = serving("drift-report", config);
    let first = get(&server, "/v1/snapshot").1;
    assert_eq!(
        first["drift"],
        Value::Null,
        "nothing to compare the first snapshot with"
    );
    write_parquet(&dir.path().join("b.parquet"), &[drifted(&batch)]);
    let info = wait_for(&server, "/v1/snapshot", WAIT, |s, b| {
        s == 200 && b["version"] == "b.parquet"
    });
    let drift = &info["drift"];
    assert_eq!(drift["against"], "a.parquet");
    assert_eq!(drift["sample_rows_old"], ROWS);
    assert_eq!(drift["sample_rows_new"], ROWS);
    let tenure = feature(&info, "tenure_months");
    assert!(tenure["psi"].as_f64().unwrap() > 1.0, "{tenure}");
    assert!(tenure["mean_shift_sd"].as_f64().unwrap() > 5.0, "{tenure}");
    let charges = feature(&info, "monthly_charges");
    assert!(charges["psi"].as_f64().unwrap() > 0.25, "{charges}");
    assert_eq!(charges["null_rate_old"], 0.0);
    assert_eq!(charges["null_rate_new"], 0.5);
    for unchanged in [
        "nps_score",
        "total_charges",
        "contract_type",
        "lifetime_value",
    ] {
        let f = feature(&info, unchanged);
        assert_eq!(f["psi"], 0.0, "same values, no drift: {f}");
        assert_eq!(f["mean_shift_sd"], 0.0, "{f}");
    }
    let score = &drift["score"];
    assert_eq!(score["model"], "churn");
    assert_eq!(score["customers"], ROWS, "every customer is in both");
    assert!(score["psi"].as_f64().unwrap() > 0.0, "{score}");

    if let Some(python) = dataeng_python() {
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        for column in ["tenure_months", "monthly_charges"] {
            let out = run_python(
                &python,
                NUMPY_PSI,
                &[a.to_str().unwrap(), b.to_str().unwrap(), column],
            );
            let numpy: f64 = out.trim().parse().unwrap();
            let ours = feature(&info, column)["psi"].as_f64().unwrap();
            assert!(
                (ours - numpy).abs() < 1e-9,
                "{column}: ours {ours}, numpy {numpy}"
            );
        }
    }

    let (status, _, metrics) = get_text(&server, "/metrics");
    assert_eq!(status, 200);
    let gauge = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    let tenure_gauge = gauge(r#"crmscore_snapshot_feature_psi{feature="tenure_months"}"#);
    assert!((tenure_gauge - tenure["psi"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(
        gauge(r#"crmscore_snapshot_feature_psi{feature="nps_score"}"#),
        0.0
    );
    let score_gauge = gauge(r#"crmscore_snapshot_score_psi{model="churn"}"#);
    assert!((score_gauge - score["psi"].as_f64().unwrap()).abs() < 1e-9);
    server.stop();
}

#[test]
fn max_psi_refuses_a_drifted_drop_naming_the_features_until_the_operator_accepts_it() {
    let (dir, server, batch) = serving("drift-refused", |d| Config {
        max_psi: Some(0.25),
        ..config(d)
    });
    write_parquet(&dir.path().join("b.parquet"), &[drifted(&batch)]);
    let info = wait_for(&server, "/v1/snapshot", WAIT, |s, b| {
        s == 200 && b["last_error"].is_string()
    });
    assert_eq!(
        info["version"], "a.parquet",
        "the old snapshot keeps serving"
    );
    let error = info["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("b.parquet: feature drift above --max-psi 0.25")
            && error.contains("tenure_months (PSI")
            && error.contains("monthly_charges (PSI")
            && !error.contains("nps_score"),
        "{error}"
    );
    assert_eq!(info["refused"][0]["version"], "b.parquet");
    let id = ids_of(&batch)[0].clone();
    let (status, body) = post(&server, "/v1/churn/score", &json!({"customer_ids": [id]}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["snapshot"], "a.parquet");

    let (status, body) = post(&server, "/v1/admin/snapshot/reload", &json!({}));
    assert_eq!(status, 422, "still refused without the waiver: {body}");
    let (status, body) = post(
        &server,
        "/v1/admin/snapshot/reload?accept_drift=true",
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["snapshot"], "b.parquet");
    let info = get(&server, "/v1/snapshot").1;
    assert_eq!(info["last_error"], Value::Null);
    assert!(feature(&info, "tenure_months")["psi"].as_f64().unwrap() > 1.0);
    server.stop();
}

#[test]
fn check_snapshot_against_the_served_one_prints_the_drift_report() {
    let dir = TempDir::new("drift-check");
    let batch = sample_rows(ROWS);
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    write_parquet(&a, std::slice::from_ref(&batch));
    write_parquet(&b, &[drifted(&batch)]);
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crmscore"))
            .arg("check-snapshot")
            .arg("--models")
            .arg(models())
            .arg(&b)
            .arg("--against")
            .arg(&a)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = run(&[]);
    assert_eq!(code, Some(0), "{text}");
    // The drift table follows the column table, which has rows of the same names.
    let drift = &text[text.find("drift    against").expect("a drift report")..];
    let row = |name: &str| {
        drift
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row:\n{text}"))
            .to_string()
    };
    let tenure = row("tenure_months");
    let psi: f64 = tenure.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(psi > 1.0, "{tenure}");
    assert_eq!(row("nps_score").split_whitespace().nth(1), Some("0.0000"));
    let charges = row("monthly_charges");
    assert!(
        charges.contains("0.0%") && charges.contains("50.0%"),
        "{charges}"
    );
    assert!(
        text.contains("drift    against a.parquet (sampled 3000 served rows, 3000 new rows")
            && text.contains("verdict  OK"),
        "{text}"
    );
    let (code, text) = run(&["--max-psi", "0.25"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("verdict  FAIL: feature drift above --max-psi 0.25")
            && text.contains("tenure_months (PSI"),
        "{text}"
    );
}

#[test]
fn each_swap_logs_one_line_naming_the_most_drifted_features() {
    let dir = TempDir::new("drift-log");
    let batch = sample_rows(ROWS);
    write_parquet(&dir.path().join("a.parquet"), std::slice::from_ref(&batch));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_crmscore"))
        .current_dir(repo())
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--device",
            "cpu",
            "--poll-ms",
            "50",
        ])
        .args(["--state-dir", "", "--feedback-dir", ""])
        .arg("--models")
        .arg(models())
        .arg("--snapshots")
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .env_remove("CRMSCORE_LOG_FORMAT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, sink) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let wait_line = |want: &dyn Fn(&str) -> bool| loop {
        let line = sink
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no such line from the server"));
        if want(&line) {
            return line;
        }
    };
    wait_line(&|l: &str| l.contains("snapshot swapped in") && l.contains("a.parquet"));
    write_parquet(&dir.path().join("b.parquet"), &[drifted(&batch)]);
    let line = wait_line(&|l: &str| l.contains("snapshot drift against the one it replaced"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains("snapshot=b.parquet")
            && line.contains("against=a.parquet")
            && line.contains("top=tenure_months ")
            && line.contains(", monthly_charges ")
            && line.contains("score_psi="),
        "{line}"
    );
}
