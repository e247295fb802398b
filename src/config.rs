//! Command line and environment configuration: one clap struct per command, every flag also a `CRMSCORE_*` variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::model::cuda::{CudaArena, CudaConvSearch, CudaOptions};

/// crmscore: real-time CRM scoring (churn, recommendations, sentiment) from ONNX models over HTTP.
#[derive(Debug, Parser)]
#[command(name = "crmscore", version, about, long_about = None)]
pub struct Cli {
    /// Log line format on stderr: `text` (human-readable) or `json` (one JSON object per line). Colour codes are
    /// written only when stderr is a terminal.
    #[arg(long, global = true, env = "CRMSCORE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of the binary.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the models in --models over HTTP, scoring customers from the newest snapshot in --snapshots.
    Serve(Box<Config>),
    /// Print a model's ONNX inputs and outputs and how they match its manifest (exit code 1 on a mismatch).
    InspectModel(InspectArgs),
    /// Validate a snapshot (file or part folder) against the models' columns and print a report (exit code 1 if
    /// the server would refuse it), so a pipeline can check before it drops.
    CheckSnapshot(CheckSnapshotArgs),
    /// Validate an engagement policy file against the models' features, segments and catalogue and print its
    /// rules (exit code 1 if the server would refuse it), so a change can be checked before it is dropped.
    CheckPolicy(CheckPolicyArgs),
    /// Erase a customer with the server down (GDPR art. 17): list their salted hash in the state folder (so no
    /// snapshot serves them again), remove their rows from the feedback logs and the Parquet outputs named, audit it.
    Erase(EraseArgs),
    /// Join a model's logged decisions to the outcomes that followed and report, overall and per group of a
    /// snapshot column, customers scored, mean score, churn rate, ROC AUC, calibration and chosen-action rates.
    Report(ReportArgs),
    /// Score every customer of a snapshot with the served models, manifests and policy, streaming Parquet in
    /// and out (the nightly batch path; same answers as the HTTP routes).
    ScoreBatch(ScoreBatchArgs),
}

/// Arguments of `crmscore erase`.
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The customer id, exactly as in the data (integer ids in decimal).
    #[arg(long)]
    pub id: String,
    /// The server's state folder, holding the erasure list and the audit log.
    #[arg(long, env = "CRMSCORE_STATE_DIR", default_value = ".crmscore-state")]
    pub state_dir: PathBuf,
    /// The server's feedback folder, whose outcome and decision logs lose the customer's rows (default: none).
    #[arg(long, env = "CRMSCORE_FEEDBACK_DIR")]
    pub feedback_dir: Option<PathBuf>,
    /// Parquet files or folders (batch-scoring outputs, exports with a customer_id column) to rewrite without
    /// the customer's rows; files without them are left untouched. Repeatable.
    #[arg(long, num_args = 1..)]
    pub outputs: Vec<PathBuf>,
    /// Lift an earlier erasure instead: the customer is served again from the next snapshot load (files that
    /// lost their rows stay as they are).
    #[arg(long, conflicts_with_all = ["outputs", "feedback_dir"])]
    pub lift: bool,
}

/// Arguments of `crmscore report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The model whose decisions are judged.
    #[arg(long, env = "CRMSCORE_REPORT_MODEL", default_value = "churn")]
    pub model: String,
    /// The feedback folder holding the Parquet day folders decisions/ and outcomes/ (the server's --feedback-dir).
    #[arg(
        long,
        value_name = "DIR",
        env = "CRMSCORE_FEEDBACK_DIR",
        default_value = "feedback"
    )]
    pub outcomes: PathBuf,
    /// Also report per value of this snapshot column (any type; missing values form the group "null").
    #[arg(
        long,
        value_name = "COLUMN",
        env = "CRMSCORE_REPORT_BY",
        requires = "snapshot"
    )]
    pub by: Option<String>,
    /// The snapshot (a Parquet file, or a part folder with _SUCCESS) --by reads its column from.
    #[arg(
        long,
        value_name = "PATH",
        env = "CRMSCORE_REPORT_SNAPSHOT",
        requires = "by"
    )]
    pub snapshot: Option<PathBuf>,
    /// Equal-width score bins of the reliability table and the expected calibration error (1 to 1000).
    #[arg(long, env = "CRMSCORE_REPORT_BINS", default_value_t = 10)]
    pub bins: usize,
    /// Labelled customers a group needs to be judged; smaller groups are shown and marked too small.
    #[arg(long, env = "CRMSCORE_REPORT_MIN_GROUP", default_value_t = 50)]
    pub min_group: usize,
    /// Output: `text` (a table) or `json` (the figures, as the admin route answers).
    #[arg(long, env = "CRMSCORE_REPORT_FORMAT", value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// How `crmscore report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A readable table.
    Text,
    /// One JSON document.
    Json,
}

