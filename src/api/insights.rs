//! Insights and the engagement policy: churn, reasons, segment, offers and next best action per customer.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};

use super::admin::{is_admin, paths_for};
use super::body;
use super::snapshot_header;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::engagement::insights::{self, Ask};
use crate::error::{ApiError, ScoreError, V1Error};
use crate::feedback::{DecisionId, DecisionIds};
use crate::scoring::{self, AppState};
use crate::snapshot::CustomerId;

/// Offers per customer when the request does not say.
const DEFAULT_OFFERS: usize = 3;
/// Churn reasons per customer when the request does not say.
const DEFAULT_REASONS: usize = 3;
/// Most offers or reasons one customer may ask for.
const MAX_PER_CUSTOMER: usize = 50;

/// Body of `POST /v1/insights`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsightsRequest {
    /// Customers to look up in the served snapshot.
    pub customer_ids: Vec<CustomerId>,
    /// Offers per customer (default 3).
    pub k: Option<usize>,
    /// Churn reasons per customer (default 3; 0 for none).
    pub reasons: Option<usize>,
}

/// Query of `GET /v1/customers/{id}/insights`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InsightsQuery {
    /// Offers (default 3).
    pub k: Option<usize>,
    /// Churn reasons (default 3).
    pub reasons: Option<usize>,
}

fn ask(k: Option<usize>, reasons: Option<usize>) -> Result<Ask, ScoreError> {
    let offers = k.unwrap_or(DEFAULT_OFFERS);
    let reasons = reasons.unwrap_or(DEFAULT_REASONS);
    if offers == 0 || offers > MAX_PER_CUSTOMER {
        return Err(ScoreError::BadRequest(format!(
            "'k' must be between 1 and {MAX_PER_CUSTOMER}"
        )));
    }
    if reasons > MAX_PER_CUSTOMER {
        return Err(ScoreError::BadRequest(format!(
            "'reasons' must be between 0 and {MAX_PER_CUSTOMER}"
        )));
    }
    Ok(Ask { offers, reasons })
}

/// Insights
///
/// Churn, reasons, segment, offers and the next best action, one insight per customer in request order; unknown
/// customers are per-item errors.
#[utoipa::path(post, path = "/v1/insights", tag = "v1 engagement", request_body = InsightsRequest,
    responses(
        (status = 200, body = insights::Insights,
            description = "One insight per customer; each answered one also carries its `decision_id` (string)",
            headers(("x-total-time-us" = u64, description = "Microseconds from arrival to reply"),
                ("x-snapshot-version" = String, description = "The snapshot whose data answered"))),
        (status = 400, description = "Bad request (`k` or `reasons` out of range, malformed body)", body = V1Error),
        (status = 413, description = "The reply would be larger than the server's limits", body = V1Error),
        (status = 503, description = "No snapshot is served yet, or a model's queue is full", body = V1Error),
        (status = 504, description = "The request's deadline passed", body = V1Error),
    ))]
pub async fn post_insights(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: body::Json<InsightsRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let body = body.into_inner();
    let ask = ask(body.k, body.reasons)?;
    let n = body.customer_ids.len();
    let limits = &state.limits;
    let offers = n.saturating_mul(ask.offers);
    let what = format!("offers ({n} customers × k={})", ask.offers);
    scoring::check_reply(
        offers,
        limits.max_recommendations,
        &what,
        "--max-recommendations",
    )?;
    let reasons = n.saturating_mul(ask.reasons);
    let what = format!("reasons ({n} customers × {})", ask.reasons);
    scoring::check_reply(
        reasons,
        limits.max_output_values,
        &what,
        "--max-output-values",
    )?;
    let deadline = scoring::deadline(&state, super::score::timeout_header(&req)?);
    let reply = insights::insights(&state, &body.customer_ids, ask, deadline).await?;
    let made = DecisionIds::reserve(reply.results.len());
    let (body, reply) = super::shape::run(offers + reasons, move || {
        (super::shape::json(&Decided::reply(&reply, &made)), reply)
    })
    .await?;
    super::decisions::log_insights(&state, &reply, &made);
    let body = body?;
    let mut response = HttpResponse::Ok();
    snapshot_header::insert(&mut response, &reply.snapshot);
    Ok(response
        .insert_header(("x-total-time-us", started.elapsed().as_micros().to_string()))
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

/// One customer's insight
///
/// The same for one customer; 404 when the customer is unknown and no cold-start rule answers.
#[utoipa::path(get, path = "/v1/customers/{id}/insights", tag = "v1 engagement",
    params(("id" = String, Path, description = "Customer id"), InsightsQuery),
    responses(
        (status = 200, body = OneInsight,
            description = "The customer's insight, with its `decision_id` (string) in `result`",
            headers(("x-total-time-us" = u64, description = "Microseconds from arrival to reply"),
                ("x-snapshot-version" = String, description = "The snapshot whose data answered"))),
        (status = 400, description = "`k` or `reasons` out of range, or a bad query string", body = V1Error),
        (status = 404, description = "Unknown customer", body = V1Error),
        (status = 503, description = "No snapshot is served yet, or a model's queue is full", body = V1Error),
        (status = 504, description = "The request's deadline passed", body = V1Error),
    ))]
