//! The domain scoring routes: one generic route per model, and the named routes of the shipped models.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use super::dto::{
    ChurnResult, ExplainDepth, ExplanationInfo, ItemKey, ModelRef, Reason, RecommendationResult,
    RecommendedItem, ScoreInput, ScoreReply, ScoreRequest, SegmentResult, TabularResult,
    TextResult,
};
use super::{body, decisions, shape};
use crate::error::{ApiError, ErrorBody, ScoreError, V1Error};
use crate::feedback::DecisionIds;
use crate::model::spec::{ModelKind, ModelSpec};
use crate::scoring::{self, AppState, Explained, Scored};
use crate::snapshot::CustomerId;
use crate::text::softmax;

/// The error answers every scoring route may give (for the OpenAPI document; handlers answer through ApiError).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum ScoringErrors<'a> {
    /// Bad request: fields that do not apply to the model, too many items, ...
    #[response(status = 400)]
    BadRequest(V1Error<'a>),
    /// The model is not served
    #[response(status = 404)]
    UnknownModel(V1Error<'a>),
    /// The reply would be larger than the server's limits
    #[response(status = 413)]
    ReplyTooLarge(V1Error<'a>),
    /// Inference failed
    #[response(status = 500)]
    InferenceFailed(V1Error<'a>),
    /// No snapshot is served yet, the model's queue is full or it is not available
    #[response(status = 503)]
    Unavailable(V1Error<'a>),
    /// The request's deadline passed before the model answered
    #[response(status = 504)]
    DeadlineExceeded(V1Error<'a>),
}

/// The model behind `/v1/churn/score`.
pub const CHURN_MODEL: &str = "churn";
/// The model behind `/v1/recommendations`.
pub const RECOMMENDATION_MODEL: &str = "recommendation";
/// The model behind `/v1/sentiment`.
pub const SENTIMENT_MODEL: &str = "sentiment";

/// The reply of `/v1/models/{model}/score`, whose results follow the model's kind (the document's view: each
/// handler branch serializes one of these `ScoreReply`s directly).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ModelScoreReply<'a> {
    /// A tabular model.
    Tabular(ScoreReply<'a, TabularResult<'a>>),
    /// A segmentation model.
    Segmentation(ScoreReply<'a, SegmentResult<'a>>),
    /// A recommender.
    Recommender(ScoreReply<'a, RecommendationResult<'a>>),
    /// A text classifier.
    Text(ScoreReply<'a, TextResult<'a>>),
}

/// Score with any model
///
/// The body and reply follow the model's kind: tabular and segmentation models take `customer_ids` or `rows`
/// (tabular ones also `explain`), recommenders `customer_ids`, `k` and `exclude_owned`, text models `texts`.
#[utoipa::path(post, path = "/v1/models/{model}/score", tag = "v1",
    params(("model" = String, Path, description = "Model name", example = "churn"), ("x-request-timeout-ms" = Option<u64>, Header, minimum = 1,
            description = "How long the client waits, in milliseconds")),
    request_body = ScoreRequest,
    responses(
        (status = 200, description = "One result per requested item, in request order", body = ModelScoreReply,
            headers(
                ("x-queue-time-us" = u64, description = "Microseconds the request waited in the model's queue"),
                ("x-inference-time-us" = u64, description = "Microseconds of inference"),
                ("x-total-time-us" = u64, description = "Microseconds from arrival to reply"),
                ("x-snapshot-version" = String, description = "The snapshot whose data answered (absent for inline rows and texts)"),
            )),
        ScoringErrors,
    ))]
pub async fn post_model_score(
    state: web::Data<AppState>,
    model: web::Path<String>,
    req: HttpRequest,
    body: body::Json<ScoreRequest>,
) -> Result<HttpResponse, ApiError> {
    score(&state, &model, &req, body.into_inner(), None).await
}

/// Churn scores
///
/// The churn model, with `churn_probability` and `risk`; `explain` adds each result's reasons.
#[utoipa::path(post, path = "/v1/churn/score", tag = "v1", params(("x-request-timeout-ms" = Option<u64>, Header, minimum = 1,
            description = "How long the client waits, in milliseconds")),
    request_body = ScoreRequest,
    responses(
        (status = 200, description = "One result per requested item, in request order", body = ScoreReply<ChurnResult>,
            headers(
                ("x-queue-time-us" = u64, description = "Microseconds the request waited in the model's queue"),
                ("x-inference-time-us" = u64, description = "Microseconds of inference"),
                ("x-total-time-us" = u64, description = "Microseconds from arrival to reply"),
                ("x-snapshot-version" = String, description = "The snapshot whose data answered (absent for inline rows and texts)"),
            )),
        ScoringErrors,
    ))]
