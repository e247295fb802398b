//! KServe Open Inference Protocol v2: server and model metadata, model readiness, tensor inference.

use std::time::Instant;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::body;
use super::dto::{InferInput, InferOutput, InferRequest, InferResponse, TensorMetadata};
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

/// Name of the v2 input tensor of text models.
pub const TEXT_INPUT: &str = "text";
/// Name of the extra v2 output of tabular models: FP32 [batch, features + 1], each row's contributions with the
/// base value last (the layout of Triton's FIL backend); computed only when requested by name.
pub const CONTRIBUTIONS_OUTPUT: &str = "contributions";

/// `GET /v2/models/{model}`
pub async fn get_model_metadata(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
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

/// `POST /v2/models/{model}/infer`: feature models take one FP32/FP64 [batch, features] tensor and return their
/// output (probabilities or item scores); text models take a BYTES [batch] tensor of texts and return logits.
pub async fn post_infer(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: actix_web::HttpRequest,
    body: body::Json<InferRequest>,
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
    let (input_name, output_name) = match &m.spec.kind {
        ModelKind::Tabular(t) => (t.input.clone(), t.output.clone()),
        ModelKind::Recommender(r) => (r.input.clone(), r.output.clone()),
        ModelKind::Segmentation(g) => (g.input.clone(), g.output.clone()),
        ModelKind::Text(t) => (TEXT_INPUT.to_string(), t.output.clone()),
    };
    let mut served = vec![output_name.as_str()];
    if matches!(m.spec.kind, ModelKind::Tabular(_)) {
        served.push(CONTRIBUTIONS_OUTPUT);
    }
    let input = single_input(&request, &input_name, &served).map_err(ApiError::v2)?;
    // Without `outputs` the model's own output is returned; contributions only when asked by name.
    let wanted = |name: &str| match &request.outputs {
        Some(outputs) => outputs.iter().any(|o| o.name == name),
        None => name == output_name,
    };
    let scored = match &m.spec.kind {
        ModelKind::Text(_) => {
            let texts = text_input(input, state.limits.max_items).map_err(ApiError::v2)?;
            scoring::classify_texts(&state, m, &texts, deadline).await
        }
        _ => {
            let width = m.spec.feature_columns().len();
            let (values, rows) =
                feature_input(input, width, state.limits.max_items).map_err(ApiError::v2)?;
            let explainer = match wanted(CONTRIBUTIONS_OUTPUT) {
                true => Some(scoring::explainer(&state, &m).map_err(ApiError::v2)?),
                false => None,
            };
            scoring::score_matrix(m, values, rows, explainer, deadline).await
        }
    }
    .map_err(ApiError::v2)?;
    let rows = scored.items.len();
    let mut outputs = Vec::with_capacity(2);
    if wanted(&output_name) {
        outputs.push(InferOutput {
            name: &output_name,
            shape: vec![rows, scored.width],
            datatype: "FP32",
            data: &scored.outputs,
        });
    }
    if let Some(explained) = &scored.explained {
        outputs.push(InferOutput {
            name: CONTRIBUTIONS_OUTPUT,
            shape: vec![rows, explained.explainer.width + 1],
            datatype: "FP32",
            data: &explained.explanation.contributions,
        });
    }
    let body = InferResponse {
        model_name: &scored.model.spec.name,
        model_version: &scored.model.spec.version,
        id: request.id.clone(),
        outputs,
    };
    let mut response = HttpResponse::Ok();
    timing_headers(&mut response, &scored, started);
    Ok(response.json(body))
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

/// The request's one input, which must be `input_name`; requested outputs must be among `served`.
fn single_input<'r>(
    request: &'r InferRequest,
    input_name: &str,
    served: &[&str],
) -> Result<&'r InferInput, ScoreError> {
    let bad = |msg: String| ScoreError::BadRequest(msg);
    if let Some(outputs) = &request.outputs
        && let Some(unknown) = outputs.iter().find(|o| !served.contains(&o.name.as_str()))
    {
        return Err(bad(format!(
            "output '{}' is not served; this model serves {served:?}",
            unknown.name
        )));
    }
    let [input] = request.inputs.as_slice() else {
        return Err(bad(format!(
            "expected exactly one input ('{input_name}'), got {}",
            request.inputs.len()
        )));
    };
    if input.name != input_name {
        return Err(bad(format!(
            "unknown input '{}'; this model's input is '{input_name}'",
            input.name
        )));
    }
    Ok(input)
}

/// A BYTES [batch] tensor of texts, as JSON strings.
fn text_input(input: &InferInput, max_rows: usize) -> Result<Vec<serde_json::Value>, ScoreError> {
    let bad = |msg: String| ScoreError::BadRequest(msg);
    if input.datatype != "BYTES" {
        return Err(bad(format!(
            "input datatype '{}' is not supported; send BYTES (the texts)",
            input.datatype
        )));
    }
    let [n] = input.shape.as_slice() else {
        return Err(bad(format!(
            "input shape {:?} must be [batch]",
            input.shape
        )));
    };
    if *n < 1 || *n as usize > max_rows {
        return Err(bad(format!(
            "input shape {:?}: batch must be between 1 and {max_rows}",
            input.shape
        )));
    }
    if !input.data.numbers.is_empty() {
        return Err(bad(
            "BYTES data must be strings (the texts), got numbers".into()
        ));
    }
    if input.data.strings.len() != *n as usize {
        return Err(bad(format!(
            "input shape {:?} needs {n} strings, data has {}",
            input.shape,
            input.data.strings.len()
        )));
    }
    Ok(input
        .data
        .strings
        .iter()
        .cloned()
        .map(serde_json::Value::String)
        .collect())
}

/// A FP32/FP64 [batch, width] tensor as a row-major f32 matrix and its row count.
fn feature_input(
    input: &InferInput,
    width: usize,
    max_rows: usize,
) -> Result<(Vec<f32>, usize), ScoreError> {
    let bad = |msg: String| ScoreError::BadRequest(msg);
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
    if !input.data.strings.is_empty() {
        return Err(bad(format!(
            "{} data must be numbers, got strings",
            input.datatype
        )));
    }
    let data = &input.data.numbers;
    if !input.data.strings.is_empty() || data.len() != rows * width {
        return Err(bad(format!(
            "input shape {:?} needs {} values, data has {}",
            input.shape,
            rows * width,
            data.len()
        )));
    }
    let values: Vec<f32> = data.iter().map(|&v| v as f32).collect();
    if values.iter().any(|v| v.is_infinite()) {
        return Err(bad("input data has values out of the float32 range".into()));
    }
    Ok((values, rows))
}
