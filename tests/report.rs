//! The model report (`crmscore report` and GET /v1/admin/report) against an independent computation:
//! tests/interop/report_fixture.py writes decision and outcome day folders per the feedback contract and computes
//! every figure itself with pandas and scikit-learn; the real binary and the real server must agree with it.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::*;
use crmscore::RunningServer;
use serde_json::Value;

const TOKEN: &str = "report-admin-token";

/// The fixture folder (feedback/, snapshot.parquet, expected.json), made once per test binary; None when the
/// Python tools are missing outside CI.
fn fixture() -> Option<&'static Path> {
    static DIR: OnceLock<Option<TempDir>> = OnceLock::new();
    DIR.get_or_init(|| {
        let python = dataeng_python()?;
        let dir = TempDir::new("report");
        let script = std::fs::read_to_string(repo().join("tests/interop/report_fixture.py"))
            .expect("the fixture script");
        let snapshot = sample_snapshot();
        run_python(
            &python,
            &script,
            &[snapshot.to_str().unwrap(), dir.path().to_str().unwrap()],
        );
        Some(dir)
    })
    .as_ref()
    .map(TempDir::path)
}

fn expected(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap()
}

fn report(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crmscore"))
        .arg("report")
        .args(args)
        .env_remove("CRMSCORE_FEEDBACK_DIR")
        .output()
        .expect("the binary runs")
}

fn report_json(args: &[&str]) -> Value {
    let out = report(&[args, &["--format", "json"]].concat());
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the report is JSON")
}

fn close(got: &Value, want: &Value, relative: bool, what: &str) {
    match (got.as_f64(), want.as_f64()) {
        (Some(g), Some(w)) => {
            let scale = if relative { w.abs().max(1e-300) } else { 1.0 };
            assert!(
                (g - w).abs() <= 1e-9 * scale,
                "{what}: got {g}, expected {w}"
            );
        }
        _ => assert_eq!(got, want, "{what}"),
    }
}

/// Every figure of one group: counts and flags exact, rates and means within 1e-9 relative, AUC and ECE 1e-9.
fn assert_figures(got: &Value, want: &Value, what: &str) {
    assert_eq!(got["group"], want["group"], "{what}");
    for exact in ["customers", "labelled", "too_small"] {
        assert_eq!(got[exact], want[exact], "{what}: {exact}");
    }
    for rate in ["mean_score", "churn_rate"] {
        close(&got[rate], &want[rate], true, &format!("{what}: {rate}"));
    }
    for absolute in ["auc", "ece"] {
        close(
            &got[absolute],
            &want[absolute],
            false,
            &format!("{what}: {absolute}"),
        );
    }
    assert_eq!(
        got["reason"].is_string(),
        want["too_small"] == true || want["auc"].is_null(),
        "{what}: a reason exactly when too small or AUC undefined: {}",
        got["reason"]
    );
    let (bins, want_bins) = (
        got["reliability"].as_array().unwrap(),
        want["reliability"].as_array().unwrap(),
    );
    assert_eq!(bins.len(), want_bins.len(), "{what}: bins");
    for (b, (g, w)) in bins.iter().zip(want_bins).enumerate() {
        assert_eq!(g["count"], w["count"], "{what}: bin {b} count");
        for field in ["mean_predicted", "observed_rate"] {
            close(
                &g[field],
                &w[field],
                true,
                &format!("{what}: bin {b} {field}"),
            );
        }
    }
    let (actions, want_actions) = (
        got["actions"].as_object().unwrap(),
        want["actions"].as_object().unwrap(),
    );
    assert_eq!(
        actions.keys().collect::<Vec<_>>(),
        want_actions.keys().collect::<Vec<_>>(),
        "{what}: actions"
    );
    for (action, rate) in want_actions {
        close(
            &actions[action],
            rate,
            true,
            &format!("{what}: action {action}"),
        );
    }
}

