//! Command line and environment configuration: one clap struct per command, every flag also a `CRMSCORE_*` variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Score every customer of a snapshot with the served models, manifests and policy, streaming Parquet in
    /// and out (the nightly batch path; same answers as the HTTP routes).
    ScoreBatch(ScoreBatchArgs),
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
    /// The Parquet file, part folder (with _SUCCESS), or folder of snapshots (its newest is checked).
    pub path: PathBuf,
    /// Model repository whose feature columns the snapshot must provide.
    #[arg(long, env = "CRMSCORE_MODELS", default_value = "models")]
    pub models: PathBuf,
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

    /// Model repository: one folder per model with model.toml + model.onnx.
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

    /// Snapshot folder (the newest complete Parquet snapshot in it is served) or one Parquet file or part folder.
    #[arg(long, env = "CRMSCORE_SNAPSHOTS", default_value = "snapshots")]
    pub snapshots: PathBuf,

    /// How often to look for new snapshots and changed model folders, in milliseconds.
    #[arg(long, env = "CRMSCORE_POLL_MS", default_value_t = 2000)]
    pub poll_ms: u64,

    /// Largest fraction of customers a new snapshot may lose against the served one before it is refused.
    #[arg(long, env = "CRMSCORE_MAX_ROW_DROP", default_value_t = 0.5)]
    pub max_row_drop: f64,

    /// Folder for what the server keeps across restarts (the last served snapshot's name, path, modification
    /// time, size and customer count, so --max-row-drop also checks the first snapshot after a restart); created
    /// when first written. An empty value keeps nothing. An unreadable state file is logged and ignored.
    #[arg(long, env = "CRMSCORE_STATE_DIR", default_value = ".crmscore-state", value_parser = path_or_empty)]
    pub state_dir: Option<PathBuf>,

    /// Serve the next snapshot loaded even if it has more than --max-row-drop fewer customers (a deliberate
    /// shrink); used up by that snapshot, once per start, and logged.
    #[arg(long, env = "CRMSCORE_ACCEPT_ROW_DROP_ONCE")]
    pub accept_row_drop_once: bool,

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

    /// Override every model's max_batch_size (rows per inference call).
    #[arg(long, env = "CRMSCORE_MAX_BATCH_SIZE")]
    pub max_batch_size: Option<usize>,

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
}

/// A path that may be empty (clap's own path parser refuses empty values; here empty means "none").
fn path_or_empty(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

impl Config {
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
            max_row_drop: 0.5,
            state_dir: None,
            shutdown_grace_ms: 0,
            shutdown_timeout_s: 30,
            accept_row_drop_once: false,
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
            http_workers: Some(2),
            max_batch_size: None,
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
        assert_eq!(cfg.grpc_bind, None, "gRPC is off unless asked for");
        assert!(!cfg.allow_open_admin && !cfg.access_log && cfg.admin_token.is_none());
        assert_eq!(cli.log_format, LogFormat::Text);
        let cli = Cli::try_parse_from([
            "crmscore",
            "serve",
            "--state-dir",
            "",
            "--accept-row-drop-once",
        ])
        .unwrap();
        let Command::Serve(cfg) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(cfg.state_dir, Some(PathBuf::new()), "empty: no state kept");
        assert!(cfg.accept_row_drop_once);
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
