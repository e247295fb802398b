//! Closes the connection after a reply sent before its request body was fully received.
//!
//! actix-http decides when it has written a reply: if the request body is still arriving and its reader is alive,
//! it closes the connection (after discarding input for `client_disconnect_timeout`). If the reader was dropped
//! and the body is chunked, it instead keeps the connection and drains the body, for ever when the body never
//! ends. Extractors drop the body as soon as they give up (a timeout, a refused size), so this middleware keeps
//! the body's reader inside the reply's body until that is written: every early reply ends the connection.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use futures_core::Stream;

/// The HTTP/1 body of a request, shared between the handler's reader and the reply.
struct Shared {
    payload: actix_http::h1::Payload,
    /// The reader saw the end of the body.
    ended: bool,
}

type SharedBody = Rc<RefCell<Shared>>;

/// Middleware (`from_fn`): hands the handler a shared reader of the body; when the reply is ready before the body
/// has ended, the reply carries the reader until it is written.
pub async fn close_unfinished<B: MessageBody + Unpin>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, HoldingBody<B>>>, actix_web::Error> {
    let shared = match req.parts_mut().1.take() {
        Payload::H1 { payload } => {
            let shared = Rc::new(RefCell::new(Shared {
                payload,
                ended: false,
            }));
            req.set_payload(Payload::Stream {
                payload: Box::pin(SharedReader(Rc::clone(&shared))),
            });
            Some(shared)
        }
        other => {
            req.set_payload(other);
            None
        }
    };
    let res = next.call(req).await?;
    Ok(match shared {
        Some(request_body) if !request_body.borrow().ended => res.map_body(|_, body| {
            EitherBody::right(HoldingBody {
                body,
                _request_body: request_body,
            })
        }),
        _ => res.map_into_left_body(),
    })
}

/// The handler's end of a [`SharedBody`].
struct SharedReader(SharedBody);

impl Stream for SharedReader {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut shared = self.0.borrow_mut();
        let next = Pin::new(&mut shared.payload).poll_next(cx);
        if matches!(next, Poll::Ready(None)) {
            shared.ended = true;
        }
        next
    }
}

/// A reply body that keeps the unfinished request body's reader alive until the reply has been written.
pub struct HoldingBody<B> {
    body: B,
    _request_body: SharedBody,
}

impl<B: MessageBody + Unpin> MessageBody for HoldingBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