pub async fn post_churn_score(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: body::Json<ScoreRequest>,
) -> Result<HttpResponse, ApiError> {
    score(
        &state,
        CHURN_MODEL,
        &req,
        body.into_inner(),
        Some("tabular"),
    )
    .await
}

/// Recommendations
///
/// The recommendation model: `k` items per customer, owned items excluded unless `exclude_owned` is false.
#[utoipa::path(post, path = "/v1/recommendations", tag = "v1", params(("x-request-timeout-ms" = Option<u64>, Header, minimum = 1,
            description = "How long the client waits, in milliseconds")),
    request_body = ScoreRequest,
    responses(
        (status = 200, description = "One result per requested item, in request order", body = ScoreReply<RecommendationResult>,
            headers(
                ("x-queue-time-us" = u64, description = "Microseconds the request waited in the model's queue"),
                ("x-inference-time-us" = u64, description = "Microseconds of inference"),
                ("x-total-time-us" = u64, description = "Microseconds from arrival to reply"),
                ("x-snapshot-version" = String, description = "The snapshot whose data answered (absent for inline rows and texts)"),
            )),
        ScoringErrors,
    ))]
pub async fn post_recommendations(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: body::Json<ScoreRequest>,
) -> Result<HttpResponse, ApiError> {
    score(
        &state,
        RECOMMENDATION_MODEL,
        &req,
        body.into_inner(),
        Some("recommender"),
    )
    .await
}

/// Sentiment
///
/// The sentiment model: a label and the probability of every label per text.
#[utoipa::path(post, path = "/v1/sentiment", tag = "v1", params(("x-request-timeout-ms" = Option<u64>, Header, minimum = 1,
            description = "How long the client waits, in milliseconds")),
    request_body = ScoreRequest,
    responses(
        (status = 200, description = "One result per requested item, in request order", body = ScoreReply<TextResult>,
            headers(
                ("x-queue-time-us" = u64, description = "Microseconds the request waited in the model's queue"),
                ("x-inference-time-us" = u64, description = "Microseconds of inference"),
                ("x-total-time-us" = u64, description = "Microseconds from arrival to reply"),
                ("x-snapshot-version" = String, description = "The snapshot whose data answered (absent for inline rows and texts)"),
            )),
        ScoringErrors,
    ))]
pub async fn post_sentiment(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: body::Json<ScoreRequest>,
) -> Result<HttpResponse, ApiError> {
    score(
        &state,
        SENTIMENT_MODEL,
        &req,
        body.into_inner(),
        Some("text"),
    )
    .await
}

/// The header in which a client says how long it will wait, in milliseconds.
pub const TIMEOUT_HEADER: &str = "x-request-timeout-ms";

/// The request's `x-request-timeout-ms` (None when absent); anything but a whole number of milliseconds from 1
/// up is a bad request.
pub fn timeout_header(req: &HttpRequest) -> Result<Option<u64>, ScoreError> {
    let Some(value) = req.headers().get(TIMEOUT_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Some)
        .ok_or_else(|| {
            ScoreError::BadRequest(format!(
                "header '{TIMEOUT_HEADER}' must be a whole number of milliseconds of at least 1, got {:?}",
                String::from_utf8_lossy(value.as_bytes())
            ))
        })
}

