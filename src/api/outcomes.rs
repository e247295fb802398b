//! `POST /v1/outcomes`: validate a batch of outcome events (all or nothing) and answer once it is on disk.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::body;
use crate::error::{ApiError, ScoreError, V1Error};
use crate::feedback::{FeedbackError, Recorded, event};
use crate::scoring::{self, AppState};

/// Body of `POST /v1/outcomes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomesRequest {
    /// The events (at most --max-items-per-request), each `{event_id, customer_id, decision_id?, action,
    /// item_id?, channel?, outcome, occurred_at, note?}`; `outcome` is one of accepted, declined, no_response,
    /// churned, retained; `occurred_at` is RFC 3339.
    #[schema(value_type = Vec<OutcomeEvent>)]
    pub events: Vec<Value>,
}

/// One outcome event (the document's view; the handler validates each field itself to name the one at fault).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OutcomeEvent {
    /// The client's unique id of the event: a replay is acknowledged and stored once.
    event_id: String,
    /// The customer (a string or an integer).
    customer_id: String,
    /// The `decision_id` of the scoring or insights result this answers.
    decision_id: Option<String>,
    /// The action taken.
    action: String,
    /// The offer made.
    item_id: Option<String>,
    /// How the customer was reached.
    channel: Option<String>,
    /// accepted, declined, no_response, churned or retained.
    outcome: String,
    /// When it happened (RFC 3339).
    occurred_at: String,
    /// Free text (at most 2,000 characters; never logged).
    note: Option<String>,
}

/// The reply of `POST /v1/outcomes`.
#[derive(serde::Serialize, ToSchema)]
pub struct OutcomesReply {
    /// Events stored.
    pub recorded: usize,
    /// Events whose `event_id` was already stored (within the replay window); not stored again.
    pub duplicates: usize,
}

/// Record outcomes
///
/// Stores a batch of outcome events for retraining: all or none (a bad event is a 400 naming its index and
/// field); the 200 comes only once the batch is on disk. A replayed `event_id` is acknowledged and stored once.
#[utoipa::path(post, path = "/v1/outcomes", tag = "v1 feedback", request_body = OutcomesRequest,
    responses(
        (status = 200, description = "The batch is durable", body = OutcomesReply),
        (status = 400, body = V1Error,
            description = "A bad event (`events[i].field: problem`), an empty or too large batch"),
        (status = 500, description = "Writing the log failed; nothing was recorded", body = V1Error),
        (status = 503, body = V1Error,
            description = "Recording is off (`feedback_disabled`) or the writer is busy (`feedback_busy`, retry)"),
    ))]
pub async fn post_outcomes(
    state: web::Data<AppState>,
    body: body::Json<OutcomesRequest>,
) -> Result<HttpResponse, ApiError> {
    let Some(log) = &state.feedback else {
        return Err(ScoreError::FeedbackDisabled.into());
    };
    let events = body.into_inner().events;
    scoring::check_count("events", events.len(), &state.limits)?;
    // The writer stamps recorded_at: the day folder follows the moment the event became durable.
    let rows = event::validate(&events, 0).map_err(|e| ScoreError::BadRequest(e.to_string()))?;
    drop(events);
    let Recorded {
        recorded,
        duplicates,
    } = log.record(rows).await.map_err(feedback_error)?;
    Ok(HttpResponse::Ok().json(OutcomesReply {
        recorded,
        duplicates,
    }))
}

/// The client's view of a log failure (the detail, with file paths, goes to the server log).
fn feedback_error(error: FeedbackError) -> ScoreError {
    match error {
        FeedbackError::Busy => ScoreError::FeedbackBusy,
        FeedbackError::Closed => ScoreError::NotReady("the server is shutting down".into()),
        other => {
            tracing::debug!(error = %other, "an outcome batch was refused");
            ScoreError::Internal("writing the outcome log failed; nothing was recorded".into())
        }
    }
}
