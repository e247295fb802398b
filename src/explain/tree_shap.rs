//! Exact path-dependent TreeSHAP with covers counted from a reference sample. A leaf's Shapley values depend only
//! on which of its path's features the row satisfies (a bit mask), so a whole subtree's summed contributions
//! depend only on the mask at its root and its own split decisions: they are tabulated once per subtree where
//! that table is small, looked up per row with one index, and computed per leaf in O(d²) where it is not.
//!
//! The game: for a coalition S, tree value f(S) = Σ_leaves v · Π_{j on the leaf's path} (j ∈ S ? o_j : z_j), with
//! o_j = 1 when the row takes every split on j along the path, z_j = the product over those splits of
//! cover(child taken) / cover(node). That is Lundberg et al.'s Algorithm 2 (repeated features included) and
//! shap's `tree_path_dependent` output; features off a leaf's path are dummies for that leaf.

use super::ExplainError;
use super::ensemble::Mode;
use super::leaf::{leaf_shapley, low_bits};
use super::trees::{MAX_PATH_FEATURES, Tree, TreeModel};

/// Largest table of a subtree unit, in f64 entries (32 KiB): 2^(d + k) · u ≤ this. The shipped churn model gets
/// its 50 depth-1 subtrees as units (71k entries, 570 KiB, one lookup each); 8 KiB units measured ~20% slower
/// (twice the lookups), and bigger ones would leave the L2 cache.
const UNIT_MAX_ENTRIES: usize = 1 << 12;

/// Largest table of a lone leaf (80 KiB): 2^d · d ≤ this, so leaves are tabled up to d = 10 path features.
const LEAF_MAX_ENTRIES: usize = 10 << 10;

/// Table entries (f64) allowed per model, 32 MiB; beyond it leaves are computed per row.
const TABLE_BUDGET: usize = 1 << 22;

/// No precomputed table: a leaf whose Shapley values are computed per row.
const NO_TABLE: usize = usize::MAX;

/// A subtree whose summed contributions are looked up in one table. Its leaves' masks depend only on the mask at
/// its root (d prefix slots) and on the decisions of its k internal nodes, which are contiguous in preorder.
#[derive(Clone, Debug)]
struct Unit {
    /// Root node index in the tree.
    node: u32,
    /// Distinct features on the path above the root (the mask bits read at the root).
    d: u32,
    /// Internal nodes in the subtree (0 for a lone leaf).
    k: u32,
    /// Position of its first branch among the tree's inner branches (its decision bits start there).
    first: u32,
    /// Features the table has entries for.
    u: u32,
    /// Start of its `u` features in [`TreeShap::features`] (and, for a computed leaf, of its z fractions).
    at: u32,
    /// Start of its 2^(d + k) · u entries in [`TreeShap::table`], or [`NO_TABLE`] for a computed leaf.
    table: usize,
    /// The leaf's value, for a computed leaf.
    value: f64,
}

/// A leaf's path as TreeSHAP sees it: its distinct features in order of first split and their z fractions.
struct LeafPath {
    node: usize,
    value: f64,
    features: Vec<u32>,
    zeros: Vec<f64>,
}

/// One branch as the per-row walk reads it: compact, in visiting order.
#[derive(Clone, Copy, Debug)]
struct Step {
    threshold: f64,
    feature: u32,
    /// Its node index (for masks, and for comparisons other than the model-wide one).
    node: u32,
    yes: u32,
    no: u32,
    slot: u8,
    missing_true: bool,
}

/// Per tree: the branches above the units (they carry path masks down to the units' roots), the branches inside
/// tabled units (they only give decision bits, each unit's contiguous), and the units covering every leaf with a
/// nonzero value.
#[derive(Clone, Debug)]
struct ShapTree {
    upper: Vec<Step>,
    inner: Vec<Step>,
    units: Vec<Unit>,
}

/// TreeSHAP for one tree model and one reference sample.
#[derive(Clone, Debug)]
pub struct TreeShap {
    model: TreeModel,
    trees: Vec<ShapTree>,
    features: Vec<u32>,
    zeros: Vec<f64>,
    table: Vec<f64>,
    base_value: f64,
    reference_rows: usize,
    max_nodes: usize,
    max_words: usize,
}

