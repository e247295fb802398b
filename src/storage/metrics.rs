//! Object-store counters: requests retried after a transient error, and requests that failed for good.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts, Registry};

/// The counters, shared by every request of the process (the loader has no handle on the server's metrics).
pub struct StorageMetrics {
    /// Object-store operations retried after a transient error (dropped connection, 5xx), by operation.
    pub retries: IntCounterVec,
    /// Object-store operations that failed after their retries, by operation.
    pub errors: IntCounterVec,
}

/// The process's storage counters.
pub static STORAGE: LazyLock<StorageMetrics> = LazyLock::new(|| {
    let vec = |name: &str, help: &str| {
        IntCounterVec::new(Opts::new(name, help), &["op"])
            .expect("static metric definition is valid")
    };
    let metrics = StorageMetrics {
        retries: vec(
            "crmscore_storage_retries_total",
            "Object-store operations retried after a transient error (list, footer, get), with backoff",
        ),
        errors: vec(
            "crmscore_storage_errors_total",
            "Object-store operations that failed after their retries (the served snapshot or models stay)",
        ),
    };
    // Every operation shows from the start, at 0.
    for op in OPERATIONS {
        metrics.retries.with_label_values(&[op]);
        metrics.errors.with_label_values(&[op]);
    }
    metrics
});

/// The operations counted: listing a prefix, reading a footer, fetching row groups, syncing a model file.
pub const OPERATIONS: [&str; 4] = ["list", "footer", "get", "model"];

/// Adds the storage counters to `registry` (a registry may hold them once).
pub fn register(registry: &Registry) {
    for c in [STORAGE.retries.clone(), STORAGE.errors.clone()] {
        registry
            .register(Box::new(c))
            .expect("metric names are unique");
    }
}
