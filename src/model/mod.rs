//! Models: the manifest, the ONNX Runtime session behind it, and the registry that serves them by name.

pub mod availability;
pub mod catalogue;
pub mod cuda;
pub mod explainer;
pub mod registry;
pub mod repository;
pub mod runtime;
pub mod sample_scores;
pub mod session;
pub mod spec;

use std::path::{Path, PathBuf};

pub use registry::{ModelHandle, ModelRegistry};
pub use spec::{ModelKind, ModelSpec};

/// Why a model (or ONNX Runtime itself) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("manifest of {dir}: {message}")]
    Manifest { dir: PathBuf, message: String },
    #[error("model '{model}': {message}")]
    Mismatch { model: String, message: String },
    #[error("model '{model}': ONNX Runtime failed: {message}")]
    Runtime { model: String, message: String },
    #[error("{0}")]
    Library(String),
    #[error("no models found in {0} (expected <name>/model.toml + <name>/model.onnx)")]
    Empty(PathBuf),
}

impl ModelError {
    pub(crate) fn manifest(dir: &Path, message: impl Into<String>) -> Self {
        ModelError::Manifest {
            dir: dir.to_path_buf(),
            message: message.into(),
        }
    }
}
