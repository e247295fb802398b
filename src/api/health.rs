//! Liveness and readiness.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::admin::{is_admin, paths_for};
use crate::error::{ApiError, ScoreError};
use crate::scoring::AppState;

/// 200 while the process runs.
pub async fn get_live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "live": true }))
}

/// 200 once every model is warmed up and a snapshot is served; 503 with the reason before (file paths in the
/// reason only for the admin token's holder: probes and load balancers call this route without it).
pub async fn get_ready(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let admin = is_admin(&req, &state);
    match crate::ready(&state) {
        Ok(None) => Ok(HttpResponse::Ok().json(json!({ "ready": true }))),
        Ok(Some(reason)) => Ok(HttpResponse::Ok()
            .json(json!({ "ready": true, "stale": true, "reason": paths_for(admin, &reason) }))),
        Err(reason) => Err(ApiError::v2(ScoreError::NotReady(paths_for(
            admin, &reason,
        )))),
    }
}