/// What `score-batch --top N` ranks customers by (highest first; customers without a value are left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum RankBy {
    /// The next best action's expected value (needs --insights).
    ExpectedValue,
    /// The churn probability.
    ChurnProbability,
}

/// Arguments of `crmscore score-batch`.
#[derive(Debug, Clone, Args)]
pub struct ScoreBatchArgs {
    /// The snapshot to score: a Parquet file, a part folder with _SUCCESS, or a folder of snapshots (its newest).
    #[arg(long, env = "CRMSCORE_SNAPSHOT")]
    pub snapshot: PathBuf,
    /// Where to write: a file ending in .parquet, else a folder of part files completed by _SUCCESS (always a
    /// folder with --shard). Written under hidden temporary names and renamed when complete.
    #[arg(long, env = "CRMSCORE_BATCH_OUTPUT")]
    pub output: PathBuf,
    /// Models to score with, by folder name (of churn, segmentation, recommendation).
    #[arg(
        long,
        env = "CRMSCORE_BATCH_MODELS",
        value_delimiter = ',',
        default_value = "churn"
    )]
    pub models: Vec<String>,
    /// Model repository holding those folders.
    #[arg(long, env = "CRMSCORE_MODELS", default_value = "models")]
    pub model_repository: PathBuf,
    /// Churn reasons per customer (the largest contributions; 0: none).
    #[arg(long, env = "CRMSCORE_BATCH_EXPLAIN", default_value_t = 0)]
    pub explain: usize,
    /// Offers (recommended items) per customer, when the recommendation model is scored.
    #[arg(long, env = "CRMSCORE_BATCH_OFFERS", default_value_t = 3)]
    pub offers: usize,
    /// Also choose each customer's next best action (and its expected value) with the engagement policy.
    #[arg(long, env = "CRMSCORE_BATCH_INSIGHTS")]
    pub insights: bool,
    /// Engagement policy file used by --insights.
    #[arg(
        long,
        env = "CRMSCORE_POLICY",
        default_value = "policies/engagement.toml"
    )]
    pub policy: PathBuf,
    /// Write only the N highest-ranked customers (a call list, best first) instead of every customer.
    #[arg(long, env = "CRMSCORE_BATCH_TOP")]
    pub top: Option<usize>,
    /// What --top ranks by.
    #[arg(long, env = "CRMSCORE_BATCH_RANK_BY", value_enum, default_value_t = RankBy::ExpectedValue)]
    pub rank_by: RankBy,
    /// Score only part i of N (0-based, e.g. 3/8): disjoint row groups or part files of the snapshot, written as
    /// its own part file; the shard that completes the set writes _SUCCESS. Default: the whole snapshot.
    #[arg(long, env = "CRMSCORE_BATCH_SHARD", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Score nothing: write _SUCCESS in --output when every part of --shard's N is there, else fail naming the
    /// missing ones.
    #[arg(long, env = "CRMSCORE_BATCH_FINALIZE", requires = "shard")]
    pub finalize: bool,
    /// Rows one thread reads and scores at a time (whole row groups, at least one): memory is a few such chunks
    /// per thread.
    #[arg(long, env = "CRMSCORE_BATCH_CHUNK_ROWS", default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_rows: u64,
    /// Scoring threads, each with its own ONNX Runtime sessions (one intra-op thread each). Default: the cores.
    #[arg(long, env = "CRMSCORE_BATCH_THREADS")]
    pub threads: Option<usize>,
    /// Shared library of ONNX Runtime (default: as for serve).
    #[arg(long, env = "CRMSCORE_ONNXRUNTIME_LIB")]
    pub onnxruntime_lib: Option<PathBuf>,
}

