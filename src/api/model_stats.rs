//! A served model's inference statistics in Triton's JSON shape (what `tritonclient`'s
//! `get_inference_statistics` reads).

use serde::Serialize;
use utoipa::ToSchema;

use crate::batching::stats::{InferenceStats, Tally};
use crate::model::ModelHandle;

/// A count of requests and the nanoseconds they took.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatDuration {
    /// Requests (or batches) counted.
    pub count: u64,
    /// Their total time in nanoseconds.
    pub ns: u64,
}

/// Triton's per-phase inference statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct InferenceStatistics {
    /// Answered requests.
    pub success: StatDuration,
    /// Failed requests.
    pub fail: StatDuration,
    /// Time in the model's queue.
    pub queue: StatDuration,
    /// Converting inputs (timed inside `compute_infer`: 0 ns).
    pub compute_input: StatDuration,
    /// Inference.
    pub compute_infer: StatDuration,
    /// Converting outputs (timed inside `compute_infer`: 0 ns).
    pub compute_output: StatDuration,
    /// No response cache: always 0.
    pub cache_hit: StatDuration,
    /// No response cache: always 0.
    pub cache_miss: StatDuration,
}

/// The statistics of one model version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelStats<'a> {
    /// Model name.
    pub name: &'a str,
    /// Model version.
    pub version: &'a str,
    /// When it last answered (unix milliseconds; 0 for never).
    pub last_inference: u64,
    /// Requests (rows) answered.
    pub inference_count: u64,
    /// Batches run.
    pub execution_count: u64,
    /// Per-phase counts and times.
    pub inference_stats: InferenceStatistics,
    /// Always empty.
    pub batch_stats: Vec<serde_json::Value>,
}

/// The reply of the statistics routes: `{"model_stats": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsReply<'a> {
    /// One entry per model.
    pub model_stats: Vec<ModelStats<'a>>,
}

/// `{count, ns}` of a tally.
fn duration(t: &Tally) -> StatDuration {
    StatDuration {
        count: t.count(),
        ns: t.ns(),
    }
}

/// The statistics of one model version. Converting inputs and outputs is timed inside `compute_infer`, so
/// `compute_input` and `compute_output` count the same requests with 0 ns.
pub fn model_stats(m: &ModelHandle) -> ModelStats<'_> {
    stats_json(&m.spec.name, &m.spec.version, m.queue.stats())
}

fn stats_json<'a>(name: &'a str, version: &'a str, s: &InferenceStats) -> ModelStats<'a> {
    let untimed = || StatDuration {
        count: s.compute_infer.count(),
        ns: 0,
    };
    let zero = || StatDuration { count: 0, ns: 0 };
    ModelStats {
        name,
        version,
        last_inference: s.last_inference_ms(),
        inference_count: s.inference_count(),
        execution_count: s.execution_count(),
        inference_stats: InferenceStatistics {
            success: duration(&s.success),
            fail: duration(&s.fail),
            queue: duration(&s.queue),
            compute_input: untimed(),
            compute_infer: duration(&s.compute_infer),
            compute_output: untimed(),
            cache_hit: zero(),
            cache_miss: zero(),
        },
        batch_stats: vec![],
    }
}

/// The reply of the statistics routes: `{"model_stats": [...]}`.
pub fn stats_reply<'m>(models: impl IntoIterator<Item = &'m ModelHandle>) -> StatsReply<'m> {
    StatsReply {
        model_stats: models.into_iter().map(model_stats).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn counters_land_in_triton_fields() {
        let s = InferenceStats::default();
        s.answered(
            4,
            Duration::from_nanos(10),
            Duration::from_nanos(70),
            Duration::from_nanos(100),
        );
        s.executed(1);
        let v = serde_json::to_value(stats_json("churn", "1", &s)).unwrap();
        assert_eq!(v["name"], "churn");
        assert_eq!(v["version"], "1");
        assert_eq!(v["inference_count"], 4);
        assert_eq!(v["execution_count"], 1);
        assert_eq!(
            v["inference_stats"]["success"],
            json!({"count": 1, "ns": 100})
        );
        assert_eq!(v["inference_stats"]["queue"], json!({"count": 1, "ns": 10}));
        assert_eq!(
            v["inference_stats"]["compute_infer"],
            json!({"count": 1, "ns": 70})
        );
        assert_eq!(v["inference_stats"]["fail"], json!({"count": 0, "ns": 0}));
    }
}
