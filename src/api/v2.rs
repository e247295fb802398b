//! KServe Open Inference Protocol v2: server and model metadata, model readiness, configuration and statistics,
//! tensor inference (JSON, or Triton's binary tensor data extension), on plain and versioned model routes.

use std::sync::Arc;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::binary::{self, ReplyFormat};
use super::body;
use super::dto::{InferRequest, InferResponse, TensorMetadata};
use super::score::timing_headers;
use super::{model_config, model_stats, non_finite};
use crate::error::{ApiError, ScoreError, V2Error};
use crate::inference::{self, CONTRIBUTIONS_OUTPUT, InferCall, metadata};
use crate::model::ModelHandle;
use crate::model::spec::ModelKind;
use crate::scoring::{self, AppState};

/// Reply of `GET /v2`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    /// Server name.
    pub name: &'static str,
    /// Server version.
    pub version: &'static str,
    /// The protocol extensions served.
    pub extensions: Vec<&'static str>,
}

/// Server metadata
///
/// The server's name, version and protocol extensions (KServe v2).
#[utoipa::path(get, path = "/v2", tag = "v2",
    responses((status = 200, description = "Server metadata", body = ServerMetadata)))]
pub async fn get_server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(ServerMetadata {
        name: "crmscore",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["binary_tensor_data", "model_configuration", "statistics"],
    })
}

/// Reply of the model metadata routes (KServe v2).
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMetadata {
    /// Model name.
    pub name: String,
    /// The served version (none for a folder whose manifest does not say).
    pub versions: Vec<String>,
    /// Always `onnxruntime_onnx`.
    pub platform: &'static str,
    /// The tensors a client sends (empty for a model that is not served).
    pub inputs: Vec<TensorMetadata>,
    /// The tensors a client gets back (empty for a model that is not served).
    pub outputs: Vec<TensorMetadata>,
    /// The manifest's settings: `kind`, `batching`, `features`, `labels`, ... (keys depend on the kind); for a
    /// folder that is not served, `ready: false`, `state`, `reason` and `last_load_error`.
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

/// Reply of the model readiness routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelReady {
    /// Model name.
    pub name: String,
    /// Always true (a model that is not ready answers 404).
    pub ready: bool,
}

/// A model route's path: `/v2/models/{model}[/versions/{version}]/...`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModelPath {
    /// Model name.
    #[param(example = "churn")]
    model: String,
    /// The version asked for, on versioned routes (the document's versioned copies add it).
    #[serde(default)]
    #[param(ignore)]
    version: Option<String>,
}

/// The served model of `path`; a version other than the served one is not found (only one version is served).
fn served_model(state: &AppState, path: &ModelPath) -> Result<Arc<ModelHandle>, ScoreError> {
    let m = scoring::find_model(&state.models, &path.model, None)?;
    match &path.version {
        Some(version) if *version != m.spec.version => Err(ScoreError::NotFound(format!(
            "model '{}' version '{version}' is not served; the served version is '{}'",
            m.spec.name, m.spec.version
        ))),
        _ => Ok(m),
    }
}

fn model(state: &AppState, path: &ModelPath) -> Result<Arc<ModelHandle>, ApiError> {
    served_model(state, path).map_err(ApiError::v2)
}

/// The v2 view of a model: the tensors a client sends and gets (shared with gRPC: `inference::metadata`), and the
/// manifest's settings.
pub(super) fn metadata_tensors(
    m: &ModelHandle,
) -> (Vec<TensorMetadata>, Vec<TensorMetadata>, serde_json::Value) {
    let described = |specs: Vec<metadata::TensorSpec>| -> Vec<TensorMetadata> {
        specs
            .into_iter()
            .map(|t| TensorMetadata {
                name: t.name,
                datatype: t.datatype,
                shape: t.shape,
            })
            .collect()
    };
    (
        described(metadata::inputs(m)),
        described(metadata::outputs(m)),
        kind_parameters(m),
    )
}

/// The settings of a model's kind that its metadata shows.
fn kind_parameters(m: &ModelHandle) -> serde_json::Value {
    match &m.spec.kind {
        ModelKind::Tabular(t) => json!({
            "explain": {
                "method": if m.trees.is_some() { "tree_shap" } else { "sampling" },
                "sampling_reason": m.sampling_reason,
                "contributions_output": CONTRIBUTIONS_OUTPUT,
            },
            "features": t.features,
            "labels": t.labels,
            "positive_label": t.labels[t.positive],
            "missing": t.missing,
            "risk": t.risk.map(|r| json!({"medium": r.medium, "high": r.high})),
        }),
        ModelKind::Recommender(r) => json!({
            "features": r.features,
            "missing": r.missing,
            "items": m.catalogue.as_ref().map_or(0, |c| c.len()),
            "owned_column": r.owned_column,
            "max_k": r.max_k,
        }),
        ModelKind::Segmentation(g) => json!({
            "features": g.features,
            "missing": g.missing,
            "segments": g.segments,
        }),
        ModelKind::Text(t) => json!({
            "labels": t.labels,
            "max_length": t.max_length,
            "max_tokens": m.spec.batching.max_tokens,
            "graph_inputs": m.inputs.iter().map(|i| json!({"name": i.name, "datatype": i.datatype, "shape": i.shape})).collect::<Vec<_>>(),
        }),
    }
}

