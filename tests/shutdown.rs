//! Graceful shutdown of the real binary: SIGTERM and SIGINT under 64 concurrent clients fail no request, turn
//! readiness off at once, close connections during the drain, let a long request finish, and exit 0.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Served, agent, sample_rows, wait_ready_at};
use serde_json::json;

const CLIENTS: usize = 64;
const GRACE_MS: u64 = 2000;

/// The served binary and its address, read from its "listening" log line.
fn serve() -> (Served, String) {
    let grace = GRACE_MS.to_string();
    let served = Served::start(
        &["--http-workers", "2", "--shutdown-grace-ms", &grace],
        "info",
    );
    let base = served.base_url();
    (served, base)
}

/// Whether a transport error means the request never reached the server (the listener is closed).
fn never_sent(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// What one shutdown run saw.
#[derive(Debug, Default)]
struct Outcome {
    ok: usize,
    failures: Vec<String>,
    closed_during_drain: usize,
    ready_503_within_ms: Option<u128>,
    long_request_ok: bool,
}

/// Serves, loads it with `CLIENTS` keep-alive clients and one long request, sends `signal`, and collects what
/// every client saw. A client stops sending once a reply tells it the server is draining (`Connection: close`), as
/// a load balancer takes a draining replica out; every request sent before that must be answered 200.
fn run(signal: &str) -> Outcome {
    let (mut served, base) = serve();
    wait_ready_at(&base);
    let ids = common::ids_of(&sample_rows(200));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let started = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for c in 0..CLIENTS {
        let (base, ids, outcome, started) =
            (base.clone(), ids.clone(), outcome.clone(), started.clone());
        threads.push(std::thread::spawn(move || {
            let agent = agent();
            started.fetch_add(1, Ordering::SeqCst);
            for i in 0.. {
                let body = json!({"customer_ids": [ids[(c * 7 + i) % ids.len()]]});
                let reply = agent
                    .post(format!("{base}/v1/churn/score"))
                    .header("content-type", "application/json")
                    .send(body.to_string());
                let mut o = outcome.lock().unwrap();
                match reply {
                    Ok(r) if r.status() == 200 => {
                        o.ok += 1;
                        let close = r
                            .headers()
                            .get("connection")
                            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                        if close {
                            o.closed_during_drain += 1;
                            return;
                        }
                    }
                    Ok(r) => o
                        .failures
                        .push(format!("client {c}: status {}", r.status())),
                    Err(e) if never_sent(&e) => return,
                    Err(e) => {
                        o.failures.push(format!("client {c}: {e}"));
                        return;
                    }
                }
            }
        }));
    }
    while started.load(Ordering::SeqCst) < CLIENTS {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    // A request that takes a while: started just before the signal, it must finish, not be cut short.
    let long = {
        let (base, ids, outcome) = (base.clone(), ids.clone(), outcome.clone());
        std::thread::spawn(move || {
            let body = json!({"customer_ids": ids});
            let reply = agent()
                .post(format!("{base}/v1/insights"))
                .header("content-type", "application/json")
                .send(body.to_string());
            let mut o = outcome.lock().unwrap();
            match reply {
                Ok(mut r) if r.status() == 200 => {
                    o.long_request_ok = r.body_mut().read_to_string().is_ok_and(|b| b.len() > 1000);
                }
                Ok(r) => o
                    .failures
                    .push(format!("long request: status {}", r.status())),
                Err(e) => o.failures.push(format!("long request: {e}")),
            }
        })
    };
    std::thread::sleep(Duration::from_millis(5));
    let sent = Instant::now();
    let killed = Command::new("kill")
        .args([signal, &served.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    // Readiness turns 503 at once, while the listener still accepts (the probe itself may wait behind the load).
    while sent.elapsed() < Duration::from_millis(GRACE_MS) {
        if let Ok(r) = agent().get(format!("{base}/v2/health/ready")).call()
            && r.status() == 503
        {
            outcome.lock().unwrap().ready_503_within_ms = Some(sent.elapsed().as_millis());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for t in threads {
        t.join().expect("client thread");
    }
    long.join().expect("long request thread");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = served.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status after {signal}: {status}");
    Arc::try_unwrap(outcome)
        .expect("threads are done")
        .into_inner()
        .unwrap()
}

fn check(signal: &str) {
    for round in 0..5 {
        let o = run(signal);
        eprintln!(
            "{signal} round {round}: ok {} closed {} ready_503 {:?} long {} failures {}",
            o.ok,
            o.closed_during_drain,
            o.ready_503_within_ms,
            o.long_request_ok,
            o.failures.len()
        );
        assert!(
            o.failures.is_empty(),
            "{signal} round {round}: {:?}",
            o.failures
        );
        assert!(
            o.ok >= CLIENTS,
            "{signal} round {round}: only {} requests answered",
            o.ok
        );
        assert_eq!(
            o.closed_during_drain, CLIENTS,
            "{signal} round {round}: every client is told to close during the drain"
        );
        assert!(
            o.long_request_ok,
            "{signal} round {round}: the long request finishes"
        );
        assert!(
            o.ready_503_within_ms.is_some(),
            "{signal} round {round}: readiness turned 503 during the grace period"
        );
    }
}

/// One test for both signals: two servers each under 64 clients at once would starve each other on a 2-core
/// machine and blur what is measured.
#[test]
fn sigterm_and_sigint_drain_without_failing_a_request() {
    check("-TERM");
    check("-INT");
}
