//! Logging set-up and the Prometheus metrics of one server (every name starts with `crmscore_`).

use prometheus::core::{Collector, Desc};
use prometheus::{
    Counter, Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder, proto,
};

/// Installs the tracing subscriber on stderr in `format`, level from `RUST_LOG` (default info; ONNX Runtime's own
/// chatter at warn). Colour codes only when stderr is a terminal, so files and log collectors get plain text.
pub fn init_logging(format: crate::config::LogFormat) {
    use std::io::IsTerminal;
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    // actix-http logs every malformed request from a client at ERROR ("stream error: request parse error"), a log
    // flood any client can cause; silenced unless RUST_LOG names actix_http.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("actix_http")) {
        filter = filter.add_directive(
            "actix_http::h1::dispatcher=off"
                .parse()
                .expect("static directive"),
        );
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        crate::config::LogFormat::Text => builder.try_init(),
        crate::config::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// Seconds buckets from 50 µs to 10 s: request and inference times span both ends.
const TIME_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Every metric of one server instance (instances do not share a registry, so tests can run several).
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    batch_rows: HistogramVec,
    queue_seconds: HistogramVec,
    inference_seconds: HistogramVec,
    explain_seconds: HistogramVec,
    rejected: IntCounterVec,
    cancelled: IntCounterVec,
    expired: IntCounterVec,
    late_rows: IntCounterVec,
    batch_retries: IntCounterVec,
    queue_depth: IntGaugeVec,
    /// Rows of the served snapshot.
    pub snapshot_rows: IntGauge,
    /// Seconds since the served snapshot's data was written.
    pub snapshot_age: Gauge,
    /// Snapshot loads that succeeded.
    pub snapshot_loads: IntCounter,
    /// Snapshot loads that failed validation or reading.
    pub snapshot_load_failures: IntCounter,
    /// Time to load the served snapshot.
    pub snapshot_load_seconds: Histogram,
    /// Model versions loaded and swapped in, by model.
    pub model_loads: IntCounterVec,
    /// Model folders or versions that failed to load (a previous version, if any, kept serving), by model.
    pub model_load_failures: IntCounterVec,
    /// Models unloaded (by the operator, or because their folder was removed), by model.
    pub model_unloads: IntCounterVec,
    /// 1 while a model serves, 0 while its folder failed to load or the operator unloaded it.
    model_ready: IntGaugeVec,
    model_info: IntGaugeVec,
    /// Engagement policy versions loaded and swapped in.
    pub policy_loads: IntCounter,
    /// Engagement policy files refused (the served policy stays).
    pub policy_load_failures: IntCounter,
    /// 1 while the policy file on disk is refused and an older policy serves.
    pub policy_stale: IntGauge,
    /// Next best actions chosen, by policy rule and action.
    pub decisions: IntCounterVec,
    /// 1 while the server runs (set once HTTP is bound).
    pub up: IntGauge,
    /// Request body bytes reserved against --body-budget-bytes right now.
    pub body_bytes_in_flight: IntGauge,
    /// Request bodies refused while being read, by reason (`timeout`, `budget`, `too_large`).
    pub body_rejections: IntCounterVec,
    /// Always 1; the labels say what runs (see [`Metrics::set_build_info`]).
    build_info: IntGaugeVec,
    /// API-key authentication.
    pub api_keys: ApiKeyMetrics,
    /// The outcome and decision log.
    pub feedback: crate::feedback::FeedbackMetrics,
    /// Drift of the served snapshot against the one it replaced.
    pub drift: DriftMetrics,
}

/// Drift gauges of the served snapshot (set at each swap, from its [`DriftReport`](crate::snapshot::DriftReport)).
pub struct DriftMetrics {
    feature_psi: GaugeVec,
    score_psi: GaugeVec,
}

impl DriftMetrics {
    fn new() -> DriftMetrics {
        let gauge_vec = |name: &str, help: &str, label: &str| {
            GaugeVec::new(Opts::new(name, help), &[label])
                .expect("static metric definition is valid")
        };
        DriftMetrics {
            feature_psi: gauge_vec(
                "crmscore_snapshot_feature_psi",
                "Population stability index of a feature, served snapshot against the one it replaced",
                "feature",
            ),
            score_psi: gauge_vec(
                "crmscore_snapshot_score_psi",
                "Population stability index of a model's scores on customers of both snapshots",
                "model",
            ),
        }
    }

