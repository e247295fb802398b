//! The served policy's hot reload: `PolicyStore` swaps in a changed file once it validates, keeps the old
//! policy serving through a bad one, and reports what it serves in `PolicyStatus`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::Serialize;

use super::{Policy, PolicyError, RuleSummary, Vocabulary};

/// The served policy, swapped atomically when its file changes; a bad file keeps the old one serving.
pub struct PolicyStore {
    path: PathBuf,
    current: ArcSwap<Policy>,
    state: Mutex<StoreState>,
}

#[derive(Default)]
struct StoreState {
    /// Size and modification time last looked at: unchanged means the file was not rewritten.
    stat: Option<(u64, Option<SystemTime>)>,
    /// Hash of the served file's content, and of the last content that failed (not retried until it changes).
    served: u64,
    failed: Option<u64>,
    last_error: Option<String>,
}

/// What the status route shows of the served policy.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyStatus {
    /// The policy file.
    pub path: String,
    /// The served policy's version.
    pub version: String,
    /// Its rules, in order.
    pub rules: Vec<RuleSummary>,
    /// When it was loaded (unix seconds).
    pub loaded_at: u64,
    /// Why the file on disk is not the one served (None: it is).
    pub last_error: Option<String>,
    /// The served policy's warnings.
    pub warnings: Vec<String>,
}

impl PolicyStore {
    /// Loads the policy at `path`; at startup a bad policy is an error.
    pub fn open(path: &Path, vocab: &Vocabulary) -> Result<PolicyStore, PolicyError> {
        let (text, stat) = read(path)?;
        let policy = Policy::parse(path, &text, vocab)?;
        Ok(PolicyStore {
            path: path.to_path_buf(),
            current: ArcSwap::from_pointee(policy),
            state: Mutex::new(StoreState {
                stat: Some(stat),
                served: hash(&text),
                ..StoreState::default()
            }),
        })
    }

    /// The served policy.
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// Loads the file if it changed since the last look (None: unchanged, or the same bad content as before).
    /// A valid new policy is swapped in; an invalid one is reported and recorded, the old one keeps serving.
    pub fn reload_if_changed(
        &self,
        vocab: &Vocabulary,
    ) -> Option<Result<Arc<Policy>, PolicyError>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let stat = stat(&self.path).ok();
        if stat.is_some() && stat == state.stat {
            return None;
        }
        state.stat = stat;
        let text = match read(&self.path) {
            Ok((text, _)) => text,
            Err(e) if state.last_error == Some(e.to_string()) => return None,
            Err(e) => return Some(self.install(&mut state, Err(e), None)),
        };
        let content = hash(&text);
        if content == state.served {
            // Back to the served content (e.g. a bad edit reverted): nothing to load, nothing wrong any more.
            (state.failed, state.last_error) = (None, None);
            return None;
        }
        if state.failed == Some(content) {
            return None;
        }
        let loaded = Policy::parse(&self.path, &text, vocab);
        Some(self.install(&mut state, loaded, Some(content)))
    }

    /// Loads and validates the file now, changed or not (e.g. after the models, hence the vocabulary, changed).
    pub fn reload(&self, vocab: &Vocabulary) -> Result<Arc<Policy>, PolicyError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match read(&self.path) {
            Ok((text, stat)) => {
                state.stat = Some(stat);
                let loaded = Policy::parse(&self.path, &text, vocab);
                self.install(&mut state, loaded, Some(hash(&text)))
            }
            Err(e) => self.install(&mut state, Err(e), None),
        }
    }

    fn install(
        &self,
        state: &mut StoreState,
        loaded: Result<Policy, PolicyError>,
        content: Option<u64>,
    ) -> Result<Arc<Policy>, PolicyError> {
        match loaded {
            Ok(policy) => {
                let policy = Arc::new(policy);
                self.current.store(Arc::clone(&policy));
                state.served = content.unwrap_or(state.served);
                (state.failed, state.last_error) = (None, None);
                Ok(policy)
            }
            Err(e) => {
                (state.failed, state.last_error) = (content, Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// What is served and why a newer file is not.
    pub fn status(&self) -> PolicyStatus {
        let policy = self.current();
        let last_error = (self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_error)
            .clone();
        PolicyStatus {
            path: self.path.display().to_string(),
            version: policy.version.clone(),
            rules: policy.rules(),
            loaded_at: (policy.loaded_at.duration_since(UNIX_EPOCH)).map_or(0, |d| d.as_secs()),
            last_error,
            warnings: policy.warnings.clone(),
        }
    }
}

fn stat(path: &Path) -> std::io::Result<(u64, Option<SystemTime>)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.len(), meta.modified().ok()))
}

fn read(path: &Path) -> Result<(String, (u64, Option<SystemTime>)), PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let stat = stat(path).map_err(io)?;
    Ok((std::fs::read_to_string(path).map_err(io)?, stat))
}

fn hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}
