//! Customer ids as requests give them, and the compact id → row index of a snapshot.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Mutex;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A customer id from a request: a string or an integer, echoed back as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerId {
    /// "C0004211"
    Str(String),
    /// 4211
    Int(i64),
    /// An unsigned 64-bit id above `i64::MAX` (smaller integers are always [`CustomerId::Int`]).
    UInt(u64),
}

impl CustomerId {
    /// An unsigned id: [`CustomerId::Int`] where it fits, [`CustomerId::UInt`] above `i64::MAX`.
    pub fn from_u64(v: u64) -> CustomerId {
        i64::try_from(v).map_or(CustomerId::UInt(v), CustomerId::Int)
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomerId::Str(s) => f.write_str(s),
            CustomerId::Int(i) => write!(f, "{i}"),
            CustomerId::UInt(u) => write!(f, "{u}"),
        }
    }
}

impl Serialize for CustomerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CustomerId::Str(v) => s.serialize_str(v),
            CustomerId::Int(v) => s.serialize_i64(*v),
            CustomerId::UInt(v) => s.serialize_u64(*v),
        }
    }
}

impl<'de> Deserialize<'de> for CustomerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = CustomerId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a customer id (string or integer)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CustomerId, E> {
                Ok(CustomerId::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<CustomerId, E> {
                Ok(CustomerId::Str(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CustomerId, E> {
                Ok(CustomerId::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CustomerId, E> {
                Ok(CustomerId::from_u64(v))
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

/// Id → row, stored compactly. String ids of up to [`INLINE`] bytes (the usual "C0004211") live inside the hash
/// table slot, so a lookup touches the table and nothing else; longer ids live in one byte buffer.
pub enum CustomerIndex {
    /// String ids.
    Str(StrIndex),
    /// Integer ids (signed, or unsigned ones that all fit `i64`).
    Int(HashMap<i64, u32>),
    /// Unsigned 64-bit ids, some above `i64::MAX` (never negative ones).
    UInt(HashMap<u64, u32>),
}

/// Longest id kept inside its table slot.
pub const INLINE: usize = 11;

/// One table slot: an inline id (`len <= INLINE`) or, for a longer id, its offset in the spill buffer.
#[derive(Clone, Copy)]
struct Slot {
    key: [u8; INLINE],
    len: u8,
    row: u32,
}

/// The probe form of an id: equal to a slot's key when the ids are equal (long ids compare the spill buffer too).
#[derive(Clone, Copy)]
struct Probe<'a> {
    key: [u8; INLINE],
    len: u8,
    bytes: &'a [u8],
}

/// `len` of a slot whose id is in the spill buffer.
const SPILLED: u8 = u8::MAX;

impl<'a> Probe<'a> {
    fn of(id: &'a str) -> Probe<'a> {
        let bytes = id.as_bytes();
        let mut key = [0; INLINE];
        let len = if bytes.len() <= INLINE {
            key[..bytes.len()].copy_from_slice(bytes);
            bytes.len() as u8
        } else {
            SPILLED
        };
        Probe { key, len, bytes }
    }
}

/// Shards of a string index (a power of two): each id's shard comes from hash bits the tables do not use to
/// place it, so loader threads fill different shards at once and a lookup still probes one table.
const SHARDS: usize = 64;

fn shard_of(hash: u64) -> usize {
    (hash >> 40) as usize & (SHARDS - 1)
}

/// One shard of a string index: its table, and the spill buffer of its long ids.
#[derive(Default)]
struct Shard {
    slots: HashTable<Slot>,
    /// Ids longer than [`INLINE`], each as a u32 length then the bytes; slots point here by offset.
    spill: Vec<u8>,
}

impl Shard {
    fn with_capacity(rows: usize, spill: usize) -> Shard {
        Shard {
            slots: HashTable::with_capacity(rows),
            spill: Vec::with_capacity(spill),
        }
    }

    fn find(&self, hash: u64, probe: Probe) -> Option<&Slot> {
        self.slots.find(hash, |slot| {
            // Short ids: one fixed-size compare inside the slot, no second memory access.
            slot.len == probe.len
                && if probe.len == SPILLED {
                    key_bytes(&self.spill, slot) == probe.bytes
                } else {
                    slot.key == probe.key
                }
        })
    }

    /// Adds `id` at `row` unless it is there already (then it is returned as the error).
    fn insert(
        &mut self,
        hasher: &DefaultHashBuilder,
        hash: u64,
        id: &str,
        row: u32,
    ) -> Result<(), String> {
        let probe = Probe::of(id);
        if self.find(hash, probe).is_some() {
            return Err(id.to_string());
        }
        let mut slot = Slot {
            key: probe.key,
            len: probe.len,
            row,
        };
        let Shard { slots, spill } = self;
        if probe.len == SPILLED {
            slot.key[..8].copy_from_slice(&(spill.len() as u64).to_le_bytes());
            spill.extend_from_slice(&(id.len() as u32).to_le_bytes());
            spill.extend_from_slice(id.as_bytes());
        }
        slots.insert_unique(hash, slot, |s| hasher.hash_one(key_bytes(spill, s)));
        Ok(())
    }
}

/// The string form of [`CustomerIndex`].
pub struct StrIndex {
    shards: Box<[Shard]>,
    rows: usize,
    hasher: DefaultHashBuilder,
}

/// The bytes of a slot's id.
fn key_bytes<'s>(spill: &'s [u8], slot: &'s Slot) -> &'s [u8] {
    if slot.len != SPILLED {
        return &slot.key[..slot.len as usize];
    }
    let mut at = [0; 8];
    at.copy_from_slice(&slot.key[..8]);
    let at = u64::from_le_bytes(at) as usize;
    let mut len = [0; 4];
    len.copy_from_slice(&spill[at..at + 4]);
    &spill[at + 4..at + 4 + u32::from_le_bytes(len) as usize]
}

/// Per-shard sizes for `rows` ids of about `bytes` bytes in all: slots with some headroom over an even share,
/// and spill room only when the average id is longer than [`INLINE`].
fn shard_capacity(rows: usize, bytes: usize) -> (usize, usize) {
    let per_shard = rows.div_ceil(SHARDS);
    let spill = if bytes > rows * INLINE {
        (bytes + 4 * rows).div_ceil(SHARDS)
    } else {
        0
    };
    (per_shard + per_shard / 16 + 8, spill)
}

impl StrIndex {
    fn empty(rows: usize, bytes: usize) -> StrIndex {
        let (slots, spill) = shard_capacity(rows, bytes);
        StrIndex {
            shards: (0..SHARDS)
                .map(|_| Shard::with_capacity(slots, spill))
                .collect(),
            rows: 0,
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn find(&self, id: &str) -> Option<usize> {
        let probe = Probe::of(id);
        let hash = self.hasher.hash_one(probe.bytes);
        self.shards[shard_of(hash)]
            .find(hash, probe)
            .map(|slot| slot.row as usize)
    }

    /// Every id's bytes and row, shard by shard.
    fn entries(&self) -> impl Iterator<Item = (&[u8], u32)> {
        self.shards.iter().flat_map(|shard| {
            shard
                .slots
                .iter()
                .map(|slot| (key_bytes(&shard.spill, slot), slot.row))
        })
    }
}

impl CustomerIndex {
    /// Builds a string index; returns the first duplicate id as the error.
    pub fn from_strings<I: IntoIterator<Item = S>, S: AsRef<str>>(
        ids: I,
    ) -> Result<CustomerIndex, String> {
        let mut builder = StrIndexBuilder::default();
        for id in ids {
            builder.push(id.as_ref())?;
        }
        Ok(builder.finish())
    }

    /// Builds an integer index; returns the first duplicate id as the error.
    pub fn from_integers<I: IntoIterator<Item = i64>>(ids: I) -> Result<CustomerIndex, String> {
        let iter = ids.into_iter();
        let mut map = HashMap::with_capacity(iter.size_hint().0);
        for (row, id) in iter.enumerate() {
            if map.insert(id, row as u32).is_some() {
                return Err(id.to_string());
            }
        }
        Ok(CustomerIndex::Int(map))
    }

    /// Builds an unsigned integer index (for ids above `i64::MAX`); returns the first duplicate id as the error.
    pub fn from_unsigned<I: IntoIterator<Item = u64>>(ids: I) -> Result<CustomerIndex, String> {
        let iter = ids.into_iter();
        let mut map = HashMap::with_capacity(iter.size_hint().0);
        for (row, id) in iter.enumerate() {
            if map.insert(id, row as u32).is_some() {
                return Err(id.to_string());
            }
        }
        Ok(CustomerIndex::UInt(map))
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        match self {
            CustomerIndex::Str(index) => index.rows,
            CustomerIndex::Int(map) => map.len(),
            CustomerIndex::UInt(map) => map.len(),
        }
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether ids are integers.
    pub fn is_integer(&self) -> bool {
        matches!(self, CustomerIndex::Int(_) | CustomerIndex::UInt(_))
    }

    /// Row of `id`. A string id matches an integer index when it parses, an integer matches its decimal string.
    pub fn get(&self, id: &CustomerId) -> Option<usize> {
        match (self, id) {
            (CustomerIndex::Int(map), CustomerId::Int(i)) => map.get(i).map(|&r| r as usize),
            (CustomerIndex::Int(_), CustomerId::UInt(_)) => None,
            (CustomerIndex::Int(map), CustomerId::Str(s)) => s
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|i| map.get(&i))
                .map(|&r| r as usize),
            (CustomerIndex::Str(index), CustomerId::Str(s)) => index.find(s),
            (CustomerIndex::UInt(map), CustomerId::Int(i)) => u64::try_from(*i)
                .ok()
                .and_then(|u| map.get(&u))
                .map(|&r| r as usize),
            (CustomerIndex::UInt(map), CustomerId::UInt(u)) => map.get(u).map(|&r| r as usize),
            (CustomerIndex::UInt(map), CustomerId::Str(s)) => s
                .trim()
                .parse::<u64>()
                .ok()
                .and_then(|u| map.get(&u))
                .map(|&r| r as usize),
            (CustomerIndex::Str(index), CustomerId::Int(i)) => index.find(&i.to_string()),
            (CustomerIndex::Str(index), CustomerId::UInt(u)) => index.find(&u.to_string()),
        }
    }

    /// Calls `f` with every id's text (integers in decimal) and its row, in no particular order, without
    /// collecting them (what erasure hashes when a snapshot loads).
    pub fn for_each_id(&self, mut f: impl FnMut(&str, usize)) {
        use std::fmt::Write;
        let mut text = String::new();
        match self {
            CustomerIndex::Str(index) => {
                for (bytes, row) in index.entries() {
                    if let Ok(id) = std::str::from_utf8(bytes) {
                        f(id, row as usize);
                    }
                }
            }
            CustomerIndex::Int(map) => {
                for (&id, &row) in map {
                    text.clear();
                    let _ = write!(text, "{id}");
                    f(&text, row as usize);
                }
            }
            CustomerIndex::UInt(map) => {
                for (&id, &row) in map {
                    text.clear();
                    let _ = write!(text, "{id}");
                    f(&text, row as usize);
                }
            }
        }
    }

    /// The ids (and rows) of the rows `keep` accepts, in no particular order; rows are tested before an id is
    /// copied, so a small sample of a large index costs one pass over the table and little else.
    pub fn ids_of_rows(&self, keep: impl Fn(usize) -> bool) -> Vec<(CustomerId, usize)> {
        match self {
            CustomerIndex::Str(index) => index
                .entries()
                .filter(|&(_, row)| keep(row as usize))
                .filter_map(|(bytes, row)| {
                    let id = std::str::from_utf8(bytes).ok()?;
                    Some((CustomerId::Str(id.to_string()), row as usize))
                })
                .collect(),
            CustomerIndex::Int(map) => map
                .iter()
                .filter(|(_, row)| keep(**row as usize))
                .map(|(&id, &row)| (CustomerId::Int(id), row as usize))
                .collect(),
            CustomerIndex::UInt(map) => map
                .iter()
                .filter(|(_, row)| keep(**row as usize))
                .map(|(&id, &row)| (CustomerId::from_u64(id), row as usize))
                .collect(),
        }
    }

    /// Every id, in row order.
    pub fn ids(&self) -> Vec<CustomerId> {
        match self {
            CustomerIndex::Str(index) => {
                let mut ids = vec![CustomerId::Str(String::new()); index.rows];
                for (bytes, row) in index.entries() {
                    let id = std::str::from_utf8(bytes).expect("ids are pushed as &str");
                    ids[row as usize] = CustomerId::Str(id.to_string());
                }
                ids
            }
            CustomerIndex::Int(map) => {
                let mut ids = vec![CustomerId::Int(0); map.len()];
                for (&id, &row) in map {
                    ids[row as usize] = CustomerId::Int(id);
                }
                ids
            }
            CustomerIndex::UInt(map) => {
                let mut ids = vec![CustomerId::Int(0); map.len()];
                for (&id, &row) in map {
                    ids[row as usize] = CustomerId::from_u64(id);
                }
                ids
            }
        }
    }
}

/// Appends string ids one by one, rejecting duplicates as they come.
pub struct StrIndexBuilder {
    index: StrIndex,
}

impl Default for StrIndexBuilder {
    fn default() -> StrIndexBuilder {
        StrIndexBuilder::with_capacity(0, 0)
    }
}

impl StrIndexBuilder {
    /// A builder sized for `rows` ids of about `bytes` bytes in all.
    pub fn with_capacity(rows: usize, bytes: usize) -> StrIndexBuilder {
        StrIndexBuilder {
            index: StrIndex::empty(rows, bytes),
        }
    }

    /// Adds the next row's id; a duplicate is returned as the error.
    pub fn push(&mut self, id: &str) -> Result<(), String> {
        let StrIndex {
            shards,
            rows,
            hasher,
        } = &mut self.index;
        let hash = hasher.hash_one(id.as_bytes());
        shards[shard_of(hash)].insert(hasher, hash, id, *rows as u32)?;
        *rows += 1;
        Ok(())
    }

    /// The finished index.
    pub fn finish(self) -> CustomerIndex {
        CustomerIndex::Str(self.index)
    }
}

/// A string index filled by many threads at once, each adding the ids of whole row ranges (one row group):
/// ids are hashed and grouped by shard outside any lock, then each shard is locked once per range.
pub struct SharedStrIndexBuilder {
    shards: Box<[Mutex<Shard>]>,
    hasher: DefaultHashBuilder,
}

impl SharedStrIndexBuilder {
    /// A builder sized for `rows` ids of about `bytes` bytes in all.
    pub fn with_capacity(rows: usize, bytes: usize) -> SharedStrIndexBuilder {
        let (slots, spill) = shard_capacity(rows, bytes);
        SharedStrIndexBuilder {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::with_capacity(slots, spill)))
                .collect(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Adds ids `id(0)..id(n)` as rows `first_row..first_row + n`; the first duplicate found is the error
    /// (against any row added so far, by any thread).
    pub fn push_rows<'a>(
        &self,
        first_row: usize,
        n: usize,
        id: impl Fn(usize) -> &'a str,
    ) -> Result<(), String> {
        let hashes: Vec<u64> = (0..n)
            .map(|i| self.hasher.hash_one(id(i).as_bytes()))
            .collect();
        // Counting sort of the rows by shard, so each shard is locked once.
        let mut starts = [0_usize; SHARDS + 1];
        for &hash in &hashes {
            starts[shard_of(hash) + 1] += 1;
        }
        for s in 0..SHARDS {
            starts[s + 1] += starts[s];
        }
        let mut next = starts;
        let mut order = vec![0_u32; n];
        for (i, &hash) in hashes.iter().enumerate() {
            let s = shard_of(hash);
            order[next[s]] = i as u32;
            next[s] += 1;
        }
        for (s, shard) in self.shards.iter().enumerate() {
            let rows = &order[starts[s]..starts[s + 1]];
            if rows.is_empty() {
                continue;
            }
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for &i in rows {
                let i = i as usize;
                shard.insert(&self.hasher, hashes[i], id(i), (first_row + i) as u32)?;
            }
        }
        Ok(())
    }

    /// The finished index.
    pub fn finish(self) -> CustomerIndex {
        let shards: Box<[Shard]> = self
            .shards
            .into_iter()
            .map(|s| s.into_inner().unwrap_or_else(|p| p.into_inner()))
            .collect();
        let rows = shards.iter().map(|s| s.slots.len()).sum();
        CustomerIndex::Str(StrIndex {
            shards,
            rows,
            hasher: self.hasher,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_is_visited_with_its_row() {
        let mut seen = Vec::new();
        let idx = CustomerIndex::from_strings(["C1", "a-rather-long-customer-id"]).unwrap();
        idx.for_each_id(|id, row| seen.push((id.to_string(), row)));
        CustomerIndex::from_integers([7, -3])
            .unwrap()
            .for_each_id(|id, row| seen.push((id.to_string(), row)));
        seen.sort();
        assert_eq!(
            seen,
            [
                ("-3", 1),
                ("7", 0),
                ("C1", 0),
                ("a-rather-long-customer-id", 1)
            ]
            .map(|(id, row)| (id.to_string(), row))
        );
    }

    #[test]
    fn string_index_finds_rows_and_rejects_duplicates() {
        let idx = CustomerIndex::from_strings(["C1", "C2", "C10"]).unwrap();
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.get(&CustomerId::Str("C10".into())), Some(2));
        assert_eq!(idx.get(&CustomerId::Str("C3".into())), None);
        assert_eq!(
            CustomerIndex::from_strings(["a", "b", "a"]).err().unwrap(),
            "a"
        );
    }

    #[test]
    fn inline_and_spilled_ids_both_resolve() {
        let long = "customer-with-a-long-uuid-3f2a9c1e-0b7d-4c55-9e61-2d8f4a6b7c90";
        let ids = [
            "",
            "C0004211",
            "12345678901",
            "123456789012",
            long,
            "C0004212",
        ];
        let idx = CustomerIndex::from_strings(ids).unwrap();
        for (row, id) in ids.iter().enumerate() {
            assert_eq!(
                idx.get(&CustomerId::Str(id.to_string())),
                Some(row),
                "{id:?}"
            );
        }
        // Same first INLINE bytes, different length: no false match either way.
        assert_eq!(idx.get(&CustomerId::Str("1234567890".into())), None);
        assert_eq!(idx.get(&CustomerId::Str("1234567890123".into())), None);
        assert_eq!(idx.get(&CustomerId::Str(long[..40].into())), None);
        assert_eq!(idx.get(&CustomerId::Int(12345678901)), Some(2));
        assert_eq!(
            CustomerIndex::from_strings([long, "x", long])
                .err()
                .unwrap(),
            long
        );
        // Many ids: the table grows (rehashing spilled keys) and still finds every one.
        let many: Vec<String> = (0..5000)
            .map(|i| {
                if i % 3 == 0 {
                    format!("long-customer-id-{i:08}")
                } else {
                    format!("C{i}")
                }
            })
            .collect();
        let idx = CustomerIndex::from_strings(&many).unwrap();
        assert_eq!(idx.len(), many.len());
        for (row, id) in many.iter().enumerate() {
            assert_eq!(idx.get(&CustomerId::Str(id.clone())), Some(row));
        }
    }

    #[test]
    fn shared_builder_takes_row_ranges_from_many_threads() {
        let ids: Vec<String> = (0..20_000)
            .map(|i| {
                if i % 5 == 0 {
                    format!("customer-with-a-long-id-{i:08}")
                } else {
                    format!("C{i:07}")
                }
            })
            .collect();
        // Ranges of uneven size, added out of order from two threads; a small capacity makes shards grow.
        let builder = SharedStrIndexBuilder::with_capacity(100, 0);
        let ranges = [
            (0, 7_000),
            (7_000, 7_001),
            (7_001, 15_000),
            (15_000, 20_000),
        ];
        std::thread::scope(|scope| {
            for half in [[ranges[3], ranges[0]], [ranges[1], ranges[2]]] {
                let (builder, ids) = (&builder, &ids);
                scope.spawn(move || {
                    for (start, end) in half {
                        builder
                            .push_rows(start, end - start, |i| ids[start + i].as_str())
                            .unwrap();
                    }
                });
            }
        });
        let index = builder.finish();
        assert_eq!(index.len(), ids.len());
        for (row, id) in ids.iter().enumerate() {
            assert_eq!(index.get(&CustomerId::Str(id.clone())), Some(row), "{id}");
        }
        assert_eq!(
            index.ids(),
            ids.iter()
                .map(|id| CustomerId::Str(id.clone()))
                .collect::<Vec<_>>()
        );
        assert_eq!(index.get(&CustomerId::Str("C9999999".into())), None);

        // A duplicate in a later range, or inside one range, is the error.
        let builder = SharedStrIndexBuilder::with_capacity(4, 0);
        builder.push_rows(0, 2, |i| ["C1", "C2"][i]).unwrap();
        assert_eq!(
            builder.push_rows(2, 2, |i| ["C3", "C1"][i]).err().unwrap(),
            "C1"
        );
        let builder = SharedStrIndexBuilder::with_capacity(4, 0);
        assert_eq!(
            builder
                .push_rows(0, 3, |i| ["x", "y", "x"][i])
                .err()
                .unwrap(),
            "x"
        );
    }

    #[test]
    fn integer_index_accepts_numeric_strings() {
        let idx = CustomerIndex::from_integers([7, 42]).unwrap();
        assert_eq!(idx.get(&CustomerId::Int(42)), Some(1));
        assert_eq!(idx.get(&CustomerId::Str("7".into())), Some(0));
        assert_eq!(idx.get(&CustomerId::Str("x7".into())), None);
        assert_eq!(CustomerIndex::from_integers([1, 1]).err().unwrap(), "1");
    }

    #[test]
    fn unsigned_ids_above_i64_max_are_exact() {
        let big = [7, (1 << 63) + 5, u64::MAX];
        let idx = CustomerIndex::from_unsigned(big).unwrap();
        assert!(idx.is_integer());
        assert_eq!(idx.get(&CustomerId::Int(7)), Some(0));
        assert_eq!(idx.get(&CustomerId::from_u64((1 << 63) + 5)), Some(1));
        assert_eq!(idx.get(&CustomerId::UInt(u64::MAX)), Some(2));
        assert_eq!(
            idx.get(&CustomerId::Str("18446744073709551615".into())),
            Some(2)
        );
        // No aliasing: the bit pattern of -1 is u64::MAX, and 0 is not an id here.
        assert_eq!(idx.get(&CustomerId::Int(-1)), None);
        assert_eq!(idx.get(&CustomerId::Int(0)), None);
        assert_eq!(idx.ids(), big.map(CustomerId::from_u64));
        assert_eq!(
            CustomerIndex::from_unsigned([u64::MAX, u64::MAX])
                .err()
                .unwrap(),
            "18446744073709551615"
        );
        // A signed index never answers an id above i64::MAX.
        let signed = CustomerIndex::from_integers([i64::MAX, -1]).unwrap();
        assert_eq!(signed.get(&CustomerId::UInt(u64::MAX)), None);
        assert_eq!(
            signed.get(&CustomerId::Str("18446744073709551615".into())),
            None
        );
    }

    #[test]
    fn ids_come_back_in_row_order() {
        let long = "customer-with-a-long-uuid-3f2a9c1e-0b7d-4c55-9e61-2d8f4a6b7c90";
        let strings = ["C0004212", long, "", "12345678901", "123456789012", "C1"];
        let expected: Vec<CustomerId> = strings
            .iter()
            .map(|id| CustomerId::Str(id.to_string()))
            .collect();
        assert_eq!(
            CustomerIndex::from_strings(strings).unwrap().ids(),
            expected
        );
        let integers = [42, -7, 0, i64::MAX, 3];
        assert_eq!(
            CustomerIndex::from_integers(integers).unwrap().ids(),
            integers.map(CustomerId::Int)
        );
        let mut odd = CustomerIndex::from_strings(strings)
            .unwrap()
            .ids_of_rows(|row| row % 2 == 1);
        odd.sort_by_key(|(_, row)| *row);
        assert_eq!(
            odd,
            vec![
                (expected[1].clone(), 1),
                (expected[3].clone(), 3),
                (expected[5].clone(), 5)
            ]
        );
        let first = CustomerIndex::from_integers(integers)
            .unwrap()
            .ids_of_rows(|row| row == 0);
        assert_eq!(first, vec![(CustomerId::Int(42), 0)]);
    }

    #[test]
    fn ids_deserialize_from_strings_and_integers_only() {
        let ids: Vec<CustomerId> = serde_json::from_str(r#"["C1", 5]"#).unwrap();
        assert_eq!(ids, vec![CustomerId::Str("C1".into()), CustomerId::Int(5)]);
        assert!(serde_json::from_str::<Vec<CustomerId>>("[1.5]").is_err());
        assert!(serde_json::from_str::<Vec<CustomerId>>("[null]").is_err());
        assert_eq!(serde_json::to_string(&ids).unwrap(), r#"["C1",5]"#);
        let big: Vec<CustomerId> =
            serde_json::from_str("[9223372036854775807, 18446744073709551615]").unwrap();
        assert_eq!(
            big,
            vec![CustomerId::Int(i64::MAX), CustomerId::UInt(u64::MAX)]
        );
        assert_eq!(
            serde_json::to_string(&big).unwrap(),
            "[9223372036854775807,18446744073709551615]"
        );
    }
}