/// Parses `i/N` with i < N.
fn parse_shard(value: &str) -> Result<(usize, usize), String> {
    let bad = || format!("'{value}' is not a shard: write i/N with 0 <= i < N, e.g. 0/4");
    let (i, n) = value.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Arguments of `crmscore check-policy`.
#[derive(Debug, Args)]
pub struct CheckPolicyArgs {
    /// The engagement policy file (TOML).
    #[arg(env = "CRMSCORE_POLICY", default_value = "policies/engagement.toml")]
    pub file: PathBuf,
    /// Model repository whose features, segments and catalogue the policy may name.
    #[arg(long, env = "CRMSCORE_MODELS", default_value = "models")]
    pub models: PathBuf,
}

/// Arguments of `crmscore check-snapshot`.
#[derive(Debug, Args)]
pub struct CheckSnapshotArgs {
    /// The Parquet file, part folder (with _SUCCESS), or folder of snapshots (its newest is checked); local or an
    /// object-store URL (s3://, gs://, az://, file://).
    pub path: PathBuf,
    /// Model repository whose feature columns the snapshot must provide.
    #[arg(long, env = "CRMSCORE_MODELS", default_value = "models")]
    pub models: PathBuf,
    /// The snapshot served now (file, part folder, or folder: its newest): print the drift report against it.
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// With --against: fail (exit code 1) when a feature's PSI is above this, as `serve --max-psi` would refuse.
    #[arg(long, value_parser = non_negative, requires = "against")]
    pub max_psi: Option<f64>,
}

/// A finite number ≥ 0.
fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("'{text}' is not a finite number >= 0")),
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

/// What to do with requests once the served snapshot is older than --max-snapshot-age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StalePolicy {
    /// Answer, with `"stale": true` in replies; readiness stays 200 and says stale.
    Serve,
    /// Refuse snapshot lookups with 503 snapshot_stale; readiness answers 503.
    Refuse,
}

/// Arguments of `crmscore inspect-model`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The model folder, holding model.toml and model.onnx (e.g. models/churn).
    pub model_dir: PathBuf,
    /// Shared library of ONNX Runtime (default: ORT_DYLIB_PATH, then .onnxruntime/lib beside the binary or the
    /// current folder, then the system library path).
    #[arg(long, env = "CRMSCORE_ONNXRUNTIME_LIB")]
    pub onnxruntime_lib: Option<PathBuf>,
}

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// CUDA when ONNX Runtime's CUDA provider loads, else CPU (the fallback is logged).
    Auto,
    /// CPU only.
    Cpu,
    /// CUDA, or fail at start when it cannot be used.
    Cuda,
}

