//! Customer ids as requests give them, and the compact id → row index of a snapshot.

use std::fmt;
use std::hash::BuildHasher;

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
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomerId::Str(s) => f.write_str(s),
            CustomerId::Int(i) => write!(f, "{i}"),
        }
    }
}

impl Serialize for CustomerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CustomerId::Str(v) => s.serialize_str(v),
            CustomerId::Int(v) => s.serialize_i64(*v),
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
                i64::try_from(v).map(CustomerId::Int).map_err(|_| {
                    E::custom(format!(
                        "customer id {v} is out of the 64-bit integer range"
                    ))
                })
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

/// Id → row, stored compactly: string ids live in one byte buffer, the table holds row numbers only.
pub enum CustomerIndex {
    /// String ids.
    Str {
        /// All ids, back to back.
        bytes: Vec<u8>,
        /// `offsets[r]..offsets[r + 1]` is row r's id.
        offsets: Vec<usize>,
        /// Row numbers, hashed by their id.
        table: HashTable<u32>,
        /// The hasher of `table`.
        hasher: DefaultHashBuilder,
    },
    /// Integer ids.
    Int(HashMap<i64, u32>),
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

    /// Number of ids.
    pub fn len(&self) -> usize {
        match self {
            CustomerIndex::Str { offsets, .. } => offsets.len() - 1,
            CustomerIndex::Int(map) => map.len(),
        }
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether ids are integers.
    pub fn is_integer(&self) -> bool {
        matches!(self, CustomerIndex::Int(_))
    }

    /// Row of `id`. A string id matches an integer index when it parses, an integer matches its decimal string.
    pub fn get(&self, id: &CustomerId) -> Option<usize> {
        match (self, id) {
            (CustomerIndex::Int(map), CustomerId::Int(i)) => map.get(i).map(|&r| r as usize),
            (CustomerIndex::Int(map), CustomerId::Str(s)) => s
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|i| map.get(&i))
                .map(|&r| r as usize),
            (CustomerIndex::Str { .. }, CustomerId::Str(s)) => self.get_str(s),
            (CustomerIndex::Str { .. }, CustomerId::Int(i)) => self.get_str(&i.to_string()),
        }
    }

    fn get_str(&self, key: &str) -> Option<usize> {
        let CustomerIndex::Str {
            bytes,
            offsets,
            table,
            hasher,
        } = self
        else {
            return None;
        };
        let hash = hasher.hash_one(key.as_bytes());
        table
            .find(hash, |&row| {
                &bytes[offsets[row as usize]..offsets[row as usize + 1]] == key.as_bytes()
            })
            .map(|&row| row as usize)
    }
}

/// Appends string ids one by one, rejecting duplicates as they come.
#[derive(Default)]
pub struct StrIndexBuilder {
    bytes: Vec<u8>,
    offsets: Vec<usize>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl StrIndexBuilder {
    /// A builder sized for `rows` ids of about `bytes` bytes in all.
    pub fn with_capacity(rows: usize, bytes: usize) -> StrIndexBuilder {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        StrIndexBuilder {
            bytes: Vec::with_capacity(bytes),
            offsets,
            table: HashTable::with_capacity(rows),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Adds the next row's id; a duplicate is returned as the error.
    pub fn push(&mut self, id: &str) -> Result<(), String> {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let row = (self.offsets.len() - 1) as u32;
        let hash = self.hasher.hash_one(id.as_bytes());
        let (bytes, offsets, hasher) = (&self.bytes, &self.offsets, &self.hasher);
        let key_of = |r: u32| &bytes[offsets[r as usize]..offsets[r as usize + 1]];
        if self
            .table
            .find(hash, |&r| key_of(r) == id.as_bytes())
            .is_some()
        {
            return Err(id.to_string());
        }
        self.table
            .insert_unique(hash, row, |&r| hasher.hash_one(key_of(r)));
        self.bytes.extend_from_slice(id.as_bytes());
        self.offsets.push(self.bytes.len());
        Ok(())
    }

    /// The finished index.
    pub fn finish(mut self) -> CustomerIndex {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        CustomerIndex::Str {
            bytes: self.bytes,
            offsets: self.offsets,
            table: self.table,
            hasher: self.hasher,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn integer_index_accepts_numeric_strings() {
        let idx = CustomerIndex::from_integers([7, 42]).unwrap();
        assert_eq!(idx.get(&CustomerId::Int(42)), Some(1));
        assert_eq!(idx.get(&CustomerId::Str("7".into())), Some(0));
        assert_eq!(idx.get(&CustomerId::Str("x7".into())), None);
        assert_eq!(CustomerIndex::from_integers([1, 1]).err().unwrap(), "1");
    }

    #[test]
    fn ids_deserialize_from_strings_and_integers_only() {
        let ids: Vec<CustomerId> = serde_json::from_str(r#"["C1", 5]"#).unwrap();
        assert_eq!(ids, vec![CustomerId::Str("C1".into()), CustomerId::Int(5)]);
        assert!(serde_json::from_str::<Vec<CustomerId>>("[1.5]").is_err());
        assert!(serde_json::from_str::<Vec<CustomerId>>("[null]").is_err());
        assert_eq!(serde_json::to_string(&ids).unwrap(), r#"["C1",5]"#);
    }
}