/// Model metadata
///
/// Name, versions, platform, input and output tensors, and the manifest's settings. A model folder that failed to
/// load or was unloaded answers 200 with `parameters.state = "UNAVAILABLE"` and the reason.
#[utoipa::path(get, path = "/v2/models/{model}", tag = "v2", params(ModelPath),
    responses(
        (status = 200, description = "Model metadata", body = ModelMetadata),
        (status = 404, description = "No such model (or version)", body = V2Error),
    ))]
pub async fn get_model_metadata(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ApiError> {
    // A folder that failed to load or was unloaded: its state and why.
    if let Some(down) = super::repository::unavailable_metadata(&req, &state, &path.model) {
        return Ok(down);
    }
    let m = model(&state, &path)?;
    // Load errors name files: paths are cut to file names unless the caller holds the admin token.
    let admin = super::admin::is_admin(&req, &state);
    let last_load_error = state
        .models
        .last_error(&m.spec.name)
        .map(|e| super::admin::paths_for(admin, &e));
    let spec = &m.spec;
    let (inputs, outputs, kind_parameters) = metadata_tensors(&m);
    let parameters = json!({
        "kind": spec.kind.name(),
        "description": spec.description,
        "execution_provider": m.provider,
        "batching": {
            "max_batch_size": spec.batching.max_batch_size,
            "max_delay_us": spec.batching.max_delay_us,
            "queue_capacity": spec.batching.queue_capacity,
            "workers": spec.batching.workers,
        },
        "metadata": spec.metadata,
        "loaded_at": m.loaded_at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64(),
        "last_load_error": last_load_error,
    });
    let mut parameters = match parameters {
        serde_json::Value::Object(all) => all,
        _ => serde_json::Map::new(),
    };
    if let serde_json::Value::Object(extra) = kind_parameters {
        parameters.extend(extra);
    }
    Ok(HttpResponse::Ok().json(ModelMetadata {
        name: spec.name.clone(),
        versions: vec![spec.version.clone()],
        platform: PLATFORM,
        inputs,
        outputs,
        parameters,
    }))
}

/// The v2 platform of every model.
pub(super) const PLATFORM: &str = "onnxruntime_onnx";

/// Model readiness
///
/// 200 when the model is loaded and warmed up.
#[utoipa::path(get, path = "/v2/models/{model}/ready", tag = "v2", params(ModelPath),
    responses(
        (status = 200, description = "The model serves", body = ModelReady),
        (status = 404, description = "No such model (or version), or it is not served", body = V2Error),
    ))]
pub async fn get_model_ready(
    state: web::Data<AppState>,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ApiError> {
    let m = model(&state, &path)?;
    Ok(HttpResponse::Ok().json(ModelReady {
        name: m.spec.name.clone(),
        ready: true,
    }))
}

/// Model configuration
///
/// Triton's JSON model configuration (what `tritonclient`'s `get_model_config` reads).
#[utoipa::path(get, path = "/v2/models/{model}/config", tag = "v2", params(ModelPath),
    responses(
        (status = 200, description = "Triton model configuration", body = model_config::ModelConfig),
        (status = 404, description = "No such model (or version)", body = V2Error),
    ))]
pub async fn get_model_config(
    state: web::Data<AppState>,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ApiError> {
    let m = model(&state, &path)?;
    let (inputs, outputs, _) = metadata_tensors(&m);
    Ok(HttpResponse::Ok().json(model_config::model_config(&m, &inputs, &outputs)))
}

/// Model statistics
///
/// Triton's inference statistics of the model.
#[utoipa::path(get, path = "/v2/models/{model}/stats", tag = "v2", params(ModelPath),
    responses(
        (status = 200, description = "Inference statistics", body = model_stats::StatsReply),
        (status = 404, description = "No such model (or version)", body = V2Error),
    ))]
pub async fn get_model_stats(
    state: web::Data<AppState>,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ApiError> {
    let m = model(&state, &path)?;
    Ok(HttpResponse::Ok().json(model_stats::stats_reply([&*m])))
}

/// Statistics of every model
///
/// The inference statistics of every served model.
#[utoipa::path(get, path = "/v2/models/stats", tag = "v2",
    responses((status = 200, description = "Inference statistics", body = model_stats::StatsReply)))]
pub async fn get_all_stats(state: web::Data<AppState>) -> HttpResponse {
    let models = state.models.all();
    HttpResponse::Ok().json(model_stats::stats_reply(models.iter().map(|m| &**m)))
}

