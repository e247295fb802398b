//! One in-process HTTP round trip per iteration, on one keep-alive HTTP/1.1 connection: the real server
//! (`crmscore::start` with `Config::for_tests` on the shipped models and sample snapshot, a free port, 2 HTTP
//! workers, 1 ONNX Runtime thread) and a plain `std::net::TcpStream` client that writes the raw request and reads
//! the response by its Content-Length (no client library in the figure). Cases:
//! `POST /v1/churn/score` with 1 customer id, with the churn manifest's batching (max_delay_us 0: the worker runs a
//! lone job at once) and with a 200 us batch window (a second server; a lone request waits it out), and
//! `GET /v2/health/live`, the no-model baseline (routing, middleware, HTTP parsing and the socket round trip);
//! with the manifest's batching also 1 id with `"explain": 3` (top-3 TreeSHAP reasons) and `POST /v1/insights`
//! with 1 id (churn + reasons + segment + top-3 offers + the shipped engagement policy). One client, so this is
//! latency at concurrency 1; the load-test script measures throughput.
//! Data: real customer ids of the shipped sample snapshot (`FeatureSnapshot::customer_ids`), a pool of 4096 drawn
//! by an xorshift64 generator with a fixed seed; each iteration sends the next one.
//! Run: `cargo bench --bench http_roundtrip`.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use crmscore::{Config, RunningServer};

use common::XorShift;

const POOL: usize = 4096;

/// A keep-alive HTTP/1.1 client over one socket; reconnects once if the server closed an idle connection.
struct Client {
    addr: SocketAddr,
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = Self::open(addr)?;
        Ok(Client {
            addr,
            stream,
            buffer: Vec::with_capacity(16 * 1024),
        })
    }

    fn open(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(stream)
    }

    /// Sends a full raw request and returns the status; the body is left in `self.body()`.
    fn send(&mut self, request: &[u8]) -> io::Result<u16> {
        match self.exchange(request) {
            Ok(status) => Ok(status),
            Err(_) => {
                self.stream = Self::open(self.addr)?;
                self.exchange(request)
            }
        }
    }

    fn exchange(&mut self, request: &[u8]) -> io::Result<u16> {
        self.stream.write_all(request)?;
        self.buffer.clear();
        let mut chunk = [0u8; 8192];
        let header_end = loop {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..n]);
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = std::str::from_utf8(&self.buffer[..header_end])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status line"))?;
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .ok_or_else(|| bad("no content-length"))?;
        let total = header_end + length;
        while self.buffer.len() < total {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
        self.buffer.drain(..header_end);
        Ok(status)
    }

    fn body(&self) -> &str {
        std::str::from_utf8(&self.buffer).unwrap_or("<not UTF-8>")
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Starts a server on the shipped models and sample snapshot and waits (bounded) until it is ready.
fn start(root: &Path, max_delay_us: Option<u64>) -> (RunningServer, Client) {
    let config = Config {
        max_delay_us,
        // Fewer rescans of the snapshot and model folders while measuring.
        poll_ms: 1_000,
        policy: Some(root.join("policies/engagement.toml")),
        ..Config::for_tests(root.join("models"), root.join(common::SAMPLE))
    };
    let server = crmscore::start(config).expect("server starts (run scripts/setup-onnxruntime.sh)");
    let mut client = Client::connect(server.addr).expect("client connects");
    let ready = get("/v2/health/ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = client.send(&ready).expect("readiness answers");
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server not ready after 60 s: {}",
            client.body()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, client)
}

fn bench(c: &mut Criterion) {
    let root = common::root();
    let sample = common::sample(common::churn_spec().feature_columns());
    let ids = common::draw_ids(&sample, &mut XorShift::seeded(), POOL);
    drop(sample);
    let requests: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| {
            let body = serde_json::json!({ "customer_ids": [id] }).to_string();
            post("/v1/churn/score", &body)
        })
        .collect();

    let mut group = c.benchmark_group("http_roundtrip");
    for (name, max_delay_us) in [("manifest_delay", None), ("max_delay_200us", Some(200))] {
        let (server, mut client) = start(root, max_delay_us);
        let status = client.send(&requests[0]).expect("churn request answered");
        assert!(
            status == 200 && client.body().contains("churn_probability"),
            "churn reply: {status} {}",
            client.body()
        );
        let mut next = requests.iter().cycle();
        group.bench_function(BenchmarkId::new("churn_1_id", name), |b| {
            b.iter(|| {
                let request = next.next().expect("cycle never ends");
                let status = client.send(request).expect("churn request answered");
                assert_eq!(status, 200, "churn reply: {}", client.body());
            })
        });
        if max_delay_us.is_none() {
            let explained: Vec<Vec<u8>> = ids
                .iter()
                .map(|id| {
                    let body = serde_json::json!({ "customer_ids": [id], "explain": 3 });
                    post("/v1/churn/score", &body.to_string())
                })
                .collect();
            let insights: Vec<Vec<u8>> = ids
                .iter()
                .map(|id| {
                    let body = serde_json::json!({ "customer_ids": [id], "k": 3 });
                    post("/v1/insights", &body.to_string())
                })
                .collect();
            for (case, requests, expect) in [
                ("churn_1_id_explain_3", &explained, "reasons"),
                ("insights_1_id", &insights, "next_best_action"),
            ] {
                let status = client.send(&requests[0]).expect("request answered");
                assert!(
                    status == 200 && client.body().contains(expect),
                    "{case} reply: {status} {}",
                    client.body()
                );
                let mut next = requests.iter().cycle();
                group.bench_function(case, |b| {
                    b.iter(|| {
                        let request = next.next().expect("cycle never ends");
                        let status = client.send(request).expect("request answered");
                        assert_eq!(status, 200, "{case} reply: {}", client.body());
                    })
                });
            }
            let live = get("/v2/health/live");
            group.bench_function("health_live", |b| {
                b.iter(|| {
                    let status = client.send(&live).expect("liveness answers");
                    assert_eq!(status, 200, "liveness reply: {}", client.body());
                })
            });
        }
        // Close the connection first: a graceful stop waits for open connections.
        drop(client);
        server.stop();
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
