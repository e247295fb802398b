//! A tree ensemble read from an ONNX graph, reduced to the one score that is explained: per-tree nodes in preorder,
//! each leaf holding its contribution to that score, routed exactly as ONNX Runtime routes a float32 row.

use std::path::Path;

use prost::Message;
use prost::bytes::Bytes;

use super::ExplainError;
use super::ensemble::{Aggregate, FlatEnsemble, Mode};
use super::graph;
use super::onnx::ModelProto;
use super::target::choose_target;

/// Deepest tree accepted (ONNX Runtime's own bound); deeper chains are cycles or degenerate exports.
const MAX_DEPTH: usize = 1000;

/// Most distinct features on one root-to-leaf path: TreeSHAP keeps one bit per such feature in a u64.
pub const MAX_PATH_FEATURES: usize = 64;

/// What the explained margin is, relative to the model output ONNX Runtime returns for the explained label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// log(p / (1 - p)): the output is sigmoid(margin) (post_transform LOGISTIC).
    LogOdds,
    /// A softmax logit: the output is exp(margin) over the sum of every class's exp(margin) (SOFTMAX or
    /// SOFTMAX_ZERO), so it is not log-odds and the output cannot be computed from this margin alone.
    Logit,
    /// A classifier whose output is the margin itself (no link), e.g. a random forest's averaged votes.
    Probability,
    /// A regressor's output, which is the margin itself.
    Raw,
}

impl Space {
    /// The name used in replies and fixtures: "log_odds", "logit", "probability" or "raw".
    pub fn as_str(self) -> &'static str {
        match self {
            Space::LogOdds => "log_odds",
            Space::Logit => "logit",
            Space::Probability => "probability",
            Space::Raw => "raw",
        }
    }
}

/// One node in a tree's preorder array; children always come after their parent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    /// Threshold of a branch (unused by `Mode::Member`), or the leaf's value for the explained score.
    pub value: f64,
    pub feature: u32,
    pub yes: u32,
    pub no: u32,
    pub mode: Mode,
    pub missing_true: bool,
    /// Index of a membership set (branch), or of the flat node a leaf came from while building.
    pub set: u32,
}

/// One tree: `nodes[0]` is the root.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
}

/// A tree ensemble reduced to the explained score: margin = offset + sum over trees of the leaf reached.
#[derive(Clone, Debug)]
pub struct TreeModel {
    pub(crate) trees: Vec<Tree>,
    sets: Vec<Vec<f64>>,
    offset: f64,
    n_features: usize,
    space: Space,
    max_depth: usize,
    /// The comparison every branch uses, when they all use the same one (ORT's `same_mode_`).
    uniform: Option<Mode>,
}

impl TreeModel {
    /// Reads the model file (kept bytes such as tensor attributes share the file buffer instead of copying it).
    pub fn from_onnx_file(
        path: &Path,
        n_features: usize,
        n_labels: usize,
        positive: usize,
    ) -> Result<TreeModel, ExplainError> {
        let bytes = std::fs::read(path).map_err(|source| ExplainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let model = ModelProto::decode(Bytes::from(bytes))?;
        TreeModel::from_model(&model, n_features, n_labels, positive)
    }

    /// Parses the graph's single tree ensemble and chooses the score of output column `positive` of `n_labels`
    /// (a classifier's class index or a regressor's target), for rows of `n_features` float32 values.
    pub fn from_onnx_bytes(
        bytes: &[u8],
        n_features: usize,
        n_labels: usize,
        positive: usize,
    ) -> Result<TreeModel, ExplainError> {
        let model = ModelProto::decode(bytes)?;
        TreeModel::from_model(&model, n_features, n_labels, positive)
    }

    fn from_model(
        model: &ModelProto,
        n_features: usize,
        n_labels: usize,
        positive: usize,
    ) -> Result<TreeModel, ExplainError> {
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| ExplainError::Unsupported("the file has no graph".into()))?;
        let flat = graph::read(graph)?;
        TreeModel::build(&flat, n_features, n_labels, positive)
    }

