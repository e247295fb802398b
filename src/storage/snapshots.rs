//! Finding complete snapshots under an object-store prefix, with the local folder's rules: a single Parquet
//! object is complete when listed, a prefix of part objects when it holds a `_SUCCESS` object; newest first.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ListResult, ObjectMeta};

use super::parts::{RemoteParts, retrying};
use super::store::{Located, locate};
use crate::snapshot::PartFile;
use crate::snapshot::discover::{SUCCESS_MARKER, is_in_progress};

/// Whether an object name is a Parquet part (objects are listed, not opened: the name decides).
fn is_parquet(name: &str) -> bool {
    name.ends_with(".parquet") || name.ends_with(".parq")
}
use crate::snapshot::{SnapshotError, SnapshotSource};

fn error(url: &str, message: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Read {
        path: PathBuf::from(url),
        message: message.to_string(),
    }
}

fn system_time(object: &ObjectMeta) -> SystemTime {
    let micros = object.last_modified.timestamp_micros();
    match u64::try_from(micros) {
        Ok(m) => UNIX_EPOCH + Duration::from_micros(m),
        Err(_) => UNIX_EPOCH,
    }
}

/// One listing level under `prefix` (objects and sub-prefixes), with retries.
fn list(located: &Located, prefix: &ObjectPath) -> Result<ListResult, SnapshotError> {
    let (store, prefix, url) = (
        located.store.clone(),
        prefix.clone(),
        located.url_of(prefix),
    );
    let what = url.clone();
    super::block(async move {
        retrying("list", &what, || store.list_with_delimiter(Some(&prefix))).await
    })
    .and_then(|r| r)
    .map_err(|e| error(&url, format!("cannot list: {e}")))
}

fn source(
    located: &Located,
    at: &ObjectPath,
    parts: Vec<ObjectMeta>,
    modified: SystemTime,
) -> SnapshotSource {
    let url = located.url_of(at);
    SnapshotSource {
        name: at.filename().unwrap_or_default().to_string(),
        path: PathBuf::from(&url),
        files: parts
            .iter()
            .map(|o| PartFile {
                path: PathBuf::from(located.url_of(&o.location)),
                partition: Vec::new(),
            })
            .collect(),
        modified,
        remote: Some(RemoteParts::new(
            located.store.clone(),
            parts,
            located.root.clone(),
        )),
    }
}

/// The prefix `at` as a part folder, if complete (a `_SUCCESS` object and at least one part); parts sorted.
fn part_prefix(
    located: &Located,
    at: &ObjectPath,
    objects: &[ObjectMeta],
) -> Option<SnapshotSource> {
    let marker = objects
        .iter()
        .find(|o| o.location.filename() == Some(SUCCESS_MARKER))?;
    let modified = system_time(marker);
    let mut parts: Vec<ObjectMeta> = objects
        .iter()
        .filter(|o| {
            o.location
                .filename()
                .is_some_and(|n| is_parquet(n) && !is_in_progress(n))
        })
        .cloned()
        .collect();
    if parts.is_empty() {
        return None;
    }
    parts.sort_by(|a, b| a.location.cmp(&b.location));
    Some(source(located, at, parts, modified))
}

/// Complete snapshots under the object-store `url`, newest first (by modification time, then name): `url` may
/// name one Parquet object, a part prefix with `_SUCCESS`, or a prefix holding them.
pub fn find_remote(url: &str) -> Result<Vec<SnapshotSource>, SnapshotError> {
    let located = locate(url).map_err(|e| error(url, e))?;
    let top = list(&located, &located.path)?;
    if top.objects.is_empty() && top.common_prefixes.is_empty() {
        // Not a prefix: maybe one object.
        let (store, path) = (located.store.clone(), located.path.clone());
        let what = located.url_of(&path);
        let head = super::block(async move {
            retrying("list", &what, || async {
                let head = GetOptions {
                    head: true,
                    ..GetOptions::default()
                };
                store.get_opts(&path, head).await.map(|r| r.meta)
            })
            .await
        })
        .and_then(|r| r);
        return match head {
            Ok(object) if is_parquet(object.location.filename().unwrap_or_default()) => {
                let modified = system_time(&object);
                let at = object.location.clone();
                Ok(vec![source(&located, &at, vec![object], modified)])
            }
            Ok(_) => Err(error(url, "not a Parquet object or a prefix of snapshots")),
            Err(_) => Err(error(url, "no such object or prefix")),
        };
    }
    let at = located.path.clone();
    if let Some(folder) = part_prefix(&located, &at, &top.objects) {
        return Ok(vec![folder]);
    }
    let mut found = Vec::new();
    for object in top.objects {
        let name = object.location.filename().unwrap_or_default();
        if is_parquet(name) && !is_in_progress(name) {
            let (modified, at) = (system_time(&object), object.location.clone());
            found.push(source(&located, &at, vec![object], modified));
        }
    }
    for prefix in top.common_prefixes {
        let name = prefix.filename().unwrap_or_default();
        if is_in_progress(name) {
            continue;
        }
        let listed = list(&located, &prefix)?;
        if let Some(folder) = part_prefix(&located, &prefix, &listed.objects) {
            found.push(folder);
        }
    }
    found.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| b.name.cmp(&a.name))
    });
    Ok(found)
}
