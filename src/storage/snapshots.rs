//! Finding complete snapshots under an object-store prefix, with the local folder's rules: a single Parquet
//! object is complete when listed, a prefix of part objects (Hive `key=value` sub-prefixes included) when it
//! holds a `_SUCCESS` object; newest first, and what is found but cannot be served said with its reason.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ListResult, ObjectMeta, ObjectStore};

use super::parts::{RemoteParts, retrying};
use super::store::{Located, locate};
use crate::snapshot::discover::{SUCCESS_MARKER, is_in_progress};
use crate::snapshot::partition::{Partition, parse_segment, type_partitions};
use crate::snapshot::{Discovery, PartFile, SnapshotError, SnapshotSource, Unservable};

/// Whether a listed object name is a Parquet snapshot on its own (outside part prefixes the name decides: objects
/// are listed, not opened).
fn is_parquet(name: &str) -> bool {
    name.ends_with(".parquet") || name.ends_with(".parq")
}

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

/// Runs the listing request `op` (given the store and `prefix`) on the storage runtime, with retries.
fn listing<T, F, Fut>(located: &Located, prefix: &ObjectPath, op: F) -> Result<T, SnapshotError>
where
    T: Send + 'static,
    F: Fn(Arc<dyn ObjectStore>, ObjectPath) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, object_store::Error>> + Send,
{
    let (store, prefix, url) = (
        located.store.clone(),
        prefix.clone(),
        located.url_of(prefix),
    );
    let what = url.clone();
    super::block(async move { retrying("list", &what, || op(store.clone(), prefix.clone())).await })
        .and_then(|r| r)
        .map_err(|e| error(&url, format!("cannot list: {e}")))
}

/// One listing level under `prefix` (objects and sub-prefixes).
fn list(located: &Located, prefix: &ObjectPath) -> Result<ListResult, SnapshotError> {
    listing(located, prefix, |store, prefix| async move {
        store.list_with_delimiter(Some(&prefix)).await
    })
}

/// Every object below `prefix`, at any depth.
fn list_all(located: &Located, prefix: &ObjectPath) -> Result<Vec<ObjectMeta>, SnapshotError> {
    listing(located, prefix, |store, prefix| async move {
        let mut stream = store.list(Some(&prefix));
        let mut objects = Vec::new();
        while let Some(object) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            objects.push(object?);
        }
        Ok(objects)
    })
}

