//! The replay window of outcome event ids: an id recorded on one of the last `days` UTC days (by recorded day)
//! is a duplicate. Ids are kept as 128-bit hashes, one set per day, at most `max_ids` in all (past it the
//! oldest days are forgotten first), so memory stays bounded.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};

/// The event ids seen in the window.
pub struct Dedup {
    days: usize,
    max_ids: usize,
    /// (day, ids) oldest first.
    sets: VecDeque<(String, HashSet<u128>)>,
    len: usize,
}

/// A 128-bit hash of an id (two independent 64-bit SipHashes; a false duplicate is out of reach).
pub fn fingerprint(id: &str) -> u128 {
    let half = |seed: u64| {
        let mut h =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .build_hasher();
        h.write_u64(seed);
        h.write(id.as_bytes());
        h.finish()
    };
    (u128::from(half(0x5eed_0001)) << 64) | u128::from(half(0x5eed_0002))
}

impl Dedup {
    /// An empty window of `days` days and at most `max_ids` ids.
    pub fn new(days: usize, max_ids: usize) -> Dedup {
        Dedup {
            days: days.max(1),
            max_ids: max_ids.max(1),
            sets: VecDeque::new(),
            len: 0,
        }
    }

    /// Ids held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `id` was recorded within the window.
    pub fn contains(&self, id: u128) -> bool {
        self.sets.iter().any(|(_, set)| set.contains(&id))
    }

    /// Records `id` as seen on `day` (`YYYY-MM-DD`); false when it was already there.
    pub fn insert(&mut self, day: &str, id: u128) -> bool {
        if self.contains(id) {
            return false;
        }
        if self.sets.back().is_none_or(|(d, _)| d.as_str() < day) {
            self.sets.push_back((day.to_string(), HashSet::new()));
        }
        // A day older than the newest (an old folder loaded at start) goes to its own set when there is one.
        let set = match self.sets.iter_mut().rev().find(|(d, _)| d.as_str() <= day) {
            Some((_, set)) => set,
            None => match self.sets.back_mut() {
                Some((_, set)) => set,
                None => return true,
            },
        };
        set.insert(id);
        self.len += 1;
        self.evict();
        true
    }

    /// Forgets `id` (its write failed: a retry must store it).
    pub fn remove(&mut self, id: u128) {
        for (_, set) in self.sets.iter_mut() {
            if set.remove(&id) {
                self.len -= 1;
                return;
            }
        }
    }

    /// Drops days past the window, then the oldest days while over the id limit (the newest day is cleared as a
    /// last resort: replays older than that are then stored again).
    fn evict(&mut self) {
        while self.sets.len() > self.days {
            self.drop_oldest();
        }
        while self.len > self.max_ids {
            if self.sets.len() > 1 {
                self.drop_oldest();
            } else if let Some((_, set)) = self.sets.back_mut() {
                self.len -= set.len();
                set.clear();
            }
        }
    }

    fn drop_oldest(&mut self) {
        if let Some((_, set)) = self.sets.pop_front() {
            self.len -= set.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_seen_once_within_the_window() {
        let mut d = Dedup::new(2, 100);
        assert!(d.insert("2026-11-30", fingerprint("a")));
        assert!(!d.insert("2026-11-30", fingerprint("a")));
        assert!(!d.insert("2026-12-01", fingerprint("a")));
        assert!(d.insert("2026-12-01", fingerprint("b")));
        // A third day pushes the first out of a two-day window.
        assert!(d.insert("2026-12-02", fingerprint("c")));
        assert!(d.insert("2026-12-02", fingerprint("a")));
        assert!(!d.insert("2026-12-02", fingerprint("b")));
        assert_ne!(fingerprint("a"), fingerprint("b"));
    }

    #[test]
    fn memory_is_bounded_by_max_ids() {
        let mut d = Dedup::new(7, 10);
        for i in 0..25 {
            d.insert(
                &format!("2026-11-{:02}", 1 + i / 5),
                fingerprint(&i.to_string()),
            );
            assert!(d.len() <= 10);
        }
        assert!(d.contains(fingerprint("24")));
    }
}
