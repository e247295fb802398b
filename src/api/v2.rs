//! KServe Open Inference Protocol v2: server and model metadata, model readiness, tensor inference.

use std::time::Instant;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::dto::{InferOutput, InferRequest, InferResponse, TensorMetadata};
use super::score::timing_headers;
use crate::error::{ApiError, ScoreError};
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
    state
        .models
        .get(name)
        .ok_or_else(|| ApiError::v2(ScoreError::UnknownModel(name.to_string())))
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

/// `GET /v2/models/{model}`: the tensors the server feeds and returns, plus the manifest's settings.
pub async fn get_model_metadata(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let m = model(&state, &name)?;
    let spec = &m.spec;
    let ModelKind::Tabular(t) = &spec.kind;
    Ok(HttpResponse::Ok().json(json!({
        "name": spec.name,
        "versions": [spec.version],
        "platform": "onnxruntime_onnx",
        "inputs": tensors(&m.inputs, &t.input).collect::<Vec<_>>(),
        "outputs": tensors(&m.outputs, &t.output).collect::<Vec<_>>(),
        "parameters": {
            "kind": spec.kind.name(),
            "description": spec.description,
            "execution_provider": m.provider,
            "features": t.features,
            "labels": t.labels,
            "positive_label": t.labels[t.positive],
            "missing": t.missing,
            "risk": t.risk.map(|r| json!({"medium": r.medium, "high": r.high})),
            "batching": {
                "max_batch_size": spec.batching.max_batch_size,
                "max_delay_us": spec.batching.max_delay_us,
                "queue_capacity": spec.batching.queue_capacity,
                "workers": spec.batching.workers,
            },
            "metadata": spec.metadata,
            "loaded_at": m.loaded_at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64(),
            "last_load_error": state.models.last_error(&spec.name),
        },
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

/// `POST /v2/models/{model}/infer`: one FP32/FP64 [batch, features] tensor in, class probabilities out.
pub async fn post_infer(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Json<InferRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let request = body.into_inner();
    let m = model(&state, &name)?;
    let (input, rows) = infer_input(&m, &request, state.limits.max_items).map_err(ApiError::v2)?;
    let scored = scoring::score_matrix(m, input, rows)
        .await
        .map_err(ApiError::v2)?;
    let t = scored.tabular();
    let body = InferResponse {
        model_name: &scored.model.spec.name,
        model_version: &scored.model.spec.version,
        id: request.id,
        outputs: vec![InferOutput {
            name: &t.output,
            shape: vec![rows, t.labels.len()],
            datatype: "FP32",
            data: &scored.probabilities,
        }],
    };
    let mut response = HttpResponse::Ok();
    timing_headers(&mut response, &scored, started);
    Ok(response.json(body))
}

/// Validates a v2 request against the model and returns its row-major f32 input and row count.
fn infer_input(
    m: &ModelHandle,
    request: &InferRequest,
    max_rows: usize,
) -> Result<(Vec<f32>, usize), ScoreError> {
    let bad = |msg: String| ScoreError::BadRequest(msg);
    let ModelKind::Tabular(t) = &m.spec.kind;
    let width = t.features.len();
    if let Some(outputs) = &request.outputs
        && let Some(unknown) = outputs.iter().find(|o| o.name != t.output)
    {
        return Err(bad(format!(
            "output '{}' is not served; this model serves '{}'",
            unknown.name, t.output
        )));
    }
    let [input] = request.inputs.as_slice() else {
        return Err(bad(format!(
            "expected exactly one input ('{}'), got {}",
            t.input,
            request.inputs.len()
        )));
    };
    if input.name != t.input {
        return Err(bad(format!(
            "unknown input '{}'; this model's input is '{}'",
            input.name, t.input
        )));
    }
    if input.datatype != "FP32" && input.datatype != "FP64" {
        return Err(bad(format!(
            "input datatype '{}' is not supported; send FP32 or FP64",
            input.datatype
        )));
    }
    let [n, w] = input.shape.as_slice() else {
        return Err(bad(format!(
            "input shape {:?} must be [batch, {width}]",
            input.shape
        )));
    };
    if *w != width as i64 {
        return Err(bad(format!(
            "input shape {:?}: the model takes {width} features per row",
            input.shape
        )));
    }
    if *n < 1 || *n as usize > max_rows {
        return Err(bad(format!(
            "input shape {:?}: batch must be between 1 and {max_rows}",
            input.shape
        )));
    }
    let rows = *n as usize;
    if input.data.0.len() != rows * width {
        return Err(bad(format!(
            "input shape {:?} needs {} values, data has {}",
            input.shape,
            rows * width,
            input.data.0.len()
        )));
    }
    let values: Vec<f32> = input.data.0.iter().map(|&v| v as f32).collect();
    if values.iter().any(|v| v.is_infinite()) {
        return Err(bad("input data has values out of the float32 range".into()));
    }
    Ok((values, rows))
}
