//! Drift between a new snapshot and the served one, on fixed-seed samples: per feature the population stability
//! index (PSI) over the served snapshot's deciles with nulls as their own bin, the null-rate change and the mean
//! shift in the served standard deviations; and the PSI of a model's scores on customers present in both.

use std::fmt::Write;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::{CustomerId, FeatureSnapshot};

/// Quantile bins of a feature (the served snapshot's deciles); nulls add one more bin.
pub const BINS: usize = 10;
/// Floor of a bin's share before the logarithm, so an empty bin counts as rare, not as infinitely surprising.
pub const EPSILON: f64 = 1e-4;
/// Rows sampled from each snapshot for the feature statistics (all rows when it has fewer).
pub const SAMPLE_ROWS: usize = 200_000;
/// Customers present in both snapshots whose scores are compared.
pub const SCORE_CUSTOMERS: usize = 20_000;
/// The seed of every sample: the same snapshots always give the same report.
pub const SEED: u64 = 0x00c0_ffee_d81f_7a11;

/// How one feature moved.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FeatureDrift {
    /// The feature column.
    pub feature: String,
    /// Population stability index over the served snapshot's deciles plus a null bin.
    pub psi: f64,
    /// Share of null (or NaN) values in the served snapshot's sample.
    pub null_rate_old: f64,
    /// Share of null (or NaN) values in the new snapshot's sample.
    pub null_rate_new: f64,
    /// Mean of the finite values, served snapshot (null when it has none).
    pub mean_old: Option<f64>,
    /// Mean of the finite values, new snapshot (null when it has none).
    pub mean_new: Option<f64>,
    /// (new mean - old mean) / old standard deviation; null when either mean is missing or the old one is constant.
    pub mean_shift_sd: Option<f64>,
}

/// How a model's scores moved on the same customers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ScoreDrift {
    /// The model scored (its positive-class probability).
    pub model: String,
    /// PSI of the scores over the served snapshot's score deciles.
    pub psi: f64,
    /// Customers of both snapshots scored.
    pub customers: usize,
    /// Mean score, served snapshot.
    pub mean_old: Option<f64>,
    /// Mean score, new snapshot.
    pub mean_new: Option<f64>,
}

/// The drift of a new snapshot against the served one.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DriftReport {
    /// Version of the snapshot compared against (the one served when the new one loaded).
    pub against: String,
    /// Rows sampled from the served snapshot.
    pub sample_rows_old: usize,
    /// Rows sampled from the new snapshot.
    pub sample_rows_new: usize,
    /// Per feature present in both, in column order.
    pub features: Vec<FeatureDrift>,
    /// The score drift, when a model was given and scored.
    pub score: Option<ScoreDrift>,
    /// Why there is no score drift, when there is none.
    pub score_note: Option<String>,
    /// Time the comparison took.
    pub seconds: f64,
}

/// Scores rows of a snapshot with a served model (the churn model): one value per row, NaN where it could not.
pub trait SampleScorer {
    /// The model's name.
    fn model(&self) -> &str;
    /// The positive-class probability of each of `rows` of `snapshot`.
    fn score(&self, snapshot: &FeatureSnapshot, rows: &[usize]) -> Result<Vec<f32>, String>;
}

/// Next number of the splitmix64 sequence.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Up to `n` row numbers of `snapshot` drawn with a fixed seed (every row when it has no more), sorted, erased
/// rows left out.
pub fn sample_rows(snapshot: &FeatureSnapshot, n: usize, seed: u64) -> Vec<usize> {
    let total = snapshot.rows;
    let mut rows: Vec<usize> = if total <= n {
        (0..total).collect()
    } else {
        let mut state = seed;
        let mut rows: Vec<usize> = (0..n)
            .map(|_| ((splitmix(&mut state) as u128 * total as u128) >> 64) as usize)
            .collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    };
    rows.retain(|&r| !snapshot.is_hidden(r));
    rows
}