/// Validates the body for the model's kind, runs it, and shapes the reply; `named` marks a named route (which
/// also fixes the kind it expects and, for churn, the field names).
async fn score(
    state: &AppState,
    name: &str,
    req: &HttpRequest,
    body: ScoreRequest,
    named: Option<&'static str>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let deadline = scoring::deadline(state, timeout_header(req)?);
    let model = scoring::find_model(&state.models, name, named)?;
    let kind = model.spec.kind.name();
    let churn = named == Some("tabular");
    let depth = body.explain;
    if depth.is_some() && !matches!(model.spec.kind, ModelKind::Tabular(_)) {
        return Err(ScoreError::NotExplainable(format!(
            "model '{name}' is a {kind} model; 'explain' needs a tabular model (float features in, scores out)"
        ))
        .into());
    }
    let explain = depth.is_some();
    let limits = &state.limits;
    let route = decisions::route_of(named);
    let (scored, body) = match body.validate(kind)? {
        ScoreInput::Customers(ids) => {
            check_reasons(limits, ids.len(), &model, depth)?;
            let scored = scoring::score_customers(state, model, &ids, explain, deadline).await?;
            let work = scored.items.len() * row_work(&scored, depth);
            let made = DecisionIds::reserve(scored.items.len());
            let (scored, body, ids) = shape::run(work, move || {
                let body = match kind {
                    "segmentation" => segment_reply(&scored, Some(&ids), &made),
                    _ => tabular_reply(&scored, Some(&ids), churn, depth, &made),
                };
                (scored, body, ids)
            })
            .await?;
            decisions::log_scored(state, route, &scored, &made, Some(&ids), None);
            (scored, body)
        }
        ScoreInput::Rows(rows) => {
            check_reasons(limits, rows.len(), &model, depth)?;
            let scored = scoring::score_rows(state, model, &rows, explain, deadline).await?;
            let work = scored.items.len() * row_work(&scored, depth);
            let made = DecisionIds::reserve(scored.items.len());
            let (scored, body) = shape::run(work, move || {
                let body = match kind {
                    "segmentation" => segment_reply(&scored, None, &made),
                    _ => tabular_reply(&scored, None, churn, depth, &made),
                };
                (scored, body)
            })
            .await?;
            decisions::log_scored(state, route, &scored, &made, None, None);
            (scored, body)
        }
        ScoreInput::Recommend {
            customer_ids,
            k,
            exclude_owned,
        } => {
            let items = model.catalogue.as_ref().map_or(0, |c| c.len());
            let max_k = match &model.spec.kind {
                ModelKind::Recommender(r) => r.max_k.min(items),
                _ => items,
            };
            if k == 0 || k > max_k {
                return Err(
                    ScoreError::BadRequest(format!("'k' must be between 1 and {max_k}")).into(),
                );
            }
            let asked = customer_ids.len().saturating_mul(k);
            let what = format!(
                "recommended items ({} customers × k={k})",
                customer_ids.len()
            );
            scoring::check_reply(
                asked,
                limits.max_recommendations,
                &what,
                "--max-recommendations",
            )?;
            let scored =
                scoring::score_customers(state, model, &customer_ids, false, deadline).await?;
            let made = DecisionIds::reserve(customer_ids.len());
            let (scored, body, customer_ids) = shape::run(asked, move || {
                let body = recommendation_reply(&scored, &customer_ids, k, exclude_owned, &made);
                (scored, body, customer_ids)
            })
            .await?;
            let ids = Some(customer_ids.as_slice());
            decisions::log_scored(state, route, &scored, &made, ids, Some(exclude_owned));
            (scored, body)
        }
        ScoreInput::Texts(texts) => {
            let scored = scoring::classify_texts(state, model, &texts, deadline).await?;
            let work = scored.items.len() * scored.width;
            let made = DecisionIds::reserve(scored.items.len());
            let (scored, body) = shape::run(work, move || {
                let body = text_reply(&scored, &made);
                (scored, body)
            })
            .await?;
            decisions::log_scored(state, route, &scored, &made, None, None);
            (scored, body)
        }
    };
    Ok(json_reply(&scored, body?, started))
}

/// Refuses reasons for more values (rows × features) than `--max-output-values` allows.
fn check_reasons(
    limits: &scoring::Limits,
    rows: usize,
    model: &crate::model::ModelHandle,
    depth: Option<ExplainDepth>,
) -> Result<(), ScoreError> {
    let per_row = match depth {
        None => return Ok(()),
        Some(ExplainDepth::Top(k)) => k.min(model.spec.feature_columns().len()),
        Some(ExplainDepth::All) => model.spec.feature_columns().len(),
    };
    let what = format!("reasons ({rows} rows × {per_row})");
    scoring::check_reply(
        rows.saturating_mul(per_row),
        limits.max_output_values,
        &what,
        "--max-output-values",
    )
}

/// Values shaped per row of a reply: the model's outputs plus its reasons.
fn row_work(scored: &Scored, depth: Option<ExplainDepth>) -> usize {
    let reasons = match (depth, &scored.explained) {
        (Some(ExplainDepth::Top(k)), Some(_)) => k,
        (Some(ExplainDepth::All), Some(e)) => e.explainer.width,
        _ => 0,
    };
    scored.width + reasons
}

fn key<'a>(ids: Option<&'a [CustomerId]>, i: usize) -> ItemKey<'a> {
    match ids {
        Some(ids) => ItemKey::CustomerId(&ids[i]),
        None => ItemKey::Row(i),
    }
}

