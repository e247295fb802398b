//! Every Parquet dialect a pipeline writes, served over HTTP: Hive-partitioned folders from pyarrow and DuckDB
//! (partition columns as model features, `__HIVE_DEFAULT_PARTITION__` as null, with and without `_SUCCESS`),
//! Spark-style part names with and without extension, every codec; each scores exactly like the same rows as one
//! plain file. And every snapshot found but not served says why in `last_error` and the admin reload.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use arrow_array::cast::AsArray;
use common::*;
use parquet::basic::Compression;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const ROWS: usize = 2000;

/// Writes the first `ROWS` rows of the sample snapshot in every layout (argv: sample, output folder).
const WRITE_DIALECTS: &str = r#"
import os, sys, duckdb, pyarrow.dataset as ds, pyarrow.parquet as pq
sample, out = sys.argv[1], sys.argv[2]
t = pq.read_table(sample).slice(0, 2000)
os.makedirs(f"{out}/plain")
pq.write_table(t, f"{out}/plain/customers.parquet", row_group_size=256)

# pyarrow: string and integer partition keys; the partition columns are not in the files.
ds.write_dataset(t, f"{out}/pyarrow/customers", format="parquet", partitioning=["segment", "contract_type"],
                 partitioning_flavor="hive")
open(f"{out}/pyarrow/customers/_SUCCESS", "w").close()

# DuckDB: a float key with nulls (app_rating), no _SUCCESS (DuckDB writes none).
os.makedirs(f"{out}/duckdb")
duckdb.sql(f"COPY (SELECT * FROM t) TO '{out}/duckdb/customers' (FORMAT parquet, PARTITION_BY (segment, app_rating))")

# Spark-style names and codecs, 250 rows each; the last rows are written by the Rust test (hadoop LZ4).
spark = f"{out}/spark/customers"
os.makedirs(spark)
uuid = "5f1e0c6a-8d4b-4c2e-9a57-0d1b2c3d4e5f"
parts = [("snappy", ".c000.snappy.parquet"), ("zstd", ".c000.zstd.parquet"), ("gzip", ".c000.gz.parquet"),
         ("lz4", ".c000.lz4raw.parquet"), ("brotli", ".c000.brotli.parquet"), ("none", ".c000"),
         ("snappy", "-c000")]
for i, (codec, suffix) in enumerate(parts):
    name = f"part-{i:05d}-{uuid}{suffix}"
    pq.write_table(t.slice(250 * i, 250), f"{spark}/{name}", compression=codec, row_group_size=100)
    open(f"{spark}/.{name}.crc", "wb").write(b"crc")
open(f"{spark}/_started_42", "w").close()
open(f"{spark}/_committed_42", "w").close()

for path in [f"{out}/pyarrow/customers/segment=smb/contract_type=1/part-0.parquet"]:
    names = pq.read_schema(path).names
    assert "segment" not in names and "contract_type" not in names, names
print("ok")
"#;

fn ids() -> Vec<String> {
    let batch = sample_rows(ROWS);
    batch
        .column_by_name("customer_id")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap().to_string())
        .collect()
}

/// Churn probabilities of `ids` from the running server, in order.
fn scores(server: &crmscore::RunningServer, ids: &[String]) -> Vec<f64> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(100) {
        let (status, body) = post(server, "/v1/churn/score", &json!({ "customer_ids": chunk }));
        assert_eq!(status, 200, "{body}");
        for r in body["results"].as_array().unwrap() {
            out.push(
                r["churn_probability"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{r}")),
            );
        }
    }
    out
}

/// Serves `snapshots` (with `settle`), checks it holds every row, and returns its scores of `ids`.
fn served_scores(snapshots: &Path, settle: Option<u64>, ids: &[String]) -> (String, Vec<f64>) {
    let server = start_ready(crmscore::Config {
        snapshot_settle_seconds: settle,
        ..config(snapshots)
    });
    let (_, info) = get(&server, "/v1/snapshot");
    assert_eq!(info["rows"], ROWS, "{info}");
    assert_eq!(info["last_error"], Value::Null, "{info}");
    let version = info["version"].as_str().unwrap().to_string();
    let scores = scores(&server, ids);
    server.stop();
    (version, scores)
}

