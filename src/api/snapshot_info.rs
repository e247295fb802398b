//! What snapshot is served.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::admin::{is_admin, paths_for};
use crate::error::{ApiError, ScoreError};
use crate::scoring::AppState;

/// Version, source, size and age of the served snapshot, the last load error if any, and the refused snapshots
/// newer than it (skipped until they change). Server paths in them are cut to file names unless the caller holds
/// the admin token.
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
    let refused: Vec<_> = state
        .reloader
        .refused()
        .into_iter()
        .map(|r| {
            json!({
                "version": r.version,
                "source": paths_for(admin, &r.source),
                "reason": paths_for(admin, &r.reason),
            })
        })
        .collect();
    let epoch = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    };
    let stale = state.freshness.stale_reason(&s);
    Ok(HttpResponse::Ok().json(json!({
        "version": s.version,
        "source": paths_for(admin, &s.source.display().to_string()),
        "rows": s.rows(),
        "columns": s.columns,
        "id_type": if s.integer_ids { "integer" } else { "string" },
        "produced_at": epoch(s.produced_at),
        "loaded_at": epoch(s.loaded_at),
        "age_seconds": s.age().as_secs_f64(),
        "stale": stale.is_some(),
        "stale_reason": stale,
        "warnings": s.warnings,
        "last_error": last_error,
        "refused": refused,
    })))
}