    fn register(&self, registry: &Registry) {
        for c in [
            Box::new(self.feature_psi.clone()) as Box<dyn Collector>,
            Box::new(self.score_psi.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
    }

    /// Replaces the gauges with `report`'s figures (clears them when there is none).
    pub fn set(&self, report: Option<&crate::snapshot::DriftReport>) {
        self.feature_psi.reset();
        self.score_psi.reset();
        let Some(report) = report else {
            return;
        };
        for f in &report.features {
            self.feature_psi
                .with_label_values(&[f.feature.as_str()])
                .set(f.psi);
        }
        if let Some(score) = &report.score {
            self.score_psi
                .with_label_values(&[score.model.as_str()])
                .set(score.psi);
        }
    }
}

/// Metrics of API-key authentication: by key name, never the key.
pub struct ApiKeyMetrics {
    /// Requests let through, by key name.
    pub requests: IntCounterVec,
    /// Requests refused with 401, by reason (`missing`, `invalid`).
    pub rejected: IntCounterVec,
    /// Keys files loaded after a change.
    pub loads: IntCounter,
    /// Keys file edits refused (the served keys stay).
    pub load_failures: IntCounter,
    /// 1 while the keys file on disk is refused and older keys serve.
    pub file_refused: IntGauge,
}

impl ApiKeyMetrics {
    fn new() -> ApiKeyMetrics {
        let counter =
            |name, help| IntCounter::new(name, help).expect("static metric definition is valid");
        ApiKeyMetrics {
            requests: counter_vec(
                "crmscore_api_key_requests_total",
                "Requests let through by API key, by key name",
                &["key"],
            ),
            rejected: counter_vec(
                "crmscore_api_key_rejected_total",
                "Requests refused with 401 for a missing or invalid API key",
                &["reason"],
            ),
            loads: counter(
                "crmscore_api_keys_loads_total",
                "API keys files loaded after a change",
            ),
            load_failures: counter(
                "crmscore_api_keys_load_failures_total",
                "API keys file edits refused (the served keys stay)",
            ),
            file_refused: IntGauge::new(
                "crmscore_api_keys_file_refused",
                "1 while the API keys file on disk is refused and older keys serve",
            )
            .expect("static metric definition is valid"),
        }
    }

    fn register(&self, registry: &Registry) {
        let all: [Box<dyn Collector>; 5] = [
            Box::new(self.requests.clone()),
            Box::new(self.rejected.clone()),
            Box::new(self.loads.clone()),
            Box::new(self.load_failures.clone()),
            Box::new(self.file_refused.clone()),
        ];
        for c in all {
            registry.register(c).expect("metric names are unique");
        }
    }
}

/// The per-model handles a batching worker records into.
#[derive(Clone)]
pub struct ModelMetrics {
    /// Rows per inference call.
    pub batch_rows: Histogram,
    /// Time from enqueue to the start of the inference call.
    pub queue_seconds: Histogram,
    /// Time of one inference call.
    pub inference_seconds: Histogram,
    /// Time to explain one job's rows.
    pub explain_seconds: Histogram,
    /// Jobs refused because the queue was full.
    pub rejected: IntCounter,
    /// Jobs dropped because their caller had gone.
    pub cancelled: IntCounter,
    /// Jobs dropped before inference because their deadline had passed.
    pub expired: IntCounter,
    /// Rows inferred for callers that had gone (their deadline passed during inference): wasted work.
    pub late_rows: IntCounter,
    /// Failed batches rerun job by job to isolate the failing job.
    pub batch_retries: IntCounter,
    /// Triton-style statistics of this model version (fresh for each load, shared by its queue and workers).
    pub stats: std::sync::Arc<crate::batching::stats::InferenceStats>,
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("static metric definition is valid")
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition is valid")
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::new(),
            http_requests: counter_vec(
                "crmscore_http_requests_total",
                "HTTP requests by route pattern, method and status",
                &["route", "method", "status"],
            ),
            http_seconds: histogram_vec(
                "crmscore_http_request_duration_seconds",
                "HTTP request latency by route pattern, method and status",
                &["route", "method", "status"],
                TIME_BUCKETS,
            ),
            batch_rows: histogram_vec(
                "crmscore_batch_size",
                "Rows per inference call",
                &["model"],
                BATCH_BUCKETS,
            ),
            queue_seconds: histogram_vec(
                "crmscore_queue_duration_seconds",
                "Time a job waited in the model queue before its batch ran",
                &["model"],
                TIME_BUCKETS,
            ),
            inference_seconds: histogram_vec(
                "crmscore_inference_duration_seconds",
                "Time of one inference call (one batch)",
                &["model"],
                TIME_BUCKETS,
            ),
            explain_seconds: histogram_vec(
                "crmscore_explain_duration_seconds",
                "Time to explain one job's rows on a batching worker",
                &["model"],
                TIME_BUCKETS,
            ),
            rejected: counter_vec(
                "crmscore_queue_rejected_total",
                "Requests refused with 503 because the model queue was full",
                &["model"],
            ),
            cancelled: counter_vec(
                "crmscore_jobs_cancelled_total",
                "Jobs skipped because the caller had gone",
                &["model"],
            ),
            expired: counter_vec(
                "crmscore_jobs_expired_total",
                "Jobs dropped before inference because their deadline had passed (answered 504)",
                &["model"],
            ),
            late_rows: counter_vec(
                "crmscore_rows_inferred_late_total",
                "Rows inferred for callers that had already gone (deadline passed or client left during inference)",
                &["model"],
            ),
            batch_retries: counter_vec(
                "crmscore_batch_retries_total",
                "Failed batches rerun job by job so only the failing job gets the error",
                &["model"],
            ),
            queue_depth: IntGaugeVec::new(
                Opts::new("crmscore_queue_depth", "Jobs waiting in the model queue"),
                &["model"],
            )
            .expect("static metric definition is valid"),
            snapshot_rows: IntGauge::new(
                "crmscore_snapshot_rows",
                "Customers in the served snapshot",
            )
            .expect("static metric definition is valid"),
            snapshot_age: Gauge::new(
                "crmscore_snapshot_age_seconds",
                "Seconds since the served snapshot's data was written (file modification time)",
            )
            .expect("static metric definition is valid"),
            snapshot_loads: IntCounter::new(
                "crmscore_snapshot_loads_total",
                "Snapshots loaded and swapped in",
            )
            .expect("static metric definition is valid"),
            snapshot_load_failures: IntCounter::new(
                "crmscore_snapshot_load_failures_total",
                "Snapshot loads that failed (the served snapshot, if any, stays)",
            )
            .expect("static metric definition is valid"),
            snapshot_load_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "crmscore_snapshot_load_duration_seconds",
                    "Time to read and index a snapshot",
                )
                .buckets(vec![
                    0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                ]),
            )
            .expect("static metric definition is valid"),
            model_loads: counter_vec(
                "crmscore_model_loads_total",
                "Model versions loaded at start-up or swapped in by a reload",
                &["model"],
            ),
            model_load_failures: counter_vec(
                "crmscore_model_load_failures_total",
                "Model folders or versions that failed to load (a previous version, if any, kept serving)",
                &["model"],
            ),
            model_unloads: counter_vec(
                "crmscore_model_unloads_total",
                "Models unloaded by the operator or because their folder was removed",
                &["model"],
            ),
            model_ready: IntGaugeVec::new(
                Opts::new(
                    "crmscore_model_ready",
                    "1 while the model serves; 0 while its folder failed to load or the operator unloaded it",
                ),
                &["model"],
            )
            .expect("static metric definition is valid"),
            model_info: IntGaugeVec::new(
                Opts::new(
                    "crmscore_model_info",
                    "1 for the version each model serves and the execution provider it runs on (CPU or CUDA)",
                ),
                &["model", "version", "provider"],
            )
            .expect("static metric definition is valid"),
            policy_loads: IntCounter::new(
                "crmscore_policy_loads_total",
                "Engagement policy versions loaded and swapped in",
            )
            .expect("static metric definition is valid"),
            policy_load_failures: IntCounter::new(
                "crmscore_policy_load_failures_total",
                "Engagement policy files refused (the served policy stays)",
            )
            .expect("static metric definition is valid"),
            policy_stale: IntGauge::new(
                "crmscore_policy_file_refused",
                "1 while the policy file on disk is refused and an older policy serves",
            )
            .expect("static metric definition is valid"),
            decisions: counter_vec(
                "crmscore_next_best_actions_total",
                "Next best actions chosen, by policy rule and action",
                &["rule", "action"],
            ),
            up: IntGauge::new("crmscore_up", "1 while the server runs")
                .expect("static metric definition is valid"),
            body_bytes_in_flight: IntGauge::new(
                "crmscore_request_body_bytes_in_flight",
                "Request body bytes being received or held, reserved against --body-budget-bytes",
            )
            .expect("static metric definition is valid"),
            body_rejections: counter_vec(
                "crmscore_request_body_rejections_total",
                "Request bodies refused while being read: timeout (408), budget (503), too_large (413)",
                &["reason"],
            ),
            build_info: IntGaugeVec::new(
                Opts::new(
                    "crmscore_build_info",
                    "Always 1; labels: crate version, git commit and ONNX Runtime version",
                ),
                &["version", "git_commit", "onnxruntime_version"],
            )
            .expect("static metric definition is valid"),
            api_keys: ApiKeyMetrics::new(),
            feedback: crate::feedback::FeedbackMetrics::new(),
            drift: DriftMetrics::new(),
        };
        let r = &m.registry;
        m.api_keys.register(r);
        m.feedback.register(r);
        m.drift.register(r);
        let all: [Box<dyn Collector>; 29] = [
            Box::new(m.explain_seconds.clone()),
            Box::new(m.policy_loads.clone()),
            Box::new(m.policy_load_failures.clone()),
            Box::new(m.policy_stale.clone()),
            Box::new(m.decisions.clone()),
            Box::new(m.model_loads.clone()),
            Box::new(m.model_load_failures.clone()),
            Box::new(m.model_unloads.clone()),
            Box::new(m.model_ready.clone()),
            Box::new(m.model_info.clone()),
            Box::new(m.http_requests.clone()),
            Box::new(m.http_seconds.clone()),
            Box::new(m.batch_rows.clone()),
            Box::new(m.queue_seconds.clone()),
            Box::new(m.inference_seconds.clone()),
            Box::new(m.rejected.clone()),
            Box::new(m.cancelled.clone()),
            Box::new(m.expired.clone()),
            Box::new(m.late_rows.clone()),
            Box::new(m.batch_retries.clone()),
            Box::new(m.queue_depth.clone()),
            Box::new(m.snapshot_rows.clone()),
            Box::new(m.snapshot_age.clone()),
            Box::new(m.snapshot_loads.clone()),
            Box::new(m.snapshot_load_failures.clone()),
            Box::new(m.snapshot_load_seconds.clone()),
            Box::new(m.up.clone()),
            Box::new(m.build_info.clone()),
            Box::new(ProcessCollector::new()),
        ];
        for c in all {
            r.register(c).expect("metric names are unique");
        }
        for c in [
            Box::new(m.body_bytes_in_flight.clone()) as Box<dyn Collector>,
            Box::new(m.body_rejections.clone()),
        ] {
            r.register(c).expect("metric names are unique");
        }
        crate::storage::metrics::register(r);
        m
    }

    /// The handles one model's workers record into.
    pub fn for_model(&self, model: &str) -> ModelMetrics {
        ModelMetrics {
            batch_rows: self.batch_rows.with_label_values(&[model]),
            queue_seconds: self.queue_seconds.with_label_values(&[model]),
            inference_seconds: self.inference_seconds.with_label_values(&[model]),
            explain_seconds: self.explain_seconds.with_label_values(&[model]),
            rejected: self.rejected.with_label_values(&[model]),
            cancelled: self.cancelled.with_label_values(&[model]),
            expired: self.expired.with_label_values(&[model]),
            late_rows: self.late_rows.with_label_values(&[model]),
            batch_retries: self.batch_retries.with_label_values(&[model]),
            stats: Default::default(),
        }
    }

    /// Records one HTTP request; `route` is the matched pattern, never the raw path (ids stay out of labels).
    pub fn observe_request(&self, route: &str, method: &str, status: &str, seconds: f64) {
        let labels = [route, method, status];
        self.http_requests.with_label_values(&labels).inc();
        self.http_seconds
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// Sets whether a model folder serves (`crmscore_model_ready`).
    pub fn set_model_ready(&self, model: &str, ready: bool) {
        self.model_ready
            .with_label_values(&[model])
            .set(i64::from(ready));
    }

    /// Labels `model`'s served version and execution provider (`crmscore_model_info`), replacing the previous.
    pub fn set_model_info(&self, model: &str, version: &str, provider: &str) {
        self.forget_model_info(model);
        self.model_info
            .with_label_values(&[model, version, provider])
            .set(1);
    }

    fn forget_model_info(&self, model: &str) {
        let stale: Vec<Vec<String>> = self
            .model_info
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| {
                m.get_label()
                    .iter()
                    .map(|l| l.value().to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|labels| labels.first().is_some_and(|name| name == model))
            .collect();
        for labels in stale {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let _ = self.model_info.remove_label_values(&labels);
        }
    }

    /// Drops the per-model gauges of a model whose folder is gone.
    pub fn forget_model(&self, model: &str) {
        self.forget_model_info(model);
        let _ = self.model_ready.remove_label_values(&[model]);
        let _ = self.queue_depth.remove_label_values(&[model]);
    }

    /// Sets a model's queue depth gauge (read at scrape time).
    pub fn set_queue_depth(&self, model: &str, depth: usize) {
        self.queue_depth
            .with_label_values(&[model])
            .set(depth as i64);
    }

    /// Sets `crmscore_build_info` to 1 with this build's labels. `ort_info` is `ort::info()`, ONNX Runtime's
    /// build string (e.g. "ORT Build Info: git-branch=rel-1.22.0, ..."); `ort` 2.0.0-rc.15 has no public call for
    /// the version itself when the library is loaded dynamically, so the version comes from the release branch
    /// named there, else from the file name of the loaded library (`libonnxruntime.so.1.22.0`), else "unknown".
    pub fn set_build_info(&self, ort_info: &str) {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        self.build_info.reset();
        self.build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("CRMSCORE_GIT_COMMIT").unwrap_or("unknown"),
                onnxruntime_version(ort_info, &maps),
            ])
            .set(1);
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&families, &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The ONNX Runtime version: from its build string ("git-branch=rel-1.22.0" → "1.22.0"), else from the loaded
/// library's file name in `maps` (the text of `/proc/self/maps`), else "unknown".
fn onnxruntime_version<'a>(info: &'a str, maps: &'a str) -> &'a str {
    let is_version =
        |v: &&str| v.contains('.') && v.chars().all(|c| c.is_ascii_digit() || c == '.');
    let from_branch = info
        .split([',', ' '])
        .find_map(|part| part.trim().strip_prefix("git-branch=rel-"));
    let from_file = || {
        maps.lines()
            .filter_map(|l| l.rsplit('/').next()?.strip_prefix("libonnxruntime.so."))
            .find(is_version)
    };
    from_branch
        .filter(is_version)
        .or_else(from_file)
        .unwrap_or("unknown")
}

/// `USER_HZ`: the unit of the tick counts in `/proc/self/stat`, 100 on every Linux architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// The process's CPU time, resident memory, open descriptors and start time, read from `/proc/self` at each
/// scrape (nothing is reported where `/proc` is missing).
struct ProcessCollector {
    cpu_seconds: Counter,
    resident_bytes: IntGauge,
    open_fds: IntGauge,
    start_time: Gauge,
    descs: Vec<Desc>,
}

/// What one read of `/proc/self` found.
#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: i64,
    open_fds: i64,
    start_time_seconds: f64,
}

