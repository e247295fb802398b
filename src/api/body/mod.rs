//! The one way routes read request bodies: bounded in size, time and total memory, and decoded (gzip, deflate).

mod budget;
mod decode;
mod unfinished;

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header::{CONTENT_LENGTH, HeaderMap};
use actix_web::rt::time::{Instant, timeout};
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use futures_core::Stream;
use prometheus::{IntCounterVec, IntGauge};
use serde::de::DeserializeOwned;

pub use budget::{BodyBudget, BudgetFull, Reservation};
pub use decode::{BodyDecoder, Coding, DecodeError};
pub use unfinished::close_unfinished;

use crate::config::Config;
use crate::error::{ApiError, ScoreError};
use crate::telemetry::Metrics;

/// How request bodies are read; one per server, shared by every HTTP worker (registered as app data).
#[derive(Clone, Debug)]
pub struct BodyPolicy {
    /// Largest body, on the wire and decoded (`--max-body-bytes`).
    pub max_bytes: usize,
    /// Time to receive a whole body once the headers are in (`--body-timeout-ms`).
    pub timeout: Duration,
    /// Bytes all bodies together may hold (`--body-budget-bytes`).
    pub budget: Arc<BodyBudget>,
    rejections: IntCounterVec,
}

impl BodyPolicy {
    /// The policy of `config`, recording into `metrics`.
    pub fn new(config: &Config, metrics: &Metrics) -> BodyPolicy {
        BodyPolicy::with(
            config.max_body_bytes,
            Duration::from_millis(config.body_timeout_ms),
            config.body_budget_bytes,
            metrics.body_bytes_in_flight.clone(),
            metrics.body_rejections.clone(),
        )
    }

    fn with(
        max_bytes: usize,
        timeout: Duration,
        budget: usize,
        in_flight: IntGauge,
        rejections: IntCounterVec,
    ) -> BodyPolicy {
        BodyPolicy {
            max_bytes,
            timeout,
            budget: BodyBudget::new(budget, in_flight),
            rejections,
        }
    }

    /// Why `config` cannot work: a budget smaller than one body would refuse such bodies for ever.
    pub fn check(config: &Config) -> Result<(), String> {
        if config.body_budget_bytes < config.max_body_bytes {
            return Err(format!(
                "--body-budget-bytes ({}) is smaller than --max-body-bytes ({}): raise the budget or lower the limit",
                config.body_budget_bytes, config.max_body_bytes
            ));
        }
        Ok(())
    }

    fn count(&self, error: &ScoreError) {
        let reason = match error {
            ScoreError::BodyTimeout { .. } => "timeout",
            ScoreError::BodyBudgetExceeded { .. } => "budget",
            ScoreError::PayloadTooLarge { .. } => "too_large",
            _ => return,
        };
        self.rejections.with_label_values(&[reason]).inc();
    }
}

/// A request body as received and decoded, holding its bytes against the budget until dropped.
#[derive(Debug)]
pub struct Body {
    /// The decoded bytes.
    pub bytes: Bytes,
    _reservation: Reservation,
}

/// Reads the whole body of `req` under `policy`: `Content-Length` over the limit is refused before reading,
/// the bytes are reserved against the budget as they arrive (all of `Content-Length` up front), decoded per
/// `Content-Encoding`, and the whole body must be in before the timeout.
pub async fn read(
    req: &HttpRequest,
    payload: Payload,
    policy: &BodyPolicy,
) -> Result<Body, ScoreError> {
    let result = receive(req.headers(), payload, policy).await;
    if let Err(error) = &result {
        policy.count(error);
    }
    result
}

