//! Where snapshots and models come from: local folders, or object stores (S3 and S3-compatible, GCS, Azure Blob,
//! `file://`) through the arrow-rs `object_store` client, with the same semantics as a local folder.

pub mod metrics;
pub mod models;
pub mod parts;
pub mod snapshots;
pub mod store;

use std::future::Future;
use std::path::Path;
use std::sync::OnceLock;

pub use models::ModelSync;
pub use parts::{RemoteParts, SparseBytes};

/// Why an object store could not be reached or read.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The URL names no store this server knows (or is malformed).
    #[error("{url}: {message}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why it is refused.
        message: String,
    },
    /// The store answered with an error, or could not be reached (after the retries).
    #[error("{url}: {message}")]
    Request {
        /// The object or prefix.
        url: String,
        /// What failed.
        message: String,
    },
    /// A local file of the model cache could not be written.
    #[error("model cache {path}: {source}")]
    Cache {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// URL schemes read through `object_store` (anything else is a local path).
const SCHEMES: [&str; 8] = [
    "s3://", "s3a://", "gs://", "az://", "azure://", "abfs://", "abfss://", "file://",
];

/// Whether `path` (a `--snapshots` or `--models` value) is an object-store URL rather than a local path.
pub fn is_remote(path: &Path) -> bool {
    let text = path.to_string_lossy();
    SCHEMES.iter().any(|s| text.starts_with(s))
}

/// The runtime object-store requests run on (created on first use; its threads are idle between polls).
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("storage")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the storage runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs `future` on the storage runtime and waits for it from any thread (a rayon worker, the watcher, or a
/// thread that is itself inside a Tokio runtime).
pub(crate) fn block<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv()
        .map_err(|_| "the storage request was abandoned (its task panicked)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_remote_and_paths_are_not() {
        for url in [
            "s3://b/p/",
            "gs://b/x.parquet",
            "az://c/p",
            "abfss://c@a/p",
            "file:///tmp/s",
        ] {
            assert!(is_remote(Path::new(url)), "{url}");
        }
        for path in ["snapshots", "/data/s3/x", "./s3:/x"] {
            assert!(!is_remote(Path::new(path)), "{path}");
        }
    }

    #[test]
    fn block_runs_from_inside_another_runtime() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let value = outer.block_on(async { block(async { 41 + 1 }) });
        assert_eq!(value, Ok(42));
    }
}
