//! KServe Open Inference Protocol v2: server and model metadata, model readiness, tensor inference.

use std::time::Instant;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::dto::{InferInput, InferOutput, InferRequest, InferResponse, TensorMetadata};
use super::score::timing_headers;
use crate::error::{ApiError, ScoreError};
use crate::inference::{
    self, CONTRIBUTIONS_OUTPUT, InferCall, InputTensor, InputValues, TEXT_INPUT,
};
use crate::model::ModelHandle;
use crate::model::session::TensorInfo;
use crate::model::spec::ModelKind;
use crate::scoring::{self, AppState};

/// `GET /v2`
pub async fn get_server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "crmscore",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
    }))
}

fn model(state: &AppState, name: &str) -> Result<std::sync::Arc<ModelHandle>, ApiError> {
    scoring::find_model(&state.models, name, None).map_err(ApiError::v2)
}

fn tensors<'t>(
    all: &'t [TensorInfo],
    served: &'t str,
) -> impl Iterator<Item = TensorMetadata> + 't {
    all.iter()
        .filter(move |t| t.name == served)
        .map(|t| TensorMetadata {
            name: t.name.clone(),
            datatype: t.datatype.clone(),
            shape: t.shape.clone(),
        })
}

/// The v2 view of a model: the tensors a client sends and gets (for text models the server tokenizes, so the
/// input is a BYTES tensor of texts), and the manifest's settings.
fn metadata_tensors(
    m: &ModelHandle,
) -> (Vec<TensorMetadata>, Vec<TensorMetadata>, serde_json::Value) {
    match &m.spec.kind {
        ModelKind::Tabular(t) => (
            tensors(&m.inputs, &t.input).collect(),
            tensors(&m.outputs, &t.output)
                .chain(std::iter::once(TensorMetadata {
                    name: CONTRIBUTIONS_OUTPUT.into(),
                    datatype: "FP32".into(),
                    shape: vec![-1, t.features.len() as i64 + 1],
                }))
                .collect(),
            json!({
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
        ),
        ModelKind::Recommender(r) => (
            tensors(&m.inputs, &r.input).collect(),
            tensors(&m.outputs, &r.output).collect(),
            json!({
                "features": r.features,
                "missing": r.missing,
                "items": m.catalogue.as_ref().map_or(0, |c| c.len()),
                "owned_column": r.owned_column,
                "max_k": r.max_k,
            }),
        ),
        ModelKind::Segmentation(g) => (
            tensors(&m.inputs, &g.input).collect(),
            tensors(&m.outputs, &g.output).collect(),
            json!({
                "features": g.features,
                "missing": g.missing,
                "segments": g.segments,
            }),
        ),
        ModelKind::Text(t) => (
            vec![TensorMetadata {
                name: TEXT_INPUT.into(),
                datatype: "BYTES".into(),
                shape: vec![-1],
            }],
            tensors(&m.outputs, &t.output).collect(),
            json!({
                "labels": t.labels,
                "max_length": t.max_length,
                "max_tokens": m.spec.batching.max_tokens,
                "graph_inputs": m.inputs.iter().map(|i| json!({"name": i.name, "datatype": i.datatype, "shape": i.shape})).collect::<Vec<_>>(),
            }),
        ),
    }
}

/// `GET /v2/models/{model}`
pub async fn get_model_metadata(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // A folder that failed to load or was unloaded: its state and why.
    if let Some(down) = super::repository::unavailable_metadata(&req, &state, &name) {
        return Ok(down);
    }
    let m = model(&state, &name)?;
    // Load errors name files: paths are cut to file names unless the caller holds the admin token.
    let admin = super::admin::is_admin(&req, &state);
    let last_load_error = state
        .models
        .last_error(&m.spec.name)
        .map(|e| super::admin::paths_for(admin, &e));
    let spec = &m.spec;
    let (inputs, outputs, kind_parameters) = metadata_tensors(&m);
    let mut parameters = json!({
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
    if let (Some(all), serde_json::Value::Object(extra)) =
        (parameters.as_object_mut(), kind_parameters)
    {
        all.extend(extra);
    }
    Ok(HttpResponse::Ok().json(json!({
        "name": spec.name,
        "versions": [spec.version],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": parameters,
    })))
}

/// `GET /v2/models/{model}/ready`: a served model is loaded and warmed up.
pub async fn get_model_ready(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let m = model(&state, &name)?;
    Ok(HttpResponse::Ok().json(json!({ "name": m.spec.name, "ready": true })))
}

/// `POST /v2/models/{model}/infer`: feature models take one numeric [batch, features] tensor and return their
/// output (probabilities, item scores, segment distances); text models take a BYTES [batch] tensor of texts.
pub async fn post_infer(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: actix_web::HttpRequest,
    body: web::Json<InferRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let request = body.into_inner();
    let header = super::score::timeout_header(&req).map_err(ApiError::v2)?;
    let parameter = timeout_parameter(&request).map_err(ApiError::v2)?;
    // Both given: the client waits no longer than the shorter.
    let timeout = match (header, parameter) {
        (Some(h), Some(p)) => Some(h.min(p)),
        (h, p) => h.or(p),
    };
    let deadline = scoring::deadline(&state, timeout);
    let m = model(&state, &name)?;
    let InferRequest {
        id,
        inputs,
        outputs,
        ..
    } = request;
    let call = InferCall {
        inputs: inputs.into_iter().map(input_tensor).collect(),
        outputs: outputs.map(|o| o.into_iter().map(|o| o.name).collect()),
    };
    let inferred = inference::infer(&state, m, call, deadline)
        .await
        .map_err(ApiError::v2)?;
    let outputs = inferred
        .outputs
        .iter()
        .map(|o| InferOutput {
            name: &o.name,
            shape: o.shape.clone(),
            datatype: "FP32",
            data: inferred.data(o),
        })
        .collect();
    let scored = &inferred.scored;
    let body = InferResponse {
        model_name: &scored.model.spec.name,
        model_version: &scored.model.spec.version,
        id,
        outputs,
    };
    let mut response = HttpResponse::Ok();
    timing_headers(&mut response, scored, started);
    Ok(response.json(body))
}

/// A JSON input tensor as the inference use case takes it: numbers as f32, strings as texts.
fn input_tensor(input: InferInput) -> InputTensor {
    let values = match input.data.strings.is_empty() {
        true => InputValues::Numbers(input.data.numbers.iter().map(|&v| v as f32).collect()),
        false => InputValues::Texts(input.data.strings),
    };
    InputTensor {
        name: input.name,
        datatype: input.datatype,
        shape: input.shape,
        values,
    }
}

/// The request's `parameters.timeout` in milliseconds (None when absent); it must be a whole number from 1 up.
fn timeout_parameter(request: &InferRequest) -> Result<Option<u64>, ScoreError> {
    let Some(value) = request.parameters.as_ref().and_then(|p| p.get("timeout")) else {
        return Ok(None);
    };
    value
        .as_u64()
        .filter(|&ms| ms > 0)
        .map(Some)
        .ok_or_else(|| {
            ScoreError::BadRequest(format!(
                "parameters.timeout must be a whole number of milliseconds of at least 1, got {value}"
            ))
        })
}
