//! Text input for text models: a Hugging Face tokenizer.json, truncation to the manifest's length, no padding
//! (batches are padded to their longest sequence by the worker).

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

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

    #[test]
    fn a_missing_tokenizer_is_a_clear_error() {
        let err = TextEncoder::load(Path::new("/nonexistent/tokenizer.json"), 16)
            .err()
            .unwrap();
        assert!(err.contains("/nonexistent/tokenizer.json"), "{err}");
    }
}
