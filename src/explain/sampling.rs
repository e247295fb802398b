//! The pure parts of the sampling Shapley estimator for graphs that are not tree ensembles: the reference row,
//! a reproducible plan of antithetic feature permutations, the rows to run through the model, and the estimate
//! from the margins the caller computed for them. Running the model is the caller's job.
//!
//! The value of a coalition S is the model's margin on the row that takes x's values for S and the reference
//! row's elsewhere (baseline Shapley). Every permutation's marginal contributions telescope to
//! margin(x) − margin(reference), so base + Σ contributions = margin(x) whatever the sample; only how the total
//! is split between features carries sampling error, which `error_bound` reports.

use super::ExplainError;

/// Default number of antithetic permutation pairs: 128 orders, so 2 + 128·(F − 1) model rows per explained row
/// (2,562 for 21 features). The error bound shrinks as 1/√pairs: four times the pairs halve it.
pub const DEFAULT_PAIRS: usize = 64;

/// Default cap on the rows the reference row and tree covers are computed from.
pub const DEFAULT_MAX_REFERENCE_ROWS: usize = 100_000;

/// splitmix64 (Steele, Lea, Flood 2014): small, seedable, and the same on every platform, so plans reproduce.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n) by Lemire's multiply-shift (bias below 2^-64 · n, irrelevant here); 0 when n = 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Per feature the lower median of the non-NaN values (sorted, index (n − 1) / 2; NaN when a column has none).
/// Cells past a row's end count as missing, cells past `width` are ignored.
pub fn reference_row<'a>(rows: impl Iterator<Item = &'a [f32]>, width: usize) -> Vec<f32> {
    let mut columns: Vec<Vec<f32>> = vec![Vec::new(); width];
    for row in rows {
        for (column, &v) in columns.iter_mut().zip(row) {
            if !v.is_nan() {
                column.push(v);
            }
        }
    }
    columns
        .into_iter()
        .map(|mut c| {
            if c.is_empty() {
                return f32::NAN;
            }
            let k = (c.len() - 1) / 2;
            *c.select_nth_unstable_by(k, f32::total_cmp).1
        })
        .collect()
}

/// Which rows of a table of `n_rows` feed the reference row and the covers: all of them up to `max_rows`, else a
/// uniform sample of `max_rows` without replacement (selection sampling, Knuth's Algorithm S), ascending.
pub fn reference_sample(n_rows: usize, max_rows: usize, seed: u64) -> Vec<usize> {
    if n_rows <= max_rows {
        return (0..n_rows).collect();
    }
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(max_rows);
    for i in 0..n_rows {
        let needed = max_rows - out.len();
        if needed == 0 {
            break;
        }
        if rng.below((n_rows - i) as u64) < needed as u64 {
            out.push(i);
        }
    }
    out
}

/// `pairs` random feature orders and their reverses (antithetic: a feature early in one is late in the other,
/// which cancels much of the order effect), drawn from a fixed seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermutationPlan {
    n_features: usize,
    pairs: usize,
    /// 2·pairs orders of n_features indices: order 2i is drawn, order 2i + 1 is its reverse.
    orders: Vec<u32>,
}

impl PermutationPlan {
    /// The plan for rows of `n_features`, with `pairs` antithetic pairs, from `seed`.
    pub fn new(n_features: usize, pairs: usize, seed: u64) -> PermutationPlan {
        let mut rng = SplitMix64::new(seed);
        let mut orders = Vec::with_capacity(2 * pairs * n_features);
        for _ in 0..pairs {
            let start = orders.len();
            orders.extend(0..n_features as u32);
            let order = &mut orders[start..];
            for i in (1..n_features).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            orders.extend_from_within(start..start + n_features);
            orders[start + n_features..].reverse();
        }
        PermutationPlan {
            n_features,
            pairs,
            orders,
        }
    }

    /// Features per row.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Antithetic pairs.
    pub fn pairs(&self) -> usize {
        self.pairs
    }

    /// The k-th feature order.
    pub fn order(&self, k: usize) -> &[u32] {
        &self.orders[k * self.n_features..][..self.n_features]
    }

