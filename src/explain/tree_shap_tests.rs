//! TreeSHAP against a brute-force Shapley computation: random trees (repeated features, NaN routing, every
//! comparison mode, AVERAGE), the value function evaluated by its recursive definition over all 2^F coalitions.

use super::*;
use crate::explain::ensemble::{Aggregate, FlatEnsemble, FlatNode, Op, Post};
use crate::explain::sampling::SplitMix64;

const GRID: [f32; 5] = [-1.0, 0.0, 0.5, 1.0, 2.0];

fn unit(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A random tree under `at`, appended to `nodes`; returns its index.
fn grow(rng: &mut SplitMix64, nodes: &mut Vec<FlatNode>, n_features: usize, depth: usize) -> usize {
    let here = nodes.len();
    let leaf = depth == 0 || (depth < 5 && rng.below(4) == 0);
    // Some zero leaves: they are left out of the tables, which must still index their whole subtree.
    let weight = if rng.below(6) == 0 {
        0.0
    } else {
        unit(rng) * 4.0 - 2.0
    };
    nodes.push(FlatNode::leaf(vec![(0, weight)]));
    if leaf {
        return here;
    }
    let modes = [
        Mode::Leq,
        Mode::Lt,
        Mode::Leq,
        Mode::Lt,
        Mode::Gte,
        Mode::Gt,
        Mode::Eq,
        Mode::Neq,
    ];
    let yes = grow(rng, nodes, n_features, depth - 1);
    let no = grow(rng, nodes, n_features, depth - 1);
    nodes[here] = FlatNode {
        mode: modes[rng.below(modes.len() as u64) as usize],
        // Few features, so paths repeat them often.
        feature: rng.below(n_features as u64) as i64,
        threshold: f64::from(GRID[rng.below(GRID.len() as u64) as usize]),
        yes,
        no,
        missing_true: rng.below(2) == 0,
        set: 0,
        weights: vec![],
    };
    here
}

fn random_row(rng: &mut SplitMix64, n_features: usize) -> Vec<f32> {
    (0..n_features)
        .map(|_| match rng.below(7) {
            0 => f32::NAN,
            _ => GRID[rng.below(GRID.len() as u64) as usize],
        })
        .collect()
}

fn random_model(rng: &mut SplitMix64, n_features: usize) -> TreeModel {
    let mut nodes = Vec::new();
    let mut roots = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let depth = 1 + rng.below(6) as usize;
        roots.push(grow(rng, &mut nodes, n_features, depth));
    }
    let flat = FlatEnsemble {
        op: Op::Regressor { n_targets: 1 },
        nodes,
        roots,
        sets: vec![],
        base_values: vec![unit(rng) - 0.5],
        aggregate: if rng.below(2) == 0 {
            Aggregate::Sum
        } else {
            Aggregate::Average
        },
        post: Post::None,
    };
    TreeModel::build(&flat, n_features, 1, 0).expect("random model builds")
}

/// E[f | x_S] by its recursive definition (Lundberg et al., Algorithm 1): a split on a feature in S follows x,
/// any other split averages both children weighted by cover.
fn expectation(
    model: &TreeModel,
    tree: &Tree,
    cover: &[f64],
    i: usize,
    row: &[f32],
    s: u32,
) -> f64 {
    let node = &tree.nodes[i];
    if node.mode == Mode::Leaf {
        return node.value;
    }
    let (yes, no) = (node.yes as usize, node.no as usize);
    if s >> node.feature & 1 == 1 {
        let next = if model.goes_true(node, row[node.feature as usize]) {
            yes
        } else {
            no
        };
        expectation(model, tree, cover, next, row, s)
    } else {
        (cover[yes] * expectation(model, tree, cover, yes, row, s)
            + cover[no] * expectation(model, tree, cover, no, row, s))
            / cover[i]
    }
}

/// Brute-force Shapley values over all 2^F coalitions; returns (value of the empty coalition, φ).
fn brute_force(model: &TreeModel, reference: &[Vec<f32>], row: &[f32]) -> (f64, Vec<f64>) {
    let f = model.n_features();
    let covers: Vec<Vec<f64>> = model
        .trees
        .iter()
        .map(|t| {
            let mut count = vec![0.0; t.nodes.len()];
            for r in reference {
                count[model.leaf(t, r)] += 1.0;
            }
            covers(t, count)
        })
        .collect();
    let value = |s: u32| -> f64 {
        model.offset()
            + model
                .trees
                .iter()
                .zip(&covers)
                .map(|(t, c)| expectation(model, t, c, 0, row, s))
                .sum::<f64>()
    };
    let values: Vec<f64> = (0..1u32 << f).map(value).collect();
    let fact = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
    let mut phi = vec![0.0; f];
    for (j, p) in phi.iter_mut().enumerate() {
        for s in 0..1u32 << f {
            if s >> j & 1 == 0 {
                let k = s.count_ones() as usize;
                *p += fact(k) * fact(f - k - 1) / fact(f)
                    * (values[(s | 1 << j) as usize] - values[s as usize]);
            }
        }
    }
    (values[0], phi)
}

