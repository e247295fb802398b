//! The domain scoring routes.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::{HttpResponse, HttpResponseBuilder, web};

use super::dto::{
    ChurnResult, ItemKey, ModelRef, ScoreInput, ScoreReply, ScoreRequest, TabularResult,
};
use crate::error::{ApiError, ErrorBody};
use crate::scoring::{self, AppState, Scored};
use crate::snapshot::CustomerId;

/// The model behind `/v1/churn/score`.
pub const CHURN_MODEL: &str = "churn";

/// `POST /v1/models/{model}/score`
pub async fn post_model_score(
    state: web::Data<AppState>,
    model: web::Path<String>,
    body: web::Json<ScoreRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let input = ScoreInput::try_from(body.into_inner())?;
    let (scored, ids) = score(&state, &model, input).await?;
    let results = results(&scored, ids.as_deref(), |key, outcome| match outcome {
        Ok(probs) => {
            let t = scored.tabular();
            let p = probs[t.positive];
            let best = probs
                .iter()
                .enumerate()
                .fold(0, |b, (i, v)| if *v > probs[b] { i } else { b });
            TabularResult {
                key,
                probability: Some(p),
                label: Some(&t.labels[best]),
                risk: t.risk.map(|r| r.band(p)),
                scores: Some(
                    t.labels
                        .iter()
                        .map(String::as_str)
                        .zip(probs.iter().copied())
                        .collect::<BTreeMap<_, _>>(),
                ),
                error: None,
            }
        }
        Err(error) => TabularResult {
            key,
            probability: None,
            label: None,
            risk: None,
            scores: None,
            error: Some(error),
        },
    });
    Ok(reply(&scored, results, started))
}

/// `POST /v1/churn/score`
pub async fn post_churn_score(
    state: web::Data<AppState>,
    body: web::Json<ScoreRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let input = ScoreInput::try_from(body.into_inner())?;
    let (scored, ids) = score(&state, CHURN_MODEL, input).await?;
    let results = results(&scored, ids.as_deref(), |key, outcome| match outcome {
        Ok(probs) => {
            let t = scored.tabular();
            let p = probs[t.positive];
            ChurnResult {
                key,
                churn_probability: Some(p),
                risk: t.risk.map(|r| r.band(p)),
                error: None,
            }
        }
        Err(error) => ChurnResult {
            key,
            churn_probability: None,
            risk: None,
            error: Some(error),
        },
    });
    Ok(reply(&scored, results, started))
}

async fn score(
    state: &AppState,
    model: &str,
    input: ScoreInput,
) -> Result<(Scored, Option<Vec<CustomerId>>), ApiError> {
    Ok(match input {
        ScoreInput::Customers(ids) => (
            scoring::score_customers(state, model, &ids).await?,
            Some(ids),
        ),
        ScoreInput::Rows(rows) => (scoring::score_rows(state, model, &rows).await?, None),
    })
}

/// Builds one result per item with `make`, keyed by customer id (when given) or row index.
fn results<'a, R>(
    scored: &'a Scored,
    ids: Option<&'a [CustomerId]>,
    make: impl Fn(ItemKey<'a>, Result<&'a [f32], ErrorBody<'a>>) -> R,
) -> Vec<R> {
    scored
        .items
        .iter()
        .enumerate()
        .map(|(i, outcome)| {
            let key = match ids {
                Some(ids) => ItemKey::CustomerId(&ids[i]),
                None => ItemKey::Row(i),
            };
            let outcome = match outcome {
                Ok(row) => Ok(scored.probabilities_of(*row)),
                Err(e) => Err(ErrorBody {
                    code: e.code,
                    message: e.message.clone(),
                }),
            };
            make(key, outcome)
        })
        .collect()
}

fn reply<R: serde::Serialize>(scored: &Scored, results: Vec<R>, started: Instant) -> HttpResponse {
    let body = ScoreReply {
        model: ModelRef {
            name: &scored.model.spec.name,
            version: &scored.model.spec.version,
        },
        snapshot: scored.snapshot.as_deref().map(|s| s.version.as_str()),
        stale: scored.stale,
        results,
    };
    let mut response = HttpResponse::Ok();
    timing_headers(&mut response, scored, started);
    response.json(body)
}

/// Where the time went, as TEI reports it.
pub fn timing_headers(response: &mut HttpResponseBuilder, scored: &Scored, started: Instant) {
    response
        .insert_header(("x-queue-time-us", scored.queue_us.to_string()))
        .insert_header(("x-inference-time-us", scored.inference_us.to_string()))
        .insert_header(("x-total-time-us", started.elapsed().as_micros().to_string()));
}
