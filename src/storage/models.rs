//! Models from an object store: the objects under `--models s3://...` are mirrored into a local cache folder that
//! the model loader reads as it reads a local `--models` folder (same check-then-swap). Objects whose size, ETag
//! and modification time are unchanged are not downloaded again, across restarts too.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_core::Stream;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectMeta, ObjectStore};

use super::StorageError;
use super::parts::retrying;
use super::store::{Located, locate};

/// The file in the cache folder recording what was downloaded (relative path → object fingerprint).
const SYNC_FILE: &str = ".crmscore-sync.json";
/// The cache's staging folder (hidden, so never read as a model folder).
const STAGING: &str = ".crmscore-download";

/// A `--models` URL mirrored into a local folder.
pub struct ModelSync {
    located: Located,
    url: String,
    cache: PathBuf,
    synced: Mutex<BTreeMap<String, String>>,
}

fn cache_error(path: &Path) -> impl Fn(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Cache {
        path: path.to_path_buf(),
        source,
    }
}

fn fingerprint(object: &ObjectMeta) -> String {
    format!(
        "{} {} {}",
        object.size,
        object.e_tag.as_deref().unwrap_or("-"),
        object.last_modified.timestamp_micros()
    )
}

/// Every object under `prefix` (all levels).
async fn list_all(
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
) -> Result<Vec<ObjectMeta>, object_store::Error> {
    let mut stream = store.list(Some(&prefix));
    let mut objects = Vec::new();
    while let Some(object) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        objects.push(object?);
    }
    Ok(objects)
}

/// Streams `location` into the file `to` (replaced), returning its bytes.
async fn download(
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
    to: PathBuf,
) -> Result<u64, object_store::Error> {
    let io = |e: std::io::Error| object_store::Error::Generic {
        store: "model cache",
        source: Box::new(e),
    };
    let mut file = std::fs::File::create(&to).map_err(io)?;
    let mut stream = store
        .get_opts(&location, GetOptions::default())
        .await?
        .into_stream();
    let mut bytes = 0;
    while let Some(chunk) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        let chunk = chunk?;
        file.write_all(&chunk).map_err(io)?;
        bytes += chunk.len() as u64;
    }
    file.sync_all().map_err(io)?;
    Ok(bytes)
}

impl ModelSync {
    /// For a `--models` URL, the mirror into `state_dir/model-cache/...` (or the temporary folder without a state
    /// folder), first synced; None for a local folder.
    pub fn open(
        models: &Path,
        state_dir: Option<&Path>,
    ) -> Result<Option<ModelSync>, StorageError> {
        if !super::is_remote(models) {
            return Ok(None);
        }
        let url = models.to_string_lossy().into_owned();
        let located = locate(&url)?;
        let name: String = url
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let base = match state_dir.filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => dir.join("model-cache"),
            None => std::env::temp_dir().join("crmscore-model-cache"),
        };
        let cache = base.join(name);
        std::fs::create_dir_all(&cache).map_err(cache_error(&cache))?;
        let synced = std::fs::read(cache.join(SYNC_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let sync = ModelSync {
            located,
            url,
            cache,
            synced: Mutex::new(synced),
        };
        let fetched = sync.sync()?;
        tracing::info!(models = %sync.url, cache = %sync.cache.display(), fetched, "models mirrored from the object store");
        Ok(Some(sync))
    }

    /// The local folder the model loader reads.
    pub fn local(&self) -> &Path {
        &self.cache
    }

    /// Brings the cache in line with the store: changed objects are downloaded into a staging folder, then all
    /// moved into place together; removed ones are deleted. On any error the cache is left as it was. Returns
    /// the number of files downloaded.
    pub fn sync(&self) -> Result<usize, StorageError> {
        let (store, prefix) = (self.located.store.clone(), self.located.path.clone());
        let what = self.url.clone();
        let objects = super::block(async move {
            retrying("list", &what, || list_all(store.clone(), prefix.clone())).await
        })
        .and_then(|r| r)
        .map_err(|message| StorageError::Request {
            url: self.url.clone(),
            message: format!("cannot list: {message}"),
        })?;
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        let mut wanted = BTreeMap::new();
        let mut pending = Vec::new();
        let staging = self.cache.join(STAGING);
        for object in objects {
            let Some(rel) = self.relative(&object.location) else {
                continue;
            };
            let print = fingerprint(&object);
            let local = self.cache.join(&rel);
            let present = std::fs::metadata(&local).is_ok_and(|m| m.len() == object.size);
            if synced.get(&rel) != Some(&print) || !present {
                pending.push((rel.clone(), object.location.clone(), local));
            }
            wanted.insert(rel, print);
        }
        if !pending.is_empty() {
            std::fs::create_dir_all(&staging).map_err(cache_error(&staging))?;
        }
        let mut staged = Vec::with_capacity(pending.len());
        for (i, (rel, location, local)) in pending.into_iter().enumerate() {
            let tmp = staging.join(i.to_string());
            let (store, url) = (self.located.store.clone(), self.located.url_of(&location));
            let to = tmp.clone();
            super::block(async move {
                retrying("model", &url, || {
                    download(store.clone(), location.clone(), to.clone())
                })
                .await
            })
            .and_then(|r| r)
            .map_err(|message| StorageError::Request {
                url: format!("{}/{rel}", self.url.trim_end_matches('/')),
                message,
            })?;
            staged.push((tmp, local));
        }
        let fetched = staged.len();
        for (tmp, local) in staged {
            if let Some(dir) = local.parent() {
                std::fs::create_dir_all(dir).map_err(cache_error(dir))?;
            }
            std::fs::rename(&tmp, &local).map_err(cache_error(&local))?;
        }
        for gone in synced.keys().filter(|rel| !wanted.contains_key(*rel)) {
            let local = self.cache.join(gone);
            let _ = std::fs::remove_file(&local);
            if let Some(dir) = local.parent().filter(|d| *d != self.cache) {
                let _ = std::fs::remove_dir(dir);
            }
        }
        let changed = fetched > 0 || synced.len() != wanted.len();
        *synced = wanted;
        if changed {
            let file = self.cache.join(SYNC_FILE);
            let json = serde_json::to_vec_pretty(&*synced).unwrap_or_default();
            std::fs::write(&file, json).map_err(cache_error(&file))?;
        }
        Ok(fetched)
    }

    /// `location` relative to the models prefix, when it is a plain file path (no hidden or `..` segment).
    fn relative(&self, location: &ObjectPath) -> Option<String> {
        let parts: Vec<_> = location.prefix_match(&self.located.path)?.collect();
        let names: Vec<&str> = parts.iter().map(|p| p.as_ref()).collect();
        let plain = !names.is_empty()
            && names
                .iter()
                .all(|n| !n.is_empty() && !n.starts_with('.') && *n != "..");
        plain.then(|| names.join("/"))
    }
}
