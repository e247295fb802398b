//! Shared helpers for the integration tests: start the real server on a free port and talk HTTP to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crmscore::{Config, RunningServer};
use serde_json::Value;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped models folder.
pub fn models() -> PathBuf {
    repo().join("models")
}

/// The shipped sample snapshot.
pub fn sample_snapshot() -> PathBuf {
    repo().join("snapshots").join("customers-sample.parquet")
}

/// A config on the shipped models and the given snapshots path.
pub fn config(snapshots: &Path) -> Config {
    Config::for_tests(models(), snapshots)
}

/// Starts a server and waits (bounded) until it reports ready.
pub fn start_ready(config: Config) -> RunningServer {
    let server = crmscore::start(config).expect("server starts");
    wait_ready(&server, Duration::from_secs(60));
    server
}

/// Polls /v2/health/ready until 200, panicking with the last reason after `limit`.
pub fn wait_ready(server: &RunningServer, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = get(server, "/v2/health/ready");
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server not ready after {limit:?}: {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client that returns error statuses as replies and gives up after 60 s.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// A base URL for the server.
pub fn url(server: &RunningServer, path: &str) -> String {
    format!("http://{}{}", server.addr, path)
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::String(text.to_string()))
}

/// GET, returning status and JSON body (a string Value when the body is not JSON).
pub fn get(server: &RunningServer, path: &str) -> (u16, Value) {
    let (status, _, text) = get_text(server, path);
    (status, json_of(&text))
}

/// GET, returning status, headers and raw body.
pub fn get_text(server: &RunningServer, path: &str) -> (u16, ureq::http::HeaderMap, String) {
    let mut resp = agent()
        .get(url(server, path))
        .call()
        .expect("request reaches the server");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, headers, text)
}

/// POST a raw body as JSON, returning status, headers and JSON body.
pub fn post_raw(
    server: &RunningServer,
    path: &str,
    body: &str,
) -> (u16, ureq::http::HeaderMap, Value) {
    let mut resp = agent()
        .post(url(server, path))
        .header("content-type", "application/json")
        .send(body)
        .expect("request reaches the server");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap_or_default();
    (status, headers, json_of(&text))
}

/// POST a JSON value, returning status and JSON body.
pub fn post(server: &RunningServer, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, json) = post_raw(server, path, &body.to_string());
    (status, json)
}

/// Asserts a v1 error envelope with `code`, returning the message.
pub fn v1_error(body: &Value, code: &str) -> String {
    assert_eq!(body["error"]["code"], code, "unexpected body {body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("error message is a string");
    assert!(!message.is_empty());
    message.to_string()
}

/// Asserts a v2 error envelope, returning the message.
pub fn v2_error(body: &Value) -> String {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("v2 error must be a string: {body}"))
        .to_string()
}

/// A fresh temporary folder under target/ (removed on drop).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("crmscore-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The first `n` rows of the sample snapshot as one record batch (all columns).
pub fn sample_rows(n: usize) -> arrow_array::RecordBatch {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(sample_snapshot()).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .with_batch_size(n)
        .build()
        .unwrap();
    reader.into_iter().next().unwrap().unwrap().slice(0, n)
}

/// Writes batches to `path` as Parquet with small row groups (so loads are parallel), atomically by rename.
pub fn write_parquet(path: &Path, batches: &[arrow_array::RecordBatch]) {
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(256))
        .build();
    let mut writer = ArrowWriter::try_new(file, batches[0].schema(), Some(props)).unwrap();
    for b in batches {
        writer.write(b).unwrap();
    }
    writer.close().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Replaces (or drops, with None) one column of a batch.
pub fn with_column(
    batch: &arrow_array::RecordBatch,
    name: &str,
    array: Option<arrow_array::ArrayRef>,
) -> arrow_array::RecordBatch {
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.name() == name {
            if let Some(a) = &array {
                fields.push(Arc::new(Field::new(name, a.data_type().clone(), true)));
                columns.push(a.clone());
            }
        } else {
            fields.push(field.clone());
            columns.push(column.clone());
        }
    }
    arrow_array::RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// Polls `path` until `check` accepts the JSON body (bounded).