fn codecs(folder: &Path) -> BTreeSet<String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("part-") {
            continue;
        }
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        for rg in reader.metadata().row_groups() {
            for c in rg.columns() {
                let codec = c.compression().to_string();
                found.insert(codec.split('(').next().unwrap().to_string());
            }
        }
    }
    found
}

#[test]
fn partitioned_and_spark_dialects_score_like_the_plain_file() {
    let Some(python) = dataeng_python() else {
        return;
    };
    let dir = TempDir::new("dialects");
    let sample = sample_snapshot();
    let out = run_python(
        &python,
        WRITE_DIALECTS,
        &[sample.to_str().unwrap(), dir.path().to_str().unwrap()],
    );
    assert_eq!(out.trim(), "ok");
    // Spark's last part: hadoop-framed LZ4 (the `LZ4` codec; pyarrow writes only `LZ4_RAW`), then _SUCCESS.
    let spark = dir.path().join("spark/customers");
    let last = sample_rows(ROWS).slice(1750, 250);
    let file = std::fs::File::create(spark.join("part-00007-5f1e0c6a.c000.lz4.parquet")).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(Compression::LZ4)
        .build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, last.schema(), Some(props)).unwrap();
    writer.write(&last).unwrap();
    writer.close().unwrap();
    std::fs::write(spark.join("_SUCCESS"), b"").unwrap();
    let expected: BTreeSet<String> = [
        "BROTLI",
        "GZIP",
        "LZ4",
        "LZ4_RAW",
        "SNAPPY",
        "UNCOMPRESSED",
        "ZSTD",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(codecs(&spark), expected);

    let ids = ids();
    let (version, plain) = served_scores(&dir.path().join("plain"), None, &ids);
    assert_eq!(version, "customers.parquet");
    assert!(plain.iter().all(|p| (0.0..=1.0).contains(p)));

    for (layout, settle) in [("pyarrow", None), ("duckdb", Some(1)), ("spark", None)] {
        let (version, got) = served_scores(&dir.path().join(layout), settle, &ids);
        assert_eq!(version, "customers", "{layout}");
        let worst = plain
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 1e-6, "{layout}: scores differ by up to {worst}");
    }
}

#[test]
fn a_duckdb_folder_without_success_waits_and_says_why() {
    let Some(python) = dataeng_python() else {
        return;
    };
    let dir = TempDir::new("duckdb-wait");
    let script = r#"
import sys, duckdb, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]).slice(0, 500)
duckdb.sql(f"COPY (SELECT * FROM t) TO '{sys.argv[2]}/customers' (FORMAT parquet, PARTITION_BY (contract_type))")
"#;
    let sample = sample_snapshot();
    run_python(
        &python,
        script,
        &[sample.to_str().unwrap(), dir.path().to_str().unwrap()],
    );
    let server = crmscore::start(config(dir.path())).unwrap();
    let body = wait_for(&server, "/v2/health/ready", WAIT, |status, body| {
        status == 503
            && body["error"]
                .as_str()
                .is_some_and(|e| e.contains("_SUCCESS"))
    });
    let error = v2_error(&body);
    assert!(
        error.contains("customers") && error.contains("--snapshot-settle-seconds"),
        "{error}"
    );
    let (status, body) = post(&server, "/v1/admin/snapshot/reload", &json!({}));
    assert_eq!(status, 422, "{body}");
    assert!(v1_error(&body, "snapshot_rejected").contains("no _SUCCESS marker"));
    // The writer's marker completes it.
    std::fs::write(dir.path().join("customers/_SUCCESS"), b"").unwrap();
    wait_ready(&server, WAIT);
    let (_, info) = get(&server, "/v1/snapshot");
    assert_eq!(
        (info["version"].as_str(), info["rows"].as_u64()),
        (Some("customers"), Some(500))
    );
    server.stop();
}

