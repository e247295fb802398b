//! The model repository on disk: which folders hold a model, their fingerprints, and what became of each folder
//! between polls (a copy still in progress, a failed load, an operator's unload, a removal).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::SystemTime;

use super::ModelSpec;

/// Names, sizes and modification times of a model folder's files: a change means a new version was dropped. A
/// folder that is gone (or holds no file) has the empty fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint(Vec<(String, u64, Option<SystemTime>)>);

impl Fingerprint {
    /// Reads the fingerprint of `dir` (an unreadable folder gives an empty one).
    pub fn of(dir: &Path) -> Fingerprint {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                meta.is_file().then(|| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        meta.len(),
                        meta.modified().ok(),
                    )
                })
            })
            .collect();
        files.sort();
        Fingerprint(files)
    }

    /// Whether no file was seen: the folder is gone.
    pub fn is_absent(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether `path` is a model folder: a folder whose name does not start with '.' (where deployments stage a
/// copy) holding `model.toml` or `model.onnx`.
pub fn is_model_folder(path: &Path) -> bool {
    let visible = path
        .file_name()
        .is_some_and(|n| !n.to_string_lossy().starts_with('.'));
    visible
        && path.is_dir()
        && (path.join("model.toml").is_file() || path.join("model.onnx").is_file())
}

/// The model folders of `dir` by name, each with its fingerprint (a name that is not UTF-8 cannot be a route, so
/// such a folder is skipped).
pub fn scan(dir: &Path) -> std::io::Result<BTreeMap<String, Fingerprint>> {
    let mut folders = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string);
        match name {
            Some(name) if is_model_folder(&path) => {
                folders.insert(name, Fingerprint::of(&path));
            }
            None => {
                tracing::debug!(folder = %path.display(), "folder name is not UTF-8: not a model")
            }
            Some(_) => {}
        }
    }
    Ok(folders)
}

/// What the registry remembers of one model folder between polls.
#[derive(Debug, Default)]
pub struct FolderState {
    /// A changed fingerprint seen on the last poll; acted on once it stays the same for a poll (copy finished).
    pub pending: Option<Fingerprint>,
    /// A fingerprint whose load failed; not retried until the files change again.
    pub failed: Option<Fingerprint>,
    /// Why the last load of this folder failed.
    pub last_error: Option<String>,
    /// The operator unloaded it: the watcher leaves it alone until it is loaded again or its folder goes.
    pub unloaded: bool,
    /// The manifest of a folder that is not served, when it parses (what a policy may still name, its version).
    pub declared: Option<ModelSpec>,
}

/// A change one poll found due.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Load the folder: new, changed, or changed after a failed load.
    Load(String),
    /// The folder is gone: unload the model and forget the folder.
    Remove(String),
}

