//! What the registry does not serve and why: readiness, the repository index, and the operator's unload.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::registry::ModelRegistry;
use super::repository;
use super::spec::ModelSpec;
use crate::telemetry::Metrics;

/// Why a model folder is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// The version its manifest declares, when the manifest parses.
    pub version: Option<String>,
    /// Why it is not served (file paths included).
    pub reason: String,
    /// Why its last load failed (None when the operator unloaded it).
    pub load_error: Option<String>,
}

/// One model folder as the repository index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The model's name (its folder's).
    pub name: String,
    /// The served version, or the one its manifest declares; None when unknown.
    pub version: Option<String>,
    /// Why it is not served; None when it serves.
    pub unavailable: Option<String>,
}

const UNLOADED: &str = "unloaded by the operator; loading it again serves it";

impl ModelRegistry {
    /// Why the model folder `name` is not served: its load failed or the operator unloaded it. None when it
    /// serves or no such folder is known (a new folder waiting for its copy to finish is not known yet).
    pub fn unavailable(&self, name: &str) -> Option<Unavailable> {
        if self.models.load().contains_key(name) {
            return None;
        }
        let folders = self.folders();
        let state = folders.get(name)?;
        let version = state.declared.as_ref().map(|s| s.version.clone());
        match (state.unloaded, &state.last_error) {
            (true, _) => Some(Unavailable {
                version,
                reason: UNLOADED.into(),
                load_error: None,
            }),
            (false, Some(error)) => Some(Unavailable {
                version,
                reason: error.clone(),
                load_error: Some(error.clone()),
            }),
            (false, None) => None,
        }
    }

    /// Why the server is not ready as far as models go: folders that failed to load (each named with its
    /// reason), or nothing served at all. None when every folder that was tried serves (folders the operator
    /// unloaded do not count).
    pub fn not_ready_reason(&self) -> Option<String> {
        let served = self.models.load();
        let mut problems: Vec<String> = {
            let folders = self.folders();
            let mut failed: Vec<(&String, &String)> = folders
                .iter()
                .filter(|(name, state)| !served.contains_key(*name) && !state.unloaded)
                .filter_map(|(name, state)| state.last_error.as_ref().map(|e| (name, e)))
                .collect();
            failed.sort();
            failed
                .into_iter()
                .map(|(name, error)| format!("model '{name}' did not load: {error}"))
                .collect()
        };
        if served.is_empty() {
            problems.insert(0, format!("no model is served from {}", self.dir.display()));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// Every model folder, by name: served ones, ones that failed or were unloaded, and new ones not loaded yet;
    /// a served model whose folder was just removed is listed until it is unloaded.
    pub fn index(&self) -> Vec<IndexEntry> {
        let on_disk = repository::scan(&self.dir).unwrap_or_default();
        let served = self.models.load();
        let folders = self.folders();
        let names: BTreeSet<&String> = on_disk
            .keys()
            .chain(served.keys())
            .chain(
                folders
                    .iter()
                    .filter(|(_, s)| s.unloaded || s.last_error.is_some())
                    .map(|(n, _)| n),
            )
            .collect();
        names
            .into_iter()
            .map(|name| {
                if let Some(model) = served.get(name) {
                    return IndexEntry {
                        name: name.clone(),
                        version: Some(model.spec.version.clone()),
                        unavailable: None,
                    };
                }
                let state = folders.get(name);
                let reason = match state {
                    Some(s) if s.unloaded => UNLOADED.to_string(),
                    Some(s) if s.last_error.is_some() => s.last_error.clone().unwrap_or_default(),
                    _ => {
                        "not loaded yet: a new folder is loaded once its files stop changing".into()
                    }
                };
                IndexEntry {
                    name: name.clone(),
                    version: state
                        .and_then(|s| s.declared.as_ref())
                        .map(|s| s.version.clone()),
                    unavailable: Some(reason),
                }
            })
            .collect()
    }

    /// The manifests of folders that are not served but parse (a failed load, an operator's unload): what an
    /// engagement policy may still name while they are down.
    pub fn unserved_specs(&self) -> Vec<ModelSpec> {
        let served = self.models.load();
        self.folders()
            .iter()
            .filter(|(name, _)| !served.contains_key(*name))
            .filter_map(|(_, state)| state.declared.clone())
            .collect()
    }

    /// Stops serving `name` (the operator's call): new requests are refused at once, jobs already queued are
    /// answered before its workers stop (they go with the last request holding the model). The watcher leaves
    /// the folder alone until the model is loaded again or the folder goes. False when no such model is known.
    pub fn unload(&self, name: &str, metrics: &Metrics) -> bool {
        let mut folders = self.folders();
        let served = self.models.load_full();
        if !served.contains_key(name) && !folders.contains_key(name) && !self.has_folder(name) {
            return false;
        }
        let state = folders.entry(name.to_string()).or_default();
        state.unloaded = true;
        state.pending = None;
        if let Some(model) = served.get(name) {
            state.declared = Some(model.spec.clone());
            self.stop_serving(name, metrics);
            tracing::info!(
                model = name,
                "model unloaded by the operator; its queued jobs are answered first"
            );
        }
        metrics.set_model_ready(name, false);
        true
    }

    /// Forgets a folder that is gone, unloading its model if it served (queued jobs are answered first).
    pub(super) fn forget(&self, name: &str, metrics: &Metrics) {
        let mut folders = self.folders();
        folders.remove(name);
        if self.models.load().contains_key(name) {
            self.stop_serving(name, metrics);
            tracing::info!(
                model = name,
                "model folder removed: model unloaded once its queued jobs are answered"
            );
        } else {
            tracing::info!(model = name, "model folder removed");
        }
        metrics.forget_model(name);
    }

    /// Takes `name` out of the served set and counts the unload.
    fn stop_serving(&self, name: &str, metrics: &Metrics) {
        let mut next = std::collections::BTreeMap::clone(&self.models.load());
        next.remove(name);
        self.models.store(Arc::new(next));
        metrics.model_unloads.with_label_values(&[name]).inc();
        metrics.set_queue_depth(name, 0);
    }
}
