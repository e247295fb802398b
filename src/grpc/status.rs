//! The one mapping of [`ScoreError`] to a gRPC status (the gRPC twin of src/error.rs): code, the same human
//! sentence, and our snake_case code in the `error-code` trailer.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::error::ScoreError;

/// The gRPC code of an error.
pub fn code(error: &ScoreError) -> Code {
    match error {
        ScoreError::BadRequest(_)
        | ScoreError::BadJson(_)
        | ScoreError::UnsupportedMediaType(_)
        | ScoreError::WrongModelKind { .. }
        | ScoreError::NotExplainable(_)
        | ScoreError::ModelLoad(_)
        | ScoreError::UnsupportedEncoding(_)
        | ScoreError::BadEncoding { .. } => Code::InvalidArgument,
        ScoreError::NotFound(_) | ScoreError::UnknownModel(_) => Code::NotFound,
        ScoreError::MethodNotAllowed(_) => Code::Unimplemented,
        ScoreError::PayloadTooLarge { .. }
        | ScoreError::ReplyTooLarge(_)
        | ScoreError::BodyBudgetExceeded { .. } => Code::ResourceExhausted,
        ScoreError::QueueFull { .. }
        | ScoreError::ModelUnavailable(_)
        | ScoreError::ModelNotReady { .. }
        | ScoreError::NotReady(_)
        | ScoreError::Stale(_)
        | ScoreError::ErasureUnavailable(_)
        | ScoreError::FeedbackDisabled
        | ScoreError::FeedbackBusy => Code::Unavailable,
        ScoreError::Unauthorized | ScoreError::ApiKey(_) => Code::Unauthenticated,
        ScoreError::SnapshotRejected(_) => Code::FailedPrecondition,
        ScoreError::Inference { .. } | ScoreError::Internal(_) | ScoreError::Erasure(_) => {
            Code::Internal
        }
        ScoreError::DeadlineExceeded { .. } | ScoreError::BodyTimeout { .. } => {
            Code::DeadlineExceeded
        }
    }
}

/// The status a client gets for `error`. Where HTTP sends `Retry-After`, gRPC gets `grpc-retry-pushback-ms`,
/// which gRPC clients with a retry policy honour.
pub fn status(error: &ScoreError) -> Status {
    let mut status = Status::new(code(error), error.to_string());
    let metadata = status.metadata_mut();
    metadata.insert("error-code", MetadataValue::from_static(error.code()));
    if let Some(after) = error.retry_after() {
        metadata.insert(
            "grpc-retry-pushback-ms",
            MetadataValue::from(after.as_millis() as u64),
        );
    }
    status
}

/// The answer to the RPCs of Triton's protocol this server does not serve.
pub fn unimplemented(rpc: &str, why: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not served by crmscore: {why}"))
}

/// The status label of a request metric: the code's canonical name (`OK`, `INVALID_ARGUMENT`, ...).
pub fn label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_sentence_and_code() {
        let s = status(&ScoreError::QueueFull {
            model: "churn".into(),
            capacity: 4,
        });
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.message().contains("churn"), "{}", s.message());
        assert_eq!(s.metadata().get("error-code").unwrap(), "queue_full");
        assert_eq!(s.metadata().get("grpc-retry-pushback-ms").unwrap(), "1000");
        let s = status(&ScoreError::UnknownModel("nope".into()));
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "model 'nope' is not served here");
        assert!(s.metadata().get("grpc-retry-pushback-ms").is_none());
        let late = ScoreError::DeadlineExceeded {
            model: "churn".into(),
            timeout_ms: 5,
        };
        assert_eq!(code(&late), Code::DeadlineExceeded);
        assert_eq!(
            code(&ScoreError::BadRequest("x".into())),
            Code::InvalidArgument
        );
    }
}
