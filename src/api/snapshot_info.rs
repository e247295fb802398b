//! What snapshot is served.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::admin::{is_admin, paths_for};
use crate::error::{ApiError, ScoreError, V1Error};
use crate::scoring::AppState;
use crate::snapshot::DriftReport;

/// Reply of `GET /v1/snapshot`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotInfo {
    /// Its version (file or folder name).
    pub version: String,
    /// Where it was loaded from (cut to the file name without the admin token).
    pub source: String,
    /// Its customers.
    pub rows: usize,
    /// Its feature columns.
    pub columns: Vec<String>,
    /// `integer` or `string`: the type of its `customer_id` column.
    pub id_type: &'static str,
    /// When it was written (unix seconds).
    pub produced_at: f64,
    /// When it was loaded (unix seconds).
    pub loaded_at: f64,
    /// Seconds since it was written.
    pub age_seconds: f64,
    /// Whether it is older than --max-snapshot-age.
    pub stale: bool,
    /// Why it is stale.
    pub stale_reason: Option<String>,
    /// What the load noticed but accepted.
    pub warnings: Vec<String>,
    /// The last load error, if any.
    pub last_error: Option<String>,
    /// Newer snapshots that were refused (skipped until they change).
    pub refused: Vec<RefusedSnapshot>,
    /// How it differs from the snapshot it replaced (null for the first snapshot of a run); docs/drift.md.
    pub drift: Option<DriftReport>,
}

/// A snapshot the server refused to serve.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefusedSnapshot {
    /// Its version.
    pub version: String,
    /// Its path (cut to the file name without the admin token).
    pub source: String,
    /// Why it was refused.
    pub reason: String,
}

/// The served snapshot
///
/// Version, source, size and age of the served snapshot, the last load error if any, the refused snapshots
/// newer than it (skipped until they change), and its drift against the snapshot it replaced. Server paths in them are cut to file names unless the caller holds
/// the admin token.
#[utoipa::path(get, path = "/v1/snapshot", tag = "v1",
    responses(
        (status = 200, description = "The served snapshot", body = SnapshotInfo),
        (status = 503, description = "No snapshot is served yet, and why", body = V1Error),
    ))]
pub async fn get_snapshot(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let admin = is_admin(&req, &state);
    let last_error = state.snapshots.last_error().map(|e| paths_for(admin, &e));
    let Some(s) = state.snapshots.current() else {
        let reason = paths_for(admin, &state.snapshots.not_served_reason());
        return Err(ScoreError::NotReady(reason).into());
    };
    let refused = state
        .reloader
        .refused()
        .into_iter()
        .map(|r| RefusedSnapshot {
            version: r.version,
            source: paths_for(admin, &r.source),
            reason: paths_for(admin, &r.reason),
        })
        .collect();
    let epoch = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    };
    let stale = state.freshness.stale_reason(&s);
    Ok(HttpResponse::Ok().json(SnapshotInfo {
        version: s.version.clone(),
        source: paths_for(admin, &s.source.display().to_string()),
        rows: s.rows(),
        columns: s.columns.clone(),
        id_type: if s.integer_ids { "integer" } else { "string" },
        produced_at: epoch(s.produced_at),
        loaded_at: epoch(s.loaded_at),
        age_seconds: s.age().as_secs_f64(),
        stale: stale.is_some(),
        stale_reason: stale,
        warnings: s.warnings.clone(),
        last_error,
        refused,
        drift: s.drift.as_deref().cloned(),
    }))
}
