//! /metrics tells the truth right after start: the server says it is up, reports its own process figures and
//! build, counts the model loads of start-up, and says which version runs on which execution provider.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;

/// The value of the sample line that starts with `series ` (name and labels exactly).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn metrics_report_up_process_build_and_start_up_loads() {
    let server = start_ready(config(&sample_snapshot()));
    let (status, _, text) = get_text(&server, "/metrics");
    assert_eq!(status, 200);

    assert_eq!(sample(&text, "crmscore_up"), 1.0);

    let rss = sample(&text, "crmscore_process_resident_memory_bytes");
    assert!(rss > 1e6, "resident memory {rss}");
    let fds = sample(&text, "crmscore_process_open_fds");
    assert!(fds > 0.0, "open fds {fds}");
    let cpu = sample(&text, "crmscore_process_cpu_seconds_total");
    assert!(cpu >= 0.0, "cpu seconds {cpu}");
    assert!(text.contains("# TYPE crmscore_process_cpu_seconds_total counter"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = sample(&text, "crmscore_process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "start time {started}, now {now}"
    );

    let build = text
        .lines()
        .find(|l| l.starts_with("crmscore_build_info{"))
        .unwrap_or_else(|| panic!("no build info in\n{text}"));
    assert!(build.ends_with("} 1"), "{build}");
    for label in [
        format!(r#"version="{}""#, env!("CARGO_PKG_VERSION")),
        "git_commit=\"".to_string(),
        "onnxruntime_version=\"".to_string(),
    ] {
        assert!(build.contains(&label), "{label} in {build}");
    }
    // The library this server loaded is found (its build string, else its file name); "unknown" only elsewhere.
    assert!(
        !build.contains(r#"onnxruntime_version="unknown""#),
        "{build}"
    );

    // Start-up loads count: exactly one per model, no reload happened.
    assert_eq!(
        sample(&text, r#"crmscore_model_loads_total{model="churn"}"#),
        1.0
    );
    // Which version runs where: the provider is a label (CPU here: the test config asks for it).
    let (_, version) = common::get(&server, "/v2/models/churn");
    let version = version["versions"][0].as_str().unwrap().to_string();
    let info = format!(
        r#"crmscore_model_info{{model="churn",provider="CPUExecutionProvider",version="{version}"}}"#
    );
    assert_eq!(sample(&text, &info), 1.0);
    server.stop();
}