#[test]
fn random_trees_match_brute_force_shapley() {
    let mut rng = SplitMix64::new(2026);
    for case in 0..60 {
        let n_features = 1 + rng.below(8) as usize;
        let model = random_model(&mut rng, n_features);
        let reference: Vec<Vec<f32>> = (0..rng.below(60))
            .map(|_| random_row(&mut rng, n_features))
            .collect();
        let shap = TreeShap::new(&model, reference.iter().map(Vec::as_slice)).expect("covers");
        for _ in 0..4 {
            let row = random_row(&mut rng, n_features);
            let (empty, want) = brute_force(&model, &reference, &row);
            let mut got = vec![0.0; n_features];
            shap.explain(&row, &mut got).expect("explains");
            for j in 0..n_features {
                assert!(
                    (got[j] - want[j]).abs() < 1e-9,
                    "case {case} feature {j}: {} vs {}",
                    got[j],
                    want[j]
                );
            }
            assert!(
                (shap.base_value() - empty).abs() < 1e-9,
                "case {case}: base {} vs {empty}",
                shap.base_value()
            );
            let margin = model.margin(&row).expect("width");
            let total = shap.base_value() + got.iter().sum::<f64>();
            assert!(
                (total - margin).abs() < 1e-9,
                "case {case}: additivity {total} vs {margin}"
            );
        }
    }
}

#[test]
fn tables_and_per_row_computation_agree() {
    let mut rng = SplitMix64::new(77);
    for _ in 0..20 {
        let n_features = 1 + rng.below(8) as usize;
        let model = random_model(&mut rng, n_features);
        let reference: Vec<Vec<f32>> = (0..30).map(|_| random_row(&mut rng, n_features)).collect();
        let rows = || reference.iter().map(Vec::as_slice);
        let units = TreeShap::new(&model, rows()).expect("covers");
        let (tabled, computed, _) = units.layout();
        assert!(
            tabled > 0 && computed == 0,
            "small trees are fully tabled: {:?}",
            units.layout()
        );
        // Whole trees as single units where they fit, and no table at all.
        let big = TreeShap::with_limits(&model, rows(), 1 << 16, TABLE_BUDGET).expect("covers");
        let none = TreeShap::with_limits(&model, rows(), UNIT_MAX_ENTRIES, 0).expect("covers");
        assert_eq!(none.layout().0, 0);
        for _ in 0..5 {
            let row = random_row(&mut rng, n_features);
            let mut got = [
                vec![0.0; n_features],
                vec![0.0; n_features],
                vec![0.0; n_features],
            ];
            for (shap, out) in [&units, &big, &none].into_iter().zip(&mut got) {
                shap.explain(&row, out).expect("explains");
            }
            for j in 0..n_features {
                assert!((got[0][j] - got[1][j]).abs() < 1e-12, "{:?}", got);
                assert!((got[0][j] - got[2][j]).abs() < 1e-12, "{:?}", got);
            }
        }
    }
}

#[test]
fn decision_windows_cross_word_boundaries() {
    let words = [0xF000_0000_0000_0000u64, 0b1011, 0];
    assert_eq!(window(&words, 60, 8), 0b1011_1111);
    assert_eq!(window(&words, 62, 2), 0b11);
    assert_eq!(window(&words, 64, 4), 0b1011);
    assert_eq!(window(&words, 5, 0), 0);
}

#[test]
fn leaf_shapley_matches_enumeration_of_the_product_game() {
    let mut rng = SplitMix64::new(5);
    for d in 1..=12usize {
        let zs: Vec<f64> = (0..d).map(|_| 0.02 + 0.98 * unit(&mut rng)).collect();
        let mask = rng.next_u64() & low_bits(d);
        let mut got = vec![0.0; d];
        leaf_shapley(1.7, &zs, mask, &mut got);
        let game = |s: u64| -> f64 {
            1.7 * (0..d)
                .map(|i| {
                    if s >> i & 1 == 1 {
                        (mask >> i & 1) as f64
                    } else {
                        zs[i]
                    }
                })
                .product::<f64>()
        };
        let fact = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
        for (j, &g) in got.iter().enumerate() {
            let mut want = 0.0;
            for s in 0..1u64 << d {
                if s >> j & 1 == 0 {
                    let k = s.count_ones() as usize;
                    want += fact(k) * fact(d - k - 1) / fact(d) * (game(s | 1 << j) - game(s));
                }
            }
            assert!((g - want).abs() < 1e-12, "d={d} j={j}: {g} vs {want}");
        }
    }
}