pub async fn get_customer_insights(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<InsightsQuery>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let ask = ask(query.k, query.reasons)?;
    let ids = [CustomerId::Str(id.into_inner())];
    let deadline = scoring::deadline(&state, super::score::timeout_header(&req)?);
    let reply = insights::insights(&state, &ids, ask, deadline).await?;
    let Some(result) = reply.results.first() else {
        return Err(ScoreError::NotFound("no insight".into()).into());
    };
    if let Some(error) = &result.error {
        return Err(ScoreError::NotFound(error.message.clone()).into());
    }
    let made = DecisionIds::reserve(1);
    let body = OneInsight {
        head: ReplyHead::of(&reply),
        result: Decided::of(result, &made, 0),
    };
    super::decisions::log_insights(&state, &reply, &made);
    let mut response = HttpResponse::Ok();
    snapshot_header::insert(&mut response, &reply.snapshot);
    Ok(response
        .insert_header(("x-total-time-us", started.elapsed().as_micros().to_string()))
        .json(body))
}

/// What every insights reply says besides its results.
#[derive(Serialize, ToSchema)]
pub struct ReplyHead<'a> {
    /// The snapshot the answer came from.
    snapshot: &'a str,
    /// Present (true) only when that snapshot is older than --max-snapshot-age.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stale: bool,
    /// The models that answered.
    models: &'a [insights::ModelVersion],
    /// The served policy's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a str>,
    /// What is not served, so parts of the answer are absent.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    missing: &'a [String],
}

impl<'a> ReplyHead<'a> {
    fn of(reply: &'a insights::Insights) -> ReplyHead<'a> {
        ReplyHead {
            snapshot: &reply.snapshot,
            stale: reply.stale,
            models: &reply.models,
            policy: reply.policy.as_deref(),
            missing: &reply.missing,
        }
    }
}

/// The reply of `GET /v1/customers/{id}/insights`: the insights reply with its one `result`.
#[derive(Serialize, ToSchema)]
pub struct OneInsight<'a> {
    #[serde(flatten)]
    head: ReplyHead<'a>,
    /// The customer's insight.
    #[schema(value_type = insights::Insight)]
    result: Decided<'a>,
}

/// An insight with the id of its decision (`decision_id`, to name in `POST /v1/outcomes`; absent on a
/// per-customer error).
#[derive(Serialize)]
pub struct Decided<'a> {
    #[serde(flatten)]
    insight: &'a insights::Insight,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision_id: Option<DecisionId>,
}

impl<'a> Decided<'a> {
    fn of(insight: &'a insights::Insight, made: &DecisionIds, i: usize) -> Decided<'a> {
        Decided {
            insight,
            decision_id: insight.error.is_none().then(|| made.get(i)),
        }
    }

    /// The insights reply with a decision id in each answered result.
    fn reply(reply: &'a insights::Insights, made: &DecisionIds) -> DecidedInsights<'a> {
        DecidedInsights {
            head: ReplyHead::of(reply),
            results: (reply.results.iter().enumerate())
                .map(|(i, r)| Decided::of(r, made, i))
                .collect(),
        }
    }
}

/// The reply of `POST /v1/insights` as sent: [`insights::Insights`] with decision ids in its results.
#[derive(Serialize)]
pub struct DecidedInsights<'a> {
    #[serde(flatten)]
    head: ReplyHead<'a>,
    results: Vec<Decided<'a>>,
}

/// The engagement policy
///
/// The served engagement policy, its rules and warnings, and why a newer file is refused (file paths only for the
/// admin token's holder).
#[utoipa::path(get, path = "/v1/policy", tag = "v1 engagement",
    responses(
        (status = 200, description = "The served policy", body = crate::engagement::PolicyStatus),
        (status = 404, description = "No policy is served (no --policy)", body = V1Error),
    ))]
pub async fn get_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    match &state.engagement.policies {
        Some(store) => {
            let admin = is_admin(&req, &state);
            let mut status = store.status();
            status.path = paths_for(admin, &status.path);
            status.last_error = status.last_error.map(|e| paths_for(admin, &e));
            Ok(HttpResponse::Ok().json(status))
        }
        None => Err(ScoreError::NotFound(
            "no engagement policy is served (start with --policy FILE)".into(),
        )
        .into()),
    }
}
