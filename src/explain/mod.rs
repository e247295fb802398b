//! Why a tabular model scored a row as it did ("reasons"): exact TreeSHAP for tree ensembles read from the ONNX
//! graph itself, and the pure functions of a sampled Shapley estimator for other graphs.
//!
//! Tree ensembles get **path-dependent TreeSHAP** with covers counted from data: every row of a reference sample
//! (the served customers, see [`reference_sample`]) is routed through every tree exactly as ONNX Runtime routes
//! it, and each split remembers what share of those rows went each way. A feature's contribution is how much
//! knowing its value moves the model's margin away from what the served customers' split proportions would give
//! on average; the base value is the average margin of the reference sample under those proportions, and
//! base value + Σ contributions = the row's margin exactly. Contributions live in the margin space named by
//! [`Space`] (log-odds for a logistic classifier), where they add up; probabilities do not.
//!
//! Other tabular graphs get **baseline Shapley values by sampling** ([`sampling`]): the value of a set of
//! features is the margin of the row that takes those features from the customer and the rest from a reference
//! row (per-feature lower medians); antithetic permutations estimate it, with a 95% error bound per feature.
//! The caller runs the model on the rows the plan lays out and hands the margins back.

mod ensemble;
mod graph;
mod leaf;
pub mod onnx;
pub mod sampling;
mod target;
pub mod tree_shap;
pub mod trees;

use std::path::PathBuf;

pub use sampling::{
    DEFAULT_MAX_REFERENCE_ROWS, DEFAULT_PAIRS, Estimate, PermutationPlan, estimate, fill_rows,
    logit, reference_row, reference_sample,
};
pub use tree_shap::TreeShap;
pub use trees::{Space, TreeModel};

/// Why a model cannot be explained, or why an explain call was given the wrong shapes.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The model file cannot be read.
    #[error("cannot be explained by TreeSHAP: cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The bytes are not an ONNX protobuf.
    #[error("cannot be explained by TreeSHAP: the file is not a readable ONNX model ({0})")]
    Decode(#[from] prost::DecodeError),
    /// The graph is not one TreeSHAP can read exactly; the text says why, as a sentence for a 400 reply.
    #[error("cannot be explained by TreeSHAP: {0}")]
    Unsupported(String),
    /// A row (or output buffer) does not have the model's width.
    #[error("rows have {got} values where the model takes {expected}")]
    RowWidth { expected: usize, got: usize },
    /// The margins handed to the sampling estimate do not match its plan.
    #[error("{got} margins were given where the sampling plan laid out {expected} rows")]
    Margins { expected: usize, got: usize },
}

impl ExplainError {
    /// The message for a reply about model `name`: "model 'churn' cannot be explained by TreeSHAP: ...".
    pub fn for_model(&self, name: &str) -> String {
        format!("model '{name}' {self}")
    }
}
