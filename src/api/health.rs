//! Liveness and readiness.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::{ApiError, ScoreError};
use crate::scoring::AppState;

/// 200 while the process runs.
pub async fn get_live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "live": true }))
}

/// 200 once every model is warmed up and a snapshot is served; 503 with the reason before.
pub async fn get_ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match crate::ready(&state) {
        Ok(None) => Ok(HttpResponse::Ok().json(json!({ "ready": true }))),
        Ok(Some(reason)) => {
            Ok(HttpResponse::Ok().json(json!({ "ready": true, "stale": true, "reason": reason })))
        }
        Err(reason) => Err(ApiError::v2(ScoreError::NotReady(reason))),
    }
}