/// Rewrites every column chunk of `column` in an uncompressed Parquet file as if it were LZO-compressed (the
/// codec field of its column metadata, thrift compact encoding), returning how many were changed.
fn mark_lzo(path: &Path, column: &str) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let mut pattern = vec![0x19, 0x18, column.len() as u8];
    pattern.extend_from_slice(column.as_bytes());
    pattern.extend_from_slice(&[0x15, 0x00]);
    let mut changed = 0;
    let mut i = 0;
    while i + pattern.len() <= bytes.len() {
        if bytes[i..i + pattern.len()] == pattern[..] {
            let at = i + pattern.len() - 1;
            bytes[at] = 0x06; // LZO = 3, zigzag-encoded
            changed += 1;
        }
        i += 1;
    }
    std::fs::write(path, bytes).unwrap();
    changed
}

#[test]
fn every_snapshot_found_but_not_served_says_why() {
    let dir = TempDir::new("unservable");
    let feature = crmscore::model::ModelSpec::load(&models().join("churn"))
        .unwrap()
        .feature_columns()[0]
        .clone();
    let rows = sample_rows(600);
    write_parquet(&dir.path().join("base.parquet"), &[rows.slice(0, 500)]);
    let server = start_ready(config(dir.path()));

    let success = |folder: &Path| std::fs::write(folder.join("_SUCCESS"), b"").unwrap();
    type Setup<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Setup, String)> = vec![
        (
            "no-success",
            Box::new(|f: &Path| {
                write_parquet(&f.join("part-00000.parquet"), std::slice::from_ref(&rows))
            }),
            "has no _SUCCESS marker".into(),
        ),
        (
            "not-parquet",
            Box::new(|f: &Path| {
                write_parquet(&f.join("part-00000.parquet"), std::slice::from_ref(&rows));
                std::fs::write(f.join("part-00001"), b"customer_id,x\nC1,2\n").unwrap();
                success(f);
            }),
            "'part-00001' is not a Parquet file".into(),
        ),
        (
            "no-parts",
            Box::new(|f: &Path| success(f)),
            "holds no Parquet part files".into(),
        ),
        (
            "schemas-disagree",
            Box::new(|f: &Path| {
                std::fs::create_dir_all(f.join("region=1")).unwrap();
                std::fs::create_dir_all(f.join("region=2")).unwrap();
                write_parquet(&f.join("region=1/part-0.parquet"), &[rows.slice(0, 300)]);
                let without = with_column(&rows.slice(300, 300), &feature, None);
                write_parquet(&f.join("region=2/part-0.parquet"), &[without]);
                success(f);
            }),
            format!("region=2/part-0.parquet: column '{feature}' is missing"),
        ),
        (
            "text-partition-feature",
            Box::new(|f: &Path| {
                let folder = f.join(format!("{feature}=high"));
                std::fs::create_dir_all(&folder).unwrap();
                let without = with_column(&rows, &feature, None);
                write_parquet(&folder.join("part-0.parquet"), &[without]);
                success(f);
            }),
            "partition folder key with text values".into(),
        ),
        (
            "lzo",
            Box::new(|f: &Path| {
                let file = std::fs::File::create(f.join("part-0.parquet")).unwrap();
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(Compression::UNCOMPRESSED)
                    .build();
                let mut w =
                    parquet::arrow::ArrowWriter::try_new(file, rows.schema(), Some(props)).unwrap();
                w.write(&rows).unwrap();
                w.close().unwrap();
                assert!(mark_lzo(&f.join("part-0.parquet"), &feature) > 0);
                success(f);
            }),
            format!("column '{feature}' is compressed with LZO"),
        ),
    ];
    for (name, setup, expected) in cases {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        setup(&folder);
        let info = wait_for(&server, "/v1/snapshot", WAIT, |_, body| {
            body["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(&expected))
        });
        assert_eq!(
            info["version"], "base.parquet",
            "{name}: the served one stays"
        );
        assert_eq!(info["refused"][0]["version"], name, "{info}");
        let (status, body) = post(&server, "/v1/admin/snapshot/reload", &json!({}));
        assert_eq!(
            status, 422,
            "{name}: a manual reload is not 'unchanged': {body}"
        );
        let message = v1_error(&body, "snapshot_rejected");
        assert!(
            message.contains(name) && message.contains(&expected),
            "{message}"
        );
        std::fs::remove_dir_all(&folder).unwrap();
        wait_for(&server, "/v1/snapshot", WAIT, |_, body| {
            body["last_error"].is_null()
        });
    }
    server.stop();
}
