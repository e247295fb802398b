//! Triton's model repository extension: the index of every model folder with its state, and the operator's
//! unload (`load` lives with the other admin routes). Behind the admin token when one is set.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::admin::{is_admin, paths_for};
use crate::error::{ApiError, ScoreError};
use crate::scoring::AppState;

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    match is_admin(req, state) {
        true => Ok(()),
        false => Err(ApiError::v2(ScoreError::Unauthorized)),
    }
}

/// Body of the index route (Triton's): `{}` lists every folder, `{"ready": true}` only those that serve.
#[derive(Debug, Default, Deserialize)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

/// `POST /v2/repository/index`: `[{"name", "version", "state": "READY"|"UNAVAILABLE", "reason"}]` for every model
/// folder, broken and unloaded ones included (`version` is left out when the manifest does not say). The body
/// may be empty.
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
    let entries: Vec<serde_json::Value> = state
        .models
        .index()
        .into_iter()
        .filter(|e| !request.ready || e.unavailable.is_none())
        .map(|e| {
            let mut entry = json!({
                "name": e.name,
                "state": if e.unavailable.is_some() { "UNAVAILABLE" } else { "READY" },
                "reason": e.unavailable.unwrap_or_default(),
            });
            if let (Some(version), Some(fields)) = (e.version, entry.as_object_mut()) {
                fields.insert("version".into(), version.into());
            }
            entry
        })
        .collect();
    Ok(HttpResponse::Ok().json(entries))
}

/// `POST /v2/repository/models/{model}/unload`: stop serving the model (jobs already queued are answered first);
/// it stays unloaded, whatever its folder does, until `POST .../load`.
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
    Ok(HttpResponse::Ok().json(json!({"name": name, "state": "UNAVAILABLE"})))
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
    Some(HttpResponse::Ok().json(json!({
        "name": name,
        "versions": down.version.into_iter().collect::<Vec<_>>(),
        "platform": "onnxruntime_onnx",
        "inputs": [],
        "outputs": [],
        "parameters": {
            "ready": false,
            "state": "UNAVAILABLE",
            "reason": paths_for(admin, &down.reason),
            "last_load_error": down.load_error.map(|e| paths_for(admin, &e)),
        },
    })))
}