impl TreeShap {
    /// Counts covers by routing every reference row through every tree, as the model routes them.
    ///
    /// cover(leaf) = rows reaching it + 1 and cover(node) = the sum of its children's: the one-row prior keeps
    /// every cover positive, so a leaf no reference row reaches still has a defined (small) weight, the z
    /// fractions never divide by zero, and an empty sample gives uniform split weights instead of no answer.
    pub fn new<'a>(
        model: &TreeModel,
        reference: impl Iterator<Item = &'a [f32]>,
    ) -> Result<TreeShap, ExplainError> {
        TreeShap::with_limits(model, reference, UNIT_MAX_ENTRIES, TABLE_BUDGET)
    }

    /// [`TreeShap::new`] with explicit table limits (tests force the per-row computation with a zero budget).
    pub(crate) fn with_limits<'a>(
        model: &TreeModel,
        reference: impl Iterator<Item = &'a [f32]>,
        unit_max_entries: usize,
        budget: usize,
    ) -> Result<TreeShap, ExplainError> {
        let mut counts: Vec<Vec<f64>> = model
            .trees
            .iter()
            .map(|t| vec![0.0; t.nodes.len()])
            .collect();
        let mut reference_rows = 0;
        for row in reference {
            model.check_row(row)?;
            for (tree, count) in model.trees.iter().zip(&mut counts) {
                count[model.leaf(tree, row)] += 1.0;
            }
            reference_rows += 1;
        }
        let max_nodes = model.trees.iter().map(|t| t.nodes.len()).max().unwrap_or(0);
        let mut shap = TreeShap {
            model: model.clone(),
            trees: Vec::with_capacity(model.trees.len()),
            features: Vec::new(),
            zeros: Vec::new(),
            table: Vec::new(),
            base_value: model.offset(),
            reference_rows,
            max_nodes,
            // One spare word so a decision window may always read the word after its first.
            max_words: max_nodes / 64 + 2,
        };
        let mut budget = budget;
        for (tree, count) in model.trees.iter().zip(counts) {
            let cover = covers(tree, count);
            let shap_tree = shap.add_tree(tree, &cover, unit_max_entries, &mut budget)?;
            shap.trees.push(shap_tree);
        }
        Ok(shap)
    }

    /// Walks one tree root to leaves (slots, z fractions, base value), then covers its leaves with units.
    fn add_tree(
        &mut self,
        tree: &Tree,
        cover: &[f64],
        unit_max_entries: usize,
        budget: &mut usize,
    ) -> Result<ShapTree, ExplainError> {
        let n = tree.nodes.len();
        let mut slot = vec![0u8; n];
        let mut prefix = vec![0u32; n];
        let mut paths: Vec<LeafPath> = Vec::new();
        // Preorder walk: (node, distinct features of the path above it, their z fractions).
        let mut stack: Vec<(usize, Vec<u32>, Vec<f64>)> = vec![(0, Vec::new(), Vec::new())];
        while let Some((i, mut feats, mut zs)) = stack.pop() {
            let node = &tree.nodes[i];
            prefix[i] = feats.len() as u32;
            if node.mode == Mode::Leaf {
                self.base_value += node.value * cover[i] / cover[0];
                paths.push(LeafPath {
                    node: i,
                    value: node.value,
                    features: feats,
                    zeros: zs,
                });
                continue;
            }
            let s = match feats.iter().position(|&f| f == node.feature) {
                Some(s) => s,
                None => {
                    if feats.len() == MAX_PATH_FEATURES {
                        return Err(ExplainError::Unsupported(format!(
                            "a tree path splits on more than {MAX_PATH_FEATURES} distinct features"
                        )));
                    }
                    feats.push(node.feature);
                    zs.push(1.0);
                    feats.len() - 1
                }
            };
            slot[i] = s as u8;
            // The yes child is popped first, matching the preorder layout (yes subtree right after its parent).
            for child in [node.no as usize, node.yes as usize] {
                let mut child_zs = zs.clone();
                child_zs[s] *= cover[child] / cover[i];
                stack.push((child, feats.clone(), child_zs));
            }
        }
        paths.sort_by_key(|p| p.node);
        let step = |i: usize| {
            let node = &tree.nodes[i];
            Step {
                threshold: node.value,
                feature: node.feature,
                node: i as u32,
                yes: node.yes,
                no: node.no,
                slot: slot[i],
                missing_true: node.missing_true,
            }
        };
        let mut shap_tree = ShapTree {
            upper: Vec::new(),
            inner: Vec::new(),
            units: Vec::new(),
        };
        let mut inside = vec![false; n];
        let size = subtree_sizes(tree);
        let mut todo = vec![0usize];
        while let Some(i) = todo.pop() {
            // A subtree is the node range i..end, and paths are sorted by leaf node.
            let end = i + size[i];
            let (from, to) = (
                paths.partition_point(|p| p.node < i),
                paths.partition_point(|p| p.node < end),
            );
            let leaves: Vec<&LeafPath> =
                paths[from..to].iter().filter(|p| p.value != 0.0).collect();
            if leaves.is_empty() {
                continue;
            }
            let node = &tree.nodes[i];
            let d = prefix[i] as usize;
            let branches: Vec<usize> = (i..end)
                .filter(|&j| tree.nodes[j].mode != Mode::Leaf)
                .collect();
            let k = branches.len();
            let limit = if node.mode == Mode::Leaf {
                unit_max_entries.max(LEAF_MAX_ENTRIES)
            } else {
                unit_max_entries
            };
            // Only a subtree with a chance of fitting gets its features gathered (big trees have many leaves).
            let mut feats: Vec<u32> = Vec::new();
            if d + k < 30 && 1usize << (d + k) <= limit {
                for p in &leaves {
                    for f in &p.features {
                        if !feats.contains(f) {
                            feats.push(*f);
                        }
                    }
                }
                if feats.is_empty() {
                    continue; // a one-leaf tree: its value is all base value
                }
            }
            let entries = (!feats.is_empty()).then(|| feats.len() << (d + k));
            match entries {
                Some(e) if e <= limit && e <= *budget => {
                    *budget -= e;
                    let first = shap_tree.inner.len();
                    shap_tree.inner.extend(branches.iter().map(|&j| step(j)));
                    inside[i..end].fill(true);
                    let unit =
                        self.fill_unit(tree, &slot, (i, end), (d, k, first), &feats, &leaves);
                    shap_tree.units.push(unit);
                }
                _ if node.mode == Mode::Leaf => {
                    let p = leaves[0];
                    let at = self.features.len() as u32;
                    self.features.extend_from_slice(&p.features);
                    self.zeros.extend_from_slice(&p.zeros);
                    let u = p.features.len() as u32;
                    shap_tree.units.push(Unit {
                        node: i as u32,
                        d: u,
                        k: 0,
                        first: 0,
                        u,
                        at,
                        table: NO_TABLE,
                        value: p.value,
                    });
                }
                _ => todo.extend([node.no as usize, node.yes as usize]),
            }
        }
        // Preorder, so a parent's mask is set before its children read it.
        shap_tree.upper = (0..n)
            .filter(|&i| tree.nodes[i].mode != Mode::Leaf && !inside[i])
            .map(step)
            .collect();
        Ok(shap_tree)
    }

    /// Tabulates the summed Shapley values of the subtree occupying nodes `root..end`, with `d` prefix slots and
    /// `k` branches whose decisions are bits `first..first + k` of the tree's inner decisions, for every
    /// (prefix mask, decisions) index.
    fn fill_unit(
        &mut self,
        tree: &Tree,
        slot: &[u8],
        (root, end): (usize, usize),
        (d, k, first): (usize, usize, usize),
        feats: &[u32],
        leaves: &[&LeafPath],
    ) -> Unit {
        let u = feats.len();
        let start = self.table.len();
        self.table.resize(start + (u << (d + k)), 0.0);
        // Each leaf's slots mapped to the unit's feature positions.
        let positions: Vec<Vec<usize>> = leaves
            .iter()
            .map(|p| {
                p.features
                    .iter()
                    .map(|f| feats.iter().position(|g| g == f).unwrap_or(0))
                    .collect()
            })
            .collect();
        let mut masks = vec![0u64; end - root];
        let mut phi = [0.0f64; MAX_PATH_FEATURES];
        for idx in 0..1usize << (d + k) {
            let mut decisions = idx & ((1 << k) - 1);
            masks[0] = (idx >> k) as u64 | !low_bits(d);
            // The unit's branches in preorder take decision bits 0, 1, 2, ... in turn.
            for i in root..end {
                let node = &tree.nodes[i];
                if node.mode == Mode::Leaf {
                    continue;
                }
                let m = masks[i - root];
                let off = m & !(1u64 << slot[i]);
                let yes = decisions & 1 == 1;
                decisions >>= 1;
                masks[node.yes as usize - root] = if yes { m } else { off };
                masks[node.no as usize - root] = if yes { off } else { m };
            }
            let row = &mut self.table[start + idx * u..][..u];
            for (p, pos) in leaves.iter().zip(&positions) {
                let dl = p.features.len();
                leaf_shapley(
                    p.value,
                    &p.zeros,
                    masks[p.node - root] & low_bits(dl),
                    &mut phi[..dl],
                );
                for (&j, &v) in pos.iter().zip(&phi[..dl]) {
                    row[j] += v;
                }
            }
        }
        let at = self.features.len() as u32;
        self.features.extend_from_slice(feats);
        self.zeros.extend(std::iter::repeat_n(0.0, u));
        Unit {
            node: root as u32,
            d: d as u32,
            k: k as u32,
            first: first as u32,
            u: u as u32,
            at,
            table: start,
            value: 0.0,
        }
    }

    /// Adds the row's contributions to `out` (one per feature; the caller zeroes it, or keeps a running sum).
    /// base_value() + Σ out = the model's margin for the row.
    pub fn explain(&self, row: &[f32], out: &mut [f64]) -> Result<(), ExplainError> {
        let mut scratch = self.scratch();
        self.explain_with(row, out, &mut scratch)
    }

    /// [`TreeShap::explain`] for `rows.len() / n_features` rows one after another; `out` is zeroed first and
    /// receives one block of n_features contributions per row.
    pub fn explain_rows(&self, rows: &[f32], out: &mut [f64]) -> Result<(), ExplainError> {
        let width = self.model.n_features();
        if width == 0 || !rows.len().is_multiple_of(width) || out.len() != rows.len() {
            return Err(ExplainError::RowWidth {
                expected: width,
                got: rows.len(),
            });
        }
        out.fill(0.0);
        let mut scratch = self.scratch();
        for (row, o) in rows.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            self.explain_with(row, o, &mut scratch)?;
        }
        Ok(())
    }

    fn scratch(&self) -> Vec<u64> {
        vec![0u64; self.max_nodes + self.max_words]
    }

    fn explain_with(
        &self,
        row: &[f32],
        out: &mut [f64],
        scratch: &mut [u64],
    ) -> Result<(), ExplainError> {
        self.model.check_row(row)?;
        if out.len() != row.len() {
            return Err(ExplainError::RowWidth {
                expected: row.len(),
                got: out.len(),
            });
        }
        let (masks, decisions) = scratch.split_at_mut(self.max_nodes);
        for (tree, shap) in self.model.trees.iter().zip(&self.trees) {
            masks[0] = u64::MAX;
            // One comparison for the whole model (the usual case) is hoisted out of the per-node loops.
            let (t, s, r) = (tree, shap, row);
            match self.model.uniform_mode() {
                Some(Mode::Leq) => {
                    decide(s, r, masks, decisions, |s, x| f64::from(x) <= s.threshold)
                }
                Some(Mode::Lt) => decide(s, r, masks, decisions, |s, x| f64::from(x) < s.threshold),
                Some(Mode::Gte) => {
                    decide(s, r, masks, decisions, |s, x| f64::from(x) >= s.threshold)
                }
                Some(Mode::Gt) => decide(s, r, masks, decisions, |s, x| f64::from(x) > s.threshold),
                _ => decide(s, r, masks, decisions, |s, x| {
                    self.model.goes_true(&t.nodes[s.node as usize], x)
                }),
            }
            for unit in &shap.units {
                let u = unit.u as usize;
                let feats = &self.features[unit.at as usize..][..u];
                let mask = masks[unit.node as usize] & low_bits(unit.d as usize);
                if unit.table != NO_TABLE {
                    let k = unit.k as usize;
                    let idx = (mask as usize) << k | window(decisions, unit.first as usize, k);
                    let entries = &self.table[unit.table + idx * u..][..u];
                    for (&f, &phi) in feats.iter().zip(entries) {
                        out[f as usize] += phi;
                    }
                } else {
                    let mut phi = [0.0; MAX_PATH_FEATURES];
                    let zs = &self.zeros[unit.at as usize..][..u];
                    leaf_shapley(unit.value, zs, mask, &mut phi[..u]);
                    for (&f, &p) in feats.iter().zip(&phi[..u]) {
                        out[f as usize] += p;
                    }
                }
            }
        }
        Ok(())
    }

    /// The expected margin over the reference sample's split proportions: Σ_trees Σ_leaves v·cover/cover(root)
    /// plus the model's base values.
    pub fn base_value(&self) -> f64 {
        self.base_value
    }

    /// The model explained.
    pub fn model(&self) -> &TreeModel {
        &self.model
    }

    /// How many reference rows the covers were counted from.
    pub fn reference_rows(&self) -> usize {
        self.reference_rows
    }

    /// (tabled units, leaves computed per row, table entries): how the work is split, for logs and tests.
    pub fn layout(&self) -> (usize, usize, usize) {
        let units = self.trees.iter().flat_map(|t| &t.units);
        let computed = units.clone().filter(|u| u.table == NO_TABLE).count();
        (units.count() - computed, computed, self.table.len())
    }
}

