//! Finds the one tree-ensemble node of an ONNX graph and checks what surrounds it: its input must be the graph's
//! float input (through Cast/Identity at most) and nothing but pass-through ops may follow it, so that explaining
//! the ensemble explains the model.

use std::collections::{HashMap, HashSet};

use super::ExplainError;
use super::ensemble::{self, FlatEnsemble};
use super::onnx::{GraphProto, NodeProto, data_type};

/// The ONNX-ML domain the tree operators live in.
const ML_DOMAIN: &str = "ai.onnx.ml";

/// Ops allowed after the ensemble: they pass scores through or only derive labels from them. Mul and Div by a
/// constant of ones (onnxmltools' LightGBM graphs end with one) are accepted as well.
const PASS_THROUGH_AFTER: [&str; 5] = ["Identity", "Cast", "ZipMap", "ArgMax", "LabelEncoder"];

fn unsupported(reason: impl Into<String>) -> ExplainError {
    ExplainError::Unsupported(reason.into())
}

/// Finds the single tree-ensemble node, checks what surrounds it, and decodes it.
pub fn read(graph: &GraphProto) -> Result<FlatEnsemble, ExplainError> {
    let is_tree = |n: &NodeProto| {
        n.domain == ML_DOMAIN
            && matches!(
                n.op_type.as_str(),
                "TreeEnsembleClassifier" | "TreeEnsembleRegressor" | "TreeEnsemble"
            )
    };
    let trees: Vec<usize> = (0..graph.node.len())
        .filter(|&i| is_tree(&graph.node[i]))
        .collect();
    let at = match trees.as_slice() {
        [] => {
            return Err(unsupported(
                "the graph has no ai.onnx.ml tree-ensemble node",
            ));
        }
        [one] => *one,
        many => {
            return Err(unsupported(format!(
                "the graph has {} tree-ensemble nodes and only a single ensemble can be explained",
                many.len()
            )));
        }
    };
    let node = &graph.node[at];
    let before = check_input_chain(graph, node)?;
    for (i, other) in graph.node.iter().enumerate() {
        if i != at
            && !before.contains(&i)
            && !PASS_THROUGH_AFTER.contains(&other.op_type.as_str())
            && !times_one(graph, other)
        {
            return Err(unsupported(format!(
                "the graph applies a {} node besides the tree ensemble, and only Identity, Cast, ZipMap, \
                 ArgMax, LabelEncoder or a multiplication by one may follow it",
                other.op_type
            )));
        }
    }
    match node.op_type.as_str() {
        "TreeEnsemble" => ensemble::read_v5(node),
        _ => ensemble::read_v3(node),
    }
}

/// Whether `node` multiplies (or divides) by a constant made of ones, which leaves the scores unchanged.
fn times_one(graph: &GraphProto, node: &NodeProto) -> bool {
    let is_ones = |name: &str| {
        graph
            .initializer
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.to_f64())
            .is_some_and(|v| !v.is_empty() && v.iter().all(|&x| x == 1.0))
    };
    match (node.op_type.as_str(), node.input.as_slice()) {
        ("Mul", [a, b]) => is_ones(a) || is_ones(b),
        ("Div", [_, b]) => is_ones(b),
        _ => false,
    }
}

/// Walks from the ensemble's input X back to the graph input through Cast/Identity nodes; returns those nodes.
fn check_input_chain(graph: &GraphProto, node: &NodeProto) -> Result<HashSet<usize>, ExplainError> {
    let constants: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|v| !constants.contains(v.name.as_str()))
        .collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        _ => {
            return Err(unsupported(format!(
                "the graph has {} inputs and TreeSHAP needs exactly one float feature tensor",
                inputs.len()
            )));
        }
    };
    if input.elem_type().is_some_and(|t| t != data_type::FLOAT) {
        return Err(unsupported(format!(
            "its input '{}' is not a float32 tensor",
            input.name
        )));
    }
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut chain = HashSet::new();
    let mut value = node.input.first().map(String::as_str).unwrap_or_default();
    while value != input.name {
        let Some(&i) = producer.get(value) else {
            return Err(unsupported(format!(
                "the tree ensemble reads '{value}', which is neither the graph input nor computed in the graph"
            )));
        };
        let n = &graph.node[i];
        let passes = match n.op_type.as_str() {
            "Identity" => true,
            // A cast to float or double keeps every float32 value exactly; the thresholds then decide as in ORT.
            "Cast" => n.attr("to").is_some_and(|a| {
                a.i == i64::from(data_type::FLOAT) || a.i == i64::from(data_type::DOUBLE)
            }),
            _ => false,
        };
        if !passes || !chain.insert(i) {
            return Err(unsupported(format!(
                "the tree ensemble's input is computed by a {} node, and only Cast (to float) and Identity may \
                 stand between the graph input and the ensemble",
                n.op_type
            )));
        }
        value = n.input.first().map(String::as_str).unwrap_or_default();
    }
    Ok(chain)
}
