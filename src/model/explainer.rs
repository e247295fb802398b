//! A tabular model's explainer for one snapshot: TreeSHAP with covers from the snapshot's reference sample, or
//! sampled Shapley values against the sample's median customer; run by the model's batching workers.

use std::sync::Arc;

use crate::explain::sampling::{self, PermutationPlan};
use crate::explain::tree_shap::TreeShap;
use crate::explain::trees::{Space, TreeModel};
use crate::model::spec::MissingPolicy;
use crate::snapshot::{FeatureSnapshot, Layout};

/// Seed of the reference sample and of the sampling estimator's permutations: the same snapshot always gives the
/// same explanations.
pub const SEED: u64 = 0x5EED_C0DE;

/// How a model's scores are explained.
pub enum Method {
    /// Exact path-dependent TreeSHAP over the trees read from the graph.
    Tree(TreeShap),
    /// Permutation-sampled Shapley values of the margin against one reference row.
    Sampling {
        /// The snapshot's per-feature lower median (missing policy applied).
        reference: Vec<f32>,
        /// The permutations every row is explained with.
        plan: PermutationPlan,
        /// Output column of the explained (positive) label.
        positive: usize,
        /// Values per output row.
        output_width: usize,
    },
}

/// What explains one model's scores, built for one snapshot.
pub struct ModelExplainer {
    /// [`FeatureSnapshot::serial`] of the snapshot it learned from.
    pub snapshot: u64,
    /// Features per row.
    pub width: usize,
    /// The method and its data.
    pub method: Method,
    /// The space contributions add up in.
    pub space: Space,
}

/// Contributions of a job's rows: `width + 1` values per row (features, then the base value, as Triton's FIL
/// backend lays them out), and for sampled ones a 95% error bound per feature.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explanation {
    /// rows × (features + 1), base value last.
    pub contributions: Vec<f32>,
    /// rows × features; empty for exact methods.
    pub error_bounds: Vec<f32>,
}

/// Runs a feature model on rows (row-major, `width` each), appending `rows × output width` values.
pub type Evaluate<'a> = dyn FnMut(&[f32], &mut Vec<f32>) -> Result<(), String> + 'a;

