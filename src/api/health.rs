//! Liveness and readiness.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::admin::{is_admin, paths_for};
use crate::error::{ApiError, ScoreError, V2Error};
use crate::scoring::AppState;

/// Reply of the liveness route.
#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    /// Always true.
    pub live: bool,
}

/// Reply of the readiness route when ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// Always true.
    pub ready: bool,
    /// Present (true) when the snapshot is older than --max-snapshot-age but served (--stale-policy serve).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<bool>,
    /// Why the snapshot is stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Liveness
///
/// 200 while the process runs.
#[utoipa::path(get, path = "/v2/health/live", tag = "health",
    responses((status = 200, description = "The process runs", body = Live)))]
pub async fn get_live() -> HttpResponse {
    HttpResponse::Ok().json(Live { live: true })
}

/// Readiness
///
/// 200 once every model is warmed up and a snapshot is served; 503 with the reason before (file paths in the
/// reason only for the admin token's holder: probes and load balancers call this route without it).
#[utoipa::path(get, path = "/v2/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready to score", body = Ready),
        (status = 503, description = "Not ready, and why", body = V2Error),
    ))]
pub async fn get_ready(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let admin = is_admin(&req, &state);
    match crate::ready(&state) {
        Ok(None) => Ok(HttpResponse::Ok().json(Ready {
            ready: true,
            stale: None,
            reason: None,
        })),
        Ok(Some(reason)) => Ok(HttpResponse::Ok().json(Ready {
            ready: true,
            stale: Some(true),
            reason: Some(paths_for(admin, &reason)),
        })),
        Err(reason) => Err(ApiError::v2(ScoreError::NotReady(paths_for(
            admin, &reason,
        )))),
    }
}