async fn receive(
    headers: &HeaderMap,
    mut payload: Payload,
    policy: &BodyPolicy,
) -> Result<Body, ScoreError> {
    let deadline = Instant::now() + policy.timeout;
    let too_large = ScoreError::PayloadTooLarge {
        limit: policy.max_bytes,
    };
    let busy = |_: BudgetFull| ScoreError::BodyBudgetExceeded {
        budget: policy.budget.capacity(),
    };
    let coding = Coding::of(headers)?;
    let length = content_length(headers)?;
    if length.is_some_and(|n| n > policy.max_bytes) {
        return Err(too_large);
    }
    let mut reservation = policy.budget.reserve(length.unwrap_or(0)).map_err(busy)?;
    let mut decoder = BodyDecoder::new(coding, policy.max_bytes);
    let mut received = 0usize;
    let decode_error = |error| match error {
        DecodeError::TooLarge => ScoreError::PayloadTooLarge {
            limit: policy.max_bytes,
        },
        DecodeError::Corrupt(message) => ScoreError::BadEncoding {
            encoding: coding.name(),
            message,
        },
    };
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut payload).poll_next(cx));
        let chunk = match timeout(deadline.saturating_duration_since(Instant::now()), next).await {
            Err(_elapsed) => {
                return Err(ScoreError::BodyTimeout {
                    timeout_ms: policy.timeout.as_millis() as u64,
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ScoreError::BadRequest(format!(
                    "the request body could not be read: {e}"
                )));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        received += chunk.len();
        if received > policy.max_bytes {
            return Err(too_large);
        }
        // The chunk is held while it is decoded; the decoded bytes stay.
        reservation
            .cover(received.max(decoder.decoded_len() + chunk.len()))
            .map_err(busy)?;
        decoder.push(&chunk).map_err(decode_error)?;
        reservation.cover(decoder.decoded_len()).map_err(busy)?;
    }
    let bytes = decoder.finish().map_err(decode_error)?;
    Ok(Body {
        bytes,
        _reservation: reservation,
    })
}

/// The request's `Content-Length`, when it sends one (actix-http has already refused malformed values).
fn content_length(headers: &HeaderMap) -> Result<Option<usize>, ScoreError> {
    let Some(value) = headers.get(CONTENT_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|n| Some(usize::try_from(n).unwrap_or(usize::MAX)))
        .ok_or_else(|| ScoreError::BadRequest("Content-Length is not a number".into()))
}

/// Parses JSON with the same error as every route (`invalid_json`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ScoreError> {
    serde_json::from_slice(bytes).map_err(|e| ScoreError::BadJson(e.to_string()))
}

/// The server's policy, or (in an app built without one) the configured defaults.
fn policy_of(req: &HttpRequest) -> &BodyPolicy {
    static DEFAULT: OnceLock<BodyPolicy> = OnceLock::new();
    req.app_data::<BodyPolicy>().unwrap_or_else(|| {
        DEFAULT.get_or_init(|| {
            let defaults = Config::for_tests("", "");
            BodyPolicy::with(
                defaults.max_body_bytes,
                Duration::from_millis(defaults.body_timeout_ms),
                defaults.body_budget_bytes,
                IntGauge::new("unregistered_body_bytes", "not exported").expect("valid name"),
                IntCounterVec::new(
                    prometheus::Opts::new("unregistered_body_rejections", "not exported"),
                    &["reason"],
                )
                .expect("valid name"),
            )
        })
    })
}

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// Reads the body under the server's [`BodyPolicy`], with errors in the route's envelope.
fn extract(req: &HttpRequest, payload: &mut Payload) -> Extracting<(HttpRequest, Body)> {
    let req = req.clone();
    let payload = payload.take();
    Box::pin(async move {
        match read(&req, payload, policy_of(&req)).await {
            Ok(body) => Ok((req, body)),
            Err(error) => Err(ApiError {
                error,
                protocol: super::protocol_of(&req),
            }),
        }
    })
}

/// A JSON body (drop-in for `web::Json`): read by [`read`], then parsed; errors use the route's envelope.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The parsed value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Extracting<Json<T>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = extract(req, payload);
        Box::pin(async move {
            let (req, body) = body.await?;
            // The body's bytes (and their reservation) go as soon as the value is built.
            parse_json(&body.bytes).map(Json).map_err(|error| ApiError {
                error,
                protocol: super::protocol_of(&req),
            })
        })
    }
}

/// A body as decoded bytes (for formats other than JSON, such as binary tensors), with its request; the bytes
/// count against the budget until this is dropped.
#[derive(Debug)]
pub struct RawBody {
    /// The request the body came with (its headers say how to read the bytes).
    pub request: HttpRequest,
    body: Body,
}