    /// Lays the trees out in preorder, picks the explained score and folds it into the leaf values.
    pub(crate) fn build(
        flat: &FlatEnsemble,
        n_features: usize,
        n_labels: usize,
        positive: usize,
    ) -> Result<TreeModel, ExplainError> {
        let mut trees = Vec::with_capacity(flat.roots.len());
        let mut max_depth = 0;
        for &root in &flat.roots {
            let (tree, depth) = layout(flat, root, n_features)?;
            max_depth = max_depth.max(depth);
            trees.push(tree);
        }
        if trees.is_empty() {
            return Err(ExplainError::Unsupported(
                "its tree ensemble has no trees".into(),
            ));
        }
        let readout = choose_target(flat, &trees, n_labels, positive)?;
        let scale = match flat.aggregate {
            Aggregate::Sum => 1.0,
            Aggregate::Average => 1.0 / trees.len() as f64,
        };
        for tree in &mut trees {
            for node in tree.nodes.iter_mut().filter(|n| n.mode == Mode::Leaf) {
                let weights = &flat.nodes[node.set as usize].weights;
                node.value = scale
                    * weights
                        .iter()
                        .map(|&(t, w)| readout.coef[t] * w)
                        .sum::<f64>();
            }
        }
        let mut modes = trees
            .iter()
            .flat_map(|t| &t.nodes)
            .map(|n| n.mode)
            .filter(|&m| m != Mode::Leaf);
        let first = modes.next();
        let uniform = if modes.all(|m| Some(m) == first) {
            first
        } else {
            None
        };
        Ok(TreeModel {
            trees,
            sets: flat.sets.clone(),
            offset: readout.offset,
            n_features,
            space: readout.space,
            max_depth,
            uniform,
        })
    }

    /// Raw score of the explained target: base value + the leaves reached (AVERAGE divides by the tree count).
    pub fn margin(&self, row: &[f32]) -> Result<f64, ExplainError> {
        self.check_row(row)?;
        Ok(self.offset
            + self
                .trees
                .iter()
                .map(|t| t.nodes[self.leaf(t, row)].value)
                .sum::<f64>())
    }

    /// Index of the leaf `row` reaches in `tree`; the row's width is checked by the caller.
    pub(crate) fn leaf(&self, tree: &Tree, row: &[f32]) -> usize {
        let mut i = 0;
        loop {
            let node = &tree.nodes[i];
            if node.mode == Mode::Leaf {
                return i;
            }
            i = if self.goes_true(node, row[node.feature as usize]) {
                node.yes
            } else {
                node.no
            } as usize;
        }
    }

    /// ONNX Runtime's branch decision: the comparison holds, or the value is NaN and missing values go true.
    /// Comparing in f64 is exact: a float32 value and a float32 (or double) threshold compare the same either way.
    #[inline]
    pub(crate) fn goes_true(&self, node: &Node, x: f32) -> bool {
        let v = f64::from(x);
        let t = node.value;
        let holds = match node.mode {
            Mode::Leq => v <= t,
            Mode::Lt => v < t,
            Mode::Gte => v >= t,
            Mode::Gt => v > t,
            Mode::Eq => v == t,
            Mode::Neq => v != t,
            Mode::Member => self.sets[node.set as usize].contains(&v),
            Mode::Leaf => false,
        };
        // Non-short-circuit `|` and `&`: no data-dependent branch, which random rows would mispredict.
        holds | (node.missing_true & x.is_nan())
    }

    /// The comparison shared by every branch node, if there is one.
    pub(crate) fn uniform_mode(&self) -> Option<Mode> {
        self.uniform
    }

