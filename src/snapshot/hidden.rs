//! Rows of a served snapshot that must no longer be found (erased customers): while there are none, a lookup
//! pays one atomic load for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use hashbrown::HashSet;

/// The hidden rows of one snapshot; rows are only ever added (a snapshot never gets an erased customer back).
#[derive(Default)]
pub struct HiddenRows {
    /// Whether `rows` has any: the lookup's fast path.
    any: AtomicBool,
    rows: ArcSwap<HashSet<u32>>,
}

impl HiddenRows {
    /// Whether `row` is hidden.
    #[inline]
    pub fn contains(&self, row: usize) -> bool {
        // Acquire pairs with the Release in `insert`: a lookup that sees the flag sees the set that set it.
        self.any.load(Ordering::Acquire) && self.rows.load().contains(&(row as u32))
    }

    /// Number of hidden rows.
    pub fn len(&self) -> usize {
        if self.any.load(Ordering::Acquire) {
            self.rows.load().len()
        } else {
            0
        }
    }

    /// Whether no row is hidden.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hides `rows`; returns how many were not hidden before.
    pub fn insert(&self, rows: &[usize]) -> usize {
        if rows.is_empty() {
            return 0;
        }
        let mut added = 0;
        self.rows.rcu(|current| {
            let mut next = HashSet::clone(current);
            added = rows.iter().filter(|&&r| next.insert(r as u32)).count();
            Arc::new(next)
        });
        self.any.store(true, Ordering::Release);
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_hidden_once() {
        let hidden = HiddenRows::default();
        assert!(!hidden.contains(3) && hidden.is_empty());
        assert_eq!(hidden.insert(&[3, 5]), 2);
        assert_eq!(hidden.insert(&[5, 7]), 1, "5 was hidden already");
        assert!(hidden.contains(3) && hidden.contains(7) && !hidden.contains(4));
        assert_eq!(hidden.len(), 3);
    }
}
