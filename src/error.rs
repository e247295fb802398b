//! Typed errors and their one mapping to HTTP.

use std::time::Duration;

use actix_web::{HttpResponse, ResponseError, http::StatusCode, http::header};
use serde::Serialize;
use utoipa::ToSchema;

/// Everything that can go wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("request body is not valid JSON for this route: {0}")]
    BadJson(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported content type: {0}")]
    UnsupportedMediaType(String),
    #[error("model '{0}' is not served here")]
    UnknownModel(String),
    #[error("model '{model}' is a {kind} model; this route needs a {expected} model")]
    WrongModelKind {
        model: String,
        kind: &'static str,
        expected: &'static str,
    },
    #[error("the queue of model '{model}' is full ({capacity} jobs); retry shortly")]
    QueueFull { model: String, capacity: usize },
    #[error("model '{0}' is shutting down")]
    ModelUnavailable(String),
    #[error("model '{model}' is not available: {reason}")]
    ModelNotReady { model: String, reason: String },
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("{0}")]
    Stale(String),
    #[error("this route needs the admin token: send 'Authorization: Bearer <token>'")]
    Unauthorized,
    /// A missing or invalid API key (`--api-keys-file`).
    #[error(transparent)]
    ApiKey(#[from] crate::api_keys::AuthError),
    #[error("{0}")]
    ModelLoad(String),
    #[error("{0}")]
    SnapshotRejected(String),
    #[error("inference failed for model '{model}': {message}")]
    Inference { model: String, message: String },
    #[error("{0}")]
    NotExplainable(String),
    #[error("{0}")]
    ReplyTooLarge(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(
        "the request's deadline of {timeout_ms} ms passed before model '{model}' could answer; it was not scored"
    )]
    DeadlineExceeded { model: String, timeout_ms: u64 },
    #[error("the request body did not arrive within {timeout_ms} ms")]
    BodyTimeout { timeout_ms: u64 },
    #[error(
        "the server is receiving too many request bodies at once (over {budget} bytes in flight); retry shortly"
    )]
    BodyBudgetExceeded { budget: usize },
    #[error("unsupported content encoding '{0}': send gzip, deflate or identity")]
    UnsupportedEncoding(String),
    #[error("request body is not valid {encoding} data: {message}")]
    BadEncoding {
        encoding: &'static str,
        message: String,
    },
    /// Erasure is off (no --state-dir to keep the erasure list in).
    #[error("{0}")]
    ErasureUnavailable(String),
    /// The erasure list or audit log could not be written.
    #[error("erasure failed: {0}")]
    Erasure(String),
    #[error("recording outcomes is off on this server (its --feedback-dir is empty)")]
    FeedbackDisabled,
    #[error("the outcome log is busy; nothing was recorded, retry shortly")]
    FeedbackBusy,
}