/// Everything `crmscore serve` needs; tests build it with `Config::for_tests`.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on (use port 0 for any free port).
    #[arg(long, env = "CRMSCORE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Model repository: one folder per model with model.toml + model.onnx; or an object-store URL (s3://, gs://,
    /// az://, abfs://, file://) mirrored into <state-dir>/model-cache (docs/object-storage.md).
    #[arg(long, env = "CRMSCORE_MODELS", default_value = "models")]
    pub models: PathBuf,

    /// Refuse to start when any model folder fails to load or none is found (default: off; the models that load
    /// are served, the others are reported not ready and retried when their files change).
    #[arg(long, env = "CRMSCORE_STRICT_MODELS")]
    pub strict_models: bool,

    /// Also serve KServe v2 over gRPC (Triton's inference.GRPCInferenceService, for tritonclient.grpc) on this
    /// address (port 0: any free port), with --http-workers threads and --max-body-bytes as the largest request
    /// message. Default: off.
    #[arg(long, env = "CRMSCORE_GRPC_BIND")]
    pub grpc_bind: Option<SocketAddr>,

    /// Engagement policy (TOML) choosing each customer's next best action in insights; watched and hot-reloaded.
    /// When the file does not exist the server runs without one (insights list "policy" as missing).
    #[arg(
        long,
        env = "CRMSCORE_POLICY",
        default_value = "policies/engagement.toml"
    )]
    pub policy: Option<PathBuf>,

    /// Snapshot folder (the newest complete Parquet snapshot in it is served) or one Parquet file or part folder;
    /// or the same in an object store: s3://bucket/prefix/, gs://, az://, abfs://, file:// (docs/object-storage.md).
    #[arg(long, env = "CRMSCORE_SNAPSHOTS", default_value = "snapshots")]
    pub snapshots: PathBuf,

    /// Serve a snapshot folder that has no _SUCCESS marker (DuckDB, pyarrow and polars write none) once nothing in
    /// it has changed for this many seconds and no writer's _temporary folder is there. Default: off (such a folder
    /// waits for _SUCCESS and is reported in /v1/snapshot's last_error).
    #[arg(long, env = "CRMSCORE_SNAPSHOT_SETTLE_SECONDS")]
    pub snapshot_settle_seconds: Option<u64>,

    /// How often to look for new snapshots and changed model folders, in milliseconds.
    #[arg(long, env = "CRMSCORE_POLL_MS", default_value_t = 2000)]
    pub poll_ms: u64,

    /// Largest fraction of customers a new snapshot may lose against the served one before it is refused.
    #[arg(long, env = "CRMSCORE_MAX_ROW_DROP", default_value_t = 0.5)]
    pub max_row_drop: f64,

    /// Folder for what the server keeps across restarts (the last served snapshot's name, path, modification
    /// time, size and customer count, so --max-row-drop also checks the first snapshot after a restart; the
    /// erasure list and audit log); created at start. An empty value keeps nothing (and erasure is off). An
    /// unreadable snapshot state file is logged and ignored; an unreadable erasure list stops the start.
    #[arg(long, env = "CRMSCORE_STATE_DIR", default_value = ".crmscore-state", value_parser = path_or_empty)]
    pub state_dir: Option<PathBuf>,

    /// Serve the next snapshot loaded even if it has more than --max-row-drop fewer customers (a deliberate
    /// shrink); used up by that snapshot, once per start, and logged.
    #[arg(long, env = "CRMSCORE_ACCEPT_ROW_DROP_ONCE")]
    pub accept_row_drop_once: bool,

    /// Refuse a new snapshot when any model feature's population stability index against the served snapshot
    /// is above this (unset: drift is reported in /v1/snapshot, metrics and the log, never refused). 0.25 is the
    /// usual "significant shift" line (docs/drift.md); refused ones are taken with
    /// POST /v1/admin/snapshot/reload?accept_drift=true.
    #[arg(long, env = "CRMSCORE_MAX_PSI", value_parser = non_negative)]
    pub max_psi: Option<f64>,

    /// Age (seconds since the snapshot file was written) after which the snapshot counts as stale.
    #[arg(long, env = "CRMSCORE_MAX_SNAPSHOT_AGE")]
    pub max_snapshot_age: Option<u64>,

    /// What a stale snapshot means for requests.
    #[arg(long, env = "CRMSCORE_STALE_POLICY", value_enum, default_value_t = StalePolicy::Serve)]
    pub stale_policy: StalePolicy,

    /// Bearer token required by the admin and repository routes, and to see server file paths in metadata. Unset:
    /// those routes are open, which the server allows only on a loopback --bind (or with --allow-open-admin). An
    /// empty value is refused at start.
    #[arg(long, env = "CRMSCORE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// File of API keys, one `name:sha256hex(key)` per line (blank lines and `#` comments allowed). When set, every
    /// route but /v2/health/live and /v2/health/ready needs `Authorization: Bearer <key>` (the admin and repository
    /// routes take --admin-token instead). Reloaded when it changes; a bad edit keeps the served keys. A bad file
    /// at start is refused. Unset: no keys needed.
    #[arg(long, env = "CRMSCORE_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// TLS certificate chain (PEM, server certificate first). With --tls-key the port speaks HTTPS only (HTTP/1.1
    /// and HTTP/2 by ALPN). Unset: plain HTTP.
    #[arg(long, env = "CRMSCORE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CRMSCORE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Start without --admin-token on a non-loopback --bind, leaving the admin and repository routes (and server
    /// file paths in metadata) open to every client that reaches the port.
    #[arg(long, env = "CRMSCORE_ALLOW_OPEN_ADMIN")]
    pub allow_open_admin: bool,

    /// Log one line per request (target `crmscore::access`, level info): route pattern, method, status, latency
    /// and response bytes; never ids, query strings or bodies.
    #[arg(long, env = "CRMSCORE_ACCESS_LOG")]
    pub access_log: bool,

    /// Shared library of ONNX Runtime (default: ORT_DYLIB_PATH, then .onnxruntime/lib beside the binary or the
    /// current folder, then the system library path).
    #[arg(long, env = "CRMSCORE_ONNXRUNTIME_LIB")]
    pub onnxruntime_lib: Option<PathBuf>,

    /// Execution device for the models.
    #[arg(long, env = "CRMSCORE_DEVICE", value_enum, default_value_t = Device::Auto)]
    pub device: Device,

    /// GPU the CUDA provider runs on (its CUDA ordinal, after CUDA_VISIBLE_DEVICES).
    #[arg(long, env = "CRMSCORE_CUDA_DEVICE_ID", default_value_t = 0)]
    pub cuda_device_id: i32,

    /// Most GPU memory (MiB) the CUDA provider's arena may take, per model session; 0: no limit but the GPU's.
    #[arg(long, env = "CRMSCORE_CUDA_MEM_LIMIT_MB", default_value_t = 0)]
    pub cuda_mem_limit_mb: usize,

    /// How the CUDA memory arena grows: by what a batch asked for (predictable when models share a GPU), or by
    /// doubling (ONNX Runtime's default).
    #[arg(long, env = "CRMSCORE_CUDA_ARENA", value_enum, default_value_t = CudaArena::SameAsRequested)]
    pub cuda_arena: CudaArena,

    /// How cuDNN picks convolution kernels: heuristic (no start-up benchmark), exhaustive (benchmark each on first
    /// use; for convolution-heavy graphs) or default.
    #[arg(long, env = "CRMSCORE_CUDA_CONV_SEARCH", value_enum, default_value_t = CudaConvSearch::Heuristic)]
    pub cuda_conv_search: CudaConvSearch,

    /// Threads ONNX Runtime uses inside one inference call (per batching worker). Workers × this should not
    /// exceed the cores.
    #[arg(long, env = "CRMSCORE_INTRA_THREADS", default_value_t = 1)]
    pub intra_threads: usize,

    /// After SIGTERM or SIGINT, how long (milliseconds) the server keeps accepting new connections while
    /// readiness answers 503 and replies carry `Connection: close`, so a load balancer or Kubernetes takes the
    /// replica out first; then it stops accepting, finishes in-flight requests (up to --shutdown-timeout-s) and exits 0.
    #[arg(long, env = "CRMSCORE_SHUTDOWN_GRACE_MS", default_value_t = 5000)]
    pub shutdown_grace_ms: u64,

    /// After the grace period, the most seconds in-flight requests get to finish before they are dropped.
    #[arg(long, env = "CRMSCORE_SHUTDOWN_TIMEOUT_S", default_value_t = 30)]
    pub shutdown_timeout_s: u64,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "CRMSCORE_HTTP_WORKERS")]
    pub http_workers: Option<usize>,

    /// Override every model's max_batch_size (rows per inference call), on CPU and on CUDA alike (without it a
    /// manifest's `[batching.cuda]` limits, default 1024 rows, apply on a GPU).
    #[arg(long, env = "CRMSCORE_MAX_BATCH_SIZE")]
    pub max_batch_size: Option<usize>,

    /// Override every text model's max_tokens (padded tokens per inference call), on CPU and on CUDA alike
    /// (without it: the manifest's, default 8192 on CPU and 65,536 on CUDA).
    #[arg(long, env = "CRMSCORE_MAX_TOKENS")]
    pub max_tokens: Option<usize>,

    /// Override every model's max_delay_us (how long a worker waits to fill a batch after its first job).
    #[arg(long, env = "CRMSCORE_MAX_DELAY_US")]
    pub max_delay_us: Option<u64>,

    /// Override every model's queue_capacity (jobs waiting; beyond it requests get 503 + Retry-After).
    #[arg(long, env = "CRMSCORE_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,

    /// Override every model's number of batching workers (each owns one ONNX Runtime session).
    #[arg(long, env = "CRMSCORE_BATCH_WORKERS")]
    pub batch_workers: Option<usize>,

    /// Most customer ids, rows or tensor rows accepted in one request.
    #[arg(long, env = "CRMSCORE_MAX_ITEMS_PER_REQUEST", default_value_t = 10_000)]
    pub max_items_per_request: usize,

    /// Most recommended items one request may ask for (customers × k); past it, 413 `reply_too_large`.
    #[arg(long, env = "CRMSCORE_MAX_RECOMMENDATIONS", default_value_t = 20_000)]
    pub max_recommendations: usize,

    /// Most output values one request may produce (v2: rows × output width, contributions included; /v1 reasons:
    /// rows × features); past it, 413 `reply_too_large`.
    #[arg(long, env = "CRMSCORE_MAX_OUTPUT_VALUES", default_value_t = 250_000)]
    pub max_output_values: usize,

    /// Most characters in one text sent to a text model.
    #[arg(long, env = "CRMSCORE_MAX_TEXT_CHARS", default_value_t = 5_000)]
    pub max_text_chars: usize,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "CRMSCORE_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Milliseconds a client has to send the whole request body once its headers are in; past it the request is
    /// answered 408 `request_timeout` and the connection is closed.
    #[arg(long, env = "CRMSCORE_BODY_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_ms: u64,

    /// Most request body bytes all requests together may hold while their bodies are received and decoded; a
    /// request that would pass it is answered 503 `body_budget_exceeded` with `Retry-After`. At least
    /// --max-body-bytes.
    #[arg(long, env = "CRMSCORE_BODY_BUDGET_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub body_budget_bytes: usize,

    /// Default deadline of a scoring request in milliseconds, when the client sends no `x-request-timeout-ms`
    /// (or v2 `parameters.timeout`); a job still queued when it passes is dropped and answered 504. Unset: none.
    #[arg(long, env = "CRMSCORE_DEFAULT_TIMEOUT_MS")]
    pub default_timeout_ms: Option<u64>,

    /// Folder of the outcome and decision logs (write-ahead log, then Parquet day folders outcomes/ and decisions/); created when first written. An empty value turns recording off (POST /v1/outcomes answers 503 feedback_disabled).
    #[arg(long, env = "CRMSCORE_FEEDBACK_DIR", default_value = "feedback", value_parser = path_or_empty)]
    pub feedback_dir: Option<PathBuf>,

    /// Seconds between compactions of the outcome and decision write-ahead log into Parquet (also done when
    /// 200,000 rows wait, at shutdown, and at start for a log a previous run left).
    #[arg(long, env = "CRMSCORE_FEEDBACK_COMPACT_S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub feedback_compact_s: u64,

    /// UTC days (by the day the server recorded it) within which a replayed outcome `event_id` is stored once.
    #[arg(long, env = "CRMSCORE_FEEDBACK_DEDUP_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..))]
    pub feedback_dedup_days: u64,

    /// Most event ids the replay window holds in memory (16 bytes each); past it the oldest days are forgotten
    /// first.
    #[arg(
        long,
        env = "CRMSCORE_FEEDBACK_DEDUP_MAX_IDS",
        default_value_t = 5_000_000
    )]
    pub feedback_dedup_max_ids: usize,

    /// Fraction (0 to 1) of plain scoring decisions (churn, model score, recommendations, sentiment) written to
    /// the decision log; every result carries a `decision_id` either way.
    #[arg(long, env = "CRMSCORE_DECISION_LOG_SAMPLE", default_value_t = 0.0, value_parser = fraction)]
    pub decision_log_sample: f64,

    /// Fraction (0 to 1) of insights decisions written to the decision log.
    #[arg(
        long,
        env = "CRMSCORE_DECISION_LOG_SAMPLE_INSIGHTS",
        default_value_t = 1.0,
        value_parser = fraction
    )]
    pub decision_log_sample_insights: f64,

    /// Also write each logged decision's feature values (a JSON object) to the decision log. Default: off.
    #[arg(long, env = "CRMSCORE_DECISION_LOG_FEATURES")]
    pub decision_log_features: bool,
}