    /// The model output ONNX Runtime gives for the explained label, when it follows from this margin alone.
    pub fn output_of_margin(&self, margin: f64) -> Option<f64> {
        match self.space {
            Space::LogOdds => Some(sigmoid(margin)),
            Space::Probability | Space::Raw => Some(margin),
            Space::Logit => None,
        }
    }

    /// What the margin means relative to the output.
    pub fn space(&self) -> Space {
        self.space
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Largest number of branch nodes on a root-to-leaf path.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Width of the rows the model takes.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Constant part of the margin (base_values and the like), before any tree.
    pub fn offset(&self) -> f64 {
        self.offset
    }

    pub(crate) fn check_row(&self, row: &[f32]) -> Result<(), ExplainError> {
        if row.len() == self.n_features {
            Ok(())
        } else {
            Err(ExplainError::RowWidth {
                expected: self.n_features,
                got: row.len(),
            })
        }
    }
}

/// Logistic function, evaluated without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Copies the tree under `root` in preorder (a node shared by two parents is copied for each); returns its depth.
fn layout(
    flat: &FlatEnsemble,
    root: usize,
    n_features: usize,
) -> Result<(Tree, usize), ExplainError> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut max_depth = 0;
    // (flat index, depth, parent slot to patch: (parent, is_yes)).
    let mut stack = vec![(root, 0usize, None::<(usize, bool)>)];
    while let Some((at, depth, parent)) = stack.pop() {
        if depth > MAX_DEPTH || nodes.len() >= u32::MAX as usize {
            return Err(ExplainError::Unsupported(format!(
                "a tree is deeper than {MAX_DEPTH} levels (or loops back on itself)"
            )));
        }
        let here = nodes.len();
        if let Some((p, is_yes)) = parent {
            let parent = &mut nodes[p];
            if is_yes {
                parent.yes = here as u32
            } else {
                parent.no = here as u32
            }
        }
        let f = &flat.nodes[at];
        if f.mode == Mode::Leaf {
            max_depth = max_depth.max(depth);
            nodes.push(Node {
                value: 0.0,
                feature: 0,
                yes: 0,
                no: 0,
                mode: Mode::Leaf,
                missing_true: false,
                set: at as u32,
            });
            continue;
        }
        let feature = usize::try_from(f.feature)
            .ok()
            .filter(|&j| j < n_features)
            .ok_or_else(|| {
                ExplainError::Unsupported(format!(
                    "a split reads feature {} but the manifest lists {n_features} features",
                    f.feature
                ))
            })?;
        nodes.push(Node {
            value: f.threshold,
            feature: feature as u32,
            yes: 0,
            no: 0,
            mode: f.mode,
            missing_true: f.missing_true,
            set: f.set as u32,
        });
        // Pushed no-child first so the yes-subtree is laid out right after its parent.
        stack.push((f.no, depth + 1, Some((here, false))));
        stack.push((f.yes, depth + 1, Some((here, true))));
    }
    Ok((Tree { nodes }, max_depth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::ensemble::{FlatNode, Op, Post};

    fn branch(feature: i64, threshold: f64, yes: usize, no: usize) -> FlatNode {
        FlatNode {
            mode: Mode::Leq,
            feature,
            threshold,
            yes,
            no,
            missing_true: false,
            set: 0,
            weights: vec![],
        }
    }

    fn leaf(weights: Vec<(usize, f64)>) -> FlatNode {
        FlatNode::leaf(weights)
    }

    fn stump(
        op: Op,
        post: Post,
        base: Vec<f64>,
        left: Vec<(usize, f64)>,
        right: Vec<(usize, f64)>,
    ) -> FlatEnsemble {
        FlatEnsemble {
            op,
            nodes: vec![branch(0, 0.5, 1, 2), leaf(left), leaf(right)],
            roots: vec![0],
            sets: vec![],
            base_values: base,
            aggregate: Aggregate::Sum,
            post,
        }
    }

    #[test]
    fn binary_one_score_signs_follow_onnx_runtime() {
        let e = stump(
            Op::Classifier { n_classes: 2 },
            Post::Logistic,
            vec![0.25],
            vec![(0, -1.0)],
            vec![(0, 2.0)],
        );
        let pos = TreeModel::build(&e, 1, 2, 1).expect("builds");
        let neg = TreeModel::build(&e, 1, 2, 0).expect("builds");
        assert_eq!(pos.margin(&[0.0]).ok(), Some(-0.75));
        assert_eq!(neg.margin(&[0.0]).ok(), Some(0.75));
        assert_eq!(pos.space(), Space::LogOdds);
        // All weights >= 0: ORT writes [1 - s, s] without the sigmoid.
        let e = stump(
            Op::Classifier { n_classes: 2 },
            Post::Logistic,
            vec![],
            vec![(0, 0.2)],
            vec![(0, 0.9)],
        );
        let neg = TreeModel::build(&e, 1, 2, 0).expect("builds");
        assert_eq!(neg.space(), Space::Probability);
        assert!((neg.margin(&[1.0]).unwrap_or(f64::NAN) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn refusals_say_why() {
        let e = stump(
            Op::Classifier { n_classes: 2 },
            Post::Logistic,
            vec![],
            vec![(1, 1.0)],
            vec![(1, 2.0)],
        );
        let err = TreeModel::build(&e, 1, 2, 1).expect_err("class-1-only layout is refused");
        assert!(err.to_string().contains("only for class 1"), "{err}");
        let mut e = stump(
            Op::Regressor { n_targets: 1 },
            Post::None,
            vec![],
            vec![(0, 1.0)],
            vec![(0, 2.0)],
        );
        assert!(
            TreeModel::build(&e, 1, 2, 0).is_err(),
            "label count must match"
        );
        e.nodes[0].feature = 3;
        let err = TreeModel::build(&e, 2, 1, 0).expect_err("feature out of range");
        assert!(err.to_string().contains("feature 3"), "{err}");
    }

    #[test]
    fn routing_matches_onnx_runtime_rules() {
        let mut e = stump(
            Op::Regressor { n_targets: 1 },
            Post::None,
            vec![1.0],
            vec![(0, 10.0)],
            vec![(0, 20.0)],
        );
        let cases = [
            (
                Mode::Leq,
                false,
                [0.5f32, 1.0, f32::NAN],
                [11.0, 21.0, 21.0],
            ),
            (Mode::Lt, true, [0.5, 0.25, f32::NAN], [21.0, 11.0, 11.0]),
            (Mode::Gte, false, [0.5, 0.25, f32::NAN], [11.0, 21.0, 21.0]),
            (Mode::Gt, false, [0.5, 0.75, f32::NAN], [21.0, 11.0, 21.0]),
            (Mode::Eq, false, [0.5, 0.75, f32::NAN], [11.0, 21.0, 21.0]),
            (Mode::Neq, false, [0.5, 0.75, f32::NAN], [21.0, 11.0, 11.0]),
        ];
        for (mode, missing_true, xs, want) in cases {
            e.nodes[0].mode = mode;
            e.nodes[0].missing_true = missing_true;
            let m = TreeModel::build(&e, 1, 1, 0).expect("builds");
            for (x, w) in xs.iter().zip(want) {
                assert_eq!(m.margin(&[*x]).ok(), Some(w), "{mode:?} x={x}");
            }
        }
        // A float32 value just above a float32 threshold must not count as equal after widening.
        e.nodes[0].mode = Mode::Leq;
        e.nodes[0].threshold = f64::from(0.1f32);
        let m = TreeModel::build(&e, 1, 1, 0).expect("builds");
        assert_eq!(m.margin(&[0.1f32]).ok(), Some(11.0));
        assert_eq!(
            m.margin(&[f32::from_bits(0.1f32.to_bits() + 1)]).ok(),
            Some(21.0)
        );
        assert!(m.margin(&[0.0, 1.0]).is_err(), "row width is checked");
    }
}