impl ScoreError {
    /// The stable snake_case code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            ScoreError::BadRequest(_) => "bad_request",
            ScoreError::NotFound(_) => "not_found",
            ScoreError::MethodNotAllowed(_) => "method_not_allowed",
            ScoreError::BadJson(_) => "invalid_json",
            ScoreError::PayloadTooLarge { .. } => "payload_too_large",
            ScoreError::UnsupportedMediaType(_) => "unsupported_media_type",
            ScoreError::UnknownModel(_) => "unknown_model",
            ScoreError::WrongModelKind { .. } => "wrong_model_kind",
            ScoreError::QueueFull { .. } => "queue_full",
            ScoreError::ModelUnavailable(_) | ScoreError::ModelNotReady { .. } => {
                "model_unavailable"
            }
            ScoreError::NotReady(_) => "not_ready",
            ScoreError::Stale(_) => "snapshot_stale",
            ScoreError::Unauthorized | ScoreError::ApiKey(_) => "unauthorized",
            ScoreError::ModelLoad(_) => "model_load_failed",
            ScoreError::SnapshotRejected(_) => "snapshot_rejected",
            ScoreError::Inference { .. } => "inference_failed",
            ScoreError::NotExplainable(_) => "not_explainable",
            ScoreError::ReplyTooLarge(_) => "reply_too_large",
            ScoreError::Internal(_) => "internal",
            ScoreError::DeadlineExceeded { .. } => "deadline_exceeded",
            ScoreError::BodyTimeout { .. } => "request_timeout",
            ScoreError::BodyBudgetExceeded { .. } => "body_budget_exceeded",
            ScoreError::UnsupportedEncoding(_) => "unsupported_content_encoding",
            ScoreError::BadEncoding { .. } => "bad_content_encoding",
            ScoreError::ErasureUnavailable(_) => "erasure_unavailable",
            ScoreError::Erasure(_) => "erasure_failed",
            ScoreError::FeedbackDisabled => "feedback_disabled",
            ScoreError::FeedbackBusy => "feedback_busy",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ScoreError::BadRequest(_) | ScoreError::BadJson(_) | ScoreError::NotExplainable(_) => {
                StatusCode::BAD_REQUEST
            }
            ScoreError::NotFound(_) => StatusCode::NOT_FOUND,
            ScoreError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ScoreError::PayloadTooLarge { .. } | ScoreError::ReplyTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ScoreError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ScoreError::UnknownModel(_) => StatusCode::NOT_FOUND,
            ScoreError::WrongModelKind { .. } => StatusCode::BAD_REQUEST,
            ScoreError::QueueFull { .. }
            | ScoreError::ModelUnavailable(_)
            | ScoreError::ModelNotReady { .. }
            | ScoreError::NotReady(_)
            | ScoreError::Stale(_) => StatusCode::SERVICE_UNAVAILABLE,
            ScoreError::Unauthorized | ScoreError::ApiKey(_) => StatusCode::UNAUTHORIZED,
            ScoreError::ModelLoad(_) => StatusCode::BAD_REQUEST,
            ScoreError::SnapshotRejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ScoreError::Inference { .. } | ScoreError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ScoreError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
            ScoreError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ScoreError::BodyBudgetExceeded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ScoreError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ScoreError::BadEncoding { .. } => StatusCode::BAD_REQUEST,
            ScoreError::ErasureUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ScoreError::Erasure(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ScoreError::FeedbackDisabled | ScoreError::FeedbackBusy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// How long a client should wait before retrying, for the errors where a retry helps.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ScoreError::QueueFull { .. }
            | ScoreError::NotReady(_)
            | ScoreError::BodyBudgetExceeded { .. }
            | ScoreError::FeedbackBusy => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

/// Which error envelope a route speaks: ours (/v1) or KServe v2's (/v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `{"error": {"code": "...", "message": "..."}}`
    V1,
    /// `{"error": "..."}`, as the Open Inference Protocol specifies.
    V2,
}

/// A [`ScoreError`] bound to the envelope of the route that produced it.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    /// What went wrong.
    pub error: ScoreError,
    /// How to render it.
    pub protocol: Protocol,
}

impl ApiError {
    /// Binds an error to the v2 envelope.
    pub fn v2(error: ScoreError) -> Self {
        ApiError {
            error,
            protocol: Protocol::V2,
        }
    }
}

impl From<ScoreError> for ApiError {
    fn from(error: ScoreError) -> Self {
        ApiError {
            error,
            protocol: Protocol::V1,
        }
    }
}

/// The v1 error body, also used for per-item errors inside a 200 batch reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// snake_case code
    pub code: &'a str,
    /// human sentence
    pub message: String,
}

/// The v1 error reply: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct V1Error<'a> {
    /// What went wrong.
    pub error: ErrorBody<'a>,
}

/// The KServe v2 error reply: `{"error": "message"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct V2Error {
    /// What went wrong, as a human sentence.
    pub error: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(after) = self.error.retry_after() {
            response.insert_header((header::RETRY_AFTER, after.as_secs().to_string()));
        }
        if self.status_code() == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names the scheme the client should use.
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        match self.protocol {
            Protocol::V1 => response.json(V1Error {
                error: ErrorBody {
                    code: self.error.code(),
                    message: self.error.to_string(),
                },
            }),
            Protocol::V2 => response.json(V2Error {
                error: self.error.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn queue_full_is_503_with_retry_after_and_v1_envelope() {
        let err = ApiError::from(ScoreError::QueueFull {
            model: "churn".into(),
            capacity: 4,
        });
        let resp = err.error_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let body: serde_json::Value =
            serde_json::from_slice(&to_bytes(resp.into_body()).await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "queue_full");
        assert!(body["error"]["message"].as_str().unwrap().contains("churn"));
    }

    #[actix_web::test]
    async fn v2_envelope_is_a_plain_string() {
        let resp = ApiError::v2(ScoreError::UnknownModel("nope".into())).error_response();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let body: serde_json::Value =
            serde_json::from_slice(&to_bytes(resp.into_body()).await.unwrap()).unwrap();
        assert_eq!(body["error"], "model 'nope' is not served here");
    }
}