pub fn wait_for(
    server: &RunningServer,
    path: &str,
    limit: Duration,
    check: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = get(server, path);
        if check(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never satisfied the check; last: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Requests sent while something changes underneath: each thread posts one-id churn requests until stopped.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Reply>>>,
}

/// What one request under load got back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub snapshot: Option<String>,
    pub model_version: Option<String>,
    pub body: Value,
}

impl Load {
    /// Starts `threads` client threads against `server`, each picking ids from `ids` at random.
    pub fn start(server: &RunningServer, ids: Vec<String>, threads: usize) -> Load {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let url = url(server, "/v1/churn/score");
        let threads = (0..threads)
            .map(|t| {
                let (stop, url, ids) = (stop.clone(), url.clone(), ids.clone());
                std::thread::spawn(move || {
                    let agent = agent();
                    let mut seed = 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(t as u64 + 1);
                    let mut replies = Vec::new();
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let id = &ids[(seed % ids.len() as u64) as usize];
                        let body = serde_json::json!({ "customer_ids": [id] }).to_string();
                        let mut resp = match agent
                            .post(&url)
                            .header("content-type", "application/json")
                            .send(&body)
                        {
                            Ok(r) => r,
                            Err(e) => {
                                replies.push(Reply {
                                    status: 0,
                                    snapshot: None,
                                    model_version: None,
                                    body: Value::String(e.to_string()),
                                });
                                continue;
                            }
                        };
                        let status = resp.status().as_u16();
                        let body = json_of(&resp.body_mut().read_to_string().unwrap_or_default());
                        replies.push(Reply {
                            status,
                            snapshot: body["snapshot"].as_str().map(str::to_string),
                            model_version: body["model"]["version"].as_str().map(str::to_string),
                            body,
                        });
                    }
                    replies
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the clients and returns every reply, asserting there was at least one and none failed.
    pub fn finish_all_ok(self) -> Vec<Reply> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let replies: Vec<Reply> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert!(
            replies.len() > 10,
            "the load sent too few requests: {}",
            replies.len()
        );
        let failed: Vec<&Reply> = replies.iter().filter(|r| r.status != 200).collect();
        assert!(
            failed.is_empty(),
            "{} of {} requests failed during the event, e.g. {:?}",
            failed.len(),
            replies.len(),
            failed.first()
        );
        replies
    }
}

/// The ids of a batch's `customer_id` column, as strings.
pub fn ids_of(batch: &arrow_array::RecordBatch) -> Vec<String> {
    use arrow_array::cast::AsArray;
    let col = arrow_cast::cast(
        batch.column_by_name("customer_id").unwrap(),
        &arrow_schema::DataType::Utf8,
    )
    .unwrap();
    col.as_string::<i32>()
        .iter()
        .map(|v| v.unwrap().to_string())
        .collect()
}

/// The first `n` customers of the sample snapshot: their ids and their values of `model`'s features (manifest
/// order, nulls as NaN), read with plain arrow.
pub fn sample_features(model: &str, n: usize) -> (Vec<String>, Vec<Vec<f32>>) {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float32Type;
    let spec = crmscore::model::ModelSpec::load(&models().join(model)).unwrap();
    let batch = sample_rows(n);
    let columns: Vec<_> = spec
        .feature_columns()
        .iter()
        .map(|f| {
            let column = batch.column_by_name(f).unwrap();
            arrow_cast::cast(column, &arrow_schema::DataType::Float32).unwrap()
        })
        .collect();
    let rows = (0..batch.num_rows())
        .map(|r| {
            columns
                .iter()
                .map(|c| {
                    let c = c.as_primitive::<Float32Type>();
                    if c.is_null(r) { f32::NAN } else { c.value(r) }
                })
                .collect()
        })
        .collect();
    (ids_of(&batch), rows)
}

/// The binary serving the shipped models and sample snapshot, its stderr lines collected as they come.
pub struct Served {
    /// The server process.
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts `crmscore serve` on a free port with `args` added (no state folder unless they name one) and
    /// `RUST_LOG=rust_log`.
    pub fn start(args: &[&str], rust_log: &str) -> Served {
        Served::start_on("cpu", args, rust_log)
    }

    /// As `start`, on `device` (cpu, cuda or auto).
    pub fn start_on(device: &str, args: &[&str], rust_log: &str) -> Served {
        let (models, snapshots) = (models(), sample_snapshot());
        Served::start_with(
            device,
            (models.as_ref(), snapshots.as_ref()),
            args,
            &[],
            rust_log,
        )
    }

    /// As `start_on`, with `--models` and `--snapshots` as given (paths or object-store URLs) and `env` added.
    pub fn start_with(
        device: &str,
        (models, snapshots): (&std::ffi::OsStr, &std::ffi::OsStr),
        args: &[&str],
        env: &[(&str, &str)],
        rust_log: &str,
    ) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crmscore"))
            .current_dir(repo())
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--device", device])
            // No state kept unless the test names a folder (clap refuses the flag twice).
            .args(match args.contains(&"--state-dir") {
                true => &[][..],
                false => &["--state-dir", ""][..],
            })
            // No outcome log either (it would land in ./feedback of the repository).
            .args(match args.contains(&"--feedback-dir") {
                true => &[][..],
                false => &["--feedback-dir", ""][..],
            })
            .arg("--models")
            .arg(models)
            .arg("--snapshots")
            .arg(snapshots)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", rust_log)
            .env_remove("CRMSCORE_LOG_FORMAT")
            .env_remove("CRMSCORE_ACCESS_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary runs");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Served { child, lines }
    }

    /// `http://addr` of the server, read from its "listening" log line (waits for it, bounded).
    pub fn base_url(&self) -> String {
        let line = self.wait_line(|l| l.contains("listening") && l.contains("addr="));
        let addr = line
            .split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the server logs its address");
        format!("http://{addr}")
    }

    /// Waits (bounded) for the process to exit on its own; its exit status and every line it wrote.
    pub fn exit(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running: {:#?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100));
        (status, self.lines())
    }

    /// The stderr lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a line matching `check` (bounded), returning it.
    pub fn wait_line(&self, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| check(l)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no such line in {:#?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server, returning every line it wrote.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.lines()
    }
}

/// Polls `base`/v2/health/ready until 200 (bounded), for a server started as a process.
pub fn wait_ready_at(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent()
        .get(format!("{base}/v2/health/ready"))
        .call()
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < deadline, "{base} never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The python of `.venv-dataeng` (pyarrow, pandas, DuckDB, scikit-learn, onnxruntime), or None after saying why
/// when it is missing and this is not CI (under CI a missing venv fails the test: scripts/test.sh makes it).
pub fn dataeng_python() -> Option<PathBuf> {
    venv_python(".venv-dataeng", "--dataeng")
}

/// The python of the repository's `venv` (made by `scripts/setup-python.sh flag`), or None after saying why when
/// it is missing and this is not CI (under CI a missing venv fails the test: scripts/test.sh makes every one).
pub fn venv_python(venv: &str, flag: &str) -> Option<PathBuf> {
    let python = repo().join(venv).join("bin/python");
    if python.is_file() {
        return Some(python);
    }
    let why = format!(
        "{} is missing: run `scripts/setup-python.sh {flag}` (scripts/test.sh does)",
        python.display()
    );
    assert!(std::env::var_os("CI").is_none(), "CI is set and {why}");
    println!("SKIPPED: {why}");
    None
}

/// Runs `python -c script args...` and returns its stdout, panicking with its stderr when it fails.
pub fn run_python(python: &Path, script: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python starts");
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `v` with every `decision_id` field removed: each reply carries fresh ids, so two answers to the same request
/// compare equal only without them.
pub fn without_decision_ids(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "decision_id")
                .map(|(k, v)| (k.clone(), without_decision_ids(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_decision_ids).collect()),
        other => other.clone(),
    }
}
