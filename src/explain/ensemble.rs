//! Decodes the attributes of one ai.onnx.ml tree-ensemble node into flat arrays: TreeEnsembleClassifier /
//! TreeEnsembleRegressor (opset ≤ 4, every node one entry, children by id) and TreeEnsemble (opset 5, interior
//! nodes and leaves apart).

use std::collections::{HashMap, HashSet};

use super::ExplainError;
use super::onnx::{AttributeProto, NodeProto};

/// How a branch node compares the row's value with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// x <= t.
    Leq,
    /// x < t.
    Lt,
    /// x >= t.
    Gte,
    /// x > t.
    Gt,
    /// x == t.
    Eq,
    /// x != t (true for NaN, as IEEE and ONNX Runtime have it).
    Neq,
    /// x is one of a set of values (opset-5 BRANCH_MEMBER).
    Member,
    /// Not a branch.
    Leaf,
}

/// One node of the flat ensemble: children index the same array.
#[derive(Clone, Debug)]
pub struct FlatNode {
    pub mode: Mode,
    pub feature: i64,
    pub threshold: f64,
    pub yes: usize,
    pub no: usize,
    pub missing_true: bool,
    /// Index into [`FlatEnsemble::sets`] for `Mode::Member`.
    pub set: usize,
    /// (target, weight) pairs of a leaf.
    pub weights: Vec<(usize, f64)>,
}

impl FlatNode {
    /// A leaf with these (target, weight) pairs.
    pub fn leaf(weights: Vec<(usize, f64)>) -> FlatNode {
        FlatNode {
            mode: Mode::Leaf,
            feature: 0,
            threshold: 0.0,
            yes: 0,
            no: 0,
            missing_true: false,
            set: 0,
            weights,
        }
    }
}

/// How the scores of the targets are aggregated over trees (ONNX `aggregate_function`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Average,
}

/// ONNX `post_transform`, PROBIT excluded (refused when read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

/// Which operator the ensemble came from; decides how ONNX Runtime turns target sums into outputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// TreeEnsembleClassifier with this many class labels.
    Classifier { n_classes: usize },
    /// TreeEnsembleRegressor or opset-5 TreeEnsemble with this many targets.
    Regressor { n_targets: usize },
}

/// The decoded ensemble, before a target is chosen.
#[derive(Clone, Debug)]
pub struct FlatEnsemble {
    pub op: Op,
    pub nodes: Vec<FlatNode>,
    pub roots: Vec<usize>,
    pub sets: Vec<Vec<f64>>,
    pub base_values: Vec<f64>,
    pub aggregate: Aggregate,
    pub post: Post,
}

fn malformed(what: impl std::fmt::Display) -> ExplainError {
    ExplainError::Unsupported(format!("its tree ensemble is malformed: {what}"))
}

/// Attribute access with ONNX's "absent means default" rule.
struct Attrs<'a>(&'a NodeProto);

impl<'a> Attrs<'a> {
    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.0.attr(name)
    }

    fn ints(&self, name: &str) -> &'a [i64] {
        self.get(name).map_or(&[], |a| a.ints.as_slice())
    }

    fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.get(name).map_or(default.to_string(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        })
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.get(name).map_or_else(Vec::new, |a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
    }

    /// A FLOATS attribute, or its `<name>_as_tensor` twin (double precision) when that one is set.
    fn reals(&self, name: &str) -> Result<Vec<f64>, ExplainError> {
        match self
            .get(&format!("{name}_as_tensor"))
            .and_then(|a| a.t.as_ref())
        {
            Some(t) => t.to_f64().ok_or_else(|| {
                malformed(format!("{name}_as_tensor is not a readable real tensor"))
            }),
            None => Ok(self.get(name).map_or_else(Vec::new, |a| {
                a.floats.iter().map(|&v| f64::from(v)).collect()
            })),
        }
    }

    /// A TENSOR attribute as reals (empty when absent).
    fn tensor_reals(&self, name: &str) -> Result<Vec<f64>, ExplainError> {
        match self.get(name).and_then(|a| a.t.as_ref()) {
            Some(t) => t
                .to_f64()
                .ok_or_else(|| malformed(format!("{name} is not a readable real tensor"))),
            None => Ok(Vec::new()),
        }
    }
}

fn post_transform(name: &str) -> Result<Post, ExplainError> {
    match name {
        "NONE" => Ok(Post::None),
        "LOGISTIC" => Ok(Post::Logistic),
        "SOFTMAX" => Ok(Post::Softmax),
        "SOFTMAX_ZERO" => Ok(Post::SoftmaxZero),
        "PROBIT" => Err(ExplainError::Unsupported(
            "its post_transform is PROBIT, whose margin has no additive reading".into(),
        )),
        other => Err(malformed(format!("unknown post_transform '{other}'"))),
    }
}

