//! Logging set-up and the Prometheus metrics of one server (every name starts with `crmscore_`).

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Installs the tracing subscriber: human-readable lines on stderr, level from `RUST_LOG` (default info; ONNX
/// Runtime's own chatter at warn).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
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
    /// Model versions that failed to load (the previous one kept serving), by model.
    pub model_load_failures: IntCounterVec,
    /// Engagement policy versions loaded and swapped in.
    pub policy_loads: IntCounter,
    /// Engagement policy files refused (the served policy stays).
    pub policy_load_failures: IntCounter,
    /// 1 while the policy file on disk is refused and an older policy serves.
    pub policy_stale: IntGauge,
    /// Next best actions chosen, by policy rule and action.
    pub decisions: IntCounterVec,
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
                "Model versions loaded and swapped in",
                &["model"],
            ),
            model_load_failures: counter_vec(
                "crmscore_model_load_failures_total",
                "Model versions that failed to load (the previous version kept serving)",
                &["model"],
            ),
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
        };
        let r = &m.registry;
        let all: [Box<dyn prometheus::core::Collector>; 21] = [
            Box::new(m.explain_seconds.clone()),
            Box::new(m.policy_loads.clone()),
            Box::new(m.policy_load_failures.clone()),
            Box::new(m.policy_stale.clone()),
            Box::new(m.decisions.clone()),
            Box::new(m.model_loads.clone()),
            Box::new(m.model_load_failures.clone()),
            Box::new(m.http_requests.clone()),
            Box::new(m.http_seconds.clone()),
            Box::new(m.batch_rows.clone()),
            Box::new(m.queue_seconds.clone()),
            Box::new(m.inference_seconds.clone()),
            Box::new(m.rejected.clone()),
            Box::new(m.cancelled.clone()),
            Box::new(m.queue_depth.clone()),
            Box::new(m.snapshot_rows.clone()),
            Box::new(m.snapshot_age.clone()),
            Box::new(m.snapshot_loads.clone()),
            Box::new(m.snapshot_load_failures.clone()),
            Box::new(m.snapshot_load_seconds.clone()),
            Box::new(
                prometheus::IntGauge::new("crmscore_up", "1 while the server runs").expect("valid"),
            ),
        ];
        for c in all {
            r.register(c).expect("metric names are unique");
        }
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

    /// Sets a model's queue depth gauge (read at scrape time).
    pub fn set_queue_depth(&self, model: &str, depth: usize) {
        self.queue_depth
            .with_label_values(&[model])
            .set(depth as i64);
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

#[cfg(test)]
mod tests {
    use super::*;

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
