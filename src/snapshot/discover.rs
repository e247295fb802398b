//! Finding snapshots on disk as pipelines write them: single Parquet files, part folders (Spark, Hive, DuckDB,
//! pyarrow, polars; part files recognised by their `PAR1` magic, with or without an extension), Hive partition
//! folders, and when a folder is complete; and, for everything found but not served, the reason.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::SnapshotError;
use super::partition::{Partition, PartitionValue, parse_segment, type_partitions};
use crate::storage::RemoteParts;

/// The marker Spark and Hive write when a folder of part files is complete.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// One Parquet file of a snapshot and the values of the partition folders it sits in.
#[derive(Debug, Clone, PartialEq)]
pub struct PartFile {
    /// The file.
    pub path: PathBuf,
    /// `key=value` folders between the snapshot folder and the file, typed (empty when unpartitioned).
    pub partition: Partition,
}

impl PartFile {
    /// The value partition column `column` has in this file, if it is one.
    pub fn value(&self, column: &str) -> Option<&PartitionValue> {
        self.partition
            .iter()
            .find(|(k, _)| k == column)
            .map(|(_, v)| v)
    }
}

/// A complete snapshot on disk: one Parquet file, or a folder of part files (partitioned or not).
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotSource {
    /// File or folder name, reported as the snapshot version.
    pub name: String,
    /// The file or folder.
    pub path: PathBuf,
    /// The Parquet files to read, in order.
    pub files: Vec<PartFile>,
    /// Modification time of the file, of the folder's `_SUCCESS` marker, or of its newest entry (settled).
    pub modified: SystemTime,
    /// The part objects when the snapshot is in an object store (`files` then holds their URLs).
    pub remote: Option<RemoteParts>,
}

/// A snapshot found on disk that is not served, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unservable {
    /// File or folder name.
    pub name: String,
    /// The file or folder.
    pub path: PathBuf,
    /// Its newest modification time (what orders it among the others).
    pub modified: SystemTime,
    /// Why it is not served.
    pub reason: String,
}

/// How folders without a `_SUCCESS` marker are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DiscoverOptions {
    /// Serve such a folder once nothing in it changed for this long (`--snapshot-settle-seconds`); None: never.
    pub settle: Option<Duration>,
}

/// Everything found under a snapshots path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovery {
    /// Complete snapshots, newest first.
    pub sources: Vec<SnapshotSource>,
    /// Snapshots found but not served, newest first.
    pub unservable: Vec<Unservable>,
}

/// Names writers use while a file is incomplete, and their bookkeeping: hidden, underscore (`_SUCCESS`,
/// `_temporary`, `_committed_*`, `_started_*`, `_metadata`), or temporary and checksum suffixes.
pub fn is_in_progress(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('_')
        || [".tmp", ".temp", ".crc", ".inprogress", ".partial"]
            .iter()
            .any(|s| name.ends_with(s))
}

fn is_parquet_name(name: &str) -> bool {
    name.ends_with(".parquet") || name.ends_with(".parq")
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn modified(path: &Path) -> Result<SystemTime, SnapshotError> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| read_error(path, e))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What the first and last four bytes of a file say.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Magic {
    Parquet,
    /// `PARE`: Parquet with an encrypted footer.
    Encrypted,
    Other,
}

fn magic(path: &Path) -> Result<Magic, SnapshotError> {
    let mut file = File::open(path).map_err(|e| read_error(path, e))?;
    let len = file.metadata().map_err(|e| read_error(path, e))?.len();
    if len < 12 {
        return Ok(Magic::Other);
    }
    let (mut head, mut tail) = ([0u8; 4], [0u8; 4]);
    file.read_exact(&mut head)
        .and_then(|_| file.seek(SeekFrom::End(-4)))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| read_error(path, e))?;
    Ok(match (&head, &tail) {
        (b"PAR1", b"PAR1") => Magic::Parquet,
        (b"PAR1", b"PARE") | (b"PARE", b"PARE") => Magic::Encrypted,
        _ => Magic::Other,
    })
}

