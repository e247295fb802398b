//! Erasure routes (GDPR art. 17): erase a customer, lift an erasure. Behind the admin token when one is set.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::admin::authorize;
use super::body;
use crate::erasure::{EraseReport, ErasureError, Erasures, LiftReport};
use crate::error::{ApiError, ScoreError, V1Error};
use crate::scoring::AppState;

/// The erasure state, or why erasure is off.
fn erasures(state: &AppState) -> Result<std::sync::Arc<Erasures>, ScoreError> {
    state.erasures.clone().ok_or_else(|| {
        ScoreError::ErasureUnavailable(
            "erasure needs a state folder to keep the erasure list in: start the server with --state-dir".into(),
        )
    })
}

fn failed(error: ErasureError) -> ScoreError {
    match error {
        ErasureError::BadId(message) => ScoreError::BadRequest(message),
        other => {
            tracing::error!(error = %other, "erasure failed");
            ScoreError::Erasure(other.to_string())
        }
    }
}

/// Erase a customer
///
/// GDPR art. 17: the customer is listed as erased (a salted hash, never the id), answers `unknown_customer` at
/// once and in every later snapshot until the erasure is lifted, and their rows leave the feedback logs. Audited
/// in the state folder. Erasing again is harmless and says `already_erased`.
#[utoipa::path(delete, path = "/v1/customers/{id}", tag = "v1 admin",
    params(("id" = String, Path, description = "Customer id, exactly as in the data (integer ids in decimal)")),
    responses(
        (status = 200, description = "Erased (or erased already)", body = EraseReport),
        (status = 400, description = "Bad customer id (empty, too long, control characters)", body = V1Error),
        (status = 500, description = "The erasure list or audit log could not be written", body = V1Error),
        (status = 503, description = "Erasure is off: the server runs without --state-dir", body = V1Error),
    ))]
pub async fn delete_customer(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let erasures = erasures(&state)?;
    let id = id.into_inner();
    let s = state.clone();
    let report = web::block(move || erasures.erase(&s.snapshots, s.feedback.as_ref(), &id))
        .await
        .map_err(|_| ScoreError::NotReady("the server is shutting down".into()))?
        .map_err(failed)?;
    Ok(HttpResponse::Ok().json(report))
}

/// Body of `POST /v1/admin/erasures/lift`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiftRequest {
    /// The customer whose erasure is lifted, exactly as erased.
    pub customer_id: String,
}

/// Lift an erasure
///
/// The customer leaves the erasure list and is served again from the next snapshot load (the served snapshot
/// keeps them hidden; rows removed from logs stay removed). Audited.
#[utoipa::path(post, path = "/v1/admin/erasures/lift", tag = "v1 admin", request_body = LiftRequest,
    responses(
        (status = 200, description = "Lifted (`lifted: false` when the customer was not erased)", body = LiftReport),
        (status = 400, description = "Bad customer id", body = V1Error),
        (status = 500, description = "The erasure list or audit log could not be written", body = V1Error),
        (status = 503, description = "Erasure is off: the server runs without --state-dir", body = V1Error),
    ))]
pub async fn post_erasure_lift(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: body::Json<LiftRequest>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let erasures = erasures(&state)?;
    let id = body.into_inner().customer_id;
    let report = web::block(move || erasures.lift(&id))
        .await
        .map_err(|_| ScoreError::NotReady("the server is shutting down".into()))?
        .map_err(failed)?;
    Ok(HttpResponse::Ok().json(report))
}