fn error_body(e: &scoring::ItemError) -> ErrorBody<'_> {
    ErrorBody {
        code: e.code,
        message: e.message.clone(),
    }
}

/// The reasons of scored row `row`: the `depth` largest contributions, with the customer's values and the
/// manifest's descriptions.
pub fn reasons<'a>(
    spec: &'a ModelSpec,
    explained: &Explained,
    row: usize,
    depth: ExplainDepth,
) -> Vec<Reason<'a>> {
    let k = match depth {
        ExplainDepth::Top(k) => Some(k),
        ExplainDepth::All => None,
    };
    let features = spec.feature_columns();
    let values = explained.inputs_of(row);
    let bounds = explained.error_bounds_of(row);
    scoring::top_contributions(explained, row, k)
        .into_iter()
        .map(|(i, contribution)| {
            let info = spec.feature_info.get(&features[i]);
            Reason {
                name: &features[i],
                value: values.get(i).copied().filter(|v| !v.is_nan()),
                contribution,
                direction: scoring::direction(contribution),
                description: info
                    .map(|f| f.description.as_str())
                    .filter(|d| !d.is_empty()),
                unit: info.and_then(|f| f.unit.as_deref()),
                error_bound: bounds.get(i).copied(),
            }
        })
        .collect()
}

/// The reply-level description of how reasons were computed.
pub fn explanation_info<'a>(scored: &'a Scored) -> Option<ExplanationInfo<'a>> {
    let explained = scored.explained.as_ref()?;
    let explainer = &explained.explainer;
    // Every row carries the base value last; it is the same for all rows of one explainer.
    let base_value = explained
        .explanation
        .contributions
        .get(explainer.width)
        .copied()?;
    Some(ExplanationInfo {
        method: explainer.method_name(),
        space: explainer.space_name(),
        base_value,
        reference: scored.snapshot.as_deref().map(|s| s.version.as_str()),
    })
}

fn tabular_reply(
    scored: &Scored,
    ids: Option<&[CustomerId]>,
    churn: bool,
    depth: Option<ExplainDepth>,
    made: &DecisionIds,
) -> Result<Vec<u8>, ScoreError> {
    let ModelKind::Tabular(t) = &scored.model.spec.kind else {
        return reply(scored, Vec::<()>::new());
    };
    let spec = &scored.model.spec;
    let reasons_of = |row: usize| match (scored.explained.as_ref(), depth) {
        (Some(explained), Some(depth)) => Some(reasons(spec, explained, row, depth)),
        _ => None,
    };
    let outcomes = scored
        .items
        .iter()
        .enumerate()
        .map(|(i, outcome)| (i, key(ids, i), outcome));
    if churn {
        let results: Vec<ChurnResult> = outcomes
            .map(|(i, key, outcome)| match outcome {
                Ok(row) => {
                    let p = scored.output_of(*row)[t.positive];
                    ChurnResult {
                        key,
                        decision_id: Some(made.get(i)),
                        churn_probability: Some(p),
                        risk: t.risk.map(|r| r.band(p)),
                        reasons: reasons_of(*row),
                        error: None,
                    }
                }
                Err(e) => ChurnResult {
                    key,
                    decision_id: None,
                    churn_probability: None,
                    risk: None,
                    reasons: None,
                    error: Some(error_body(e)),
                },
            })
            .collect();
        return reply(scored, results);
    }
    let results: Vec<TabularResult> = outcomes
        .map(|(i, key, outcome)| match outcome {
            Ok(row) => {
                let probs = scored.output_of(*row);
                let p = probs[t.positive];
                let best = argmax(probs);
                TabularResult {
                    key,
                    decision_id: Some(made.get(i)),
                    probability: Some(p),
                    label: Some(&t.labels[best]),
                    risk: t.risk.map(|r| r.band(p)),
                    scores: Some(
                        t.labels
                            .iter()
                            .map(String::as_str)
                            .zip(probs.iter().copied())
                            .collect(),
                    ),
                    reasons: reasons_of(*row),
                    error: None,
                }
            }
            Err(e) => TabularResult {
                key,
                decision_id: None,
                probability: None,
                label: None,
                risk: None,
                scores: None,
                reasons: None,
                error: Some(error_body(e)),
            },
        })
        .collect();
    reply(scored, results)
}

