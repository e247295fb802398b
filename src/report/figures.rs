//! The figures of one group of customers: counts, mean score, churn rate, ROC AUC, calibration (ECE and the
//! reliability table) and the rate of each chosen action. Pure functions over labelled scores.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::join::Scored;

/// What the report says about one group (or about every customer).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Figures {
    /// The group's value (`overall` for every customer, `null` for a missing value, `not_in_snapshot`).
    pub group: String,
    /// Distinct customers scored (each by their latest decision).
    pub customers: usize,
    /// Of those, customers whose outcome (churned or retained) is known.
    pub labelled: usize,
    /// Mean score over the customers scored.
    pub mean_score: f64,
    /// Share of labelled customers who churned (null: none labelled).
    pub churn_rate: Option<f64>,
    /// ROC AUC of score against churn over the labelled customers (null: undefined, one class only).
    pub auc: Option<f64>,
    /// Expected calibration error: Σ (n_b/n)·|mean predicted_b − observed rate_b| over equal-width bins (null:
    /// none labelled).
    pub ece: Option<f64>,
    /// Fewer labelled customers than `min_group`: the figures are shown but too noisy to judge.
    pub too_small: bool,
    /// Why the group is too small or its AUC is null.
    pub reason: Option<String>,
    /// Per bin of the score: labelled customers, mean predicted, observed churn rate.
    pub reliability: Vec<ReliabilityBin>,
    /// Share of the customers scored whose decision chose each action (`none`: no action).
    pub actions: BTreeMap<String, f64>,
}

/// One bin of the reliability table, over the labelled customers whose score falls in [from, to).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReliabilityBin {
    /// Lower edge of the score bin.
    pub from: f64,
    /// Upper edge (the last bin includes 1).
    pub to: f64,
    /// Labelled customers in the bin.
    pub count: usize,
    /// Their mean score (null: empty bin).
    pub mean_predicted: Option<f64>,
    /// Their churn rate (null: empty bin).
    pub observed_rate: Option<f64>,
}

/// The bin of a score among `bins` equal-width bins of [0, 1] (scores outside go to the end bins).
pub fn bin_of(score: f64, bins: usize) -> usize {
    let b = (score * bins as f64).floor();
    if b < 0.0 {
        0
    } else {
        (b as usize).min(bins - 1)
    }
}

