//! `crmscore score-batch` run as the real binary on the shipped models and policy: answers equal to the HTTP
//! insights of a server serving the same snapshot, the part folder read back by pyarrow and DuckDB, shards that
//! add up to one run, a killed run that leaves nothing complete-looking, bad snapshots refused with the loader's
//! message, and the ranked call list.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, UInt32Type};
use arrow_array::{Array, RecordBatch, StructArray};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

/// Customers of the test snapshot (written in row groups of 256 rows by `write_parquet`).
const CUSTOMERS: usize = 3000;

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crmscore"));
    command
        .current_dir(repo())
        .env("CRMSCORE_LOG_FORMAT", "text");
    command
}

fn score_batch(args: &[&str]) -> Output {
    binary()
        .arg("score-batch")
        .args(args)
        .output()
        .expect("crmscore runs")
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "score-batch failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// A snapshot of the sample's first `CUSTOMERS` customers in twelve row groups.
fn snapshot(dir: &Path) -> PathBuf {
    let path = dir.join("customers.parquet");
    write_parquet(&path, &[sample_rows(CUSTOMERS)]);
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Every row group of every Parquet file in `path` (a file, or a folder's part files in name order).
fn read_output(path: &Path) -> Vec<RecordBatch> {
    let files = match path.is_dir() {
        true => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .expect("output folder")
                .map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                .collect();
            files.sort();
            files
        }
        false => vec![path.to_path_buf()],
    };
    files
        .iter()
        .flat_map(|f| {
            ParquetRecordBatchReaderBuilder::try_new(File::open(f).expect("file"))
                .expect("parquet")
                .build()
                .expect("reader")
                .map(|b| b.expect("batch"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The output rows as JSON, in the shape of an HTTP insight (so the two compare field by field).
fn rows_as_json(batches: &[RecordBatch]) -> Vec<Value> {
    let mut rows = Vec::new();
    for b in batches {
        let col = |name: &str| b.column_by_name(name).cloned();
        let text = |name: &str, i: usize| {
            col(name).and_then(|c| {
                let c = c.as_string::<i32>();
                (!c.is_null(i)).then(|| c.value(i).to_string())
            })
        };
        for i in 0..b.num_rows() {
            let mut row = json!({"customer_id": text("customer_id", i)});
            if let Some(p) = col("churn_probability") {
                let p = p.as_primitive::<Float32Type>().value(i);
                row["churn"] = json!({"probability": p, "risk": text("risk", i)});
                if let Some(reasons) = col("reasons") {
                    let list = reasons.as_list::<i32>().value(i);
                    let list: &StructArray = list.as_struct();
                    let reasons: Vec<Value> = (0..list.len())
                        .map(|r| {
                            let value = list.column(1).as_primitive::<Float32Type>();
                            json!({
                                "name": list.column(0).as_string::<i32>().value(r),
                                "value": (!value.is_null(r)).then(|| value.value(r)),
                                "contribution": list.column(2).as_primitive::<Float32Type>().value(r),
                                "direction": list.column(3).as_string::<i32>().value(r),
                            })
                        })
                        .collect();
                    row["churn"]["reasons"] = json!(reasons);
                }
            }
            if col("segment").is_some() {
                row["segment"] =
                    json!({"key": text("segment", i), "name": text("segment_name", i)});
            }
            if let Some(offers) = col("offers") {
                let list = offers.as_list::<i32>().value(i);
                let list: &StructArray = list.as_struct();
                let offers: Vec<Value> = (0..list.len())
                    .map(|r| {
                        json!({
                            "item_id": list.column(0).as_string::<i32>().value(r),
                            "score": list.column(1).as_primitive::<Float32Type>().value(r),
                        })
                    })
                    .collect();
                row["offers"] = json!(offers);
            }
            if let Some(action) = text("next_action", i) {
                let priority = col("priority").expect("priority");
                let value = col("expected_value").expect("expected_value");
                let value = value.as_primitive::<Float64Type>();
                row["next_best_action"] = json!({
                    "action": action,
                    "channel": text("channel", i),
                    "priority": priority.as_primitive::<UInt32Type>().value(i),
                    "rule": text("rule", i),
                    "expected_value": (!value.is_null(i)).then(|| value.value(i)),
                });
            }
            rows.push(row);
        }
    }
    rows
}

fn close(a: &Value, b: &Value, what: &str) {
    let (x, y) = (a.as_f64(), b.as_f64());
    match (x, y) {
        (Some(x), Some(y)) => assert!(
            (x - y).abs() <= 1e-6 * x.abs().max(1.0),
            "{what}: batch {x} vs HTTP {y}"
        ),
        _ => assert_eq!(a, b, "{what}"),
    }
}

#[test]
fn batch_answers_equal_the_http_insights() {
    let dir = TempDir::new("batch-http");
    let snapshot = snapshot(dir.path());
    let out = dir.path().join("scores");
    ok(score_batch(&[
        "--snapshot",
        s(&snapshot),
        "--output",
        s(&out),
        "--models",
        "churn,segmentation,recommendation",
        "--explain",
        "3",
        "--offers",
        "3",
        "--insights",
        "--chunk-rows",
        "700",
        "--threads",
        "2",
    ]));
    assert!(
        out.join("_SUCCESS").is_file(),
        "a complete folder has _SUCCESS"
    );
    let batch = rows_as_json(&read_output(&out));
    assert_eq!(batch.len(), CUSTOMERS);

    let mut config = config(&snapshot);
    config.policy = Some(repo().join("policies/engagement.toml"));
    let server = start_ready(config);
    let ids: Vec<&Value> = batch.iter().map(|r| &r["customer_id"]).collect();
    let (status, reply) = post(
        &server,
        "/v1/insights",
        &json!({"customer_ids": ids, "k": 3, "reasons": 3}),
    );
    assert_eq!(status, 200, "{reply}");
    let http = reply["results"].as_array().expect("results");
    assert_eq!(http.len(), CUSTOMERS);
    let mut actions = std::collections::BTreeSet::new();
    for (b, h) in batch.iter().zip(http) {
        let id = &b["customer_id"];
        assert_eq!(id, &h["customer_id"]);
        close(
            &b["churn"]["probability"],
            &h["churn"]["probability"],
            "probability",
        );
        assert_eq!(b["churn"]["risk"], h["churn"]["risk"], "risk of {id}");
        let (br, hr) = (
            b["churn"]["reasons"].as_array().unwrap(),
            h["churn"]["reasons"].as_array().unwrap(),
        );
        assert_eq!(br.len(), hr.len(), "reasons of {id}");
        for (x, y) in br.iter().zip(hr) {
            assert_eq!(x["name"], y["name"], "reason of {id}");
            assert_eq!(x["direction"], y["direction"], "reason of {id}");
            close(&x["contribution"], &y["contribution"], "contribution");
            close(&x["value"], &y["value"], "reason value");
        }
        assert_eq!(b["segment"]["key"], h["segment"]["key"], "segment of {id}");
        assert_eq!(
            b["segment"]["name"], h["segment"]["name"],
            "segment of {id}"
        );
        let (bo, ho) = (
            b["offers"].as_array().unwrap(),
            h["offers"].as_array().unwrap(),
        );
        assert_eq!(bo.len(), ho.len(), "offers of {id}");
        for (x, y) in bo.iter().zip(ho) {
            assert_eq!(x["item_id"], y["item_id"], "offer of {id}");
            close(&x["score"], &y["score"], "offer score");
        }
        let (ba, ha) = (&b["next_best_action"], &h["next_best_action"]);
        for field in ["action", "channel", "priority", "rule"] {
            assert_eq!(ba[field], ha[field], "{field} of {id}");
        }
        close(
            &ba["expected_value"],
            &ha["expected_value"],
            "expected value",
        );
        actions.insert(ba["action"].to_string());
    }
    assert!(
        actions.len() >= 3,
        "the sample reaches several actions: {actions:?}"
    );
    server.stop();
}

#[test]
fn the_part_folder_reads_back_in_pyarrow_and_duckdb() {
    let Some(python) = dataeng_python() else {
        return;
    };
    let dir = TempDir::new("batch-readers");
    let snapshot = snapshot(dir.path());
    let out = dir.path().join("scores");
    for shard in ["0/2", "1/2"] {
        ok(score_batch(&[
            "--snapshot",
            s(&snapshot),
            "--output",
            s(&out),
            "--models",
            "churn,recommendation",
            "--explain",
            "2",
            "--shard",
            shard,
            "--chunk-rows",
            "500",
        ]));
    }
    let ours = rows_as_json(&read_output(&out));
    let sum: f64 = ours
        .iter()
        .map(|r| r["churn"]["probability"].as_f64().unwrap())
        .sum();
    let script = r#"
import sys, duckdb, pyarrow.dataset as ds
path = sys.argv[1]
t = ds.dataset(path, format="parquet").to_table()
assert t.schema.field("reasons").type.value_type.num_fields == 4, t.schema
first = t.slice(0, 1).to_pylist()[0]
assert len(first["reasons"]) == 2 and len(first["offers"]) == 3, first
con = duckdb.connect()
n, total, reasons = con.execute(
    f"select count(*), sum(churn_probability), sum(len(reasons)) from read_parquet('{path}/*.parquet')"
).fetchone()
top = con.execute(
    f"select r.name from read_parquet('{path}/*.parquet'), unnest(reasons) as u(r) limit 1"
).fetchone()[0]
print(t.num_rows, n, total, reasons, top)
"#;
    let printed = run_python(&python, script, &[s(&out)]);
    let fields: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(fields[0], CUSTOMERS.to_string(), "pyarrow rows: {printed}");
    assert_eq!(fields[1], CUSTOMERS.to_string(), "DuckDB rows: {printed}");
    let duck_sum: f64 = fields[2].parse().unwrap();
    assert!((duck_sum - sum).abs() < 1e-3, "{duck_sum} vs {sum}");
    assert_eq!(fields[3], (2 * CUSTOMERS).to_string());
    assert_eq!(
        fields[4],
        ours[0]["churn"]["reasons"][0]["name"].as_str().unwrap()
    );
}

#[test]
fn shards_add_up_to_one_run_and_complete_the_folder_last() {
    let dir = TempDir::new("batch-shards");
    let snapshot = snapshot(dir.path());
    let whole = dir.path().join("whole.parquet");
    let common = ["--models", "churn,segmentation", "--chunk-rows", "300"];
    ok(score_batch(
        &[
            &["--snapshot", s(&snapshot), "--output", s(&whole)],
            &common[..],
        ]
        .concat(),
    ));
    assert!(
        !dir.path().join("_SUCCESS").exists(),
        "a single file has no marker"
    );

    let parts = dir.path().join("parts");
    for i in [2, 0, 1] {
        assert!(
            !parts.join("_SUCCESS").exists(),
            "no _SUCCESS before every part is there"
        );
        let shard = format!("{i}/3");
        ok(score_batch(
            &[
                &[
                    "--snapshot",
                    s(&snapshot),
                    "--output",
                    s(&parts),
                    "--shard",
                    &shard,
                ],
                &common[..],
            ]
            .concat(),
        ));
    }
    assert!(
        parts.join("_SUCCESS").is_file(),
        "the shard that completes the set writes _SUCCESS"
    );
    let names: Vec<String> = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        !parts.join("_temporary").exists(),
        "the temporary folder is gone"
    );
    assert_eq!(
        rows_as_json(&read_output(&parts)),
        rows_as_json(&read_output(&whole))
    );

    // --finalize completes only a full set, and names what is missing.
    std::fs::remove_file(parts.join("_SUCCESS")).unwrap();
    std::fs::remove_file(parts.join("part-00001-of-00003.parquet")).unwrap();
    let refused = score_batch(&[
        "--snapshot",
        s(&snapshot),
        "--output",
        s(&parts),
        "--shard",
        "0/3",
        "--finalize",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("part-00001-of-00003.parquet"), "{stderr}");
    assert!(!parts.join("_SUCCESS").exists());
    ok(score_batch(
        &[
            &[
                "--snapshot",
                s(&snapshot),
                "--output",
                s(&parts),
                "--shard",
                "1/3",
            ],
            &common[..],
        ]
        .concat(),
    ));
    std::fs::remove_file(parts.join("_SUCCESS")).unwrap();
    ok(score_batch(&[
        "--snapshot",
        s(&snapshot),
        "--output",
        s(&parts),
        "--shard",
        "0/3",
        "--finalize",
    ]));
    assert!(parts.join("_SUCCESS").is_file());
}

#[test]
fn a_killed_run_leaves_nothing_that_looks_complete() {
    let dir = TempDir::new("batch-kill");
    let out = dir.path().join("scores");
    // The whole sample with reasons: long enough in a debug build to be killed mid-way.
    let mut child = binary()
        .args([
            "score-batch",
            "--snapshot",
            s(&sample_snapshot()),
            "--output",
            s(&out),
        ])
        .args([
            "--models",
            "churn,segmentation,recommendation",
            "--explain",
            "3",
            "--chunk-rows",
            "2000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    let writing = loop {
        let started = std::fs::read_dir(out.join("_temporary"))
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        if started || Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break started;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(writing, "the run never started writing");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "killed mid-way, not finished: {status:?}"
    );
    assert!(!out.join("_SUCCESS").exists());
    let visible: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('_') && !n.starts_with('.'))
        .collect();
    assert!(
        visible.is_empty(),
        "visible files after a kill: {visible:?}"
    );
    // And the server's loader agrees: nothing there to serve.
    let check = binary().args(["check-snapshot", s(&out)]).output().unwrap();
    assert!(!check.status.success());
}

/// The message `check-snapshot` gives for `path`.
fn loader_message(path: &Path) -> String {
    let out = binary().args(["check-snapshot", s(path)]).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    report
        .lines()
        .find_map(|l| l.strip_prefix("verdict  FAIL: "))
        .unwrap_or_else(|| panic!("check-snapshot accepted {}: {report}", path.display()))
        .to_string()
}

#[test]
fn bad_snapshots_are_refused_with_the_loaders_message() {
    let dir = TempDir::new("batch-bad");
    let no_tenure = dir.path().join("no-tenure.parquet");
    write_parquet(
        &no_tenure,
        &[with_column(&sample_rows(500), "tenure_months", None)],
    );
    let garbage = dir.path().join("garbage.parquet");
    std::fs::write(&garbage, b"this is not parquet").unwrap();
    for bad in [&no_tenure, &garbage] {
        let want = loader_message(bad);
        let out = dir.path().join("out");
        let refused = score_batch(&[
            "--snapshot",
            s(bad),
            "--output",
            s(&out),
            "--models",
            "churn,segmentation,recommendation",
        ]);
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains(&format!("error: {want}")),
            "want {want}\ngot {stderr}"
        );
        assert!(!out.exists(), "nothing is written for a refused snapshot");
    }
}

#[test]
fn top_n_is_the_call_list_ranked_by_expected_value() {
    let dir = TempDir::new("batch-top");
    let snapshot = snapshot(dir.path());
    let (all, top) = (
        dir.path().join("all.parquet"),
        dir.path().join("top.parquet"),
    );
    let common = [
        "--models",
        "churn,segmentation,recommendation",
        "--insights",
        "--chunk-rows",
        "400",
    ];
    ok(score_batch(
        &[
            &["--snapshot", s(&snapshot), "--output", s(&all)],
            &common[..],
        ]
        .concat(),
    ));
    ok(score_batch(
        &[
            &[
                "--snapshot",
                s(&snapshot),
                "--output",
                s(&top),
                "--top",
                "50",
                "--rank-by",
                "expected_value",
            ],
            &common[..],
        ]
        .concat(),
    ));
    let value = |r: &Value| r["next_best_action"]["expected_value"].as_f64();
    let listed = rows_as_json(&read_output(&top));
    assert_eq!(listed.len(), 50);
    let values: Vec<f64> = listed
        .iter()
        .map(|r| value(r).expect("ranked rows have a value"))
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] >= w[1]),
        "best first: {values:?}"
    );
    let mut every: Vec<f64> = rows_as_json(&read_output(&all))
        .iter()
        .filter_map(value)
        .collect();
    every.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(
        values,
        every[..50],
        "the 50 highest expected values of the whole run"
    );
    let refused = score_batch(&[
        "--snapshot",
        s(&snapshot),
        "--output",
        s(&top),
        "--top",
        "5",
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("needs --insights"),
        "{stderr}"
    );
}
