//! Which score of the ensemble is explained: the one ONNX Runtime writes to the chosen output column, as a fixed
//! linear read-out of the per-target tree sums, with the space it lives in. Follows ORT's
//! tree_ensemble_aggregator.h (FinalizeScores, FinalizeScores1) and ml_common.h (write_scores).

use super::ExplainError;
use super::ensemble::{FlatEnsemble, Mode, Op, Post};
use super::trees::{Space, Tree};

/// The explained score as a linear read-out of the per-target sums: margin = offset + sum_t coef[t] * S_t.
pub(crate) struct Readout {
    pub coef: Vec<f64>,
    pub offset: f64,
    pub space: Space,
}

/// Targets that have a weight on every leaf of at least one tree: ONNX Runtime then always "has a score" for
/// them, and its output does not switch layout from row to row.
fn always_scored(flat: &FlatEnsemble, trees: &[Tree], width: usize) -> Vec<bool> {
    let mut out = vec![false; width];
    for tree in trees {
        let mut on_all = vec![true; width];
        for leaf in tree.nodes.iter().filter(|n| n.mode == Mode::Leaf) {
            let weights = &flat.nodes[leaf.set as usize].weights;
            for (t, flag) in on_all.iter_mut().enumerate() {
                *flag &= weights.iter().any(|&(w, _)| w == t);
            }
        }
        for (o, a) in out.iter_mut().zip(on_all) {
            *o |= a;
        }
    }
    out
}

/// Chooses the score ONNX Runtime writes to output column `positive`, following its tree_ensemble_aggregator.h
/// (FinalizeScores / FinalizeScores1) and ml_common.h (write_scores); layouts where that output does not follow a
/// fixed linear read-out of the tree sums are refused.
pub(crate) fn choose_target(
    flat: &FlatEnsemble,
    trees: &[Tree],
    n_labels: usize,
    positive: usize,
) -> Result<Readout, ExplainError> {
    let refuse = |why: String| Err(ExplainError::Unsupported(why));
    let width = match flat.op {
        Op::Classifier { n_classes } => n_classes,
        Op::Regressor { n_targets } => n_targets,
    };
    if width != n_labels {
        return refuse(format!(
            "its tree ensemble has {width} output columns but the manifest lists {n_labels} labels"
        ));
    }
    if positive >= width {
        return refuse(format!(
            "label index {positive} is outside the {width} output columns"
        ));
    }
    for tree in trees {
        for leaf in tree.nodes.iter().filter(|n| n.mode == Mode::Leaf) {
            let weights = &flat.nodes[leaf.set as usize].weights;
            if weights.is_empty() {
                return refuse("its tree ensemble is malformed: a leaf has no weight".into());
            }
            if width == 1 && weights.len() > 1 {
                // FinalizeScores1 adds one weight per leaf; which one is unspecified.
                return refuse(
                    "a leaf of this single-target ensemble carries several weights".into(),
                );
            }
        }
    }
    let unit = |t: usize, sign: f64| {
        let mut c = vec![0.0; width];
        c[t] = sign;
        c
    };
    let base = &flat.base_values;
    let by_post = |classifier: bool| match flat.post {
        Post::None if classifier => Space::Probability,
        Post::None => Space::Raw,
        Post::Logistic => Space::LogOdds,
        Post::Softmax | Post::SoftmaxZero => Space::Logit,
    };
    let scored = always_scored(flat, trees, width);
    match flat.op {
        Op::Regressor { n_targets: 1 } => {
            // FinalizeScores1 adds base_values[0] (when it is the only one) and applies only PROBIT.
            let offset = if base.len() == 1 { base[0] } else { 0.0 };
            Ok(Readout {
                coef: unit(0, 1.0),
                offset,
                space: Space::Raw,
            })
        }
        Op::Regressor { .. } => {
            if !scored[positive] {
                return refuse(format!(
                    "target {positive} is not scored by every row (ONNX Runtime then drops its base value)"
                ));
            }
            let offset = if base.len() == width {
                base[positive]
            } else {
                0.0
            };
            Ok(Readout {
                coef: unit(positive, 1.0),
                offset,
                space: by_post(false),
            })
        }
        Op::Classifier { n_classes } if n_classes > 2 => {
            let offset = base.get(positive).copied().unwrap_or(0.0);
            Ok(Readout {
                coef: unit(positive, 1.0),
                offset,
                space: by_post(true),
            })
        }
        Op::Classifier { .. } => binary_classifier(flat, &scored, positive),
    }
}

/// Two classes. With one scored class (weights only for class 0) ONNX Runtime outputs, from s = S_0 + base:
/// [1 - s, s] untransformed when every weight is ≥ 0, [σ(-s), σ(s)] for LOGISTIC, [-s, s] otherwise.
fn binary_classifier(
    flat: &FlatEnsemble,
    scored: &[bool],
    positive: usize,
) -> Result<Readout, ExplainError> {
    let refuse = |why: &str| Err(ExplainError::Unsupported(why.to_string()));
    let base = &flat.base_values;
    let used: Vec<bool> = (0..2)
        .map(|c| {
            flat.nodes
                .iter()
                .any(|n| n.weights.iter().any(|&(t, _)| t == c))
        })
        .collect();
    let coef = |c0: f64, c1: f64| vec![c0, c1];
    match (used[0], used[1]) {
        (true, false) => {
            if base.len() > 1 {
                return refuse(
                    "its binary ensemble scores one class but lists two base_values, which ONNX Runtime does not add to the trees' score",
                );
            }
            let b = base.first().copied().unwrap_or(0.0);
            let all_positive = flat
                .nodes
                .iter()
                .all(|n| n.weights.iter().all(|&(_, w)| w >= 0.0));
            let sign = if positive == 1 { 1.0 } else { -1.0 };
            if all_positive {
                // [1 - s, s]: the post_transform is not applied in this layout.
                let offset = if positive == 1 { b } else { 1.0 - b };
                Ok(Readout {
                    coef: coef(sign, 0.0),
                    offset,
                    space: Space::Probability,
                })
            } else {
                let space = if flat.post == Post::Logistic {
                    Space::LogOdds
                } else {
                    Space::Probability
                };
                Ok(Readout {
                    coef: coef(sign, 0.0),
                    offset: sign * b,
                    space,
                })
            }
        }
        (_, true) if used[0] => {
            // One score per class: outputs post([S_0 + base_0, S_1]) while class 1 is scored on every row.
            if base.len() > 1 {
                return refuse(
                    "its binary ensemble lists two base_values, and ONNX Runtime then reads class 0's trees for class 1",
                );
            }
            let b = base.first().copied().unwrap_or(0.0);
            if !scored[1] || (b != 0.0 && !scored[0]) {
                return refuse(
                    "some rows reach no leaf weight for a class, which makes ONNX Runtime switch to its one-score layout",
                );
            }
            let offset = if positive == 0 { b } else { 0.0 };
            let space = match flat.post {
                Post::None => Space::Probability,
                Post::Logistic => Space::LogOdds,
                Post::Softmax | Post::SoftmaxZero => Space::Logit,
            };
            Ok(Readout {
                coef: if positive == 0 {
                    coef(1.0, 0.0)
                } else {
                    coef(0.0, 1.0)
                },
                offset,
                space,
            })
        }
        _ => refuse(
            "its binary ensemble has weights only for class 1, a layout ONNX Runtime does not read additively",
        ),
    }
}
