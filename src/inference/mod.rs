//! The KServe v2 inference use case, shared by every v2 front door (HTTP JSON, HTTP binary, gRPC): decoded tensors
//! in, the requested output tensors out. Nothing here knows how a tensor travelled.

pub mod metadata;
pub mod raw;

use std::sync::Arc;

use crate::batching::Deadline;
use crate::error::ScoreError;
use crate::model::ModelHandle;
use crate::model::spec::{MissingPolicy, ModelKind};
use crate::scoring::{self, AppState, Scored};

/// Name of the v2 input tensor of text models (the server tokenizes).
pub const TEXT_INPUT: &str = "text";
/// Name of the extra v2 output of tabular models: FP32 [batch, features + 1], each row's contributions with the
/// base value last (the layout of Triton's FIL backend); computed only when requested by name.
pub const CONTRIBUTIONS_OUTPUT: &str = "contributions";

/// The element values of an input tensor, decoded by the front door.
#[derive(Debug, Clone, PartialEq)]
pub enum InputValues {
    /// Numeric elements in row-major order as f32; NaN is a missing value (JSON `null`/`NaN`, a NaN in binary
    /// FP32/FP64 data).
    Numbers(Vec<f32>),
    /// BYTES elements (texts), as UTF-8 strings.
    Texts(Vec<String>),
}

/// One decoded input tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    /// Tensor name.
    pub name: String,
    /// v2 datatype as sent (e.g. "FP32", "INT64", "BYTES").
    pub datatype: String,
    /// Dimensions as sent.
    pub shape: Vec<i64>,
    /// The elements.
    pub values: InputValues,
}

/// A v2 inference call, whatever protocol carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct InferCall {
    /// Input tensors.
    pub inputs: Vec<InputTensor>,
    /// Output names asked for; None means the model's own output.
    pub outputs: Option<Vec<String>>,
}

/// Which buffer of a scored call an output tensor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputSource {
    /// The model's own output (probabilities, item scores, segment distances, logits).
    Model,
    /// Per-row contributions with the base value last.
    Contributions,
}

/// One output tensor of a reply: FP32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    /// Tensor name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Where its data lives in `Inferred::scored`.
    pub source: OutputSource,
}

/// A scored inference call: the outputs that were asked for, over the scored buffers.
pub struct Inferred {
    /// The scores, their model, and the timings.
    pub scored: Scored,
    /// The output tensors in reply order.
    pub outputs: Vec<OutputTensor>,
}

impl Inferred {
    /// The row-major FP32 data of one of `outputs`.
    pub fn data(&self, output: &OutputTensor) -> &[f32] {
        match output.source {
            OutputSource::Model => &self.scored.outputs,
            OutputSource::Contributions => self
                .scored
                .explained
                .as_ref()
                .map_or(&[], |e| e.explanation.contributions.as_slice()),
        }
    }
}

/// The name of the one input tensor a v2 client sends to `model`.
pub fn input_name(model: &ModelHandle) -> &str {
    match &model.spec.kind {
        ModelKind::Tabular(t) => &t.input,
        ModelKind::Recommender(r) => &r.input,
        ModelKind::Segmentation(g) => &g.input,
        ModelKind::Text(_) => TEXT_INPUT,
    }
}

/// The model's own output tensor name.
pub fn output_name(model: &ModelHandle) -> &str {
    match &model.spec.kind {
        ModelKind::Tabular(t) => &t.output,
        ModelKind::Recommender(r) => &r.output,
        ModelKind::Segmentation(g) => &g.output,
        ModelKind::Text(t) => &t.output,
    }
}

/// Values per row of the model's own output: the graph's fixed last dimension, else the catalogue's size (the
/// recommender scores every item); None when unknown before scoring.
pub fn output_width(model: &ModelHandle) -> Option<usize> {
    let own = output_name(model);
    let fixed = model
        .outputs
        .iter()
        .find(|t| t.name == own)
        .and_then(|t| t.shape.last())
        .and_then(|&d| usize::try_from(d).ok())
        .filter(|&d| d > 0);
    fixed.or_else(|| model.catalogue.as_ref().map(|c| c.len()))
}

/// Every output name a v2 client may ask `model` for.
pub fn served_outputs(model: &ModelHandle) -> Vec<&str> {
    let mut served = vec![output_name(model)];
    if matches!(model.spec.kind, ModelKind::Tabular(_)) {
        served.push(CONTRIBUTIONS_OUTPUT);
    }
    served
}

/// Integer datatypes accepted for feature tensors (every value they hold is a feature value f32 can carry
/// closely enough; the model computes in f32 anyway).
const FEATURE_DATATYPES: [&str; 12] = [
    "FP32", "FP64", "FP16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
    "UINT64", "BOOL",
];

