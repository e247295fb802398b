//! Request bodies are bounded in time and memory, over a raw socket: a body that trickles, stops short of its
//! Content-Length or never ends gets a JSON 408 and then the connection closes; a Content-Length over the limit
//! gets 413 before any body is sent; bodies past the global budget get 503 with Retry-After, and once their
//! clients leave the bytes in flight are back to 0 and requests are served again.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use crmscore::RunningServer;
use serde_json::{Value, json};

/// Far above what any answer here needs: only "it does not hang".
const PATIENCE: Duration = Duration::from_secs(30);

/// One reply read off a raw socket.
struct Reply {
    status: u16,
    head: String,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

fn connect(server: &RunningServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr).expect("connects");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads a reply: head and Content-Length body.
fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            Ok(_) => panic!(
                "connection closed before a reply: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Err(e) => panic!("no reply within {PATIENCE:?}: {e}"),
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head[9..12].parse().unwrap();
    let mut reply = Reply {
        status,
        head,
        body: Value::Null,
    };
    let length: usize = reply
        .header("content-length")
        .expect("replies carry a length")
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).expect("the whole reply body");
    reply.body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    reply
}

/// True when the server closes the connection with nothing more to read (panics if it stays open).
fn closes(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => panic!("the connection stayed open after the reply: {e}"),
    }
}

/// A chunk of `n` spaces in chunked framing.
fn chunk(n: usize) -> Vec<u8> {
    format!("{n:x}\r\n{}\r\n", " ".repeat(n)).into_bytes()
}

/// Writes `piece` every 50 ms until the server stops reading or `stop` is set.
fn trickle(stream: &TcpStream, piece: Vec<u8>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) && writer.write_all(&piece).is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

fn head(path: &str, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{extra}\r\n")
}

/// A server whose bodies must arrive within one second.
fn impatient() -> &'static RunningServer {
    static SERVER: std::sync::OnceLock<RunningServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        start_ready(crmscore::Config {
            body_timeout_ms: 1_000,
            max_body_bytes: 256 * 1024,
            ..config(&sample_snapshot())
        })
    })
}

