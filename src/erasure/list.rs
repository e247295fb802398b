//! The erasure list: salted SHA-256 hashes of erased customer ids (never the ids), kept in one small file that
//! is replaced atomically on every change.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ErasureError;
use crate::durable;
use crate::snapshot::FeatureSnapshot;

/// Name of the list file inside the state folder.
pub const LIST_FILE: &str = "erasures.json";

/// Layout version of the list file.
const FORMAT: u32 = 1;

/// Bytes of the salt.
const SALT_BYTES: usize = 16;

/// The salted hash of one customer id: what the list, the audit log and replies name a customer by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdHash([u8; 32]);

impl fmt::Display for IdHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The file as stored.
#[derive(Serialize, Deserialize)]
struct ListFile {
    format: u32,
    /// Hex of the random salt, made once when the list is first written.
    salt: String,
    /// Hex of SHA-256(salt ‖ id) of each erased id, sorted.
    erased: Vec<String>,
}

/// The erased customers, as salted hashes, and the file they persist in.
pub struct ErasureList {
    file: PathBuf,
    salt: [u8; SALT_BYTES],
    hashes: BTreeSet<IdHash>,
}

impl ErasureList {
    /// Reads the list in `dir` (a fresh one with a new salt when the file does not exist yet). An unreadable or
    /// corrupt file is an error naming it: serving an erased customer again is not an option.
    pub fn open(dir: &Path) -> Result<ErasureList, ErasureError> {
        let file = dir.join(LIST_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut salt = [0; SALT_BYTES];
                getrandom::fill(&mut salt).map_err(|e| ErasureError::Io {
                    path: file.clone(),
                    message: format!("no random salt from the operating system: {e}"),
                })?;
                return Ok(ErasureList {
                    file,
                    salt,
                    hashes: BTreeSet::new(),
                });
            }
            Err(e) => return Err(ErasureError::io(&file, e)),
        };
        let corrupt = |message: String| ErasureError::Corrupt {
            path: file.clone(),
            message,
        };
        let stored: ListFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if stored.format != FORMAT {
            return Err(corrupt(format!(
                "format {} is not the {FORMAT} this build reads",
                stored.format
            )));
        }
        let salt =
            unhex(&stored.salt).ok_or_else(|| corrupt("the salt is not 16 hex bytes".into()))?;
        let hashes = stored
            .erased
            .iter()
            .map(|h| unhex(h).map(IdHash))
            .collect::<Option<BTreeSet<_>>>()
            .ok_or_else(|| corrupt("an entry is not a 32-byte hex hash".into()))?;
        Ok(ErasureList { file, salt, hashes })
    }

    /// The file the list persists in.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The salted hash of `id` (its text exactly; integer ids in decimal).
    pub fn hash(&self, id: &str) -> IdHash {
        let mut sha = Sha256::new();
        sha.update(self.salt);
        sha.update(id.as_bytes());
        IdHash(sha.finalize().into())
    }

    /// Whether `hash` is erased.
    pub fn contains(&self, hash: &IdHash) -> bool {
        self.hashes.contains(hash)
    }

    /// Number of erased customers.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether nobody is erased.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Adds `hash` and persists the list; false when it was listed already (nothing written).
    pub fn add(&mut self, hash: IdHash) -> Result<bool, ErasureError> {
        if !self.hashes.insert(hash) {
            return Ok(false);
        }
        self.persist().inspect_err(|_| {
            self.hashes.remove(&hash);
        })?;
        Ok(true)
    }

    /// Removes `hash` (an erasure lifted) and persists the list; false when it was not listed.
    pub fn remove(&mut self, hash: &IdHash) -> Result<bool, ErasureError> {
        if !self.hashes.remove(hash) {
            return Ok(false);
        }
        self.persist().inspect_err(|_| {
            self.hashes.insert(*hash);
        })?;
        Ok(true)
    }

    fn persist(&self) -> Result<(), ErasureError> {
        let stored = ListFile {
            format: FORMAT,
            salt: hex(&self.salt),
            erased: self.hashes.iter().map(IdHash::to_string).collect(),
        };
        let mut bytes =
            serde_json::to_vec_pretty(&stored).map_err(|e| ErasureError::io(&self.file, e))?;
        bytes.push(b'\n');
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ErasureError::io(dir, e))?;
        }
        durable::replace(&self.file, &bytes).map_err(|e| ErasureError::io(&self.file, e))
    }

    /// Rows of `snapshot` whose customer is erased (none, without hashing, when the list is empty).
    pub fn rows_in(&self, snapshot: &FeatureSnapshot) -> Vec<usize> {
        let mut rows = Vec::new();
        if self.hashes.is_empty() {
            return rows;
        }
        snapshot.for_each_id(|id, row| {
            if self.hashes.contains(&self.hash(id)) {
                rows.push(row);
            }
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("crmscore-list-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_list_persists_hashes_only_and_keeps_its_salt() {
        let dir = temp("persist");
        let mut list = ErasureList::open(&dir).unwrap();
        let hash = list.hash("C-SECRET-1");
        assert!(list.add(hash).unwrap());
        assert!(!list.add(hash).unwrap(), "listed already");
        let text = std::fs::read_to_string(dir.join(LIST_FILE)).unwrap();
        assert!(!text.contains("C-SECRET-1"), "{text}");
        assert!(text.contains(&hash.to_string()), "{text}");
        let reopened = ErasureList::open(&dir).unwrap();
        assert_eq!(
            reopened.hash("C-SECRET-1"),
            hash,
            "same salt after a restart"
        );
        assert!(reopened.contains(&hash));
        let mut other = ErasureList::open(&temp("other")).unwrap();
        assert_ne!(
            other.hash("C-SECRET-1"),
            hash,
            "another list has another salt"
        );
        assert!(!other.remove(&hash).unwrap());
        let mut list = reopened;
        assert!(list.remove(&hash).unwrap());
        assert!(ErasureList::open(&dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_list_is_an_error_naming_the_file() {
        let dir = temp("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        for bad in [
            "{not json",
            r#"{"format": 1, "salt": "zz", "erased": []}"#,
            r#"{"format": 9, "salt": "00000000000000000000000000000000", "erased": []}"#,
            r#"{"format": 1, "salt": "00000000000000000000000000000000", "erased": ["abc"]}"#,
        ] {
            std::fs::write(dir.join(LIST_FILE), bad).unwrap();
            let err = ErasureList::open(&dir).err().unwrap().to_string();
            assert!(err.contains(LIST_FILE), "{err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