/// Inference
///
/// Feature models take one numeric [batch, features] tensor and return their output (probabilities, item scores,
/// segment distances); text models take a BYTES [batch] (or [batch, 1]) tensor of texts. Tensors travel as JSON
/// or as Triton binary data (a JSON header of `Inference-Header-Content-Length` bytes, then the tensors' raw
/// little-endian bytes), in both directions.
#[utoipa::path(post, path = "/v2/models/{model}/infer", tag = "v2",
    params(
        ModelPath,
        ("Inference-Header-Content-Length" = Option<u64>, Header,
            description = "Binary tensor data: the length of the JSON header that starts the body"),
        ("x-request-timeout-ms" = Option<u64>, Header, minimum = 1,
            description = "How long the client waits, in milliseconds"),
    ),
    request_body(description = "A v2 inference request, as JSON or as a JSON header followed by binary tensor data",
        content(
            (InferRequest = "application/json"),
            ("application/octet-stream"),
        )),
    responses(
        (status = 200, description = "Output tensors, as JSON or as a JSON header followed by binary tensor data",
            content(
                (InferResponse = "application/json"),
                ("application/octet-stream"),
            ),
            headers(
                ("Inference-Header-Content-Length" = u64,
                    description = "Binary replies: the length of the JSON header that starts the body"),
                ("x-queue-time-us" = u64, description = "Microseconds the request waited in the model's queue"),
                ("x-inference-time-us" = u64, description = "Microseconds of inference"),
                ("x-total-time-us" = u64, description = "Microseconds from arrival to reply"),
            )),
        (status = 404, description = "No such model (or version)", body = V2Error),
        (status = 413, description = "The reply would be larger than the server's limits", body = V2Error),
        (status = 500, description = "Inference failed", body = V2Error),
        (status = 503, description = "The model's queue is full or it is not available", body = V2Error),
        (status = 504, description = "The request's deadline passed before the model answered", body = V2Error),
    ))]
pub async fn post_infer(
    state: web::Data<AppState>,
    path: web::Path<ModelPath>,
    body: body::RawBody,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    infer(&state, &path, &body.request, body.bytes(), started)
        .await
        .map_err(ApiError::v2)
}

/// Reads the request (JSON, or a JSON header and binary tensor data), scores it, and encodes the reply the way it
/// asked.
async fn infer(
    state: &AppState,
    path: &ModelPath,
    req: &HttpRequest,
    body: &[u8],
    started: Instant,
) -> Result<HttpResponse, ScoreError> {
    let parts = binary::split(req.headers(), body)?;
    let request = read_request(parts.json)?;
    let header = super::score::timeout_header(req)?;
    let parameter = timeout_parameter(&request)?;
    // Both given: the client waits no longer than the shorter.
    let timeout = match (header, parameter) {
        (Some(h), Some(p)) => Some(h.min(p)),
        (h, p) => h.or(p),
    };
    let deadline = scoring::deadline(state, timeout);
    let m = served_model(state, path)?;
    let format = ReplyFormat::of(request.parameters.as_ref(), request.outputs.as_deref())?;
    let InferRequest {
        id,
        inputs,
        outputs,
        ..
    } = request;
    let call = InferCall {
        inputs: binary::input_tensors(inputs, parts.binary)?,
        outputs: outputs.map(|o| o.into_iter().map(|o| o.name).collect()),
    };
    let inferred = inference::infer(state, m, call, deadline).await?;
    let reply = binary::encode_reply(&inferred, id, &format)?;
    let mut response = HttpResponse::Ok();
    timing_headers(&mut response, &inferred.scored, started);
    match reply.header_length {
        Some(length) => response
            .insert_header((binary::HEADER_LENGTH, length.to_string()))
            .content_type("application/octet-stream"),
        None => response.content_type("application/json"),
    };
    Ok(response.body(reply.body))
}

/// The JSON inference request; the bare NaN / Infinity tokens Python writes are read as a missing value and an
/// out-of-range one.
fn read_request(json: &[u8]) -> Result<InferRequest, ScoreError> {
    serde_json::from_slice(&non_finite::readable(json))
        .map_err(|e| ScoreError::BadJson(e.to_string()))
}

/// The request's `parameters.timeout` as whole milliseconds, rounded up (None when absent). It is in
/// microseconds, as Triton defines it and tritonclient sends it (`client.infer(..., timeout=us)`); it must be a
/// whole number from 1 up.
fn timeout_parameter(request: &InferRequest) -> Result<Option<u64>, ScoreError> {
    let Some(value) = request.parameters.as_ref().and_then(|p| p.get("timeout")) else {
        return Ok(None);
    };
    value
        .as_u64()
        .filter(|&us| us > 0)
        .map(|us| Some(us.div_ceil(1000)))
        .ok_or_else(|| {
            ScoreError::BadRequest(format!(
                "parameters.timeout must be a whole number of microseconds of at least 1, got {value}"
            ))
        })
}