impl ModelExplainer {
    /// The method's name in replies.
    pub fn method_name(&self) -> &'static str {
        match self.method {
            Method::Tree(_) => "tree_shap",
            Method::Sampling { .. } => "sampling",
        }
    }

    /// The space's name in replies.
    pub fn space_name(&self) -> &'static str {
        self.space.as_str()
    }

    /// Builds the explainer of a model for `snapshot`: `trees` when the graph is a tree ensemble read and
    /// verified at load, else the sampling method.
    pub fn build(
        trees: Option<&TreeModel>,
        snapshot: &FeatureSnapshot,
        layout: &Layout,
        missing: MissingPolicy,
        positive: usize,
        output_width: usize,
    ) -> Result<ModelExplainer, String> {
        let width = layout.width();
        let picked = reference_rows(snapshot.rows());
        let mut rows = Vec::with_capacity(picked.len() * width);
        // Erased customers' rows are blanked and must not shape anyone's explanation.
        for &row in picked.iter().filter(|&&row| !snapshot.is_hidden(row)) {
            snapshot.gather(row, layout, &mut rows);
        }
        Self::from_reference(
            trees,
            rows,
            width,
            snapshot.serial(),
            missing,
            positive,
            output_width,
        )
    }

    /// Builds an explainer from the reference sample itself: the rows [`reference_rows`] picks, in that order,
    /// `width` model features each (what [`ModelExplainer::build`] gathers; the batch command reads them from
    /// a snapshot it streams). `snapshot` is the serial it is cached under.
    pub fn from_reference(
        trees: Option<&TreeModel>,
        mut rows: Vec<f32>,
        width: usize,
        snapshot: u64,
        missing: MissingPolicy,
        positive: usize,
        output_width: usize,
    ) -> Result<ModelExplainer, String> {
        let (method, space) = match trees {
            Some(model) => {
                // The model sees missing values as its policy says; so do the covers.
                if missing == MissingPolicy::Zero {
                    rows.iter_mut()
                        .filter(|v| v.is_nan())
                        .for_each(|v| *v = 0.0);
                }
                let shap = TreeShap::new(model, rows.chunks_exact(width.max(1)))
                    .map_err(|e| e.to_string())?;
                (Method::Tree(shap), model.space())
            }
            None => {
                // The median of the values present; a column with none falls back to the missing policy.
                let mut reference = sampling::reference_row(rows.chunks_exact(width.max(1)), width);
                if missing != MissingPolicy::Nan {
                    reference
                        .iter_mut()
                        .filter(|v| v.is_nan())
                        .for_each(|v| *v = 0.0);
                }
                let method = Method::Sampling {
                    reference,
                    plan: PermutationPlan::new(width, sampling::DEFAULT_PAIRS, SEED),
                    positive,
                    output_width,
                };
                // One output column is a score (a regressor's), explained as is; classes in log-odds.
                let space = if output_width == 1 {
                    Space::Raw
                } else {
                    Space::LogOdds
                };
                (method, space)
            }
        };
        Ok(ModelExplainer {
            snapshot,
            width,
            method,
            space,
        })
    }

    /// Explains `rows` (row-major, `width` each); the sampling method runs the model through `evaluate`.
    pub fn explain(
        &self,
        rows: &[f32],
        evaluate: &mut Evaluate<'_>,
    ) -> Result<Explanation, String> {
        let width = self.width.max(1);
        let n = rows.len() / width;
        let mut out = Explanation {
            contributions: Vec::with_capacity(n * (width + 1)),
            error_bounds: Vec::new(),
        };
        match &self.method {
            Method::Tree(shap) => {
                let mut phi = vec![0.0_f64; width];
                let base = shap.base_value();
                for row in rows.chunks_exact(width) {
                    phi.iter_mut().for_each(|p| *p = 0.0);
                    shap.explain(row, &mut phi).map_err(|e| e.to_string())?;
                    out.contributions.extend(phi.iter().map(|&p| p as f32));
                    out.contributions.push(base as f32);
                }
            }
            Method::Sampling {
                reference,
                plan,
                positive,
                output_width,
            } => {
                out.error_bounds.reserve(n * width);
                let mut perturbed = Vec::new();
                let mut outputs = Vec::new();
                let mut margins = Vec::new();
                for row in rows.chunks_exact(width) {
                    perturbed.clear();
                    sampling::fill_rows(plan, row, reference, &mut perturbed)
                        .map_err(|e| e.to_string())?;
                    outputs.clear();
                    evaluate(&perturbed, &mut outputs)?;
                    let expected = perturbed.len() / width * output_width;
                    if outputs.len() != expected {
                        return Err(format!(
                            "the model returned {} values for {} explanation rows",
                            outputs.len(),
                            perturbed.len() / width
                        ));
                    }
                    margins.clear();
                    margins.extend(
                        outputs
                            .chunks_exact(*output_width)
                            .map(|o| match self.space {
                                Space::LogOdds => sampling::logit(o[*positive]),
                                _ => f64::from(o[*positive]),
                            }),
                    );
                    let estimate = sampling::estimate(plan, &margins).map_err(|e| e.to_string())?;
                    out.contributions
                        .extend(estimate.contributions.iter().map(|&c| c as f32));
                    out.contributions.push(estimate.base_value as f32);
                    out.error_bounds
                        .extend(estimate.error_bound.iter().map(|&e| e as f32));
                }
            }
        }
        Ok(out)
    }
}

/// The rows of a snapshot of `n_rows` customers whose features form an explainer's reference sample, ascending.
pub fn reference_rows(n_rows: usize) -> Vec<usize> {
    sampling::reference_sample(n_rows, sampling::DEFAULT_MAX_REFERENCE_ROWS, SEED)
}

/// A model's explainer for the snapshot it was last built for, shared by requests without locks.
pub type SharedExplainer = Arc<ModelExplainer>;
