//! Compresses replies of 1 KiB and more with gzip or deflate when the client accepts it; small replies go as is.
//!
//! actix-web's `Compress` middleware compresses every reply, however small (a 60-byte error would grow and cost a
//! compressor); this uses the same encoder (actix-http's, which compresses large bodies off the worker thread)
//! and only where it pays.

use actix_http::encoding::Encoder;
use actix_web::HttpMessage;
use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, AcceptEncoding, ContentEncoding, Encoding, HeaderValue};
use actix_web::middleware::Next;

/// Replies smaller than this are sent uncompressed.
pub const MIN_COMPRESSED_BYTES: u64 = 1024;

/// The codings offered, in the server's order of preference.
const OFFERED: [Encoding; 3] = [Encoding::gzip(), Encoding::deflate(), Encoding::identity()];

/// Middleware (`from_fn`): compresses the reply when the client accepts gzip or deflate and it is worth it.
pub async fn compress_large<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, Encoder<B>>>, actix_web::Error> {
    let coding = accepted(&req);
    let mut res = next.call(req).await?;
    if !worth_compressing(&res) {
        return Ok(res.map_into_left_body());
    }
    match coding {
        Some(coding) => {
            Ok(res.map_body(|head, body| EitherBody::right(Encoder::response(coding, head, body))))
        }
        None => {
            // The reply could have been compressed: caches must keep the two apart.
            res.headers_mut()
                .append(header::VARY, HeaderValue::from_static("accept-encoding"));
            Ok(res.map_into_left_body())
        }
    }
}

/// The compressing coding the client accepts, preferring its q-values, then gzip; None for identity.
fn accepted(req: &ServiceRequest) -> Option<ContentEncoding> {
    match req
        .get_header::<AcceptEncoding>()?
        .negotiate(OFFERED.iter())?
    {
        Encoding::Known(ContentEncoding::Gzip) => Some(ContentEncoding::Gzip),
        Encoding::Known(ContentEncoding::Deflate) => Some(ContentEncoding::Deflate),
        _ => None,
    }
}

/// A reply of known size over the threshold, not already encoded, with a status that carries a body.
fn worth_compressing<B: MessageBody>(res: &ServiceResponse<B>) -> bool {
    let big =
        matches!(res.response().body().size(), BodySize::Sized(n) if n >= MIN_COMPRESSED_BYTES);
    big && !res.headers().contains_key(header::CONTENT_ENCODING)
        && !matches!(
            res.status(),
            StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::SWITCHING_PROTOCOLS
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn the_client_chooses_among_gzip_and_deflate() {
        let accepted_for = |value: Option<&str>| {
            let mut req = TestRequest::default();
            if let Some(v) = value {
                req = req.insert_header((header::ACCEPT_ENCODING, v));
            }
            accepted(&req.to_srv_request())
        };
        assert_eq!(accepted_for(None), None);
        assert_eq!(accepted_for(Some("gzip")), Some(ContentEncoding::Gzip));
        assert_eq!(
            accepted_for(Some("br, gzip, deflate")),
            Some(ContentEncoding::Gzip)
        );
        assert_eq!(
            accepted_for(Some("gzip;q=0.5, deflate")),
            Some(ContentEncoding::Deflate)
        );
        assert_eq!(accepted_for(Some("br")), None);
        // Nothing acceptable: the reply goes uncompressed rather than as a 406.
        assert_eq!(accepted_for(Some("br, identity;q=0")), None);
    }
}