impl ProcessCollector {
    fn new() -> ProcessCollector {
        let valid = "static metric definition is valid";
        let cpu_seconds = Counter::new(
            "crmscore_process_cpu_seconds_total",
            "User and system CPU time spent by the process, in seconds",
        )
        .expect(valid);
        let resident_bytes = IntGauge::new(
            "crmscore_process_resident_memory_bytes",
            "Resident memory of the process (VmRSS), in bytes",
        )
        .expect(valid);
        let open_fds = IntGauge::new(
            "crmscore_process_open_fds",
            "Open file descriptors of the process",
        )
        .expect(valid);
        let start_time = Gauge::new(
            "crmscore_process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
        )
        .expect(valid);
        let descs = [
            cpu_seconds.desc(),
            resident_bytes.desc(),
            open_fds.desc(),
            start_time.desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        ProcessCollector {
            cpu_seconds,
            resident_bytes,
            open_fds,
            start_time,
            descs,
        }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let Some(stats) = ProcessStats::read() else {
            return Vec::new();
        };
        // CPU time only grows; the counter follows it.
        let more = stats.cpu_seconds - self.cpu_seconds.get();
        if more > 0.0 {
            self.cpu_seconds.inc_by(more);
        }
        self.resident_bytes.set(stats.resident_bytes);
        self.open_fds.set(stats.open_fds);
        self.start_time.set(stats.start_time_seconds);
        let mut families = self.cpu_seconds.collect();
        families.extend(self.resident_bytes.collect());
        families.extend(self.open_fds.collect());
        families.extend(self.start_time.collect());
        families
    }
}

impl ProcessStats {
    fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
        let mut stats = ProcessStats::parse(&stat, &status, &boot)?;
        stats.open_fds = open_fds;
        Some(stats)
    }

