//! The Shapley values of one leaf's game in path-dependent TreeSHAP: v · Π_j (j ∈ S ? o_j : z_j) over the d
//! distinct features of its path, in O(d²) for one mask of o values.

use super::trees::MAX_PATH_FEATURES;

/// Mask of the low `d` bits (all 64 when d = 64).
pub(crate) fn low_bits(d: usize) -> u64 {
    if d >= 64 { u64::MAX } else { (1u64 << d) - 1 }
}

/// Shapley values of one leaf's game v·Π_j (j ∈ S ? o_j : z_j) over its d = zs.len() path features, where bit j
/// of `mask` is o_j; written to `out[..d]`.
///
/// φ_j = v (o_j − z_j) Σ_k w(k) q_k, with w(k) = k!(d−k−1)!/d! and q_k the coefficient of t^k in
/// Π_{i≠j} (z_i + o_i t): the sum over coalitions of the other features, grouped by size. The full product is
/// built once (O(d²)) and each factor divided back out (O(d)), top-down for (z + t) so errors shrink by z ≤ 1.
pub(crate) fn leaf_shapley(value: f64, zs: &[f64], mask: u64, out: &mut [f64]) {
    let d = zs.len();
    if d == 0 {
        return;
    }
    let mut p = [0.0f64; MAX_PATH_FEATURES + 1];
    p[0] = 1.0;
    for (i, &z) in zs.iter().enumerate() {
        let one = mask >> i & 1 == 1;
        for k in (0..=i + 1).rev() {
            let shifted = if one && k > 0 { p[k - 1] } else { 0.0 };
            p[k] = p[k] * z + shifted;
        }
    }
    let mut w = [0.0f64; MAX_PATH_FEATURES];
    w[0] = 1.0 / d as f64;
    for k in 1..d {
        w[k] = w[k - 1] * k as f64 / (d - k) as f64;
    }
    let mut q = [0.0f64; MAX_PATH_FEATURES];
    for (j, &z) in zs.iter().enumerate() {
        let o = (mask >> j & 1) as f64;
        if o == 1.0 {
            q[d - 1] = p[d];
            for k in (1..d).rev() {
                q[k - 1] = p[k] - z * q[k];
            }
        } else {
            for k in 0..d {
                q[k] = p[k] / z;
            }
        }
        let sum: f64 = q[..d].iter().zip(&w[..d]).map(|(a, b)| a * b).sum();
        out[j] = value * (o - z) * sum;
    }
}
