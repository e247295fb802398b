//! What snapshot is served.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::{ApiError, ScoreError};
use crate::scoring::AppState;

/// Version, source, size and age of the served snapshot, the last load error if any, and the refused snapshots
/// newer than it (skipped until they change).
pub async fn get_snapshot(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let last_error = state.snapshots.last_error();
    let Some(s) = state.snapshots.current() else {
        return Err(ScoreError::NotReady(state.snapshots.not_served_reason()).into());
    };
    let epoch = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    };
    let stale = state.freshness.stale_reason(&s);
    Ok(HttpResponse::Ok().json(json!({
        "version": s.version,
        "source": s.source.display().to_string(),
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
        "refused": state.reloader.refused(),
    })))
}