    /// Rows [`fill_rows`] appends per explained row: 2 + 2·pairs·(F − 1) (none when F = 0).
    pub fn rows_per_explanation(&self) -> usize {
        if self.n_features == 0 {
            0
        } else {
            2 + 2 * self.pairs * (self.n_features - 1)
        }
    }
}

/// Appends the rows to evaluate for `x`: the reference row, then x itself, then for each order the F − 1 rows
/// obtained by switching features from the reference to x one at a time in that order (the F-th switch gives x,
/// shared by every order, so it is not repeated).
pub fn fill_rows(
    plan: &PermutationPlan,
    x: &[f32],
    reference: &[f32],
    out: &mut Vec<f32>,
) -> Result<(), ExplainError> {
    let f = plan.n_features;
    for got in [x.len(), reference.len()] {
        if got != f {
            return Err(ExplainError::RowWidth { expected: f, got });
        }
    }
    if f == 0 {
        return Ok(());
    }
    out.reserve(plan.rows_per_explanation() * f);
    out.extend_from_slice(reference);
    out.extend_from_slice(x);
    let mut row = vec![0.0f32; f];
    for k in 0..2 * plan.pairs {
        row.copy_from_slice(reference);
        for &j in &plan.order(k)[..f - 1] {
            row[j as usize] = x[j as usize];
            out.extend_from_slice(&row);
        }
    }
    Ok(())
}

/// A sampled explanation of one row.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Mean marginal contribution of each feature over the orders.
    pub contributions: Vec<f64>,
    /// margin(reference): the value with no feature taken from x.
    pub base_value: f64,
    /// Per feature, the 95% half-width 1.96·sd/√pairs over the antithetic pair averages: the true baseline
    /// Shapley value lies within contributions ± error_bound with about 95% confidence (infinite with one pair).
    pub error_bound: Vec<f64>,
}

/// Contributions from the margins of the rows [`fill_rows`] laid out, in the same order.
pub fn estimate(plan: &PermutationPlan, margins: &[f64]) -> Result<Estimate, ExplainError> {
    let f = plan.n_features;
    if margins.len() != plan.rows_per_explanation() {
        return Err(ExplainError::Margins {
            expected: plan.rows_per_explanation(),
            got: margins.len(),
        });
    }
    if f == 0 {
        return Ok(Estimate {
            contributions: vec![],
            base_value: 0.0,
            error_bound: vec![],
        });
    }
    let (base, full) = (margins[0], margins[1]);
    let mut sum = vec![0.0f64; f];
    let mut sum_sq = vec![0.0f64; f];
    let mut pair = vec![0.0f64; f];
    for p in 0..plan.pairs {
        pair.fill(0.0);
        for k in [2 * p, 2 * p + 1] {
            let inner = &margins[2 + k * (f - 1)..][..f - 1];
            let mut prev = base;
            for (i, &j) in plan.order(k).iter().enumerate() {
                let cur = if i + 1 == f { full } else { inner[i] };
                pair[j as usize] += 0.5 * (cur - prev);
                prev = cur;
            }
        }
        for j in 0..f {
            sum[j] += pair[j];
            sum_sq[j] += pair[j] * pair[j];
        }
    }
    let n = plan.pairs as f64;
    let contributions: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let error_bound = if plan.pairs < 2 {
        vec![f64::INFINITY; f]
    } else {
        sum.iter()
            .zip(&sum_sq)
            .map(|(s, q)| {
                let var = ((q - s * s / n) / (n - 1.0)).max(0.0);
                1.96 * (var / n).sqrt()
            })
            .collect()
    };
    Ok(Estimate {
        contributions,
        base_value: base,
        error_bound,
    })
}