#[test]
fn long_paths_use_the_on_the_fly_computation() {
    // A chain of 12 splits on 12 distinct features, branch j at index 2j with a leaf beside it.
    let n_features = 12;
    let mut nodes = Vec::new();
    for j in 0..n_features {
        nodes.push(FlatNode {
            mode: Mode::Leq,
            feature: j as i64,
            threshold: 0.5,
            yes: 2 * j + 2,
            no: 2 * j + 1,
            missing_true: j % 2 == 0,
            set: 0,
            weights: vec![],
        });
        nodes.push(FlatNode::leaf(vec![(0, j as f64 - 5.0)]));
    }
    nodes.push(FlatNode::leaf(vec![(0, 9.0)]));
    let flat = FlatEnsemble {
        op: Op::Regressor { n_targets: 1 },
        nodes,
        roots: vec![0],
        sets: vec![],
        base_values: vec![],
        aggregate: Aggregate::Sum,
        post: Post::None,
    };
    let model = TreeModel::build(&flat, n_features, 1, 0).expect("builds");
    assert_eq!(model.max_depth(), 12);
    let mut rng = SplitMix64::new(12);
    let reference: Vec<Vec<f32>> = (0..200)
        .map(|_| {
            (0..n_features)
                .map(|_| if rng.below(5) == 0 { 1.0 } else { 0.0 })
                .collect()
        })
        .collect();
    let shap = TreeShap::new(&model, reference.iter().map(Vec::as_slice)).expect("covers");
    // Leaves below splits 10 and 11 and the deepest one have 11 or 12 path features: too many for a table.
    assert_eq!(
        shap.layout().1,
        3,
        "only leaves with more than 10 path features are computed per row"
    );
    for _ in 0..5 {
        let row: Vec<f32> = (0..n_features)
            .map(|_| [0.0, 1.0, f32::NAN][rng.below(3) as usize])
            .collect();
        let (_, want) = brute_force(&model, &reference, &row);
        let mut got = vec![0.0; n_features];
        shap.explain(&row, &mut got).expect("explains");
        for j in 0..n_features {
            assert!(
                (got[j] - want[j]).abs() < 1e-9,
                "feature {j}: {} vs {}",
                got[j],
                want[j]
            );
        }
    }
}

#[test]
fn explain_rows_matches_explain_and_checks_widths() {
    let mut rng = SplitMix64::new(3);
    let model = random_model(&mut rng, 4);
    let shap =
        TreeShap::new(&model, std::iter::empty::<&[f32]>()).expect("no reference rows is fine");
    let rows: Vec<f32> = (0..3).flat_map(|_| random_row(&mut rng, 4)).collect();
    let mut batch = vec![1.0; 12];
    shap.explain_rows(&rows, &mut batch).expect("explains");
    for (row, got) in rows.chunks(4).zip(batch.chunks(4)) {
        let mut one = vec![0.0; 4];
        shap.explain(row, &mut one).expect("explains");
        assert_eq!(one, got);
    }
    assert!(shap.explain(&[0.0; 3], &mut [0.0; 3]).is_err());
    assert!(shap.explain_rows(&rows[..5], &mut batch[..5]).is_err());
}

#[test]
fn deep_trees_mix_tables_and_per_row_computation() {
    // Trees of depth 10 over 24 features: too many coalitions to enumerate, so the check is additivity and
    // agreement between a budget that runs out part-way (tables, then per-row leaves) and no tables at all.
    let mut rng = SplitMix64::new(10);
    let n_features = 24;
    let mut nodes = Vec::new();
    let roots = (0..4)
        .map(|_| grow(&mut rng, &mut nodes, n_features, 10))
        .collect();
    let flat = FlatEnsemble {
        op: Op::Regressor { n_targets: 1 },
        nodes,
        roots,
        sets: vec![],
        base_values: vec![0.5],
        aggregate: Aggregate::Sum,
        post: Post::None,
    };
    let model = TreeModel::build(&flat, n_features, 1, 0).expect("builds");
    let reference: Vec<Vec<f32>> = (0..500).map(|_| random_row(&mut rng, n_features)).collect();
    let rows = || reference.iter().map(Vec::as_slice);
    let mixed = TreeShap::with_limits(&model, rows(), UNIT_MAX_ENTRIES, 40_000).expect("covers");
    let (tabled, computed, entries) = mixed.layout();
    assert!(
        tabled > 0 && computed > 0 && entries <= 40_000,
        "{:?}",
        mixed.layout()
    );
    let none = TreeShap::with_limits(&model, rows(), UNIT_MAX_ENTRIES, 0).expect("covers");
    for _ in 0..20 {
        let row = random_row(&mut rng, n_features);
        let (mut a, mut b) = (vec![0.0; n_features], vec![0.0; n_features]);
        mixed.explain(&row, &mut a).expect("explains");
        none.explain(&row, &mut b).expect("explains");
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-9, "{x} vs {y}");
        }
        let total = mixed.base_value() + a.iter().sum::<f64>();
        let margin = model.margin(&row).expect("width");
        assert!(
            (total - margin).abs() < 1e-9,
            "additivity: {total} vs {margin}"
        );
    }
}
