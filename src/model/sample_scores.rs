//! Scores a sample of snapshot rows with a served tabular model, through its real queue and workers, off the
//! request path (the churn-score drift check when a snapshot is swapped in).

use std::sync::Arc;

use super::{ModelHandle, ModelKind};
use crate::batching::{JobError, ModelInput};
use crate::snapshot::{FeatureSnapshot, SampleScorer};

/// A served tabular model as a [`SampleScorer`]: the positive-class probability of each row.
pub struct ModelScorer {
    model: Arc<ModelHandle>,
    positive: usize,
}

impl ModelScorer {
    /// The scorer of `model`, if it is a tabular model (its positive class is what is compared).
    pub fn of(model: Arc<ModelHandle>) -> Option<ModelScorer> {
        let ModelKind::Tabular(t) = &model.spec.kind else {
            return None;
        };
        let positive = t.positive;
        Some(ModelScorer { model, positive })
    }
}

impl SampleScorer for ModelScorer {
    fn model(&self) -> &str {
        &self.model.spec.name
    }

    /// Blocks the calling thread (the watcher) while the model's workers score `rows` in jobs of its batch size,
    /// one job queued at a time so requests keep their share of the queue. Rows the model's missing-value policy
    /// rejects score NaN.
    fn score(&self, snapshot: &FeatureSnapshot, rows: &[usize]) -> Result<Vec<f32>, String> {
        let features = self.model.spec.feature_columns();
        let layout = snapshot
            .layout(features)
            .map_err(|column| format!("the snapshot lacks column '{column}'"))?;
        let width = self.model.output_width();
        let chunk = self.model.spec.batching.max_batch_size.max(1);
        let mut scores = Vec::with_capacity(rows.len());
        for part in rows.chunks(chunk) {
            let mut input = Vec::with_capacity(part.len() * layout.width());
            let mut kept = Vec::with_capacity(part.len());
            for &row in part {
                let start = input.len();
                snapshot.gather(row, &layout, &mut input);
                let ok = crate::scoring::apply_missing(
                    features,
                    self.model.spec.missing(),
                    &mut input[start..],
                )
                .is_ok();
                if !ok {
                    input.truncate(start);
                }
                kept.push(ok);
            }
            let n = kept.iter().filter(|&&k| k).count();
            let values = match n {
                0 => Vec::new(),
                _ => self.run(input, n)?,
            };
            let mut next = 0;
            for ok in kept {
                let score = match ok {
                    true => {
                        next += 1;
                        values.get((next - 1) * width + self.positive)
                    }
                    false => None,
                };
                scores.push(score.copied().unwrap_or(f32::NAN));
            }
        }
        Ok(scores)
    }
}

impl ModelScorer {
    /// One job of `rows` rows through the model's queue, waited for on this thread.
    fn run(&self, input: Vec<f32>, rows: usize) -> Result<Vec<f32>, String> {
        let receiver = self
            .model
            .queue
            .submit(ModelInput::Rows(input), rows, None, None)
            .map_err(|e| e.to_string())?;
        let output = receiver
            .blocking_recv()
            .map_err(|_| "the batching worker stopped".to_string())?
            .map_err(|e| match e {
                JobError::Failed(message) => message,
                JobError::Expired => "the job expired".into(),
            })?;
        Ok(output.values)
    }
}