/// Whether a feature tensor may arrive with `datatype`.
pub fn is_feature_datatype(datatype: &str) -> bool {
    FEATURE_DATATYPES.contains(&datatype)
}

/// Scores one v2 call: checks the input against the model, applies the model's missing-value policy to NaN
/// elements, submits to the model's batching queue and picks the requested outputs.
pub async fn infer(
    state: &AppState,
    model: Arc<ModelHandle>,
    call: InferCall,
    deadline: Option<Deadline>,
) -> Result<Inferred, ScoreError> {
    let served = served_outputs(&model);
    let own = output_name(&model).to_string();
    let input = single_input(&call, input_name(&model), &served)?;
    let wanted = |name: &str| match &call.outputs {
        Some(outputs) => outputs.iter().any(|o| o == name),
        None => name == own,
    };
    let rows = input
        .shape
        .first()
        .map_or(0, |&n| usize::try_from(n).unwrap_or(0));
    let per_row = output_width(&model).unwrap_or(0)
        + match wanted(CONTRIBUTIONS_OUTPUT) {
            true => model.spec.feature_columns().len() + 1,
            false => 0,
        };
    let what = format!("output values ({rows} rows × {per_row})");
    let limit = state.limits.max_output_values;
    scoring::check_reply(
        rows.saturating_mul(per_row),
        limit,
        &what,
        "--max-output-values",
    )?;
    let scored = match &model.spec.kind {
        ModelKind::Text(_) => {
            let texts = text_input(input, state.limits.max_items)?;
            scoring::classify_texts(state, model, &texts, deadline).await?
        }
        _ => {
            let features = model.spec.feature_columns();
            let (values, rows) = feature_input(
                input,
                features,
                model.spec.missing(),
                state.limits.max_items,
            )?;
            let explainer = match wanted(CONTRIBUTIONS_OUTPUT) {
                true => Some(scoring::explainer(state, &model)?),
                false => None,
            };
            scoring::score_matrix(model, values, rows, explainer, deadline).await?
        }
    };
    let rows = scored.items.len();
    let mut outputs = Vec::with_capacity(2);
    if wanted(&own) {
        outputs.push(OutputTensor {
            name: own,
            shape: vec![rows, scored.width],
            source: OutputSource::Model,
        });
    }
    if let Some(explained) = &scored.explained {
        outputs.push(OutputTensor {
            name: CONTRIBUTIONS_OUTPUT.into(),
            shape: vec![rows, explained.explainer.width + 1],
            source: OutputSource::Contributions,
        });
    }
    Ok(Inferred { scored, outputs })
}

/// The call's one input, which must be `input_name`; requested outputs must be among `served`.
fn single_input<'c>(
    call: &'c InferCall,
    input_name: &str,
    served: &[&str],
) -> Result<&'c InputTensor, ScoreError> {
    let bad = |msg: String| ScoreError::BadRequest(msg);
    if let Some(outputs) = &call.outputs
        && let Some(unknown) = outputs.iter().find(|o| !served.contains(&o.as_str()))
    {
        return Err(bad(format!(
            "output '{unknown}' is not served; this model serves {served:?}"
        )));
    }
    let [input] = call.inputs.as_slice() else {
        return Err(bad(format!(
            "expected exactly one input ('{input_name}'), got {}",
            call.inputs.len()
        )));
    };
    if input.name != input_name {
        return Err(bad(format!(
            "unknown input '{}'; this model's input is '{input_name}'",
            input.name
        )));
    }
    Ok(input)
}

/// A BYTES [batch] tensor of texts, or [batch, 1] (the shape many clients send).
fn text_input(input: &InputTensor, max_rows: usize) -> Result<Vec<serde_json::Value>, ScoreError> {
    let bad = |msg: String| ScoreError::BadRequest(msg);
    if input.datatype != "BYTES" {
        return Err(bad(format!(
            "input '{}' datatype '{}' is not supported; send BYTES (the texts)",
            input.name, input.datatype
        )));
    }
    let ([n] | [n, 1]) = input.shape.as_slice() else {
        return Err(bad(format!(
            "input '{}' shape {:?} must be [batch] or [batch, 1]",
            input.name, input.shape
        )));
    };
    if *n < 1 || *n as usize > max_rows {
        return Err(bad(format!(
            "input '{}' shape {:?}: batch must be between 1 and {max_rows}",
            input.name, input.shape
        )));
    }
    let InputValues::Texts(texts) = &input.values else {
        return Err(bad(format!(
            "input '{}': BYTES data must be strings (the texts), got numbers",
            input.name
        )));
    };
    if texts.len() != *n as usize {
        return Err(bad(format!(
            "input '{}' shape {:?} needs {n} strings, data has {}",
            input.name,
            input.shape,
            texts.len()
        )));
    }
    Ok(texts
        .iter()
        .cloned()
        .map(serde_json::Value::String)
        .collect())
}

