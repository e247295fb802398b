//! Text input for text models: a Hugging Face tokenizer.json, truncation to the manifest's length, no padding
//! (batches are padded to their longest sequence by the worker).

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

use crate::explain::onnx::{GraphProto, ModelProto};

/// A loaded tokenizer with the model's truncation applied.
pub struct TextEncoder {
    tokenizer: Tokenizer,
}

impl TextEncoder {
    /// Loads `tokenizer.json`, truncating every encoding to `max_length` tokens (special tokens included) and
    /// turning off any padding the file asks for.
    pub fn load(path: &Path, max_length: usize) -> Result<TextEncoder, String> {
        let mut tokenizer = Tokenizer::from_file(path)
            .map_err(|e| format!("cannot load tokenizer {}: {e}", path.display()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| format!("tokenizer {}: {e}", path.display()))?;
        tokenizer.with_padding(None);
        Ok(TextEncoder { tokenizer })
    }

    /// Token ids of one text, with the tokenizer's special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, String> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| format!("cannot tokenize: {e}"))?;
        Ok(encoding.get_ids().iter().map(|&id| i64::from(id)).collect())
    }
}

impl TextEncoder {
    /// The largest token id the tokenizer can produce (its vocabulary and added tokens).
    pub fn max_id(&self) -> Option<u32> {
        self.tokenizer.get_vocab(true).into_values().max()
    }
}

/// Rows of the embedding table that `input_ids` index: the first dimension of the initializer (or Constant)
/// feeding a `Gather` whose indices are `input_ids` (directly or through Cast/Identity/Reshape/Unsqueeze/
/// Squeeze/Flatten). None when the graph does not reveal it.
pub fn embedding_rows(model: &ModelProto, input_ids: &str) -> Option<i64> {
    let graph = model.graph.as_ref()?;
    // Values that carry input_ids unchanged (up to type and shape).
    let mut ids = vec![input_ids.to_string()];
    for node in &graph.node {
        let passes = matches!(
            node.op_type.as_str(),
            "Cast" | "Identity" | "Reshape" | "Unsqueeze" | "Squeeze" | "Flatten"
        );
        if passes && node.input.first().is_some_and(|i| ids.contains(i)) {
            ids.extend(node.output.iter().cloned());
        }
    }
    graph
        .node
        .iter()
        .filter(|n| n.op_type == "Gather" && n.domain.is_empty())
        .filter(|n| n.input.get(1).is_some_and(|i| ids.contains(i)))
        .filter(|n| n.attr("axis").is_none_or(|a| a.i == 0))
        .find_map(|n| table_rows(graph, n.input.first()?))
}

/// First dimension of the constant tensor named `name` (an initializer, or a Constant node's value, possibly
/// through Identity nodes).
fn table_rows(graph: &GraphProto, name: &str) -> Option<i64> {
    if let Some(t) = graph.initializer.iter().find(|t| t.name == name) {
        return t.dims.first().copied();
    }
    let node = graph
        .node
        .iter()
        .find(|n| n.output.iter().any(|o| o == name))?;
    match node.op_type.as_str() {
        "Constant" => node.attr("value")?.t.as_ref()?.dims.first().copied(),
        "Identity" => table_rows(graph, node.input.first()?),
        _ => None,
    }
}

/// Softmax of logits (stable: shifted by the maximum).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = softmax(&[1000.0, 1000.0, 998.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - p[1]).abs() < 1e-7 && p[2] < p[0]);
    }

    fn graph(path: &str) -> ModelProto {
        let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
        <ModelProto as prost::Message>::decode(prost::bytes::Bytes::from(bytes)).unwrap()
    }

    #[test]
    fn the_embedding_table_is_found_behind_input_ids() {
        let bert = graph("tests/fixtures/tiny-bert/model.onnx");
        assert_eq!(embedding_rows(&bert, "input_ids"), Some(1500));
        assert_eq!(embedding_rows(&bert, "no_such_input"), None);
        let sentiment = graph("models/sentiment/model.onnx");
        assert_eq!(embedding_rows(&sentiment, "input_ids"), Some(13148));
        // A graph without an embedding on that input does not reveal it.
        assert_eq!(
            embedding_rows(&graph("models/churn/model.onnx"), "input_ids"),
            None
        );
    }

    #[test]
    fn a_missing_tokenizer_is_a_clear_error() {
        let err = TextEncoder::load(Path::new("/nonexistent/tokenizer.json"), 16)
            .err()
            .unwrap();
        assert!(err.contains("/nonexistent/tokenizer.json"), "{err}");
    }
}
