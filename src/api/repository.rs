//! Triton's model repository extension: the index of every model folder with its state, and the operator's
//! unload (`load` lives with the other admin routes). Behind the admin token when one is set.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::{is_admin, paths_for};
use crate::error::{ApiError, ScoreError, V2Error};
use crate::scoring::AppState;

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    match is_admin(req, state) {
        true => Ok(()),
        false => Err(ApiError::v2(ScoreError::Unauthorized)),
    }
}

/// Body of the index route (Triton's): `{}` lists every folder, `{"ready": true}` only those that serve.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct IndexRequest {
    /// List only the models that serve.
    #[serde(default)]
    ready: bool,
}

/// One model folder of the repository index.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexEntry {
    /// Model name (its folder).
    pub name: String,
    /// Its version (left out when the manifest does not say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `READY` or `UNAVAILABLE`.
    pub state: &'static str,
    /// Why it is unavailable (empty when ready).
    pub reason: String,
}

/// Reply of the unload route.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unloaded {
    /// Model name.
    pub name: String,
    /// Always `UNAVAILABLE`.
    pub state: &'static str,
}

/// Repository index
///
/// Every model folder with its state, broken and unloaded ones included. The body may be empty.
#[utoipa::path(post, path = "/v2/repository/index", tag = "v2 repository",
    request_body(content = Option<IndexRequest>, description = "`{}` (or nothing) lists every folder; `{\"ready\": true}` only those that serve"),
    responses(
        (status = 200, description = "The model folders", body = Vec<IndexEntry>),
        (status = 400, description = "The body is not valid JSON", body = V2Error),
    ))]
pub async fn post_index(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let request = match body.iter().all(u8::is_ascii_whitespace) {
        true => IndexRequest::default(),
        false => serde_json::from_slice(&body)
            .map_err(|e| ApiError::v2(ScoreError::BadJson(e.to_string())))?,
    };
    let entries: Vec<IndexEntry> = state
        .models
        .index()
        .into_iter()
        .filter(|e| !request.ready || e.unavailable.is_none())
        .map(|e| IndexEntry {
            name: e.name,
            version: e.version,
            state: if e.unavailable.is_some() {
                "UNAVAILABLE"
            } else {
                "READY"
            },
            reason: e.unavailable.unwrap_or_default(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(entries))
}

/// Unload a model
///
/// Stop serving the model (jobs already queued are answered first); it stays unloaded, whatever its folder does,
/// until `POST .../load`.
#[utoipa::path(post, path = "/v2/repository/models/{model}/unload", tag = "v2 repository",
    params(("model" = String, Path, description = "Model name (its folder)", example = "churn")),
    responses(
        (status = 200, description = "The model is unloaded", body = Unloaded),
        (status = 404, description = "No such model folder", body = V2Error),
    ))]
pub async fn post_model_unload(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let name = name.into_inner();
    if !state.models.unload(&name, &state.metrics) {
        return Err(ApiError::v2(ScoreError::UnknownModel(name)));
    }
    Ok(HttpResponse::Ok().json(Unloaded {
        name,
        state: "UNAVAILABLE",
    }))
}

/// The metadata of a model folder that is not served (`GET /v2/models/{model}`): its state and why, with file
/// paths only for the admin token's holder; None when no such folder is known.
pub fn unavailable_metadata(
    req: &HttpRequest,
    state: &AppState,
    name: &str,
) -> Option<HttpResponse> {
    let down = state.models.unavailable(name)?;
    let admin = is_admin(req, state);
    let parameters = serde_json::json!({
        "ready": false,
        "state": "UNAVAILABLE",
        "reason": paths_for(admin, &down.reason),
        "last_load_error": down.load_error.map(|e| paths_for(admin, &e)),
    });
    Some(HttpResponse::Ok().json(super::v2::ModelMetadata {
        name: name.to_string(),
        versions: down.version.into_iter().collect(),
        platform: super::v2::PLATFORM,
        inputs: vec![],
        outputs: vec![],
        parameters: match parameters {
            serde_json::Value::Object(p) => p,
            _ => serde_json::Map::new(),
        },
    }))
}
