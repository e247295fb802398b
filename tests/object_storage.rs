//! Snapshots and models from object storage, against a real S3-compatible server (moto's, started on loopback by
//! scripts/s3_loopback.py) and the real `crmscore serve` binary reading `s3://` URLs with AWS_* credentials.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, BooleanArray, Int16Array, RecordBatch};
use common::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const BUCKET: &str = "crm-exports";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A moto S3 server on loopback with one bucket, optionally behind a proxy that drops connections while a flag
/// file exists.
struct S3 {
    python: PathBuf,
    port: u16,
    _server: Process,
    proxy: Option<(u16, PathBuf, Process)>,
}

impl S3 {
    fn script(python: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(python);
        command
            .arg(repo().join("scripts/s3_loopback.py"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    fn start(python: &Path) -> S3 {
        let port = free_port();
        let server = Self::script(python, &["serve", &port.to_string()])
            .spawn()
            .expect("moto starts");
        let s3 = S3 {
            python: python.to_path_buf(),
            port,
            _server: Process(server),
            proxy: None,
        };
        let deadline = Instant::now() + WAIT;
        while !s3.run(&["mb", &s3.direct(), BUCKET]) {
            assert!(Instant::now() < deadline, "moto never answered");
            std::thread::sleep(Duration::from_millis(200));
        }
        s3
    }

    /// Puts a proxy in front; connections through it drop mid-reply while `flag` exists.
    fn with_proxy(mut self, flag: &Path) -> S3 {
        let port = free_port();
        let args = ["proxy", &port.to_string(), &self.port.to_string()];
        let child = Self::script(&self.python, &args)
            .arg(flag)
            .spawn()
            .expect("proxy starts");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the proxy never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proxy = Some((port, flag.to_path_buf(), Process(child)));
        self
    }

    fn direct(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The endpoint the server is given: the proxy's when there is one.
    fn endpoint(&self) -> String {
        match &self.proxy {
            Some((port, ..)) => format!("http://127.0.0.1:{port}"),
            None => self.direct(),
        }
    }

    fn run(&self, args: &[&str]) -> bool {
        Self::script(&self.python, args)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Uploads `file` (or an empty object for None) as `key` (straight to moto, never through the proxy).
    fn put(&self, key: &str, file: Option<&Path>) {
        let source = file.map_or("-".to_string(), |f| f.display().to_string());
        assert!(
            self.run(&["put", &self.direct(), BUCKET, key, &source]),
            "upload of {key}"
        );
    }

    /// Standard AWS variables: moto's test credentials and the loopback endpoint (plain HTTP is allowed on
    /// loopback without AWS_ALLOW_HTTP).
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// `crmscore serve` on `models` and `snapshots` (paths or URLs), polling every 100 ms, ready.
    fn serve(&self, models: &str, snapshots: &str, args: &[&str]) -> (Served, String) {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut all = vec!["--poll-ms", "100"];
        all.extend_from_slice(args);
        let served = Served::start_with(
            "cpu",
            (models.as_ref(), snapshots.as_ref()),
            &all,
            &env,
            "info",
        );
        let base = served.base_url();
        wait_ready_at(&base);
        (served, base)
    }
}

fn dataeng() -> Option<PathBuf> {
    dataeng_python()
}

fn get_at(base: &str, path: &str) -> (u16, Value) {
    let mut resp = agent()
        .get(format!("{base}{path}"))
        .call()
        .expect("request reaches the server");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn metrics_at(base: &str) -> String {
    let mut resp = agent()
        .get(format!("{base}/metrics"))
        .call()
        .expect("metrics");
    resp.body_mut().read_to_string().unwrap_or_default()
}

fn churn_at(base: &str, ids: &[String]) -> Value {
    let mut resp = agent()
        .post(format!("{base}/v1/churn/score"))
        .send_json(json!({ "customer_ids": ids }))
        .expect("request reaches the server");
    assert_eq!(resp.status().as_u16(), 200);
    resp.body_mut().read_json().expect("JSON reply")
}

fn wait_snapshot_at(base: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = get_at(base, "/v1/snapshot");
        if status == 200 && check(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "never satisfied; last: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lets the watcher run several polls (100 ms each).
fn a_few_polls() {
    std::thread::sleep(Duration::from_millis(800));
}

fn with_tenure(batch: &RecordBatch, months: i16) -> RecordBatch {
    let tenure: ArrayRef = Arc::new(Int16Array::from(vec![months; batch.num_rows()]));
    with_column(batch, "tenure_months", Some(tenure))
}

/// `a.parquet`: the first 2,000 sample customers in row groups of 256.
fn first_snapshot(dir: &TempDir) -> (PathBuf, RecordBatch) {
    let batch = sample_rows(2000);
    let path = dir.path().join("a.parquet");
    write_parquet(&path, std::slice::from_ref(&batch));
    (path, batch)
}

/// Uploads `first` as `snaps/a.parquet` and starts a server on the shipped models reading `s3://bucket/snaps/`.
fn serve_from_bucket(s3: &S3, first: &Path) -> (Served, String) {
    s3.put("snaps/a.parquet", Some(first));
    s3.serve(
        &models().display().to_string(),
        &format!("s3://{BUCKET}/snaps/"),
        &[],
    )
}

fn probabilities(reply: &Value) -> Vec<Value> {
    reply["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["churn_probability"].clone())
        .collect()
}

#[test]
fn an_s3_snapshot_scores_as_the_same_file_on_disk_and_a_completed_prefix_replaces_it() {
    let Some(python) = dataeng() else { return };
    let s3 = S3::start(&python);
    let dir = TempDir::new("s3-snapshots");
    let (a, batch) = first_snapshot(&dir);
    let (served, base) = serve_from_bucket(&s3, &a);
    let info = wait_snapshot_at(&base, |b| b["version"] == "a.parquet");
    assert_eq!(info["rows"], 2000);

    // The same file read from disk by the in-process server answers the same, to the bit.
    let local = start_ready(config(&a));
    let ids = ids_of(&batch)[..200].to_vec();
    let remote_reply = churn_at(&base, &ids);
    let local_reply = post(&local, "/v1/churn/score", &json!({ "customer_ids": ids })).1;
    assert_eq!(probabilities(&remote_reply), probabilities(&local_reply));
    local.stop();

    // A prefix of parts is not a snapshot until its _SUCCESS object lands.
    let changed = with_tenure(&batch, 1);
    for (i, part) in [changed.slice(0, 1000), changed.slice(1000, 1000)]
        .iter()
        .enumerate()
    {
        let file = dir.path().join(format!("part-{i}.parquet"));
        write_parquet(&file, std::slice::from_ref(part));
        s3.put(&format!("snaps/day2/part-0000{i}.parquet"), Some(&file));
    }
    a_few_polls();
    assert_eq!(get_at(&base, "/v1/snapshot").1["version"], "a.parquet");
    s3.put("snaps/day2/_SUCCESS", None);
    let info = wait_snapshot_at(&base, |b| b["version"] == "day2");
    assert_eq!(info["rows"], 2000);
    assert_ne!(
        probabilities(&churn_at(&base, &ids)),
        probabilities(&remote_reply),
        "the new values serve"
    );
    // Unchanged objects are not loaded again.
    a_few_polls();
    let metrics = metrics_at(&base);
    assert!(
        metrics.contains("crmscore_snapshot_loads_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"crmscore_storage_errors_total{op="get"} 0"#),
        "{metrics}"
    );
    served.stop();
}

#[test]
fn a_hive_partitioned_spark_prefix_scores_like_the_plain_file_and_a_stray_object_is_refused() {
    let Some(python) = dataeng() else { return };
    let s3 = S3::start(&python);
    let dir = TempDir::new("s3-hive");
    let (a, batch) = first_snapshot(&dir);
    let (served, base) = serve_from_bucket(&s3, &a);
    wait_snapshot_at(&base, |b| b["version"] == "a.parquet");
    let ids = ids_of(&batch)[..200].to_vec();
    let plain = probabilities(&churn_at(&base, &ids));

    // Spark's partitionBy("contract_type"): the column only in the prefix names, parts named without a
    // .parquet extension, _SUCCESS last.
    let column = batch.column_by_name("contract_type").unwrap();
    let contract = arrow_cast::cast(column, &arrow_schema::DataType::Int64).unwrap();
    let contract = contract.as_primitive::<Int64Type>();
    let mut values: Vec<i64> = contract.values().to_vec();
    values.sort_unstable();
    values.dedup();
    assert!(values.len() > 1, "the sample has several contract types");
    for (i, value) in values.iter().enumerate() {
        let mask: BooleanArray = contract.values().iter().map(|v| Some(v == value)).collect();
        let part = arrow_select::filter::filter_record_batch(&batch, &mask).unwrap();
        let part = with_column(&part, "contract_type", None);
        let file = dir.path().join(format!("part-0000{i}-5f1e0c6a.c000"));
        write_parquet(&file, std::slice::from_ref(&part));
        s3.put(
            &format!("snaps/day3/contract_type={value}/part-0000{i}-5f1e0c6a.c000"),
            Some(&file),
        );
    }
    s3.put("snaps/day3/_SUCCESS", None);
    let info = wait_snapshot_at(&base, |b| b["version"] == "day3");
    assert_eq!(info["rows"], 2000);
    assert_eq!(
        probabilities(&churn_at(&base, &ids)),
        plain,
        "the same customers score the same from partition prefixes"
    );

    // An object outside key=value prefixes is named in last_error; the served snapshot stays.
    let file = dir.path().join("part-00000.parquet");
    write_parquet(&file, std::slice::from_ref(&batch));
    s3.put("snaps/day4/part-00000.parquet", Some(&file));
    s3.put("snaps/day4/notes/part-00001.parquet", Some(&file));
    s3.put("snaps/day4/_SUCCESS", None);
    let info = wait_snapshot_at(&base, |b| {
        b["last_error"].as_str().is_some_and(|e| {
            e.contains("'notes/part-00001.parquet' is not under partition prefixes")
        })
    });
    assert_eq!(info["version"], "day3", "{info}");
    assert_eq!(info["refused"][0]["version"], "day4", "{info}");
    served.stop();
}

#[test]
fn a_corrupt_object_is_refused_and_the_old_snapshot_keeps_serving() {
    let Some(python) = dataeng() else { return };
    let s3 = S3::start(&python);
    let dir = TempDir::new("s3-corrupt");
    let (a, batch) = first_snapshot(&dir);
    let (served, base) = serve_from_bucket(&s3, &a);
    wait_snapshot_at(&base, |b| b["version"] == "a.parquet");
    let garbage = dir.path().join("z.parquet");
    std::fs::write(&garbage, vec![7_u8; 5000]).unwrap();
    s3.put("snaps/z.parquet", Some(&garbage));
    let info = wait_snapshot_at(&base, |b| {
        b["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("z.parquet"))
    });
    assert_eq!(info["version"], "a.parquet");
    let error = info["last_error"].as_str().unwrap();
    assert!(error.contains("not a Parquet file"), "{error}");
    let ids = ids_of(&batch)[..10].to_vec();
    assert_eq!(
        churn_at(&base, &ids)["results"].as_array().unwrap().len(),
        10
    );
    assert_eq!(get_at(&base, "/v2/health/ready").0, 200);
    served.stop();
}

#[test]
fn a_connection_dropped_mid_download_keeps_the_old_snapshot_until_the_store_recovers() {
    let Some(python) = dataeng() else { return };
    let dir = TempDir::new("s3-dropped");
    let flag = dir.path().join("drop-connections");
    let s3 = S3::start(&python).with_proxy(&flag);
    let (a, batch) = first_snapshot(&dir);
    let (served, base) = serve_from_bucket(&s3, &a);
    wait_snapshot_at(&base, |b| b["version"] == "a.parquet");

    // From now on every reply over 4 KiB is cut halfway: listings pass, downloads do not.
    std::fs::write(&flag, b"").unwrap();
    let b = dir.path().join("b.parquet");
    write_parquet(&b, &[with_tenure(&batch, 1)]);
    s3.put("snaps/b.parquet", Some(&b));
    let info = wait_snapshot_at(&base, |v| {
        v["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("b.parquet"))
    });
    assert_eq!(
        info["version"], "a.parquet",
        "the old snapshot keeps serving"
    );
    let error = info["last_error"].as_str().unwrap();
    assert!(error.contains("cannot fetch"), "{error}");
    let ids = ids_of(&batch)[..10].to_vec();
    assert_eq!(
        churn_at(&base, &ids)["results"].as_array().unwrap().len(),
        10
    );
    let metrics = metrics_at(&base);
    let retried = metrics
        .lines()
        .any(|l| l.starts_with("crmscore_storage_retries_total") && !l.ends_with(" 0"));
    assert!(retried, "retries are counted: {metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("crmscore_storage_errors_total") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // A network failure is not a verdict on the snapshot: once the store answers again it is served.
    std::fs::remove_file(&flag).unwrap();
    let info = wait_snapshot_at(&base, |v| v["version"] == "b.parquet");
    assert!(info["last_error"].is_null(), "{info}");
    served.stop();
}

#[test]
fn models_from_s3_are_mirrored_and_a_new_version_swaps_in() {
    let Some(python) = dataeng() else { return };
    let s3 = S3::start(&python);
    let dir = TempDir::new("s3-models");
    for f in ["model.onnx", "model.toml"] {
        s3.put(
            &format!("models/churn/{f}"),
            Some(&models().join("churn").join(f)),
        );
    }
    let state = dir.path().join("state");
    let (served, base) = s3.serve(
        &format!("s3://{BUCKET}/models/"),
        &sample_snapshot().display().to_string(),
        &["--state-dir", &state.display().to_string()],
    );
    let (status, meta) = get_at(&base, "/v2/models/churn");
    assert_eq!((status, meta["versions"].clone()), (200, json!(["1"])));
    let ids = ids_of(&sample_rows(20));
    let before = churn_at(&base, &ids);
    assert_eq!(before["results"].as_array().unwrap().len(), 20);
    let cache = std::fs::read_dir(state.join("model-cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(cache.join("churn/model.onnx").is_file());

    let manifest = std::fs::read_to_string(models().join("churn/model.toml"))
        .unwrap()
        .replace("version = \"1\"", "version = \"2\"");
    let bumped = dir.path().join("model.toml");
    std::fs::write(&bumped, manifest).unwrap();
    s3.put("models/churn/model.toml", Some(&bumped));
    let deadline = Instant::now() + WAIT;
    while get_at(&base, "/v2/models/churn").1["versions"] != json!(["2"]) {
        assert!(Instant::now() < deadline, "version 2 never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        probabilities(&churn_at(&base, &ids)),
        probabilities(&before)
    );
    let metrics = metrics_at(&base);
    assert!(
        metrics.contains(r#"crmscore_model_loads_total{model="churn"} 2"#),
        "{metrics}"
    );
    served.stop();
}