fn segment_reply(
    scored: &Scored,
    ids: Option<&[CustomerId]>,
    made: &DecisionIds,
) -> Result<Vec<u8>, ScoreError> {
    let ModelKind::Segmentation(g) = &scored.model.spec.kind else {
        return reply(scored, Vec::<()>::new());
    };
    let results: Vec<SegmentResult> = scored
        .items
        .iter()
        .enumerate()
        .map(|(i, outcome)| match outcome {
            Ok(row) => {
                let distances = scored.output_of(*row);
                SegmentResult {
                    key: key(ids, i),
                    decision_id: Some(made.get(i)),
                    segment: g.segments.get(scoring::nearest(distances)),
                    distances: Some(
                        g.segments
                            .iter()
                            .map(|s| s.key.as_str())
                            .zip(distances.iter().copied())
                            .collect(),
                    ),
                    error: None,
                }
            }
            Err(e) => SegmentResult {
                key: key(ids, i),
                decision_id: None,
                segment: None,
                distances: None,
                error: Some(error_body(e)),
            },
        })
        .collect();
    reply(scored, results)
}

fn recommendation_reply(
    scored: &Scored,
    ids: &[CustomerId],
    k: usize,
    exclude_owned: bool,
    made: &DecisionIds,
) -> Result<Vec<u8>, ScoreError> {
    let Some(catalogue) = scored.model.catalogue.as_ref() else {
        return reply(scored, Vec::<()>::new());
    };
    let results: Vec<RecommendationResult> = scoring::recommend(scored, k, exclude_owned)
        .into_iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (outcome, customer_id))| match outcome {
            Ok(rec) => RecommendationResult {
                customer_id,
                decision_id: Some(made.get(i)),
                items: Some(
                    rec.items
                        .iter()
                        .map(|&(i, score)| {
                            let item = &catalogue.items[i as usize];
                            RecommendedItem {
                                item_id: &item.item_id,
                                score,
                                name: item.name.as_deref(),
                                category: item.category.as_deref(),
                                price_band: item.price_band.as_deref(),
                            }
                        })
                        .collect(),
                ),
                cold_start: Some(rec.cold_start),
                error: None,
            },
            Err(e) => RecommendationResult {
                customer_id,
                decision_id: None,
                items: None,
                cold_start: None,
                error: Some(ErrorBody {
                    code: e.code,
                    message: e.message,
                }),
            },
        })
        .collect();
    reply(scored, results)
}

fn text_reply(scored: &Scored, made: &DecisionIds) -> Result<Vec<u8>, ScoreError> {
    let ModelKind::Text(t) = &scored.model.spec.kind else {
        return reply(scored, Vec::<()>::new());
    };
    let results: Vec<TextResult> = scored
        .items
        .iter()
        .enumerate()
        .filter_map(|(i, outcome)| Some((i, *outcome.as_ref().ok()?)))
        .map(|(i, row)| {
            let probs = softmax(scored.output_of(row));
            TextResult {
                decision_id: Some(made.get(i)),
                label: &t.labels[argmax(&probs)],
                scores: t
                    .labels
                    .iter()
                    .map(String::as_str)
                    .zip(probs)
                    .collect::<BTreeMap<_, _>>(),
            }
        })
        .collect();
    reply(scored, results)
}

/// Index of the largest value (the first on ties).
fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > values[best] { i } else { best })
}

fn reply<R: serde::Serialize>(scored: &Scored, results: Vec<R>) -> Result<Vec<u8>, ScoreError> {
    let body = ScoreReply {
        model: ModelRef {
            name: &scored.model.spec.name,
            version: &scored.model.spec.version,
        },
        snapshot: scored.snapshot.as_deref().map(|s| s.version.as_str()),
        stale: scored.stale,
        explanation: explanation_info(scored),
        results,
    };
    shape::json(&body)
}

/// A 200 JSON reply of shaped bytes, with the timing headers.
fn json_reply(scored: &Scored, body: Vec<u8>, started: Instant) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    timing_headers(&mut response, scored, started);
    response.content_type(ContentType::json()).body(body)
}

/// Where the time went, as TEI reports it, and which snapshot answered (when one did).
pub fn timing_headers(response: &mut HttpResponseBuilder, scored: &Scored, started: Instant) {
    response
        .insert_header(("x-queue-time-us", scored.queue_us.to_string()))
        .insert_header(("x-inference-time-us", scored.inference_us.to_string()))
        .insert_header(("x-total-time-us", started.elapsed().as_micros().to_string()));
    if let Some(snapshot) = &scored.snapshot {
        super::snapshot_header::insert(response, &snapshot.version);
    }
}