/// The whole report: totals, overall, and each group of `by` in the column's order.
fn assert_report(got: &Value, want: &Value, by: &str, order: &[&str]) {
    for exact in ["model", "decisions", "outcomes", "files"] {
        assert_eq!(got[exact], want[exact], "{exact}");
    }
    assert_eq!(got["by"], by);
    assert_figures(&got["overall"], &want["overall"], "overall");
    let groups = got["groups"].as_array().unwrap();
    let names: Vec<&str> = groups
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(names, order, "groups and their order");
    for group in groups {
        let name = group["group"].as_str().unwrap();
        assert_figures(group, &want["by"][by][name], &format!("{by}={name}"));
    }
}

const AGE_BANDS: [&str; 8] = ["0", "1", "2", "3", "4", "5", "null", "not_in_snapshot"];

#[test]
fn cli_report_matches_pandas_and_scikit_learn() {
    let Some(dir) = fixture() else { return };
    let want = expected(dir);
    let feedback = dir.join("feedback");
    let snapshot = dir.join("snapshot.parquet");
    let got = report_json(&[
        "--model",
        "churn",
        "--outcomes",
        feedback.to_str().unwrap(),
        "--by",
        "age_band",
        "--snapshot",
        snapshot.to_str().unwrap(),
    ]);
    assert_report(&got, &want, "age_band", &AGE_BANDS);
    assert_eq!(got["includes_open_days"], true);
    assert_eq!(got["open_days"], want["open_days"]);
    assert_eq!(got["snapshot"], "snapshot.parquet");
    // The fixture's small and single-class groups are there, marked.
    let groups = got["groups"].as_array().unwrap();
    assert_eq!(groups[5]["too_small"], true);
    assert!(groups[0]["auc"].is_null() && groups[0]["too_small"] == false);
    // A string column, with other --bins and --min-group.
    let got = report_json(&[
        "--outcomes",
        feedback.to_str().unwrap(),
        "--by",
        "segment",
        "--snapshot",
        snapshot.to_str().unwrap(),
    ]);
    assert_report(
        &got,
        &want,
        "segment",
        &["consumer", "enterprise", "smb", "not_in_snapshot"],
    );
    // Without --by: the overall figures only.
    let got = report_json(&["--outcomes", feedback.to_str().unwrap()]);
    assert_figures(&got["overall"], &want["overall"], "overall without --by");
    assert_eq!(got["groups"], Value::Array(vec![]));
    assert!(got["by"].is_null());
}