/// ROC AUC as the Mann-Whitney statistic with tied scores given their average rank (what scikit-learn's
/// `roc_auc_score` computes); None when one class is missing.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks start..end (1-based start+1..=end) share their mean.
        let rank = (start + 1 + end) as f64 / 2.0;
        let tied_positives = order[start..end].iter().filter(|&&i| labels[i]).count();
        positive_rank_sum += rank * tied_positives as f64;
        start = end;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((positive_rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The reliability table over `bins` equal-width bins, and the expected calibration error (None when empty).
pub fn reliability(
    scores: &[f64],
    labels: &[bool],
    bins: usize,
) -> (Vec<ReliabilityBin>, Option<f64>) {
    let mut counts = vec![0usize; bins];
    let mut score_sums = vec![0.0; bins];
    let mut positives = vec![0usize; bins];
    for (&score, &label) in scores.iter().zip(labels) {
        let b = bin_of(score, bins);
        counts[b] += 1;
        score_sums[b] += score;
        positives[b] += usize::from(label);
    }
    let total = scores.len() as f64;
    let mut ece = 0.0;
    let table = (0..bins)
        .map(|b| {
            let count = counts[b];
            let (mean_predicted, observed_rate) = match count {
                0 => (None, None),
                _ => {
                    let mean = score_sums[b] / count as f64;
                    let rate = positives[b] as f64 / count as f64;
                    ece += count as f64 / total * (mean - rate).abs();
                    (Some(mean), Some(rate))
                }
            };
            ReliabilityBin {
                from: b as f64 / bins as f64,
                to: (b + 1) as f64 / bins as f64,
                count,
                mean_predicted,
                observed_rate,
            }
        })
        .collect();
    (table, (!scores.is_empty()).then_some(ece))
}

/// The share of `members` per chosen action.
fn action_rates(members: &[&Scored]) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for m in members {
        let action = m.action.as_deref().unwrap_or("none");
        *counts.entry(action.to_string()).or_default() += 1;
    }
    let total = members.len() as f64;
    counts
        .into_iter()
        .map(|(action, n)| (action, n as f64 / total))
        .collect()
}

impl Figures {
    /// The figures of `members` (a non-empty group); `min_group` labelled customers are needed to judge it.
    pub fn of<S: std::borrow::Borrow<Scored>>(
        group: &str,
        members: &[S],
        bins: usize,
        min_group: usize,
    ) -> Figures {
        let members: Vec<&Scored> = members.iter().map(|m| m.borrow()).collect();
        let (scores, labels): (Vec<f64>, Vec<bool>) = members
            .iter()
            .filter_map(|m| Some((m.score, m.label?)))
            .unzip();
        let labelled = labels.len();
        let churned = labels.iter().filter(|&&l| l).count();
        let auc = roc_auc(&scores, &labels);
        let (table, ece) = reliability(&scores, &labels, bins);
        let too_small = labelled < min_group;
        let mut reasons = Vec::new();
        if too_small {
            reasons.push(format!(
                "{labelled} labelled customers, fewer than min_group {min_group}"
            ));
        }
        if auc.is_none() {
            reasons.push(match (labelled, churned) {
                (0, _) => "no labelled customers: AUC undefined".to_string(),
                (_, 0) => "no labelled customer churned: AUC undefined".to_string(),
                _ => "every labelled customer churned: AUC undefined".to_string(),
            });
        }
        let mean_score = members.iter().map(|m| m.score).sum::<f64>() / members.len() as f64;
        Figures {
            group: group.to_string(),
            customers: members.len(),
            labelled,
            mean_score,
            churn_rate: (labelled > 0).then(|| churned as f64 / labelled as f64),
            auc,
            ece,
            too_small,
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
            reliability: table,
            actions: action_rates(&members),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auc_by_hand() {
        // Pairs (pos, neg): 0.8>0.1, 0.8>0.4, 0.35<0.4, 0.35>0.1 → 3 of 4.
        assert!(close(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap(),
            0.75
        ));
        // A tie between a positive and a negative counts one half: (1 + 0.5) / 2.
        assert!(close(
            roc_auc(&[0.5, 0.5, 0.2], &[true, false, false]).unwrap(),
            0.75
        ));
        assert!(close(roc_auc(&[0.3, 0.3], &[true, false]).unwrap(), 0.5));
        assert_eq!(roc_auc(&[0.3, 0.6], &[true, true]), None);
        assert_eq!(roc_auc(&[], &[]), None);
    }

    #[test]
    fn bins_are_equal_width_and_closed_at_one() {
        assert_eq!(bin_of(0.0, 10), 0);
        assert_eq!(bin_of(0.099, 10), 0);
        assert_eq!(bin_of(0.1, 10), 1);
        assert_eq!(bin_of(0.95, 10), 9);
        assert_eq!(bin_of(1.0, 10), 9);
        assert_eq!(bin_of(-0.2, 10), 0);
        assert_eq!(bin_of(0.7, 1), 0);
    }

    #[test]
    fn ece_by_hand() {
        // Two bins: [0, 0.5) holds 0.1, 0.3 (1 churned): mean 0.2, rate 0.5; [0.5, 1] holds 0.9 (churned): mean
        // 0.9, rate 1. ECE = 2/3·0.3 + 1/3·0.1 = 0.2333...
        let (table, ece) = reliability(&[0.1, 0.3, 0.9], &[true, false, true], 2);
        assert!(close(ece.unwrap(), 2.0 / 3.0 * 0.3 + 1.0 / 3.0 * 0.1));
        assert_eq!(table[0].count, 2);
        assert!(close(table[0].mean_predicted.unwrap(), 0.2));
        assert_eq!(table[0].observed_rate, Some(0.5));
        assert_eq!((table[1].from, table[1].to), (0.5, 1.0));
        let (table, ece) = reliability(&[], &[], 3);
        assert_eq!(ece, None);
        assert!(
            table
                .iter()
                .all(|b| b.count == 0 && b.mean_predicted.is_none())
        );
    }

    fn scored(score: f64, label: Option<bool>, action: Option<&str>) -> Scored {
        Scored {
            customer_id: String::new(),
            score,
            action: action.map(Into::into),
            label,
        }
    }

    #[test]
    fn figures_of_a_group() {
        let members = [
            scored(0.2, Some(false), Some("call")),
            scored(0.6, Some(true), None),
            scored(0.4, None, Some("call")),
            scored(0.8, Some(true), Some("offer")),
        ];
        let f = Figures::of("g", &members, 10, 3);
        assert_eq!((f.customers, f.labelled), (4, 3));
        assert!(close(f.mean_score, 0.5));
        assert!(close(f.churn_rate.unwrap(), 2.0 / 3.0));
        assert_eq!(f.auc, Some(1.0));
        assert!(!f.too_small && f.reason.is_none());
        let rates: Vec<(&str, f64)> = f.actions.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(rates, [("call", 0.5), ("none", 0.25), ("offer", 0.25)]);
        // Too small, and single-class: marked with both reasons, figures still there.
        let f = Figures::of("g", &members[1..], 10, 3);
        assert!(f.too_small && f.auc.is_none());
        let reason = f.reason.unwrap();
        assert!(
            reason.contains("2 labelled customers, fewer than min_group 3"),
            "{reason}"
        );
        assert!(
            reason.contains("every labelled customer churned"),
            "{reason}"
        );
        assert_eq!(f.churn_rate, Some(1.0));
        let f = Figures::of("g", &members[2..3], 10, 0);
        assert_eq!((f.churn_rate, f.ece, f.too_small), (None, None, false));
    }
}
