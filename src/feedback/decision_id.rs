//! Decision ids: time-ordered 128-bit ids as 26 Crockford base32 characters (ULID layout: 48 bits of Unix
//! milliseconds, then 80 bits of a per-process random start plus a counter), one atomic add per reply.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// One decision id (copied into replies without allocating).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DecisionId([u8; 26]);

impl DecisionId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Built only from ALPHABET: always ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    fn encode(value: u128) -> DecisionId {
        let mut out = [0u8; 26];
        for (i, byte) in out.iter_mut().enumerate() {
            let shift = 5 * (25 - i);
            *byte = ALPHABET[((value >> shift) & 31) as usize];
        }
        DecisionId(out)
    }

    /// Whether this id falls in a sample of `rate` (0..=1), decided by its random bits: the same id is always
    /// in or out.
    pub fn sampled(&self, rate: f64) -> bool {
        if rate >= 1.0 {
            return true;
        }
        if rate <= 0.0 {
            return false;
        }
        let mut h =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .build_hasher();
        h.write(&self.0);
        (h.finish() as f64) < rate * u64::MAX as f64
    }
}

impl std::fmt::Debug for DecisionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for DecisionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The ids of one reply: `n` consecutive counter values at one millisecond.
#[derive(Debug, Clone, Copy)]
pub struct DecisionIds {
    millis: u64,
    start: u64,
    len: usize,
}

fn random_high() -> u16 {
    static HIGH: OnceLock<u16> = OnceLock::new();
    *HIGH.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() as u16
    })
}

fn counter() -> &'static AtomicU64 {
    static COUNTER: OnceLock<AtomicU64> = OnceLock::new();
    COUNTER.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x1d);
        // Half the range left above the start: the counter never wraps in practice.
        AtomicU64::new(h.finish() >> 1)
    })
}

impl DecisionIds {
    /// Reserves `n` ids.
    pub fn reserve(n: usize) -> DecisionIds {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let start = counter().fetch_add(n as u64, Ordering::Relaxed);
        DecisionIds {
            millis,
            start,
            len: n,
        }
    }

    /// Ids reserved.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none were reserved.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The id of result `i`.
    pub fn get(&self, i: usize) -> DecisionId {
        let low = self.start.wrapping_add(i as u64);
        let value = (u128::from(self.millis & 0xFFFF_FFFF_FFFF) << 80)
            | (u128::from(random_high()) << 64)
            | u128::from(low);
        DecisionId::encode(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_26_char_and_time_ordered() {
        let a = DecisionIds::reserve(3);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = DecisionIds::reserve(1);
        let ids = [a.get(0), a.get(1), a.get(2), b.get(0)];
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(ids.iter().all(|i| i.as_str().len() == 26));
        assert_eq!(
            serde_json::to_string(&ids[0]).unwrap(),
            format!("\"{}\"", ids[0].as_str())
        );
    }

    #[test]
    fn sampling_follows_the_rate() {
        let ids = DecisionIds::reserve(10_000);
        let kept = (0..10_000).filter(|&i| ids.get(i).sampled(0.25)).count();
        assert!((2_000..3_000).contains(&kept), "{kept}");
        assert!(ids.get(0).sampled(1.0));
        assert!(!ids.get(0).sampled(0.0));
    }
}