    /// Parses `/proc/self/stat`, `/proc/self/status` and `/proc/stat` (for the boot time).
    fn parse(stat: &str, status: &str, boot: &str) -> Option<ProcessStats> {
        // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Field n of proc(5) is fields[n - 3]: utime 14, stime 15, starttime 22 (ticks after boot).
        let tick = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let cpu_ticks = tick(14)? + tick(15)?;
        let started_ticks = tick(22)?;
        let boot_time: u64 = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime"))?
            .trim()
            .parse()
            .ok()?;
        let rss_kib: i64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(ProcessStats {
            cpu_seconds: cpu_ticks as f64 / TICKS_PER_SECOND,
            resident_bytes: rss_kib * 1024,
            open_fds: 0,
            start_time_seconds: boot_time as f64 + started_ticks as f64 / TICKS_PER_SECOND,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stats_parse_proc_text() {
        let stat = "4242 (crm (score) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 12345 1000 \
                    300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0";
        let status = "Name:\tcrmscore\nVmRSS:\t  123456 kB\nThreads:\t9\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n";
        let stats = ProcessStats::parse(stat, status, boot).unwrap();
        assert_eq!(stats.cpu_seconds, 3.0);
        assert_eq!(stats.resident_bytes, 123456 * 1024);
        assert_eq!(stats.start_time_seconds, 1700000000.0 + 123.45);
        assert!(ProcessStats::parse("garbage", status, boot).is_none());
    }

    #[test]
    fn build_info_names_the_onnxruntime_release() {
        let maps = "7f00-7f01 r-xp 00000000 08:01 42 /opt/ort/lib/libonnxruntime.so.1.31.1\n\
                    7f02-7f03 r-xp 00000000 08:01 43 /usr/lib/libc.so.6\n";
        let info = "ORT Build Info: git-branch=rel-1.22.0, git-commit-id=5a2b, build type=Release";
        assert_eq!(onnxruntime_version(info, maps), "1.22.0");
        let detached = "ORT Build Info: git-branch=HEAD, git-commit-id=6af1a93, build type=Release";
        assert_eq!(onnxruntime_version(detached, maps), "1.31.1");
        assert_eq!(onnxruntime_version(detached, ""), "unknown");
        let m = Metrics::new();
        m.set_build_info("git-branch=rel-1.22.1");
        let text = m.render();
        assert!(text.contains(r#"onnxruntime_version="1.22.1""#), "{text}");
        assert!(text.contains(&format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"))));
        assert!(text.contains("crmscore_process_open_fds "), "{text}");
    }

    #[test]
    fn renders_labelled_series() {
        let m = Metrics::new();
        m.observe_request("/v1/churn/score", "POST", "200", 0.0004);
        m.for_model("churn").batch_rows.observe(16.0);
        m.set_queue_depth("churn", 3);
        let text = m.render();
        assert!(text.contains(r#"crmscore_http_requests_total{method="POST",route="/v1/churn/score",status="200"} 1"#), "{text}");
        assert!(text.contains(r#"crmscore_queue_depth{model="churn"} 3"#));
        assert!(text.contains(r#"crmscore_batch_size_bucket{model="churn",le="16"} 1"#));
    }
}