/// log(p / (1 − p)) with p clamped to [1e-7, 1 − 1e-7], so certain predictions stay finite.
pub fn logit(p: f32) -> f64 {
    let p = f64::from(p).clamp(1e-7, 1.0 - 1e-7);
    p.ln() - (-p).ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        plan: &PermutationPlan,
        x: &[f32],
        reference: &[f32],
        model: impl Fn(&[f32]) -> f64,
    ) -> Estimate {
        let mut rows = Vec::new();
        fill_rows(plan, x, reference, &mut rows).expect("widths match");
        assert_eq!(rows.len(), plan.rows_per_explanation() * plan.n_features());
        let margins: Vec<f64> = rows.chunks_exact(plan.n_features()).map(&model).collect();
        estimate(plan, &margins).expect("margins match")
    }

    #[test]
    fn linear_margin_is_exact_with_zero_bound() {
        let beta = [0.5, -2.0, 3.0, 0.0, 1.25];
        let linear = |r: &[f32]| {
            0.3 + r
                .iter()
                .zip(beta)
                .map(|(&v, b)| f64::from(v) * b)
                .sum::<f64>()
        };
        let x = [1.0f32, 2.0, -1.0, 4.0, 0.5];
        let reference = [0.0f32, 1.0, 1.0, 2.0, -0.5];
        let plan = PermutationPlan::new(5, 8, 7);
        let e = run(&plan, &x, &reference, linear);
        for j in 0..5 {
            let exact = beta[j] * f64::from(x[j] - reference[j]);
            assert!((e.contributions[j] - exact).abs() < 1e-12, "feature {j}");
            assert!(
                e.error_bound[j].abs() < 1e-9,
                "bound {j} = {}",
                e.error_bound[j]
            );
        }
        assert!((e.base_value - linear(&reference)).abs() < 1e-12);
    }

    #[test]
    fn additivity_holds_and_nonlinear_bound_is_positive() {
        let model = |r: &[f32]| {
            let v: Vec<f64> = r.iter().map(|&v| f64::from(v)).collect();
            (v[0] * v[1]).sin() + v[2] * v[3] * v[0] + (v[1] - v[3]).max(0.0)
        };
        let x = [1.5f32, -0.5, 2.0, 0.7];
        let reference = [0.1f32, 0.9, -1.0, 0.0];
        let plan = PermutationPlan::new(4, 16, 42);
        let e = run(&plan, &x, &reference, model);
        let total = e.base_value + e.contributions.iter().sum::<f64>();
        assert!(
            (total - model(&x)).abs() < 1e-12,
            "additivity: {total} vs {}",
            model(&x)
        );
        assert!(
            e.error_bound.iter().any(|&b| b > 1e-6),
            "{:?}",
            e.error_bound
        );
    }

    #[test]
    fn plan_is_deterministic_and_antithetic() {
        let a = PermutationPlan::new(9, 5, 123);
        assert_eq!(a, PermutationPlan::new(9, 5, 123));
        assert_ne!(a, PermutationPlan::new(9, 5, 124));
        for p in 0..5 {
            let mut back = a.order(2 * p + 1).to_vec();
            back.reverse();
            assert_eq!(a.order(2 * p), back.as_slice());
            let mut sorted = back.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..9).collect::<Vec<u32>>(), "a permutation");
        }
        assert!(fill_rows(&a, &[0.0; 8], &[0.0; 9], &mut Vec::new()).is_err());
        assert!(estimate(&a, &[0.0; 3]).is_err());
    }

    #[test]
    fn reference_row_is_the_lower_median() {
        let rows: Vec<Vec<f32>> = vec![
            vec![4.0, f32::NAN, 1.0],
            vec![1.0, f32::NAN, 2.0],
            vec![3.0, f32::NAN, f32::NAN],
            vec![2.0, f32::NAN],
        ];
        let r = reference_row(rows.iter().map(Vec::as_slice), 3);
        assert_eq!(r[0], 2.0, "sorted 1,2,3,4: index (4-1)/2 = 1");
        assert!(r[1].is_nan(), "all missing");
        assert_eq!(r[2], 1.0, "sorted 1,2: index 0");
    }

    #[test]
    fn reference_sample_is_sorted_unique_and_seeded() {
        assert_eq!(reference_sample(5, 10, 1), vec![0, 1, 2, 3, 4]);
        let s = reference_sample(1000, 100, 9);
        assert_eq!(s.len(), 100);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(*s.last().unwrap_or(&0) < 1000);
        assert_eq!(s, reference_sample(1000, 100, 9));
        assert_ne!(s, reference_sample(1000, 100, 10));
    }

    #[test]
    fn logit_clamps() {
        assert!((logit(0.5)).abs() < 1e-12);
        assert!((logit(1.0) - (1.0f64 - 1e-7).ln() + (1e-7f64).ln()).abs() < 1e-6);
        assert!(logit(0.0).is_finite());
    }
}