/// What a walk through a part folder found.
#[derive(Default)]
struct Walk {
    files: Vec<(PathBuf, Vec<(String, String)>)>,
    problems: Vec<String>,
    /// A `_temporary` folder, or a `_started_*` marker without its `_committed_*`.
    writing: bool,
    newest: Option<SystemTime>,
}

impl Walk {
    fn saw(&mut self, path: &Path) -> Result<(), SnapshotError> {
        let t = modified(path)?;
        self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
        Ok(())
    }

    fn visit(
        &mut self,
        root: &Path,
        dir: &Path,
        keys: &[(String, String)],
    ) -> Result<(), SnapshotError> {
        self.saw(dir)?;
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
            entries.push(entry.map_err(|e| read_error(dir, e))?.path());
        }
        entries.sort();
        let names: Vec<String> = entries.iter().map(|p| file_name(p)).collect();
        for (path, name) in entries.iter().zip(&names) {
            let relative = path.strip_prefix(root).unwrap_or(path).display();
            if name == "_temporary"
                || name
                    .strip_prefix("_started_")
                    .is_some_and(|id| !names.iter().any(|n| n == &format!("_committed_{id}")))
            {
                self.writing = true;
            }
            if is_in_progress(name) {
                continue;
            }
            if path.is_dir() {
                match parse_segment(name) {
                    Some(pair) => {
                        let mut inner = keys.to_vec();
                        inner.push(pair);
                        self.visit(root, path, &inner)?;
                    }
                    None => self.problems.push(format!(
                        "sub-folder '{relative}' is not a partition folder (key=value)"
                    )),
                }
                continue;
            }
            self.saw(path)?;
            match magic(path)? {
                Magic::Parquet => self.files.push((path.clone(), keys.to_vec())),
                Magic::Encrypted => self.problems.push(format!(
                    "'{relative}' is encrypted Parquet, which this server cannot read"
                )),
                Magic::Other => self.problems.push(format!(
                    "'{relative}' is not a Parquet file (no PAR1 magic at its start and end)"
                )),
            }
        }
        Ok(())
    }
}

/// What one folder is: a complete snapshot, or found but not served.
enum Found {
    Source(SnapshotSource),
    Unservable(Unservable),
}

/// Reads a part folder (its `key=value` sub-folders included) and decides whether it is complete: `_SUCCESS` at
/// its root, or (with `settle`) nothing changed for that long while no writer's `_temporary` is there.
fn snapshot_folder(dir: &Path, options: &DiscoverOptions) -> Result<Found, SnapshotError> {
    let mut walk = Walk::default();
    walk.visit(dir, dir, &[])?;
    let marker = dir.join(SUCCESS_MARKER);
    let newest = walk.newest.unwrap_or(SystemTime::UNIX_EPOCH);
    let unservable = |reason: String| -> Result<Found, SnapshotError> {
        Ok(Found::Unservable(Unservable {
            name: file_name(dir),
            path: dir.to_path_buf(),
            modified: newest,
            reason,
        }))
    };
    let modified = if marker.is_file() {
        modified(&marker)?
    } else {
        let quiet = SystemTime::now().duration_since(newest).unwrap_or_default();
        match options.settle {
            _ if walk.writing => {
                return unservable(
                    "is still being written (a _temporary folder or a _started_ marker without its \
                     _committed_ is there) and has no _SUCCESS marker"
                        .into(),
                );
            }
            Some(settle) if quiet >= settle && !walk.files.is_empty() => newest,
            Some(settle) => {
                return unservable(format!(
                    "has no _SUCCESS marker and changed {}s ago; it is served once unchanged for \
                     --snapshot-settle-seconds ({}s)",
                    quiet.as_secs(),
                    settle.as_secs()
                ));
            }
            None => {
                return unservable(
                    "has no _SUCCESS marker (a writer may still be running); DuckDB, pyarrow and polars \
                     write none: create _SUCCESS in the folder when the export is complete, or start the \
                     server with --snapshot-settle-seconds N"
                        .into(),
                );
            }
        }
    };
    if let Some(problem) = walk.problems.first() {
        let more = match walk.problems.len() {
            1 => String::new(),
            n => format!(" (and {} more problems)", n - 1),
        };
        return unservable(format!("{problem}{more}"));
    }
    if walk.files.is_empty() {
        return unservable("holds no Parquet part files".into());
    }
    let raw: Vec<Vec<(String, String)>> = walk.files.iter().map(|(_, k)| k.clone()).collect();
    let partitions = match type_partitions(&raw) {
        Ok(p) => p,
        Err(reason) => return unservable(reason),
    };
    let files = walk
        .files
        .into_iter()
        .zip(partitions)
        .map(|((path, _), partition)| PartFile { path, partition })
        .collect();
    Ok(Found::Source(SnapshotSource {
        name: file_name(dir),
        path: dir.to_path_buf(),
        files,
        modified,
        remote: None,
    }))
}

