//! `--top N`: the N best customers by expected value (or churn probability), kept while streaming, best first.

use std::cmp::Ordering;

use crate::config::RankBy;
use crate::engagement::insights::Insight;

/// The best customers seen so far; memory stays about 2N insights whatever the base.
pub struct TopN {
    n: usize,
    by: RankBy,
    kept: Vec<(f64, u64, Insight)>,
}

/// The value `by` ranks an insight by (None: left out of the list).
pub fn key(insight: &Insight, by: RankBy) -> Option<f64> {
    match by {
        RankBy::ExpectedValue => insight.next_best_action.as_ref()?.expected_value,
        RankBy::ChurnProbability => insight.churn.as_ref().map(|c| f64::from(c.probability)),
    }
    .filter(|v| !v.is_nan())
}

/// Higher value first; on ties, the earlier row.
fn better(a: &(f64, u64, Insight), b: &(f64, u64, Insight)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

impl TopN {
    /// Keeps the `n` best by `by`.
    pub fn new(n: usize, by: RankBy) -> TopN {
        TopN {
            n,
            by,
            kept: Vec::new(),
        }
    }

    /// Offers insights whose first is snapshot row `first_row` (rows order the ties).
    pub fn offer(&mut self, first_row: u64, insights: Vec<Insight>) {
        for (i, insight) in insights.into_iter().enumerate() {
            if let Some(v) = key(&insight, self.by) {
                self.kept.push((v, first_row + i as u64, insight));
            }
        }
        if self.kept.len() > 2 * self.n.max(1) {
            self.prune();
        }
    }

    /// Merges another list's candidates (rows already numbered).
    pub fn merge(&mut self, other: TopN) {
        self.kept.extend(other.kept);
        if self.kept.len() > 2 * self.n.max(1) {
            self.prune();
        }
    }

    fn prune(&mut self) {
        if self.kept.len() > self.n && self.n > 0 {
            self.kept.select_nth_unstable_by(self.n - 1, better);
        }
        self.kept.truncate(self.n);
    }

    /// The list, best first.
    pub fn finish(mut self) -> Vec<Insight> {
        self.kept.sort_by(better);
        self.kept.truncate(self.n);
        self.kept.into_iter().map(|(_, _, i)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engagement::insights::Churn;
    use crate::snapshot::CustomerId;

    fn insight(id: i64, p: Option<f32>) -> Insight {
        Insight {
            customer_id: CustomerId::Int(id),
            cold_start: false,
            churn: p.map(|probability| Churn {
                probability,
                risk: None,
                reasons: Vec::new(),
            }),
            segment: None,
            offers: None,
            next_best_action: None,
            error: None,
        }
    }

    #[test]
    fn keeps_the_best_in_order_across_chunks() {
        let mut top = TopN::new(3, RankBy::ChurnProbability);
        let probabilities = [0.1, 0.9, 0.5, 0.9, 0.2, 0.7, 0.3];
        for (chunk, ps) in probabilities.chunks(2).enumerate() {
            let mut part = TopN::new(3, RankBy::ChurnProbability);
            let rows = ps.iter().enumerate();
            part.offer(
                2 * chunk as u64,
                rows.map(|(i, &p)| insight((2 * chunk + i) as i64, Some(p)))
                    .collect(),
            );
            top.merge(part);
        }
        top.offer(7, vec![insight(7, None)]);
        let ids: Vec<String> = top
            .finish()
            .iter()
            .map(|i| i.customer_id.to_string())
            .collect();
        // 0.9 (row 1), 0.9 (row 3: ties keep row order), 0.7; the customer without a value is left out.
        assert_eq!(ids, ["1", "3", "5"]);
    }
}
