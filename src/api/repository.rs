//! Triton's model repository extension: what the routes say about model folders that are not served.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::admin::{is_admin, paths_for};
use crate::scoring::AppState;

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
