//! API keys: the keys file (`name:sha256hex(key)` per line), its hot reload, and the constant-time check of a
//! bearer key. Protocol-free, so every front door (HTTP, gRPC) asks the same `KeyStore::check`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use crate::telemetry::ApiKeyMetrics;

/// Longest key name: names become metric labels and log fields.
const MAX_NAME_CHARS: usize = 64;

/// The name of the key a request presented: its label in metrics and logs (the key itself is never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(Arc<str>);

impl KeyName {
    /// The name as written in the keys file.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a request's credentials were refused; the message never says whether a key or a name exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer <key>` header.
    #[error("this route needs an API key: send 'Authorization: Bearer <key>'")]
    Missing,
    /// A bearer key that matches no configured key.
    #[error("the API key is not valid")]
    Invalid,
}

impl AuthError {
    /// The reason label of the rejected-requests counter.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Invalid => "invalid",
        }
    }
}

/// Why a keys file was refused. Messages never quote a malformed line: it may hold a key pasted by mistake.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read API keys file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("API keys file {path}, line {line}: {problem}")]
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("API keys file {path} holds no keys: write one 'name:sha256hex' line per key")]
    Empty { path: PathBuf },
}

/// One parsed keys file: key names and the SHA-256 digests of their keys.
#[derive(Debug)]
pub struct ApiKeys {
    entries: Vec<(KeyName, [u8; 32])>,
}