impl RawBody {
    /// The decoded bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.body.bytes
    }
}

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Extracting<RawBody>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = extract(req, payload);
        Box::pin(async move {
            let (request, body) = body.await?;
            Ok(RawBody { request, body })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::Write;
    use std::task::{Context, Poll};

    use actix_web::error::PayloadError;
    use actix_web::test::TestRequest;

    use super::*;

    /// A body of `chunks`, ending after them or (with `ends` false) never.
    struct Chunks {
        chunks: VecDeque<Bytes>,
        ends: bool,
    }

    impl Stream for Chunks {
        type Item = Result<Bytes, PayloadError>;

        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            match self.chunks.pop_front() {
                Some(chunk) => Poll::Ready(Some(Ok(chunk))),
                None if self.ends => Poll::Ready(None),
                None => Poll::Pending,
            }
        }
    }

    fn payload(chunks: &[&[u8]], ends: bool) -> Payload {
        let chunks = chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect();
        Payload::Stream {
            payload: Box::pin(Chunks { chunks, ends }),
        }
    }

    fn policy(max_bytes: usize, budget: usize) -> BodyPolicy {
        BodyPolicy::with(
            max_bytes,
            Duration::from_millis(100),
            budget,
            IntGauge::new("in_flight", "test").unwrap(),
            IntCounterVec::new(prometheus::Opts::new("rejections", "test"), &["reason"]).unwrap(),
        )
    }

    fn rejections(policy: &BodyPolicy, reason: &str) -> u64 {
        policy.rejections.with_label_values(&[reason]).get()
    }

    #[actix_web::test]
    async fn a_body_is_decoded_and_its_bytes_go_back_when_dropped() {
        let p = policy(1024, 4096);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"{"texts": ["fine"]}"#).unwrap();
        let wire = gz.finish().unwrap();
        let req = TestRequest::default()
            .insert_header(("content-encoding", "gzip"))
            .to_http_request();
        let (head, tail) = wire.split_at(5);
        let body = read(&req, payload(&[head, tail], true), &p).await.unwrap();
        assert_eq!(&body.bytes[..], br#"{"texts": ["fine"]}"#);
        assert!(p.budget.in_flight() >= body.bytes.len());
        drop(body);
        assert_eq!((p.budget.in_flight(), p.budget.gauge_value()), (0, 0));
    }

    #[actix_web::test]
    async fn an_announced_length_over_the_limit_is_refused_unread() {
        let p = policy(10, 4096);
        let req = TestRequest::default()
            .insert_header((CONTENT_LENGTH, "11"))
            .to_http_request();
        // The body never comes: only the header can have refused it.
        let err = read(&req, payload(&[], false), &p).await.unwrap_err();
        assert!(
            matches!(err, ScoreError::PayloadTooLarge { limit: 10 }),
            "{err}"
        );
        let req = TestRequest::default().to_http_request();
        let err = read(&req, payload(&[b"123456", b"789012"], true), &p)
            .await
            .unwrap_err();
        assert!(matches!(err, ScoreError::PayloadTooLarge { .. }), "{err}");
        assert_eq!(rejections(&p, "too_large"), 2);
    }

    #[actix_web::test]
    async fn a_body_past_the_budget_is_refused_and_its_bytes_go_back() {
        let p = policy(100, 100);
        let held = p.budget.reserve(60).unwrap();
        let announced = TestRequest::default()
            .insert_header((CONTENT_LENGTH, "50"))
            .to_http_request();
        let err = read(&announced, payload(&[&[b' '; 50]], true), &p)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ScoreError::BodyBudgetExceeded { budget: 100 }),
            "{err}"
        );
        // Without a length, it is refused when it grows past what is left.
        let chunked = TestRequest::default().to_http_request();
        let chunks: [&[u8]; 3] = [&[b' '; 20], &[b' '; 20], &[b' '; 20]];
        let err = read(&chunked, payload(&chunks, true), &p)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ScoreError::BodyBudgetExceeded { .. }),
            "{err}"
        );
        assert_eq!(p.budget.in_flight(), 60);
        drop(held);
        let body = read(&chunked, payload(&chunks, true), &p).await.unwrap();
        assert_eq!(body.bytes.len(), 60);
        assert_eq!(rejections(&p, "budget"), 2);
    }

    #[actix_web::test]
    async fn a_body_that_does_not_end_in_time_is_a_timeout() {
        let p = policy(100, 100);
        let req = TestRequest::default().to_http_request();
        let err = read(&req, payload(&[b"{"], false), &p).await.unwrap_err();
        assert!(
            matches!(err, ScoreError::BodyTimeout { timeout_ms: 100 }),
            "{err}"
        );
        assert_eq!((p.budget.in_flight(), rejections(&p, "timeout")), (0, 1));
    }

    #[test]
    fn the_budget_must_hold_one_body() {
        let mut config = Config::for_tests("", "");
        assert!(BodyPolicy::check(&config).is_ok());
        config.body_budget_bytes = config.max_body_bytes - 1;
        assert!(
            BodyPolicy::check(&config)
                .unwrap_err()
                .contains("--body-budget-bytes")
        );
    }
}
