//! Content encoding, both ways, over the real server: gzip and deflate request bodies score like plain ones on
//! /v1 and /v2; corrupt data is a 400 naming the coding, a small body that inflates past --max-body-bytes is a 413,
//! an unknown coding a 415; large replies are gzip-compressed for clients that accept it, small ones never.

mod common;

use std::io::{Read, Write};
use std::sync::OnceLock;

use common::*;
use crmscore::RunningServer;
use flate2::Compression;
use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::{GzEncoder, ZlibEncoder};
use serde_json::{Value, json};

fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| start_ready(config(&sample_snapshot())))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A reply as it came off the wire.
struct Raw {
    status: u16,
    headers: ureq::http::HeaderMap,
    bytes: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| panic!("not JSON ({e})"))
    }
}

/// POSTs `body` with the given extra headers, returning the undecoded reply.
fn post_bytes(path: &str, body: &[u8], headers: &[(&str, &str)]) -> Raw {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent
        .post(url(server(), path))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut resp = request.send(body).expect("reaches the server");
    Raw {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        bytes: resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap(),
    }
}

fn churn_request(n: usize) -> Vec<u8> {
    let ids: Vec<String> = (0..n).map(|i| format!("C{:07}", i * 37)).collect();
    json!({ "customer_ids": ids }).to_string().into_bytes()
}

fn infer_request() -> Vec<u8> {
    json!({
        "inputs": [{ "name": "text", "shape": [2], "datatype": "BYTES",
                     "data": ["the service was great", "the parcel never came"] }]
    })
    .to_string()
    .into_bytes()
}

#[test]
fn gzip_and_deflate_bodies_score_like_plain_ones() {
    for (path, body) in [
        ("/v1/churn/score", churn_request(20)),
        ("/v2/models/sentiment/infer", infer_request()),
    ] {
        let plain = post_bytes(path, &body, &[]);
        assert_eq!(plain.status, 200, "{path}: {}", plain.json());
        let want = plain.json();
        let key = if path.starts_with("/v1") {
            "results"
        } else {
            "outputs"
        };
        for (coding, wire) in [("gzip", gzip(&body)), ("deflate", deflate(&body))] {
            let got = post_bytes(path, &wire, &[("content-encoding", coding)]);
            assert_eq!(got.status, 200, "{path} {coding}: {}", got.json());
            assert_eq!(
                without_decision_ids(&got.json()[key]),
                without_decision_ids(&want[key]),
                "{path} {coding}"
            );
        }
    }
}

#[test]
fn corrupt_bomb_and_unknown_codings_are_refused() {
    let body = churn_request(5);
    let mut corrupt = gzip(&body);
    let middle = corrupt.len() / 2;
    corrupt.truncate(middle);
    let reply = post_bytes("/v1/churn/score", &corrupt, &[("content-encoding", "gzip")]);
    assert_eq!(reply.status, 400);
    assert!(v1_error(&reply.json(), "bad_content_encoding").contains("gzip"));
    let reply = post_bytes("/v1/churn/score", &body, &[("content-encoding", "deflate")]);
    assert_eq!(reply.status, 400, "plain JSON sent as deflate");
    assert!(v1_error(&reply.json(), "bad_content_encoding").contains("deflate"));

    // 64 MiB of spaces inside valid JSON, 64 KiB on the wire: refused without inflating it all.
    let mut bomb = b"{\"customer_ids\": [\"".to_vec();
    bomb.resize(64 << 20, b' ');
    let bomb = gzip(&bomb);
    assert!(
        bomb.len() < 4 * 1024 * 1024 / 8,
        "the bomb is small on the wire"
    );
    let reply = post_bytes("/v1/churn/score", &bomb, &[("content-encoding", "gzip")]);
    assert_eq!(reply.status, 413);
    v1_error(&reply.json(), "payload_too_large");
    let reply = post_bytes(
        "/v2/models/sentiment/infer",
        &bomb,
        &[("content-encoding", "gzip")],
    );
    assert_eq!(reply.status, 413);
    v2_error(&reply.json());

    let reply = post_bytes("/v1/churn/score", &body, &[("content-encoding", "br")]);
    assert_eq!(reply.status, 415);
    assert!(v1_error(&reply.json(), "unsupported_content_encoding").contains("'br'"));
    let reply = post_bytes(
        "/v1/churn/score",
        &body,
        &[("content-encoding", "gzip, gzip")],
    );
    assert_eq!(reply.status, 415, "stacked codings");
}

#[test]
fn large_replies_are_compressed_for_clients_that_accept_it() {
    let body = churn_request(100);
    let plain = post_bytes("/v1/churn/score", &body, &[]);
    assert_eq!(plain.status, 200);
    assert!(plain.bytes.len() > 1024, "a large reply");
    assert_eq!(plain.header("content-encoding"), None, "not asked for");
    assert_eq!(plain.header("vary"), Some("accept-encoding"));
    let want = plain.json();

    let zipped = post_bytes("/v1/churn/score", &body, &[("accept-encoding", "gzip")]);
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert!(zipped.bytes.len() < plain.bytes.len());
    let mut text = String::new();
    GzDecoder::new(&zipped.bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        without_decision_ids(&got["results"]),
        without_decision_ids(&want["results"])
    );

    // The client's preference decides; deflate is offered too.
    let deflated = post_bytes(
        "/v1/churn/score",
        &body,
        &[("accept-encoding", "gzip;q=0.5, deflate")],
    );
    assert_eq!(deflated.header("content-encoding"), Some("deflate"));
    let mut text = String::new();
    ZlibDecoder::new(&deflated.bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(
        without_decision_ids(&serde_json::from_str::<Value>(&text).unwrap()["results"]),
        without_decision_ids(&want["results"])
    );
}

#[test]
fn small_replies_are_not_compressed() {
    let reply = post_bytes(
        "/v1/churn/score",
        &churn_request(1),
        &[("accept-encoding", "gzip")],
    );
    assert_eq!(reply.status, 200);
    assert!(
        reply.bytes.len() < 1024,
        "a small reply: {}",
        reply.bytes.len()
    );
    assert_eq!(reply.header("content-encoding"), None);
    reply.json();
    // Errors are small too.
    let reply = post_bytes("/v1/churn/score", b"{", &[("accept-encoding", "gzip")]);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("content-encoding"), None);
    v1_error(&reply.json(), "invalid_json");
}