/// Row cut points at the deciles of `sorted` (the "lower" quantile: `sorted[floor(q (n - 1))]`), duplicates
/// merged; a value `v` falls in bin `edges.partition_point(|e| e <= v)`.
pub fn quantile_edges(sorted: &[f32], bins: usize) -> Vec<f32> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let mut edges: Vec<f32> = (1..bins)
        .map(|i| sorted[i * (sorted.len() - 1) / bins])
        .collect();
    edges.dedup();
    edges
}

/// Share of `values` in each bin of `edges`, then the null (NaN) share last.
pub fn bin_shares(values: &[f32], edges: &[f32]) -> Vec<f64> {
    let mut counts = vec![0usize; edges.len() + 2];
    for &v in values {
        let bin = match v.is_nan() {
            true => edges.len() + 1,
            false => edges.partition_point(|&e| e <= v),
        };
        counts[bin] += 1;
    }
    let n = values.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / n).collect()
}

/// PSI = Σ (actual - expected) · ln(actual / expected) over bins, each share floored at [`EPSILON`].
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(EPSILON), a.max(EPSILON));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// Mean and population standard deviation of the finite values, if any.
fn moments(values: &[f32]) -> Option<(f64, f64)> {
    let (mut n, mut sum, mut squares) = (0usize, 0.0f64, 0.0f64);
    for v in values.iter().filter(|v| v.is_finite()) {
        let v = f64::from(*v);
        n += 1;
        sum += v;
        squares += v * v;
    }
    if n == 0 {
        return None;
    }
    let mean = sum / n as f64;
    Some((mean, (squares / n as f64 - mean * mean).max(0.0).sqrt()))
}

/// The drift of one feature from its served sample `old` to its new sample `new`.
pub fn feature_drift(feature: &str, old: &[f32], new: &[f32]) -> FeatureDrift {
    let mut sorted: Vec<f32> = old.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_unstable_by(f32::total_cmp);
    let edges = quantile_edges(&sorted, BINS);
    let psi = match old.is_empty() || new.is_empty() {
        true => 0.0,
        false => psi(&bin_shares(old, &edges), &bin_shares(new, &edges)),
    };
    let null_rate = |values: &[f32]| {
        values.iter().filter(|v| v.is_nan()).count() as f64 / values.len().max(1) as f64
    };
    let (before, after) = (moments(old), moments(new));
    let mean_shift_sd = match (before, after) {
        (Some((m0, sd)), Some((m1, _))) if sd > 0.0 => Some((m1 - m0) / sd),
        _ => None,
    };
    FeatureDrift {
        feature: feature.to_string(),
        psi,
        null_rate_old: null_rate(old),
        null_rate_new: null_rate(new),
        mean_old: before.map(|m| m.0),
        mean_new: after.map(|m| m.0),
        mean_shift_sd,
    }
}

/// The values of `positions` at `rows`, column after column (`rows.len()` values each): every sampled row is read
/// once, in row order, so a 200k sample of a 10M snapshot costs 200k row reads rather than one per value.
fn columns_at(snapshot: &FeatureSnapshot, rows: &[usize], positions: &[usize]) -> Vec<f32> {
    let n = rows.len();
    let mut out = vec![0.0; n * positions.len()];
    for (i, &r) in rows.iter().enumerate() {
        let row = snapshot.row(r);
        for (j, &p) in positions.iter().enumerate() {
            out[j * n + i] = row[p];
        }
    }
    out
}