/// The snapshot at `at` made of `parts`, each with its typed partition values (`partitions`, one per part).
fn source(
    located: &Located,
    at: &ObjectPath,
    parts: Vec<ObjectMeta>,
    partitions: Vec<Partition>,
    modified: SystemTime,
) -> SnapshotSource {
    let url = located.url_of(at);
    SnapshotSource {
        name: at.filename().unwrap_or_default().to_string(),
        path: PathBuf::from(&url),
        files: parts
            .iter()
            .zip(partitions)
            .map(|(o, partition)| PartFile {
                path: PathBuf::from(located.url_of(&o.location)),
                partition,
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

/// A single Parquet object as a snapshot.
fn single(located: &Located, object: ObjectMeta) -> SnapshotSource {
    let (modified, at) = (system_time(&object), object.location.clone());
    source(located, &at, vec![object], vec![Vec::new()], modified)
}

/// What a prefix with a `_SUCCESS` object is.
enum Prefix {
    Complete(SnapshotSource),
    Refused(Unservable),
}

/// The prefix `at` as a part folder, if it holds a `_SUCCESS` object (`objects` and `sub_prefixes` are its first
/// listing level). As in a local part folder, every object below it that is not hidden or a writer's temporary is
/// a part, whatever its name (Spark's `part-00000-<uuid>.c000`), and parts may sit in Hive `key=value`
/// sub-prefixes, whose values become columns; anything else refuses the snapshot, naming it.
fn part_prefix(
    located: &Located,
    at: &ObjectPath,
    objects: &[ObjectMeta],
    sub_prefixes: &[ObjectPath],
) -> Result<Option<Prefix>, SnapshotError> {
    let Some(marker) = objects
        .iter()
        .find(|o| o.location.filename() == Some(SUCCESS_MARKER))
    else {
        return Ok(None);
    };
    let modified = system_time(marker);
    let below = match sub_prefixes.is_empty() {
        true => objects.to_vec(),
        false => list_all(located, at)?,
    };
    let mut parts: Vec<(ObjectMeta, Vec<(String, String)>)> = Vec::new();
    let mut problems = Vec::new();
    for object in below {
        let Some(relative) = object.location.prefix_match(at) else {
            continue;
        };
        let segments: Vec<String> = relative.map(|p| p.as_ref().to_string()).collect();
        if segments.iter().any(|s| is_in_progress(s)) {
            continue;
        }
        let Some((_, folders)) = segments.split_last() else {
            continue;
        };
        match folders.iter().map(|f| parse_segment(f)).collect() {
            Some(keys) => parts.push((object, keys)),
            None => problems.push(format!(
                "'{}' is not under partition prefixes (key=value)",
                segments.join("/")
            )),
        }
    }
    let refused = |reason: String| {
        Ok(Some(Prefix::Refused(Unservable {
            name: at.filename().unwrap_or_default().to_string(),
            path: PathBuf::from(located.url_of(at)),
            modified,
            reason,
        })))
    };
    if let Some(first) = problems.first() {
        let more = match problems.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return refused(format!("{first}{more}"));
    }
    if parts.is_empty() {
        return refused("has a _SUCCESS marker but no part objects".into());
    }
    parts.sort_by(|a, b| a.0.location.cmp(&b.0.location));
    let (parts, raw): (Vec<ObjectMeta>, Vec<_>) = parts.into_iter().unzip();
    match type_partitions(&raw) {
        Ok(partitions) => Ok(Some(Prefix::Complete(source(
            located, at, parts, partitions, modified,
        )))),
        Err(reason) => refused(reason),
    }
}

/// Snapshots under the object-store `url`, newest first (by modification time, then name), and those found but
/// not served: `url` may name one Parquet object, a part prefix with `_SUCCESS`, or a prefix holding them.
pub fn find_remote(url: &str) -> Result<Discovery, SnapshotError> {
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
                Ok(Discovery {
                    sources: vec![single(&located, object)],
                    unservable: Vec::new(),
                })
            }
            Ok(_) => Err(error(url, "not a Parquet object or a prefix of snapshots")),
            Err(_) => Err(error(url, "no such object or prefix")),
        };
    }
    let mut found = Discovery::default();
    let mut add = |prefix: Prefix| match prefix {
        Prefix::Complete(source) => found.sources.push(source),
        Prefix::Refused(unservable) => found.unservable.push(unservable),
    };
    let at = located.path.clone();
    if let Some(prefix) = part_prefix(&located, &at, &top.objects, &top.common_prefixes)? {
        add(prefix);
        return Ok(found);
    }
    for object in top.objects {
        let name = object.location.filename().unwrap_or_default();
        if is_parquet(name) && !is_in_progress(name) {
            add(Prefix::Complete(single(&located, object)));
        }
    }
    for prefix in top.common_prefixes {
        let name = prefix.filename().unwrap_or_default();
        if is_in_progress(name) {
            continue;
        }
        let listed = list(&located, &prefix)?;
        if let Some(folder) =
            part_prefix(&located, &prefix, &listed.objects, &listed.common_prefixes)?
        {
            add(folder);
        }
    }
    let newest_first =
        |a: &SystemTime, an: &str, b: &SystemTime, bn: &str| b.cmp(a).then_with(|| bn.cmp(an));
    found
        .sources
        .sort_by(|a, b| newest_first(&a.modified, &a.name, &b.modified, &b.name));
    found
        .unservable
        .sort_by(|a, b| newest_first(&a.modified, &a.name, &b.modified, &b.name));
    Ok(found)
}