fn aggregate(name: &str) -> Result<Aggregate, ExplainError> {
    match name {
        "SUM" => Ok(Aggregate::Sum),
        "AVERAGE" => Ok(Aggregate::Average),
        "MIN" | "MAX" => Err(ExplainError::Unsupported(format!(
            "its aggregate_function is {name}, which is not a sum of tree outputs"
        ))),
        other => Err(malformed(format!("unknown aggregate_function '{other}'"))),
    }
}

fn index(value: i64, len: usize, what: &str) -> Result<usize, ExplainError> {
    usize::try_from(value)
        .ok()
        .filter(|&v| v < len)
        .ok_or_else(|| malformed(format!("{what} {value} is out of range")))
}

fn same_len(what: &str, lens: &[usize]) -> Result<(), ExplainError> {
    if lens.windows(2).all(|w| w[0] == w[1]) {
        Ok(())
    } else {
        Err(malformed(format!(
            "the {what} attributes have different lengths {lens:?}"
        )))
    }
}

/// TreeEnsembleClassifier / TreeEnsembleRegressor: every node (leaves included) is one entry of the nodes_*
/// attributes, children are found by (tree id, node id), weights by (tree id, node id, target).
pub fn read_v3(node: &NodeProto) -> Result<FlatEnsemble, ExplainError> {
    let a = Attrs(node);
    let classifier = node.op_type == "TreeEnsembleClassifier";
    let tree_ids = a.ints("nodes_treeids");
    let node_ids = a.ints("nodes_nodeids");
    let features = a.ints("nodes_featureids");
    let modes = a.strings("nodes_modes");
    let thresholds = a.reals("nodes_values")?;
    let yes = a.ints("nodes_truenodeids");
    let no = a.ints("nodes_falsenodeids");
    let missing = a.ints("nodes_missing_value_tracks_true");
    let n = tree_ids.len();
    same_len(
        "nodes_*",
        &[
            n,
            node_ids.len(),
            features.len(),
            modes.len(),
            thresholds.len(),
            yes.len(),
            no.len(),
        ],
    )?;

    let (op, prefix) = if classifier {
        let n_classes = a
            .ints("classlabels_int64s")
            .len()
            .max(a.strings("classlabels_strings").len());
        (Op::Classifier { n_classes }, "class")
    } else {
        let n_targets = usize::try_from(a.int("n_targets", 0)).unwrap_or(0);
        (Op::Regressor { n_targets }, "target")
    };
    let width = match op {
        Op::Classifier { n_classes } => n_classes,
        Op::Regressor { n_targets } => n_targets,
    };
    if width == 0 {
        return Err(malformed("it declares no classes or targets"));
    }

    let mut position = HashMap::with_capacity(n);
    let mut roots = Vec::new();
    let mut seen_trees = HashSet::new();
    for i in 0..n {
        if position.insert((tree_ids[i], node_ids[i]), i).is_some() {
            return Err(malformed(format!(
                "node {} of tree {} is listed twice",
                node_ids[i], tree_ids[i]
            )));
        }
        // ONNX Runtime takes the first node listed for each run of equal tree ids as that tree's root.
        if i == 0 || tree_ids[i] != tree_ids[i - 1] {
            if !seen_trees.insert(tree_ids[i]) {
                return Err(malformed(format!(
                    "the nodes of tree {} are not listed together",
                    tree_ids[i]
                )));
            }
            roots.push(i);
        }
    }
    let child = |i: usize, id: i64| {
        position.get(&(tree_ids[i], id)).copied().ok_or_else(|| {
            malformed(format!(
                "node {} of tree {} points to missing node {id}",
                node_ids[i], tree_ids[i]
            ))
        })
    };
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let mode = match modes[i].as_str() {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => Mode::Leaf,
            other => return Err(malformed(format!("unknown node mode '{other}'"))),
        };
        let (y, f) = if mode == Mode::Leaf {
            (0, 0)
        } else {
            (child(i, yes[i])?, child(i, no[i])?)
        };
        nodes.push(FlatNode {
            mode,
            feature: features[i],
            threshold: thresholds[i],
            yes: y,
            no: f,
            missing_true: missing.get(i) == Some(&1),
            set: 0,
            weights: Vec::new(),
        });
    }

    let ids = a.ints(&format!("{prefix}_ids"));
    let w_trees = a.ints(&format!("{prefix}_treeids"));
    let w_nodes = a.ints(&format!("{prefix}_nodeids"));
    let weights = a.reals(&format!("{prefix}_weights"))?;
    same_len(
        &format!("{prefix}_*"),
        &[ids.len(), w_trees.len(), w_nodes.len(), weights.len()],
    )?;
    for k in 0..ids.len() {
        let at = position
            .get(&(w_trees[k], w_nodes[k]))
            .copied()
            .ok_or_else(|| {
                malformed(format!(
                    "a weight names missing node {} of tree {}",
                    w_nodes[k], w_trees[k]
                ))
            })?;
        let target = index(ids[k], width, &format!("{prefix} id"))?;
        // ONNX Runtime ignores weights attached to branch nodes (old converters wrote some).
        if nodes[at].mode == Mode::Leaf {
            nodes[at].weights.push((target, weights[k]));
        }
    }
    Ok(FlatEnsemble {
        op,
        nodes,
        roots,
        sets: Vec::new(),
        base_values: a.reals("base_values")?,
        // ONNX Runtime's classifier always sums (TreeAggregatorClassifier); the classifier op has no such attribute.
        aggregate: if classifier {
            Aggregate::Sum
        } else {
            aggregate(&a.string("aggregate_function", "SUM"))?
        },
        post: post_transform(&a.string("post_transform", "NONE"))?,
    })
}