fn metric(server: &RunningServer, series: &str) -> f64 {
    let (_, _, text) = get_text(server, "/metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Sends `request`, then `piece` every 50 ms until a reply comes; returns the reply and whether the server then
/// closed the connection.
fn send_and_trickle(
    server: &RunningServer,
    request: &str,
    piece: Option<Vec<u8>>,
) -> (Reply, bool) {
    let mut stream = connect(server);
    stream.write_all(request.as_bytes()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = piece.map(|p| trickle(&stream, p, stop.clone()));
    let reply = read_reply(&mut stream);
    stop.store(true, Ordering::Relaxed);
    let closed = closes(&mut stream);
    if let Some(w) = writer {
        w.join().unwrap();
    }
    (reply, closed)
}

/// Expects a 408 to `request` on the impatient server, then the connection closed.
fn expect_timeout(request: &str, piece: Option<Vec<u8>>) -> Reply {
    let started = Instant::now();
    let (reply, closed) = send_and_trickle(impatient(), request, piece);
    assert_eq!(reply.status, 408, "{}", reply.head);
    assert!(closed, "the connection is closed after the 408");
    assert!(started.elapsed() < PATIENCE);
    reply
}

#[test]
fn a_trickled_body_gets_408_then_the_connection_closes() {
    let before = metric(
        impatient(),
        r#"crmscore_request_body_rejections_total{reason="timeout"}"#,
    );
    let reply = expect_timeout(
        &head("/v1/churn/score", "Content-Length: 100000\r\n"),
        Some(b"          ".to_vec()),
    );
    v1_error(&reply.body, "request_timeout");
    assert!(
        reply
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    );
    // The v2 routes answer in their own envelope.
    let reply = expect_timeout(
        &head("/v2/models/churn/infer", "Content-Length: 100000\r\n"),
        Some(b"          ".to_vec()),
    );
    assert!(v2_error(&reply.body).contains("1000 ms"), "{}", reply.body);
    let after = metric(
        impatient(),
        r#"crmscore_request_body_rejections_total{reason="timeout"}"#,
    );
    assert!(
        after >= before + 2.0,
        "timeouts are counted: {before} -> {after}"
    );
}

#[test]
fn a_body_shorter_than_its_content_length_gets_408() {
    let mut request = head("/v1/churn/score", "Content-Length: 1000\r\n");
    request.push_str(r#"{"customer_ids": ["#);
    let reply = expect_timeout(&request, None);
    v1_error(&reply.body, "request_timeout");
}

#[test]
fn a_chunked_body_that_never_ends_gets_408() {
    let reply = expect_timeout(
        &head("/v1/sentiment", "Transfer-Encoding: chunked\r\n"),
        Some(chunk(5)),
    );
    v1_error(&reply.body, "request_timeout");
}

#[test]
fn a_content_length_over_the_limit_gets_413_before_any_body() {
    let mut stream = connect(impatient());
    let request = head(
        "/v1/churn/score",
        &format!("Content-Length: {}\r\n", 256 * 1024 + 1),
    );
    stream.write_all(request.as_bytes()).unwrap();
    let reply = read_reply(&mut stream);
    assert_eq!(reply.status, 413, "{}", reply.head);
    assert!(v1_error(&reply.body, "payload_too_large").contains("262144"));
    assert!(closes(&mut stream));
    // A chunked body is stopped once it passes the limit, and the connection is closed as well.
    let request = head("/v1/churn/score", "Transfer-Encoding: chunked\r\n");
    let (reply, closed) = send_and_trickle(impatient(), &request, Some(chunk(64 * 1024)));
    assert!(closed);
    assert_eq!(reply.status, 413, "{}", reply.head);
    v1_error(&reply.body, "payload_too_large");
}

#[test]
fn complete_bodies_keep_the_connection_open() {
    let mut stream = connect(impatient());
    let body = json!({ "texts": ["the service was great"] }).to_string();
    for _ in 0..2 {
        let request = head(
            "/v1/sentiment",
            &format!("Content-Length: {}\r\n", body.len()),
        ) + &body;
        stream.write_all(request.as_bytes()).unwrap();
        let reply = read_reply(&mut stream);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply
                .header("connection")
                .is_none_or(|v| !v.eq_ignore_ascii_case("close"))
        );
    }
}

#[test]
fn bodies_past_the_budget_get_503_until_their_clients_leave() {
    const HELD: usize = 400 * 1024;
    let server = start_ready(crmscore::Config {
        max_body_bytes: 512 * 1024,
        body_budget_bytes: 1024 * 1024,
        body_timeout_ms: 60_000,
        ..config(&sample_snapshot())
    });
    let gauge = "crmscore_request_body_bytes_in_flight";
    // Two clients announce 400 KiB each and send a little: 800 KiB of the 1 MiB budget is held.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(&server);
            let request = head("/v1/churn/score", &format!("Content-Length: {HELD}\r\n"));
            s.write_all(request.as_bytes()).unwrap();
            s.write_all(br#"{"customer_ids": ["#).unwrap();
            s
        })
        .collect();
    let deadline = Instant::now() + PATIENCE;
    while metric(&server, gauge) < (2 * HELD) as f64 {
        assert!(
            Instant::now() < deadline,
            "the held bodies never showed in {gauge}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A third announced body does not fit: refused at once, with Retry-After.
    let mut third = connect(&server);
    third
        .write_all(head("/v1/churn/score", &format!("Content-Length: {HELD}\r\n")).as_bytes())
        .unwrap();
    let reply = read_reply(&mut third);
    assert!(closes(&mut third));
    assert_eq!(reply.status, 503, "{}", reply.head);
    assert_eq!(reply.header("retry-after"), Some("1"));
    v1_error(&reply.body, "body_budget_exceeded");
    // A chunked body is refused when it grows past what is left.
    let request = head("/v2/models/churn/infer", "Transfer-Encoding: chunked\r\n");
    let (reply, closed) = send_and_trickle(&server, &request, Some(chunk(64 * 1024)));
    assert!(closed);
    assert_eq!(reply.status, 503, "{}", reply.head);
    assert!(v2_error(&reply.body).contains("retry"));
    assert!(
        metric(
            &server,
            r#"crmscore_request_body_rejections_total{reason="budget"}"#
        ) >= 2.0
    );
    // The clients leave: their bytes go back, and a normal request is served.
    drop(held);
    while metric(&server, gauge) != 0.0 {
        assert!(Instant::now() < deadline, "{gauge} never went back to 0");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, reply) = post(&server, "/v1/sentiment", &json!({ "texts": ["fine"] }));
    assert_eq!(status, 200, "{reply}");
    server.stop();
}
