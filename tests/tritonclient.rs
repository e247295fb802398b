//! Interop with clients nobody here wrote: runs tests/interop/tritonclient_check.py (NVIDIA's tritonclient.http and
//! tritonclient.grpc, answers compared with Python onnxruntime) against the real server on free ports. Needs the
//! venv of `scripts/setup-python.sh --triton` (scripts/test.sh makes it); without it the tests skip, or fail when
//! the `CI` variable is set.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use crmscore::RunningServer;

/// Generous bound for one run of the check (it scores a few dozen rows; most of the time is Python imports).
const LIMIT: Duration = Duration::from_secs(300);

fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        start_ready(crmscore::Config {
            grpc_bind: Some(([127, 0, 0, 1], 0).into()),
            ..config(&sample_snapshot())
        })
    })
}

/// The venv's python, or None (after saying why) when the venv is missing and this is not CI.
fn python() -> Option<PathBuf> {
    venv_python(".venv-triton", "--triton")
}

/// Runs the check for one protocol, printing every client call it made; panics with its output on a failure.
fn check(protocol: &str) {
    let Some(python) = python() else { return };
    let server = server();
    let grpc = server.grpc.expect("started with --grpc-bind");
    let mut child = Command::new(python)
        .arg(repo().join("tests/interop/tritonclient_check.py"))
        .args(["--protocol", protocol])
        .args([
            "--http",
            &server.addr.to_string(),
            "--grpc",
            &grpc.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python starts");
    let started = Instant::now();
    while child
        .try_wait()
        .expect("the check can be waited for")
        .is_none()
    {
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child
        .wait_with_output()
        .expect("the check's output is readable");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(
        output.status.success(),
        "tritonclient.{protocol} check failed ({}; limit {LIMIT:?}):\n{text}",
        output.status
    );
}

#[test]
fn tritonclient_grpc_gets_onnxruntime_answers() {
    check("grpc");
}

#[test]
fn tritonclient_http_gets_onnxruntime_answers() {
    check("http");
}