/// A number from 0 to 1.
fn fraction(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{value}' is not a number from 0 to 1")),
    }
}

/// A path that may be empty (clap's own path parser refuses empty values; here empty means "none").
fn path_or_empty(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

impl Config {
    /// The CUDA provider settings these flags ask for.
    pub fn cuda_options(&self) -> CudaOptions {
        CudaOptions {
            device_id: self.cuda_device_id,
            mem_limit_bytes: self.cuda_mem_limit_mb.saturating_mul(1024 * 1024),
            arena: self.cuda_arena,
            conv_search: self.cuda_conv_search,
        }
    }

    /// A config for tests: any free local port, the given folders, small HTTP pool, defaults elsewhere.
    pub fn for_tests(models: impl AsRef<Path>, snapshots: impl AsRef<Path>) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            models: models.as_ref().to_path_buf(),
            strict_models: false,
            grpc_bind: None,
            policy: None,
            snapshots: snapshots.as_ref().to_path_buf(),
            poll_ms: 50,
            snapshot_settle_seconds: None,
            max_row_drop: 0.5,
            state_dir: None,
            shutdown_grace_ms: 0,
            shutdown_timeout_s: 30,
            accept_row_drop_once: false,
            max_psi: None,
            max_snapshot_age: None,
            stale_policy: StalePolicy::Serve,
            admin_token: None,
            api_keys_file: None,
            tls_cert: None,
            tls_key: None,
            allow_open_admin: false,
            access_log: false,
            onnxruntime_lib: None,
            device: Device::Cpu,
            intra_threads: 1,
            cuda_device_id: 0,
            cuda_mem_limit_mb: 0,
            cuda_arena: CudaArena::SameAsRequested,
            cuda_conv_search: CudaConvSearch::Heuristic,
            http_workers: Some(2),
            max_batch_size: None,
            max_tokens: None,
            max_delay_us: None,
            queue_capacity: None,
            batch_workers: None,
            max_items_per_request: 10_000,
            max_recommendations: 20_000,
            max_output_values: 250_000,
            max_text_chars: 5_000,
            max_body_bytes: 4 * 1024 * 1024,
            body_timeout_ms: 10_000,
            body_budget_bytes: 256 * 1024 * 1024,
            default_timeout_ms: None,
            feedback_dir: None,
            feedback_compact_s: 60,
            feedback_dedup_days: 7,
            feedback_dedup_max_ids: 5_000_000,
            decision_log_sample: 0.0,
            decision_log_sample_insights: 1.0,
            decision_log_features: false,
        }
    }

    /// The feedback log's options from the `--feedback-*` and `--decision-log-*` flags.
    pub fn feedback_options(&self) -> crate::feedback::Options {
        crate::feedback::Options {
            compact_every: Duration::from_secs(self.feedback_compact_s.max(1)),
            dedup_days: self.feedback_dedup_days.max(1) as usize,
            dedup_max_ids: self.feedback_dedup_max_ids,
            decision_sample: self.decision_log_sample.clamp(0.0, 1.0),
            decision_sample_insights: self.decision_log_sample_insights.clamp(0.0, 1.0),
            decision_features: self.decision_log_features,
            ..crate::feedback::Options::default()
        }
    }

    /// The poll interval of the snapshot and model watcher.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults() {
        let cli = Cli::try_parse_from(["crmscore", "serve"]).unwrap();
        let Command::Serve(cfg) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(cfg.bind.port(), 8080);
        assert_eq!(cfg.models, PathBuf::from("models"));
        assert_eq!(cfg.device, Device::Auto);
        assert_eq!(cfg.state_dir, Some(PathBuf::from(".crmscore-state")));
        assert!(!cfg.accept_row_drop_once);
        assert_eq!(
            cfg.max_psi, None,
            "drift is reported, not refused, unless asked"
        );
        assert_eq!(cfg.grpc_bind, None, "gRPC is off unless asked for");
        assert!(!cfg.allow_open_admin && !cfg.access_log && cfg.admin_token.is_none());
        assert_eq!(cli.log_format, LogFormat::Text);
        let cli = Cli::try_parse_from([
            "crmscore",
            "serve",
            "--state-dir",
            "",
            "--accept-row-drop-once",
            "--max-psi",
            "0.25",
        ])
        .unwrap();
        let Command::Serve(cfg) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(cfg.state_dir, Some(PathBuf::new()), "empty: no state kept");
        assert!(cfg.accept_row_drop_once);
        assert_eq!(cfg.max_psi, Some(0.25));
        assert!(Cli::try_parse_from(["crmscore", "serve", "--max-psi", "-1"]).is_err());
        assert!(Cli::try_parse_from(["crmscore", "serve", "--max-psi", "NaN"]).is_err());
        let cli =
            Cli::try_parse_from(["crmscore", "check-snapshot", "new", "--against", "old"]).unwrap();
        let Command::CheckSnapshot(args) = cli.command else {
            panic!("expected check-snapshot")
        };
        assert_eq!(args.against, Some(PathBuf::from("old")));
        assert!(
            Cli::try_parse_from(["crmscore", "check-snapshot", "new", "--max-psi", "1"]).is_err(),
            "--max-psi needs --against"
        );
    }

    #[test]
    fn erase_takes_an_id_and_outputs() {
        let cli = Cli::try_parse_from([
            "crmscore",
            "erase",
            "--id",
            "C1",
            "--outputs",
            "a",
            "b",
            "--state-dir",
            "s",
        ])
        .unwrap();
        let Command::Erase(args) = cli.command else {
            panic!("expected erase")
        };
        assert_eq!(args.id, "C1");
        assert_eq!(args.outputs, [PathBuf::from("a"), PathBuf::from("b")]);
        assert!(!args.lift && args.feedback_dir.is_none());
        assert!(
            Cli::try_parse_from(["crmscore", "erase"]).is_err(),
            "--id is required"
        );
        assert!(
            Cli::try_parse_from([
                "crmscore",
                "erase",
                "--id",
                "C1",
                "--lift",
                "--outputs",
                "a"
            ])
            .is_err(),
            "a lift rewrites nothing"
        );
    }

    #[test]
    fn report_defaults_and_by_needs_a_snapshot() {
        let cli = Cli::try_parse_from(["crmscore", "report"]).unwrap();
        let Command::Report(args) = cli.command else {
            panic!("expected report")
        };
        assert_eq!(
            (args.model.as_str(), args.bins, args.min_group),
            ("churn", 10, 50)
        );
        assert_eq!(args.format, ReportFormat::Text);
        let half = Cli::try_parse_from(["crmscore", "report", "--by", "age_band"]);
        assert!(half.unwrap_err().to_string().contains("--snapshot"));
    }

    #[test]
    fn feedback_flags() {
        let parse = |args: &[&str]| {
            let all = [&["crmscore", "serve"], args].concat();
            match Cli::try_parse_from(all).map(|c| c.command) {
                Ok(Command::Serve(cfg)) => Ok(cfg),
                Ok(_) => panic!("expected serve"),
                Err(e) => Err(e.to_string()),
            }
        };
        let cfg = parse(&[]).unwrap();
        assert_eq!(cfg.feedback_dir, Some(PathBuf::from("feedback")));
        assert_eq!(
            (cfg.decision_log_sample, cfg.decision_log_sample_insights),
            (0.0, 1.0)
        );
        let cfg = parse(&["--feedback-dir", "", "--decision-log-sample", "0.25"]).unwrap();
        assert_eq!(
            cfg.feedback_dir,
            Some(PathBuf::new()),
            "empty: recording off"
        );
        assert_eq!(cfg.feedback_options().decision_sample, 0.25);
        let err = parse(&["--decision-log-sample-insights", "1.5"]).unwrap_err();
        assert!(err.contains("from 0 to 1"), "{err}");
    }

    #[test]
    fn score_batch_flags() {
        let cli = Cli::try_parse_from([
            "crmscore",
            "score-batch",
            "--snapshot",
            "s.parquet",
            "--output",
            "out",
            "--models",
            "churn,segmentation",
            "--shard",
            "2/4",
        ])
        .unwrap();
        let Command::ScoreBatch(args) = cli.command else {
            panic!("expected score-batch")
        };
        assert_eq!(args.models, ["churn", "segmentation"]);
        assert_eq!(args.shard, Some((2, 4)));
        assert_eq!((args.explain, args.offers, args.insights), (0, 3, false));
        assert_eq!(args.rank_by, RankBy::ExpectedValue);
        for bad in ["4/4", "1", "a/2", "0/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_flags_go_together() {
        let half = Cli::try_parse_from(["crmscore", "serve", "--tls-cert", "c.pem"]);
        assert!(half.unwrap_err().to_string().contains("--tls-key"));
        let cli = Cli::try_parse_from([
            "crmscore",
            "serve",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ])
        .unwrap();
        let Command::Serve(cfg) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(cfg.tls_key, Some(PathBuf::from("k.pem")));
        assert!(cfg.api_keys_file.is_none());
    }
}
