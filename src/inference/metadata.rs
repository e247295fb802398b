//! The v2 view of a served model, whatever protocol asks: the tensors a client sends and gets back. Text models
//! tokenize on the server, so their input is a BYTES [batch] tensor of texts, not the graph's token inputs.

use super::{CONTRIBUTIONS_OUTPUT, TEXT_INPUT, input_name, output_name};
use crate::model::ModelHandle;
use crate::model::spec::ModelKind;

/// Name, v2 datatype and shape (-1 where dynamic, batch first) of one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// v2 datatype ("FP32", "BYTES", ...).
    pub datatype: String,
    /// Dimensions, batch first.
    pub shape: Vec<i64>,
}

/// The input tensors a v2 client sends to `model` (exactly one).
pub fn inputs(model: &ModelHandle) -> Vec<TensorSpec> {
    match &model.spec.kind {
        ModelKind::Text(_) => vec![TensorSpec {
            name: TEXT_INPUT.into(),
            datatype: "BYTES".into(),
            shape: vec![-1],
        }],
        _ => graph_tensor(&model.inputs, input_name(model)),
    }
}

/// The output tensors a v2 client may ask `model` for: its own output, and per-row contributions for tabular
/// models.
pub fn outputs(model: &ModelHandle) -> Vec<TensorSpec> {
    let mut outputs = graph_tensor(&model.outputs, output_name(model));
    if let ModelKind::Tabular(t) = &model.spec.kind {
        outputs.push(TensorSpec {
            name: CONTRIBUTIONS_OUTPUT.into(),
            datatype: "FP32".into(),
            shape: vec![-1, t.features.len() as i64 + 1],
        });
    }
    outputs
}

/// Triton's `data_type` name of a v2 datatype (`FP32` → `TYPE_FP32`, `BYTES` → `TYPE_STRING`), as both model
/// configurations (HTTP JSON and gRPC) write it.
pub fn triton_data_type(datatype: &str) -> String {
    match datatype {
        "BYTES" => "TYPE_STRING".into(),
        other => format!("TYPE_{other}"),
    }
}

/// A tensor's dims in Triton's model configuration: the shape after the batch dimension, and whether it is
/// reshaped to a scalar — a [batch] tensor is `dims: [1]` reshaped to `[]`, as Triton writes it (clients may send
/// [batch] or [batch, 1]).
pub fn config_dims(shape: &[i64]) -> (Vec<i64>, bool) {
    match shape.get(1..).unwrap_or_default() {
        [] => (vec![1], true),
        dims => (dims.to_vec(), false),
    }
}

fn graph_tensor(all: &[crate::model::session::TensorInfo], name: &str) -> Vec<TensorSpec> {
    all.iter()
        .filter(|t| t.name == name)
        .map(|t| TensorSpec {
            name: t.name.clone(),
            datatype: t.datatype.clone(),
            shape: t.shape.clone(),
        })
        .collect()
}