/// Up to `n` customers present in both snapshots, chosen by a fixed-seed hash of the new row number: their rows
/// in `new` and in `old`, ordered by the new row.
pub fn common_customers(
    new: &FeatureSnapshot,
    old: &FeatureSnapshot,
    n: usize,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let total = new.rows.max(1);
    // Keep a row when its hash falls under n/total of the u64 range.
    let threshold = ((n as u128) << 64) / total as u128;
    let keep = |row: usize| {
        let mut state = seed ^ row as u64;
        (splitmix(&mut state) as u128) < threshold && !new.is_hidden(row)
    };
    let mut pairs: Vec<(usize, usize)> = new
        .index
        .ids_of_rows(keep)
        .into_iter()
        .filter_map(|(id, row): (CustomerId, usize)| old.lookup(&id).map(|o| (row, o)))
        .collect();
    pairs.sort_unstable();
    pairs.truncate(n);
    pairs.into_iter().unzip()
}

/// Compares `new` with `old` (the served snapshot): every feature of both, and `scorer`'s scores when given.
pub fn compare(
    new: &FeatureSnapshot,
    old: &FeatureSnapshot,
    scorer: Option<&dyn SampleScorer>,
) -> DriftReport {
    let started = Instant::now();
    let old_rows = sample_rows(old, SAMPLE_ROWS, SEED);
    let new_rows = sample_rows(new, SAMPLE_ROWS, SEED);
    let shared: Vec<(usize, &String, usize)> = new
        .columns
        .iter()
        .enumerate()
        .filter_map(|(p, c)| old.columns.iter().position(|o| o == c).map(|q| (p, c, q)))
        .collect();
    let (olds, news) = rayon::join(
        || {
            columns_at(
                old,
                &old_rows,
                &shared.iter().map(|s| s.2).collect::<Vec<_>>(),
            )
        },
        || {
            columns_at(
                new,
                &new_rows,
                &shared.iter().map(|s| s.0).collect::<Vec<_>>(),
            )
        },
    );
    let (n_old, n_new) = (old_rows.len(), new_rows.len());
    let features = shared
        .par_iter()
        .enumerate()
        .map(|(j, &(_, name, _))| {
            feature_drift(
                name,
                &olds[j * n_old..(j + 1) * n_old],
                &news[j * n_new..(j + 1) * n_new],
            )
        })
        .collect();
    let (score, score_note) = match scorer {
        None => (None, Some("no churn model is served".to_string())),
        Some(scorer) => match score_drift(new, old, scorer) {
            Ok(drift) => (Some(drift), None),
            Err(e) => (None, Some(e)),
        },
    };
    DriftReport {
        against: old.version.clone(),
        sample_rows_old: old_rows.len(),
        sample_rows_new: new_rows.len(),
        features,
        score,
        score_note,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// PSI of `scorer`'s scores on a fixed-seed sample of customers present in both snapshots.
fn score_drift(
    new: &FeatureSnapshot,
    old: &FeatureSnapshot,
    scorer: &dyn SampleScorer,
) -> Result<ScoreDrift, String> {
    let (new_rows, old_rows) = common_customers(new, old, SCORE_CUSTOMERS, SEED);
    if new_rows.is_empty() {
        return Err("no customer is in both snapshots".into());
    }
    let failed = |e: String| format!("model '{}' could not score: {e}", scorer.model());
    let before = scorer.score(old, &old_rows).map_err(failed)?;
    let after = scorer.score(new, &new_rows).map_err(failed)?;
    let drift = feature_drift(scorer.model(), &before, &after);
    Ok(ScoreDrift {
        model: scorer.model().to_string(),
        psi: drift.psi,
        customers: new_rows.len(),
        mean_old: drift.mean_old,
        mean_new: drift.mean_new,
    })
}

impl DriftReport {
    /// Features by PSI, largest first.
    pub fn ranked(&self) -> Vec<&FeatureDrift> {
        let mut ranked: Vec<&FeatureDrift> = self.features.iter().collect();
        ranked.sort_by(|a, b| b.psi.total_cmp(&a.psi));
        ranked
    }

    /// The features whose PSI is above `max_psi`, largest first.
    pub fn over(&self, max_psi: f64) -> Vec<&FeatureDrift> {
        self.ranked()
            .into_iter()
            .filter(|f| f.psi > max_psi)
            .collect()
    }

    /// `name PSI x.xx` of the `k` most drifted features (what the log line and refusals name).
    pub fn top(&self, k: usize) -> String {
        let ranked = self.ranked();
        ranked
            .iter()
            .take(k)
            .map(|f| format!("{} {:.3}", f.feature, f.psi))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The report as a table (what `crmscore check-snapshot --against` prints).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "drift    against {} (sampled {} served rows, {} new rows, seed {SEED:#x})",
            self.against, self.sample_rows_old, self.sample_rows_new
        );
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>10} {:>10} {:>14}",
            "feature", "psi", "null% old", "null% new", "mean shift sd"
        );
        for f in self.ranked() {
            let shift = f
                .mean_shift_sd
                .map_or_else(|| "-".to_string(), |s| format!("{s:+.3}"));
            let _ = writeln!(
                out,
                "{:<28} {:>8.4} {:>9.1}% {:>9.1}% {shift:>14}",
                f.feature,
                f.psi,
                100.0 * f.null_rate_old,
                100.0 * f.null_rate_new
            );
        }
        match (&self.score, &self.score_note) {
            (Some(s), _) => {
                let _ = writeln!(
                    out,
                    "score    {} psi {:.4} on {} customers in both (mean {:.4} -> {:.4})",
                    s.model,
                    s.psi,
                    s.customers,
                    s.mean_old.unwrap_or(f64::NAN),
                    s.mean_new.unwrap_or(f64::NAN)
                );
            }
            (None, Some(note)) => {
                let _ = writeln!(out, "score    not compared: {note}");
            }
            (None, None) => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::CustomerIndex;
    use std::path::PathBuf;

    fn snapshot(ids: std::ops::Range<i64>, values: impl Fn(i64) -> [f32; 2]) -> FeatureSnapshot {
        let index = CustomerIndex::from_integers(ids.clone()).unwrap();
        FeatureSnapshot::new(
            format!("s{}", ids.start),
            PathBuf::from("s"),
            vec!["a".into(), "b".into()],
            ids.flat_map(values).collect(),
            index,
        )
    }

    #[test]
    fn psi_of_hand_computed_shares() {
        // (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5
        let value = psi(&[0.5, 0.5], &[0.25, 0.75]);
        assert!((value - 0.274_653_072_167).abs() < 1e-9, "{value}");
        assert_eq!(psi(&[0.2, 0.8], &[0.2, 0.8]), 0.0);
        // An empty bin counts as EPSILON: (0.5 - 1) ln(0.5 / 1) + (0.5 - 1e-4) ln(0.5 / 1e-4) = 4.6043.
        let empty = psi(&[1.0, 0.0], &[0.5, 0.5]);
        let expected = -0.5 * 0.5f64.ln() + (0.5 - 1e-4) * (0.5f64 / 1e-4).ln();
        assert!((empty - 4.6043).abs() < 1e-4, "{empty}");
        assert!((empty - expected).abs() < 1e-12, "{empty}");
    }

    #[test]
    fn deciles_bins_and_a_null_bin() {
        let sorted: Vec<f32> = (0..100).map(|v| v as f32).collect();
        // sorted[floor(i * 99 / 10)] for i = 1..9.
        assert_eq!(
            quantile_edges(&sorted, BINS),
            vec![9.0, 19.0, 29.0, 39.0, 49.0, 59.0, 69.0, 79.0, 89.0]
        );
        // Few distinct values: duplicate edges merge.
        assert_eq!(quantile_edges(&[0.0, 0.0, 1.0, 1.0], BINS), vec![0.0, 1.0]);
        let shares = bin_shares(&[0.0, 0.5, 1.0, f32::NAN], &[0.0, 1.0]);
        assert_eq!(shares, vec![0.0, 0.5, 0.25, 0.25]);
    }

    #[test]
    fn feature_drift_by_hand() {
        // Old [0, 0, 1, 1]: edges [0, 1], shares (below 0, [0,1), >= 1, null) = (0, .5, .5, 0).
        // New [1, 1, 1, null]: (0, 0, .75, .25).
        let d = feature_drift("x", &[0.0, 0.0, 1.0, 1.0], &[1.0, 1.0, 1.0, f32::NAN]);
        let e = EPSILON;
        let expected = (e - 0.5) * (e / 0.5f64).ln()
            + (0.75 - 0.5) * (0.75f64 / 0.5).ln()
            + (0.25 - e) * (0.25 / e).ln();
        assert!((d.psi - expected).abs() < 1e-12, "{} vs {expected}", d.psi);
        assert!((d.psi - 6.3143).abs() < 1e-3, "{}", d.psi);
        assert_eq!((d.null_rate_old, d.null_rate_new), (0.0, 0.25));
        // Old mean 0.5, sd 0.5; new mean 1 (of finite values): +1 sd.
        assert_eq!(d.mean_shift_sd, Some(1.0));
        let same = feature_drift("x", &[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]);
        assert_eq!((same.psi, same.mean_shift_sd), (0.0, Some(0.0)));
        let constant = feature_drift("x", &[2.0, 2.0], &[5.0, 5.0]);
        assert_eq!(constant.mean_shift_sd, None, "no sd to scale by");
        // A constant served column has one value bin: a new constant above it lands there too (documented).
        assert_eq!(constant.psi, 0.0);
    }

    #[test]
    fn samples_are_fixed_and_bounded() {
        let s = snapshot(0..1000, |i| [i as f32, 0.0]);
        let a = sample_rows(&s, 100, SEED);
        assert_eq!(a, sample_rows(&s, 100, SEED), "same seed, same sample");
        assert!(a.len() <= 100 && a.len() > 90 && a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample_rows(&s, 5000, SEED).len(), 1000, "small: every row");
        s.hide(&[0]);
        assert_eq!(
            sample_rows(&s, 5000, SEED).len(),
            999,
            "erased rows left out"
        );
    }

    struct Identity;
    impl SampleScorer for Identity {
        fn model(&self) -> &str {
            "first"
        }
        fn score(&self, s: &FeatureSnapshot, rows: &[usize]) -> Result<Vec<f32>, String> {
            Ok(rows.iter().map(|&r| s.row(r)[0]).collect())
        }
    }

    #[test]
    fn compare_finds_the_moved_feature_and_scores_common_customers() {
        let old = snapshot(0..2000, |i| [(i % 100) as f32, (i % 7) as f32]);
        // Half the customers are new; 'a' is scaled by 30 (months -> days), 'b' unchanged.
        let new = snapshot(1000..3000, |i| [30.0 * (i % 100) as f32, (i % 7) as f32]);
        let report = compare(&new, &old, Some(&Identity));
        assert_eq!(report.against, "s0");
        assert_eq!(
            (report.sample_rows_old, report.sample_rows_new),
            (2000, 2000)
        );
        let ranked = report.ranked();
        assert_eq!(ranked[0].feature, "a");
        assert!(ranked[0].psi > 1.0 && ranked[1].psi < 0.01, "{report:?}");
        assert_eq!(report.over(0.25).len(), 1);
        assert!(report.top(1).starts_with("a "), "{}", report.top(1));
        let score = report.score.as_ref().unwrap();
        assert_eq!(score.model, "first");
        assert!(score.customers > 0 && score.customers <= 1000, "{score:?}");
        assert!(score.psi > 1.0, "the score follows 'a'");
        let (n, o) = common_customers(&new, &old, 100, SEED);
        assert!(n.iter().zip(&o).all(|(n, o)| *n + 1000 == *o), "same ids");
        assert!(report.render().contains("score    first psi"));
        let none = compare(&new, &old, None);
        assert_eq!(none.score_note.as_deref(), Some("no churn model is served"));
    }
}