/// Evaluates every branch of a tree for `row`: the upper ones propagate path masks (a bit is cleared where the row
/// leaves the path at a split on that slot's feature, so at a unit root the mask holds the prefix o_j), the inner
/// ones give decision bits. `holds` is the comparison; ONNX Runtime's missing-value rule is applied here.
#[inline(always)]
fn decide(
    shap: &ShapTree,
    row: &[f32],
    masks: &mut [u64],
    decisions: &mut [u64],
    holds: impl Fn(&Step, f32) -> bool,
) {
    let goes_true = |s: &Step| {
        let x = row[s.feature as usize];
        holds(s, x) | (s.missing_true & x.is_nan())
    };
    // Selects by masking, not `if`: random rows would mispredict data-dependent branches.
    for s in &shap.upper {
        let m = masks[s.node as usize];
        let bit = 1u64 << s.slot;
        let all_if_yes = 0u64.wrapping_sub(u64::from(goes_true(s)));
        masks[s.yes as usize] = m & !(bit & !all_if_yes);
        masks[s.no as usize] = m & !(bit & all_if_yes);
    }
    // Bits gather in a register: a read-modify-write of memory per branch would chain each to the previous one.
    let mut word = 0u64;
    for (r, s) in shap.inner.iter().enumerate() {
        word |= u64::from(goes_true(s)) << (r & 63);
        if r & 63 == 63 {
            decisions[r >> 6] = word;
            word = 0;
        }
    }
    decisions[shap.inner.len() >> 6] = word;
}