/// A numeric [batch, features] tensor as a row-major f32 matrix and its row count, with the model's missing-value
/// policy applied to NaN elements exactly as to a snapshot null.
fn feature_input(
    input: &InputTensor,
    features: &[String],
    missing: MissingPolicy,
    max_rows: usize,
) -> Result<(Vec<f32>, usize), ScoreError> {
    let bad = |msg: String| ScoreError::BadRequest(msg);
    let (name, width) = (&input.name, features.len());
    if !is_feature_datatype(&input.datatype) {
        return Err(bad(format!(
            "input '{name}' datatype '{}' is not supported; send FP32 or FP64 (or an integer type)",
            input.datatype
        )));
    }
    let [n, w] = input.shape.as_slice() else {
        return Err(bad(format!(
            "input '{name}' shape {:?} must be [batch, {width}]",
            input.shape
        )));
    };
    if *w != width as i64 {
        return Err(bad(format!(
            "input '{name}' shape {:?}: the model takes {width} features per row",
            input.shape
        )));
    }
    if *n < 1 || *n as usize > max_rows {
        return Err(bad(format!(
            "input '{name}' shape {:?}: batch must be between 1 and {max_rows}",
            input.shape
        )));
    }
    let rows = *n as usize;
    let InputValues::Numbers(values) = &input.values else {
        return Err(bad(format!(
            "input '{name}': {} data must be numbers, got strings",
            input.datatype
        )));
    };
    if values.len() != rows * width {
        return Err(bad(format!(
            "input '{name}' shape {:?} needs {} values, data has {}",
            input.shape,
            rows * width,
            values.len()
        )));
    }
    if values.iter().any(|v| v.is_infinite()) {
        return Err(bad(format!(
            "input '{name}' has values out of the float32 range (an infinity, or beyond ±3.4e38); send null or NaN \
             for a missing value"
        )));
    }
    let mut values = values.clone();
    for (row, chunk) in values.chunks_mut(width).enumerate() {
        scoring::apply_missing(features, missing, chunk).map_err(|feature| {
            bad(format!(
                "input '{name}' row {row}: feature '{feature}' is missing (NaN or null) and this model rejects \
                 missing values"
            ))
        })?;
    }
    Ok((values, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: Vec<i64>, values: InputValues) -> InputTensor {
        InputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape,
            values,
        }
    }

    fn features() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn missing_values_follow_the_policy() {
        let input = tensor(vec![1, 2], InputValues::Numbers(vec![f32::NAN, 2.0]));
        let (nan, _) = feature_input(&input, &features(), MissingPolicy::Nan, 10).unwrap();
        assert!(nan[0].is_nan());
        let (zero, _) = feature_input(&input, &features(), MissingPolicy::Zero, 10).unwrap();
        assert_eq!(zero, vec![0.0, 2.0]);
        let err = feature_input(&input, &features(), MissingPolicy::Reject, 10).unwrap_err();
        assert!(err.to_string().contains("feature 'a'"), "{err}");
    }

    #[test]
    fn shapes_and_counts_are_checked() {
        let short = tensor(vec![2, 2], InputValues::Numbers(vec![1.0; 3]));
        let err = feature_input(&short, &features(), MissingPolicy::Nan, 10).unwrap_err();
        assert!(err.to_string().contains("needs 4 values"), "{err}");
        let wide = tensor(vec![1, 3], InputValues::Numbers(vec![1.0; 3]));
        assert!(feature_input(&wide, &features(), MissingPolicy::Nan, 10).is_err());
        let texts = tensor(vec![1, 2], InputValues::Texts(vec!["a".into(), "b".into()]));
        assert!(feature_input(&texts, &features(), MissingPolicy::Nan, 10).is_err());
        let inf = tensor(vec![1, 2], InputValues::Numbers(vec![f32::INFINITY, 1.0]));
        assert!(feature_input(&inf, &features(), MissingPolicy::Nan, 10).is_err());
    }

    #[test]
    fn texts_come_as_batch_or_batch_by_one() {
        let texts = |shape: Vec<i64>| InputTensor {
            name: TEXT_INPUT.into(),
            datatype: "BYTES".into(),
            shape,
            values: InputValues::Texts(vec!["good".into(), "bad".into()]),
        };
        assert_eq!(text_input(&texts(vec![2]), 10).unwrap().len(), 2);
        assert_eq!(text_input(&texts(vec![2, 1]), 10).unwrap().len(), 2);
        let err = text_input(&texts(vec![1, 2]), 10).unwrap_err().to_string();
        assert!(err.contains("[batch, 1]"), "{err}");
    }
}
