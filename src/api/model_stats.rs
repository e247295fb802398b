//! A served model's inference statistics in Triton's JSON shape (what `tritonclient`'s
//! `get_inference_statistics` reads).

use serde_json::{Value, json};

use crate::batching::stats::{InferenceStats, Tally};
use crate::model::ModelHandle;

/// `{count, ns}` of a tally.
fn duration(t: &Tally) -> Value {
    json!({ "count": t.count(), "ns": t.ns() })
}

/// The statistics of one model version. Converting inputs and outputs is timed inside `compute_infer`, so
/// `compute_input` and `compute_output` count the same requests with 0 ns.
pub fn model_stats(m: &ModelHandle) -> Value {
    stats_json(&m.spec.name, &m.spec.version, m.queue.stats())
}

fn stats_json(name: &str, version: &str, s: &InferenceStats) -> Value {
    let untimed = json!({ "count": s.compute_infer.count(), "ns": 0 });
    json!({
        "name": name,
        "version": version,
        "last_inference": s.last_inference_ms(),
        "inference_count": s.inference_count(),
        "execution_count": s.execution_count(),
        "inference_stats": {
            "success": duration(&s.success),
            "fail": duration(&s.fail),
            "queue": duration(&s.queue),
            "compute_input": untimed,
            "compute_infer": duration(&s.compute_infer),
            "compute_output": untimed,
            "cache_hit": { "count": 0, "ns": 0 },
            "cache_miss": { "count": 0, "ns": 0 },
        },
        "batch_stats": [],
    })
}

/// The reply of the statistics routes: `{"model_stats": [...]}`.
pub fn stats_reply<'m>(models: impl IntoIterator<Item = &'m ModelHandle>) -> Value {
    json!({ "model_stats": models.into_iter().map(model_stats).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let v = stats_json("churn", "1", &s);
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