/// Compares the folders `on_disk` with the served models (`served`: name → fingerprint of the served files) and
/// what earlier polls saw (`states`, updated). A change is due once it has looked the same on two polls in a
/// row, so a copy in progress or a folder swapped by rename is not acted on half-way.
pub fn due(
    on_disk: &BTreeMap<String, Fingerprint>,
    served: &BTreeMap<&str, &Fingerprint>,
    states: &mut HashMap<String, FolderState>,
) -> Vec<Due> {
    let names: BTreeSet<String> = (on_disk.keys().cloned())
        .chain(served.keys().map(|n| n.to_string()))
        .chain(states.keys().cloned())
        .collect();
    let mut due = Vec::new();
    for name in names {
        let now = on_disk.get(&name).cloned().unwrap_or_default();
        let served_files = served.get(name.as_str()).copied();
        let entry = states.entry(name.clone()).or_default();
        let settled = if entry.unloaded {
            // The operator's mark holds while the folder exists; only its removal is acted on.
            !now.is_absent()
        } else {
            // Files that already failed are not retried; a folder that vanished mid-load still goes.
            let tried = !now.is_absent() && entry.failed.as_ref() == Some(&now);
            match served_files {
                Some(files) => *files == now || tried,
                None => tried || (now.is_absent() && entry.failed.is_none()),
            }
        };
        if settled {
            entry.pending = None;
            if now.is_absent() && served_files.is_none() && !entry.unloaded {
                states.remove(&name);
            }
        } else if entry.pending.as_ref() == Some(&now) {
            entry.pending = None;
            due.push(match now.is_absent() {
                true => Due::Remove(name),
                false => Due::Load(name),
            });
        } else {
            entry.pending = Some(now);
        }
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(file: &str, len: u64) -> Fingerprint {
        Fingerprint(vec![(file.into(), len, None)])
    }

    fn disk(folders: &[(&str, Fingerprint)]) -> BTreeMap<String, Fingerprint> {
        folders
            .iter()
            .map(|(n, f)| (n.to_string(), f.clone()))
            .collect()
    }

    #[test]
    fn a_new_folder_is_loaded_once_it_stops_changing() {
        let mut states = HashMap::new();
        let served = BTreeMap::new();
        assert!(due(&disk(&[("new", print("a", 1))]), &served, &mut states).is_empty());
        assert!(due(&disk(&[("new", print("a", 2))]), &served, &mut states).is_empty());
        assert_eq!(
            due(&disk(&[("new", print("a", 2))]), &served, &mut states),
            vec![Due::Load("new".into())]
        );
    }

    #[test]
    fn a_failed_folder_is_retried_only_when_its_files_change() {
        let mut states = HashMap::new();
        states.insert(
            "bad".to_string(),
            FolderState {
                failed: Some(print("a", 1)),
                ..FolderState::default()
            },
        );
        let served = BTreeMap::new();
        for _ in 0..3 {
            assert!(due(&disk(&[("bad", print("a", 1))]), &served, &mut states).is_empty());
        }
        assert!(due(&disk(&[("bad", print("a", 5))]), &served, &mut states).is_empty());
        assert_eq!(
            due(&disk(&[("bad", print("a", 5))]), &served, &mut states),
            vec![Due::Load("bad".into())]
        );
    }

    #[test]
    fn a_served_model_is_reloaded_on_change_and_removed_when_gone_for_two_polls() {
        let mut states = HashMap::new();
        let files = print("a", 1);
        let served = BTreeMap::from([("m", &files)]);
        assert!(due(&disk(&[("m", print("a", 1))]), &served, &mut states).is_empty());
        // Gone for one poll only (a folder swapped by rename): nothing happens.
        assert!(due(&disk(&[]), &served, &mut states).is_empty());
        assert!(due(&disk(&[("m", print("a", 1))]), &served, &mut states).is_empty());
        assert!(due(&disk(&[]), &served, &mut states).is_empty());
        assert_eq!(
            due(&disk(&[]), &served, &mut states),
            vec![Due::Remove("m".into())]
        );
        assert!(due(&disk(&[("m", print("a", 2))]), &served, &mut states).is_empty());
        assert_eq!(
            due(&disk(&[("m", print("a", 2))]), &served, &mut states),
            vec![Due::Load("m".into())]
        );
    }

    #[test]
    fn an_unloaded_folder_is_left_alone_until_it_goes() {
        let mut states = HashMap::new();
        states.insert(
            "off".to_string(),
            FolderState {
                unloaded: true,
                ..FolderState::default()
            },
        );
        let served = BTreeMap::new();
        for len in [1, 2, 2, 2] {
            assert!(due(&disk(&[("off", print("a", len))]), &served, &mut states).is_empty());
        }
        assert!(due(&disk(&[]), &served, &mut states).is_empty());
        assert_eq!(
            due(&disk(&[]), &served, &mut states),
            vec![Due::Remove("off".into())]
        );
    }

    #[test]
    fn a_removed_broken_folder_is_forgotten() {
        let mut states = HashMap::new();
        states.insert(
            "bad".to_string(),
            FolderState {
                failed: Some(print("a", 1)),
                last_error: Some("bad graph".into()),
                ..FolderState::default()
            },
        );
        let served = BTreeMap::new();
        assert!(due(&disk(&[]), &served, &mut states).is_empty());
        assert_eq!(
            due(&disk(&[]), &served, &mut states),
            vec![Due::Remove("bad".into())]
        );
    }

    #[test]
    fn hidden_and_non_model_folders_are_not_model_folders() {
        let dir = std::env::temp_dir().join(format!("crmscore-scan-{}", std::process::id()));
        for (folder, file) in [
            ("ok", Some("model.toml")),
            ("onnx_only", Some("model.onnx")),
            (".staging", Some("model.toml")),
            ("notes", Some("README")),
            ("empty", None),
        ] {
            std::fs::create_dir_all(dir.join(folder)).unwrap();
            if let Some(file) = file {
                std::fs::write(dir.join(folder).join(file), b"x").unwrap();
            }
        }
        let found: Vec<String> = scan(&dir).unwrap().into_keys().collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found, vec!["ok".to_string(), "onnx_only".to_string()]);
    }
}