impl ApiKeys {
    /// Parses a keys file's text (`path` only names it in errors): one `name:sha256hex` per line, blank lines and
    /// `#` comments allowed; a malformed line, a name or key listed twice, or no key at all is refused.
    pub fn parse(path: &Path, text: &str) -> Result<ApiKeys, KeyFileError> {
        let mut entries: Vec<(KeyName, [u8; 32])> = Vec::new();
        let mut lines: Vec<usize> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let fail = |problem: String| KeyFileError::Line {
                path: path.to_path_buf(),
                line,
                problem,
            };
            let raw = raw.trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let (name, hex) = raw
                .split_once(':')
                .ok_or_else(|| fail("expected 'name:sha256hex'".into()))?;
            let (name, hex) = (name.trim(), hex.trim());
            if !valid_name(name) {
                return Err(fail(format!(
                    "a key name has 1 to {MAX_NAME_CHARS} letters, digits, '_', '-' or '.'"
                )));
            }
            let digest = decode_digest(hex).ok_or_else(|| {
                fail(format!(
                    "the digest of key '{name}' is not 64 hexadecimal characters (the SHA-256 of the key, not \
                     the key)"
                ))
            })?;
            for ((other, other_digest), other_line) in entries.iter().zip(&lines) {
                if other.as_str() == name {
                    return Err(fail(format!(
                        "key name '{name}' is already used on line {other_line}"
                    )));
                }
                if *other_digest == digest {
                    return Err(fail(format!(
                        "key '{name}' is the same key as '{other}' on line {other_line}"
                    )));
                }
            }
            entries.push((KeyName(name.into()), digest));
            lines.push(line);
        }
        if entries.is_empty() {
            return Err(KeyFileError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(ApiKeys { entries })
    }

    /// Reads and parses the keys file at `path`.
    pub fn load(path: &Path) -> Result<ApiKeys, KeyFileError> {
        ApiKeys::parse(path, &read(path)?)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of the key an `Authorization` header value presents (`Bearer <key>`, scheme in any case).
    pub fn check(&self, authorization: Option<&str>) -> Result<KeyName, AuthError> {
        let key = authorization.and_then(bearer).ok_or(AuthError::Missing)?;
        self.find(key.as_bytes()).ok_or(AuthError::Invalid)
    }

    /// The name of `key`: its SHA-256 is compared with every stored digest, all bytes of all of them, so the time
    /// taken says nothing about how close a guess came or which key it matched.
    pub fn find(&self, key: &[u8]) -> Option<KeyName> {
        let digest: [u8; 32] = Sha256::digest(key).into();
        // Index + 1 of the matching entry, 0 for none (digests are unique, so at most one matches).
        let mut hit = 0usize;
        for (index, (_, stored)) in self.entries.iter().enumerate() {
            let diff = stored
                .iter()
                .zip(&digest)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            // 1 when diff is 0, else 0, without a branch: 0 - 1 wraps to 0xFFFF, whose top bit is set.
            let equal = usize::from(u16::from(diff).wrapping_sub(1) >> 15);
            hit |= std::hint::black_box(equal.wrapping_neg()) & (index + 1);
        }
        hit.checked_sub(1)
            .and_then(|index| self.entries.get(index))
            .map(|(name, _)| name.clone())
    }
}

/// The key of an `Authorization` header value, if it is a non-empty bearer credential.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, key) = authorization.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// The SHA-256 of `key` as the keys file writes it (lowercase hex).
pub fn digest_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn decode_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn read(path: &Path) -> Result<String, KeyFileError> {
    std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The served keys, swapped atomically when the file changes; a bad edit keeps the old keys serving.
pub struct KeyStore {
    path: PathBuf,
    current: ArcSwap<ApiKeys>,
    state: Mutex<StoreState>,
}

#[derive(Default)]
struct StoreState {
    /// SHA-256 of the served file's text, and of the last text refused (not parsed again until it changes).
    served: [u8; 32],
    failed: Option<[u8; 32]>,
    last_error: Option<String>,
}

impl KeyStore {
    /// Loads the keys file at `path`; at start-up a bad file is an error.
    pub fn open(path: &Path) -> Result<KeyStore, KeyFileError> {
        let text = read(path)?;
        let keys = ApiKeys::parse(path, &text)?;
        Ok(KeyStore {
            path: path.to_path_buf(),
            current: ArcSwap::from_pointee(keys),
            state: Mutex::new(StoreState {
                served: Sha256::digest(text.as_bytes()).into(),
                ..StoreState::default()
            }),
        })
    }

    /// The keys file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many keys are served.
    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    /// Whether no key is served (never true: an empty file is refused).
    pub fn is_empty(&self) -> bool {
        self.current.load().is_empty()
    }

    /// The name of the key an `Authorization` header value presents, against the served keys.
    pub fn check(&self, authorization: Option<&str>) -> Result<KeyName, AuthError> {
        self.current.load().check(authorization)
    }

    /// Why the file on disk is not the one served (None: it is).
    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    /// Reads the file and swaps in its keys if its text changed (None: unchanged, or the same refusal as last
    /// time). The file is small, so it is read every time rather than trusting modification times.
    pub fn reload_if_changed(&self) -> Option<Result<usize, KeyFileError>> {
        let mut state = self.lock();
        let text = match read(&self.path) {
            Ok(text) => text,
            Err(e) if state.last_error.as_deref() == Some(e.to_string().as_str()) => return None,
            Err(e) => {
                (state.failed, state.last_error) = (None, Some(e.to_string()));
                return Some(Err(e));
            }
        };
        let content: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if content == state.served {
            // Back to the served text (a bad edit reverted): nothing to load, nothing wrong any more.
            (state.failed, state.last_error) = (None, None);
            return None;
        }
        if state.failed == Some(content) {
            return None;
        }
        match ApiKeys::parse(&self.path, &text) {
            Ok(keys) => {
                let count = keys.len();
                self.current.store(Arc::new(keys));
                state.served = content;
                (state.failed, state.last_error) = (None, None);
                Some(Ok(count))
            }
            Err(e) => {
                (state.failed, state.last_error) = (Some(content), Some(e.to_string()));
                Some(Err(e))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One look at the keys file from the watcher: a changed file is loaded, or refused with the served keys kept,
/// the reason logged and `crmscore_api_keys_file_refused` set.
pub fn reload(store: &KeyStore, metrics: &ApiKeyMetrics) {
    match store.reload_if_changed() {
        None => {}
        Some(Ok(count)) => {
            metrics.loads.inc();
            tracing::info!(file = %store.path().display(), keys = count, "API keys loaded");
        }
        Some(Err(error)) => {
            metrics.load_failures.inc();
            tracing::error!(%error, "API keys file refused; the served keys stay");
        }
    }
    metrics
        .file_refused
        .set(i64::from(store.last_error().is_some()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ApiKeys, KeyFileError> {
        ApiKeys::parse(Path::new("keys.txt"), text)
    }

    fn line_error(text: &str) -> (usize, String) {
        match parse(text) {
            Err(KeyFileError::Line { line, problem, .. }) => (line, problem),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn parses_names_and_digests_with_comments_and_blank_lines() {
        let text = format!(
            "# crm web app\n\n  web : {}  \nbatch-job.2:{}\n",
            digest_hex("alpha"),
            digest_hex("beta").to_uppercase()
        );
        let keys = parse(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.find(b"alpha").unwrap().as_str(), "web");
        assert_eq!(keys.find(b"beta").unwrap().as_str(), "batch-job.2");
        assert_eq!(keys.find(b"gamma"), None);
        assert_eq!(keys.find(b""), None);
    }

    #[test]
    fn malformed_lines_name_their_line_and_never_quote_it() {
        let good = format!("web:{}\n", digest_hex("alpha"));
        let (line, problem) = line_error(&format!("{good}# c\nmy-secret-key\n"));
        assert_eq!(line, 3);
        assert!(problem.contains("name:sha256hex"), "{problem}");
        assert!(!problem.contains("my-secret-key"));

        let (line, problem) = line_error(&format!("{good}app:my-secret-key\n"));
        assert_eq!(line, 2);
        assert!(problem.contains("64 hexadecimal"), "{problem}");
        assert!(!problem.contains("my-secret-key"));

        let bad_name = format!("bad name:{}\n", digest_hex("beta"));
        assert_eq!(line_error(&bad_name).0, 1);
        let long_name = format!("{}:{}\n", "n".repeat(65), digest_hex("beta"));
        assert_eq!(line_error(&long_name).0, 1);
        let not_hex = format!("web:{}zz\n", &digest_hex("beta")[..62]);
        assert_eq!(line_error(&not_hex).0, 1);
    }

    #[test]
    fn duplicate_names_and_keys_are_refused() {
        let text = format!("web:{}\nweb:{}\n", digest_hex("alpha"), digest_hex("beta"));
        let (line, problem) = line_error(&text);
        assert_eq!(line, 2);
        assert!(problem.contains("already used on line 1"), "{problem}");
        let text = format!("web:{}\napp:{}\n", digest_hex("alpha"), digest_hex("alpha"));
        let (line, problem) = line_error(&text);
        assert_eq!(line, 2);
        assert!(problem.contains("same key as 'web'"), "{problem}");
    }

    #[test]
    fn a_file_without_keys_is_refused() {
        assert!(matches!(parse(""), Err(KeyFileError::Empty { .. })));
        assert!(matches!(
            parse("# only\n\n"),
            Err(KeyFileError::Empty { .. })
        ));
    }

    #[test]
    fn check_reads_bearer_headers() {
        let keys = parse(&format!("web:{}\n", digest_hex("alpha"))).unwrap();
        assert_eq!(keys.check(Some("Bearer alpha")).unwrap().as_str(), "web");
        assert_eq!(keys.check(Some("bearer  alpha ")).unwrap().as_str(), "web");
        assert_eq!(keys.check(None), Err(AuthError::Missing));
        assert_eq!(keys.check(Some("Bearer ")), Err(AuthError::Missing));
        assert_eq!(keys.check(Some("Basic alpha")), Err(AuthError::Missing));
        assert_eq!(keys.check(Some("alpha")), Err(AuthError::Missing));
        assert_eq!(keys.check(Some("Bearer alph")), Err(AuthError::Invalid));
        assert_eq!(keys.check(Some("Bearer alphaa")), Err(AuthError::Invalid));
    }

    #[test]
    fn digest_hex_is_sha256() {
        assert_eq!(
            digest_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn store_swaps_changed_files_and_keeps_keys_through_bad_edits() {
        let dir = std::env::temp_dir().join(format!("crmscore-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.txt");
        std::fs::write(&path, format!("web:{}\n", digest_hex("alpha"))).unwrap();
        let store = KeyStore::open(&path).unwrap();
        assert!(store.reload_if_changed().is_none(), "unchanged file");

        std::fs::write(&path, format!("app:{}\n", digest_hex("beta"))).unwrap();
        assert_eq!(store.reload_if_changed().unwrap().unwrap(), 1);
        assert_eq!(store.check(Some("Bearer beta")).unwrap().as_str(), "app");
        assert_eq!(store.check(Some("Bearer alpha")), Err(AuthError::Invalid));

        std::fs::write(&path, "app:oops\n").unwrap();
        assert!(store.reload_if_changed().unwrap().is_err());
        assert!(
            store.reload_if_changed().is_none(),
            "same refusal is reported once"
        );
        assert!(store.last_error().unwrap().contains("line 1"));
        assert_eq!(store.check(Some("Bearer beta")).unwrap().as_str(), "app");

        std::fs::write(&path, format!("app:{}\n", digest_hex("beta"))).unwrap();
        assert!(
            store.reload_if_changed().is_none(),
            "reverted to the served text"
        );
        assert_eq!(store.last_error(), None);

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            store.reload_if_changed(),
            Some(Err(KeyFileError::Io { .. }))
        ));
        assert!(store.reload_if_changed().is_none());
        assert_eq!(store.check(Some("Bearer beta")).unwrap().as_str(), "app");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