#[test]
fn cli_text_report_is_a_table_with_marks() {
    let Some(dir) = fixture() else { return };
    let feedback = dir.join("feedback");
    let snapshot = dir.join("snapshot.parquet");
    let out = report(&[
        "--outcomes",
        feedback.to_str().unwrap(),
        "--by",
        "age_band",
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--bins",
        "5",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Includes open days"), "{text}");
    assert!(text.contains("\n5 *"), "the tiny group is marked: {text}");
    assert!(
        text.contains("* 5: 16 labelled customers, fewer than min_group 50"),
        "{text}"
    );
    assert!(
        text.contains("0: no labelled customer churned: AUC undefined"),
        "{text}"
    );
    assert!(text.contains("0.800-1.000"), "five bins: {text}");
}

fn failure(args: &[&str]) -> String {
    let out = report(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn cli_errors_are_clear() {
    let missing = failure(&["--outcomes", "/nonexistent/feedback"]);
    assert!(
        missing.contains("feedback folder /nonexistent/feedback does not exist"),
        "{missing}"
    );
    let Some(dir) = fixture() else { return };
    let feedback = dir.join("feedback");
    let snapshot = dir.join("snapshot.parquet");
    let unknown = failure(&[
        "--outcomes",
        feedback.to_str().unwrap(),
        "--by",
        "age_bnd",
        "--snapshot",
        snapshot.to_str().unwrap(),
    ]);
    assert!(
        unknown.contains("column 'age_bnd' is not in snapshot snapshot.parquet")
            && unknown.contains("age_band, contract_type"),
        "{unknown}"
    );
    let none = failure(&[
        "--outcomes",
        feedback.to_str().unwrap(),
        "--model",
        "sentiment",
    ]);
    assert!(none.contains("no decisions of model 'sentiment'"), "{none}");
    let bins = failure(&["--outcomes", feedback.to_str().unwrap(), "--bins", "0"]);
    assert!(bins.contains("bins must be between 1 and 1000"), "{bins}");
}

fn server(dir: &Path) -> &'static RunningServer {
    static S: OnceLock<RunningServer> = OnceLock::new();
    S.get_or_init(|| {
        let mut config = config(&dir.join("snapshot.parquet"));
        // A copy: the server's outcome log closes past days (writes _SUCCESS) in the folder it owns, which would
        // change the open days the CLI tests read from the fixture.
        let served = dir.join("served-feedback");
        copy_tree(&dir.join("feedback"), &served);
        config.feedback_dir = Some(served);
        config.admin_token = Some(TOKEN.into());
        start_ready(config)
    })
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn admin_get(server: &RunningServer, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = agent().get(url(server, path));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut resp = request.call().expect("request reaches the server");
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn admin_route_matches_the_independent_computation() {
    let Some(dir) = fixture() else { return };
    let server = server(dir);
    let (status, got) = admin_get(
        server,
        "/v1/admin/report?model=churn&by=age_band&bins=10&min_group=50",
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{got}");
    assert_report(&got, &expected(dir), "age_band", &AGE_BANDS);
    assert_eq!(got["snapshot"], "snapshot.parquet");
    // Defaults: model churn, 10 bins, min_group 50, no grouping; the same figures as the CLI.
    let (status, plain) = admin_get(server, "/v1/admin/report", Some(TOKEN));
    assert_eq!(status, 200, "{plain}");
    let cli = report_json(&["--outcomes", dir.join("feedback").to_str().unwrap()]);
    assert_eq!(plain["overall"], cli["overall"]);
}

#[test]
fn admin_route_refuses_bad_requests() {
    let Some(dir) = fixture() else { return };
    let server = server(dir);
    let (status, body) = admin_get(server, "/v1/admin/report?by=age_band", None);
    assert_eq!(status, 401, "{body}");
    v1_error(&body, "unauthorized");
    let (status, body) = admin_get(server, "/v1/admin/report", Some("wrong"));
    assert_eq!(status, 401, "{body}");
    for (query, names) in [
        ("bins=ten", "'bins'"),
        ("bins=0", "'bins'"),
        ("min_group=-3", "'min_group'"),
        ("by=", "'by'"),
        ("model=", "'model'"),
        ("binz=10", "binz"),
        ("by=age_bnd", "age_band, contract_type"),
    ] {
        let (status, body) = admin_get(server, &format!("/v1/admin/report?{query}"), Some(TOKEN));
        assert_eq!(status, 400, "{query}: {body}");
        let message = v1_error(&body, "bad_request");
        assert!(message.contains(names), "{query}: {message}");
    }
    let (status, body) = admin_get(server, "/v1/admin/report?model=sentiment", Some(TOKEN));
    assert_eq!(status, 404, "{body}");
    assert!(v1_error(&body, "not_found").contains("no decisions of model 'sentiment'"));
}

#[test]
fn admin_route_without_a_feedback_folder_is_404() {
    let dir = TempDir::new("report-none");
    let mut config = config(&sample_snapshot());
    config.feedback_dir = Some(dir.path().join("not-yet"));
    let server = start_ready(config);
    let (status, body) = admin_get(&server, "/v1/admin/report", None);
    assert_eq!(status, 404, "{body}");
    assert!(v1_error(&body, "not_found").contains("no decisions recorded yet"));
}