/// The `k` decision bits starting at bit `first` (k < 64; the slice has a spare word at the end).
fn window(words: &[u64], first: usize, k: usize) -> usize {
    if k == 0 {
        return 0;
    }
    let (w, s) = (first >> 6, first & 63);
    let lo = words[w] >> s;
    let hi = if s + k > 64 {
        words[w + 1] << (64 - s)
    } else {
        0
    };
    ((lo | hi) & low_bits(k)) as usize
}

/// Node count of each node's subtree (preorder: a subtree is the range [i, i + size)).
fn subtree_sizes(tree: &Tree) -> Vec<usize> {
    let mut size = vec![1usize; tree.nodes.len()];
    for (i, node) in tree.nodes.iter().enumerate().rev() {
        if node.mode != Mode::Leaf {
            size[i] = 1 + size[node.yes as usize] + size[node.no as usize];
        }
    }
    size
}

/// Covers from leaf counts: leaves get count + 1, branches the sum of their children (children follow parents).
fn covers(tree: &Tree, mut count: Vec<f64>) -> Vec<f64> {
    for (i, node) in tree.nodes.iter().enumerate().rev() {
        count[i] = if node.mode == Mode::Leaf {
            count[i] + 1.0
        } else {
            count[node.yes as usize] + count[node.no as usize]
        };
    }
    count
}

#[cfg(test)]
#[path = "tree_shap_tests.rs"]
mod tests;
