//! Three replicas behind HAProxy, one snapshot drop: scripts/cluster-test.sh in its short form (the sample
//! snapshot, 10 s of load, a shared local folder) run on this build's binary. Every request through HAProxy must
//! succeed and every replica must end on the new snapshot; the script's timings are printed, not asserted.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// Whether HAProxy is there or the script may install it (as root); None (skipped, said why) outside CI otherwise.
fn haproxy_available() -> Option<()> {
    let ok = Command::new("sh")
        .args([
            "-c",
            "command -v haproxy >/dev/null || [ \"$(id -u)\" = 0 ]",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(());
    }
    let why = "HAProxy is missing and only root can install it (apt-get install haproxy)";
    assert!(std::env::var_os("CI").is_none(), "CI is set and {why}");
    println!("SKIPPED: {why}");
    None
}

#[test]
fn three_replicas_switch_to_a_dropped_snapshot_without_a_failed_request() {
    let (Some(python), Some(())) = (dataeng_python(), haproxy_available()) else {
        return;
    };
    let dir = TempDir::new("cluster");
    let figures = dir.path().join("figures.json");
    let output = Command::new(repo().join("scripts/cluster-test.sh"))
        .args(["--short", "--store", "local"])
        .env("CRMSCORE_BIN", env!("CARGO_BIN_EXE_crmscore"))
        .env("PYTHON", &python)
        .env("CLUSTER_JSON", &figures)
        .output()
        .expect("the script starts");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(output.status.success(), "cluster test failed:\n{report}");
    let figures: Value =
        serde_json::from_str(&std::fs::read_to_string(&figures).expect("figures written"))
            .expect("figures are JSON");
    assert_eq!(figures["errors"], 0, "{figures}");
    assert!(
        figures["requests"].as_u64().is_some_and(|n| n > 0),
        "{figures}"
    );
    assert_eq!(figures["replicas"], 3);
    assert_eq!(
        figures["old_version"], "customers-day1.parquet",
        "{figures}"
    );
    assert_eq!(
        figures["new_version"], "customers-day2.parquet",
        "{figures}"
    );
    assert_eq!(
        figures["replica_switch_s"].as_object().map(|m| m.len()),
        Some(3),
        "{figures}"
    );
    for version in ["customers-day1.parquet", "customers-day2.parquet"] {
        let answered = figures["answered_by_version"][version].as_u64();
        assert!(
            answered.is_some_and(|n| n > 0),
            "no reply through HAProxy from {version}: {figures}"
        );
    }
}