/// Opset-5 TreeEnsemble: interior nodes and leaves are separate arrays; here leaves follow the interior nodes.
pub fn read_v5(node: &NodeProto) -> Result<FlatEnsemble, ExplainError> {
    let a = Attrs(node);
    let features = a.ints("nodes_featureids");
    let splits = a.tensor_reals("nodes_splits")?;
    let modes = match a.get("nodes_modes").and_then(|m| m.t.as_ref()) {
        Some(t) => t
            .to_i64()
            .ok_or_else(|| malformed("nodes_modes is not a readable uint8 tensor"))?,
        None => Vec::new(),
    };
    let yes = a.ints("nodes_truenodeids");
    let no = a.ints("nodes_falsenodeids");
    let yes_leaf = a.ints("nodes_trueleafs");
    let no_leaf = a.ints("nodes_falseleafs");
    let missing = a.ints("nodes_missing_value_tracks_true");
    let n = features.len();
    same_len(
        "nodes_*",
        &[
            n,
            splits.len(),
            modes.len(),
            yes.len(),
            no.len(),
            yes_leaf.len(),
            no_leaf.len(),
        ],
    )?;
    let targets = a.ints("leaf_targetids");
    let weights = a.tensor_reals("leaf_weights")?;
    same_len("leaf_*", &[targets.len(), weights.len()])?;
    let n_targets = usize::try_from(a.int("n_targets", 0)).unwrap_or(0);
    if n_targets == 0 {
        return Err(malformed("n_targets is missing or zero"));
    }

    // membership_values lists one NaN-terminated set per BRANCH_MEMBER node, in node order.
    let members = a.tensor_reals("membership_values")?;
    let mut member_sets = members.split(|v| v.is_nan());
    let mut sets = Vec::new();
    let n_leaves = targets.len();
    let to = |id: i64, leaf: i64| {
        if leaf != 0 {
            index(id, n_leaves, "leaf index").map(|l| n + l)
        } else {
            index(id, n, "node index")
        }
    };
    let mut nodes = Vec::with_capacity(n + n_leaves);
    for i in 0..n {
        let mode = match modes[i] {
            0 => Mode::Leq,
            1 => Mode::Lt,
            2 => Mode::Gte,
            3 => Mode::Gt,
            4 => Mode::Eq,
            5 => Mode::Neq,
            6 => Mode::Member,
            other => return Err(malformed(format!("unknown node mode {other}"))),
        };
        let set = if mode == Mode::Member {
            let values = member_sets.next().ok_or_else(|| {
                malformed("membership_values has fewer sets than BRANCH_MEMBER nodes")
            })?;
            sets.push(values.to_vec());
            sets.len() - 1
        } else {
            0
        };
        nodes.push(FlatNode {
            mode,
            feature: features[i],
            threshold: splits[i],
            yes: to(yes[i], yes_leaf[i])?,
            no: to(no[i], no_leaf[i])?,
            missing_true: missing.get(i) == Some(&1),
            set,
            weights: Vec::new(),
        });
    }
    for k in 0..n_leaves {
        nodes.push(FlatNode::leaf(vec![(
            index(targets[k], n_targets, "leaf target id")?,
            weights[k],
        )]));
    }
    let mut roots = Vec::new();
    for &r in a.ints("tree_roots") {
        let r = index(r, n, "tree root")?;
        // A one-leaf tree is a node whose both branches are the same leaf; ONNX Runtime then reads the leaf at
        // the root's own index, so the two readings agree only when they are the same number.
        if yes_leaf[r] != 0 && no_leaf[r] != 0 && yes[r] == no[r] {
            if usize::try_from(yes[r]).ok() != Some(r) {
                return Err(malformed(format!(
                    "one-leaf tree at node {r} names leaf {}, ambiguous in ONNX",
                    yes[r]
                )));
            }
            roots.push(n + r);
        } else {
            roots.push(r);
        }
    }
    let post = match a.int("post_transform", 0) {
        0 => "NONE",
        1 => "SOFTMAX",
        2 => "LOGISTIC",
        3 => "SOFTMAX_ZERO",
        4 => "PROBIT",
        _ => "?",
    };
    let agg = match a.int("aggregate_function", 1) {
        0 => "AVERAGE",
        1 => "SUM",
        2 => "MIN",
        3 => "MAX",
        _ => "?",
    };
    Ok(FlatEnsemble {
        op: Op::Regressor { n_targets },
        nodes,
        roots,
        sets,
        base_values: Vec::new(),
        aggregate: aggregate(agg)?,
        post: post_transform(post)?,
    })
}