fn single_file(path: &Path) -> Result<SnapshotSource, SnapshotError> {
    Ok(SnapshotSource {
        name: file_name(path),
        path: path.to_path_buf(),
        files: vec![PartFile {
            path: path.to_path_buf(),
            partition: Vec::new(),
        }],
        modified: modified(path)?,
        remote: None,
    })
}

/// Whether `dir` is one snapshot rather than a folder of them: it has `_SUCCESS` or `key=value` sub-folders.
fn is_snapshot_folder(dir: &Path) -> Result<bool, SnapshotError> {
    if dir.join(SUCCESS_MARKER).is_file() {
        return Ok(true);
    }
    for entry in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
        let path = entry.map_err(|e| read_error(dir, e))?.path();
        if path.is_dir() && parse_segment(&file_name(&path)).is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Everything under `path`, newest first. `path` may be a snapshot itself (a Parquet file, or a part folder with
/// `_SUCCESS` or partition sub-folders) or a folder of them: `.parquet` files and sub-folders.
pub fn discover(path: &Path, options: &DiscoverOptions) -> Result<Discovery, SnapshotError> {
    if crate::storage::is_remote(path) {
        return crate::storage::snapshots::find_remote(&path.to_string_lossy());
    }
    let mut found = Discovery::default();
    let mut push = |f: Found| match f {
        Found::Source(s) => found.sources.push(s),
        Found::Unservable(u) => found.unservable.push(u),
    };
    if path.is_file() {
        push(Found::Source(single_file(path)?));
    } else if !path.is_dir() {
        return Err(read_error(path, "no such file or folder"));
    } else if is_snapshot_folder(path)? {
        push(snapshot_folder(path, options)?);
    } else {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| read_error(path, e))? {
            entries.push(entry.map_err(|e| read_error(path, e))?.path());
        }
        for entry in entries {
            let name = file_name(&entry);
            if is_in_progress(&name) {
                continue;
            }
            if entry.is_dir() {
                push(snapshot_folder(&entry, options)?);
            } else if is_parquet_name(&name) {
                push(Found::Source(single_file(&entry)?));
            } else if entry.is_file() && magic(&entry)? != Magic::Other {
                push(Found::Unservable(Unservable {
                    name: name.clone(),
                    path: entry.clone(),
                    modified: modified(&entry)?,
                    reason: "is a Parquet file without a .parquet extension beside other snapshots; \
                             rename it to end in .parquet (extensionless part files are read inside a \
                             part folder)"
                        .into(),
                }));
            }
        }
    }
    found.sources.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| b.name.cmp(&a.name))
    });
    found.unservable.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| b.name.cmp(&a.name))
    });
    Ok(found)
}

/// Complete snapshots under `path`, newest first (by modification time, then name); folders without `_SUCCESS`
/// are not complete here (see [`discover`] for the reasons and the settle rule).
pub fn find_snapshots(path: &Path) -> Result<Vec<SnapshotSource>, SnapshotError> {
    Ok(discover(path, &DiscoverOptions::default())?.sources)
}

#[cfg(test)]
#[path = "discover_tests.rs"]
mod tests;
