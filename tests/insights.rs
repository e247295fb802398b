//! Insights over HTTP: churn, reasons, segment, offers and the next best action from the shipped policy, for
//! known, unknown and partial (a model missing) customers; every rule reachable; the policy's hot reload.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_schema::DataType;
use common::*;
use crmscore::{Config, RunningServer};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

fn policy_path() -> std::path::PathBuf {
    repo().join("policies/engagement.toml")
}

fn with_policy(mut config: Config, policy: &std::path::Path) -> Config {
    config.policy = Some(policy.to_path_buf());
    config
}

fn server() -> &'static RunningServer {
    static S: OnceLock<RunningServer> = OnceLock::new();
    S.get_or_init(|| start_ready(with_policy(config(&sample_snapshot()), &policy_path())))
}

/// The first `n` customer ids of the sample snapshot, read with plain arrow.
fn snapshot_ids(n: usize) -> Vec<String> {
    let file = File::open(sample_snapshot()).expect("snapshot");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut ids = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let col = arrow_cast::cast(
            batch.column_by_name("customer_id").expect("ids"),
            &DataType::Utf8,
        )
        .expect("cast");
        ids.extend(col.as_string::<i32>().iter().flatten().map(str::to_string));
        if ids.len() >= n {
            break;
        }
    }
    ids.truncate(n);
    ids
}

#[test]
fn a_known_customer_gets_every_part() {
    let server = server();
    let (status, body) = post(
        server,
        "/v1/insights",
        &json!({"customer_ids": ["C0004211", "C0000042"], "k": 3}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["snapshot"], "customers-sample.parquet");
    assert_eq!(body["policy"], "2026-12-01");
    assert!(body.get("missing").is_none(), "{body}");
    let names: BTreeSet<&str> = body["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["churn", "recommendation", "segmentation"])
    );
    for result in body["results"].as_array().expect("results") {
        let p = result["churn"]["probability"]
            .as_f64()
            .expect("probability");
        assert!((0.0..=1.0).contains(&p));
        assert!(result["churn"]["risk"].is_string());
        assert_eq!(result["churn"]["reasons"].as_array().map(Vec::len), Some(3));
        assert!(result["segment"]["key"].is_string(), "{result}");
        let offers = result["offers"].as_array().expect("offers");
        assert!(!offers.is_empty() && offers.len() <= 3, "{result}");
        let nba = &result["next_best_action"];
        assert!(
            nba["action"].is_string() && nba["rule"].is_string(),
            "{result}"
        );
        assert!(nba["matched_on"].is_object());
    }
    // The same customer by the GET route, and the churn part equals /v1/churn/score with explain.
    let (status, one) = get(server, "/v1/customers/C0004211/insights?k=3");
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["result"]["customer_id"], "C0004211");
    let (_, churn) = post(
        server,
        "/v1/churn/score",
        &json!({"customer_ids": ["C0004211"], "explain": 3}),
    );
    assert_eq!(
        one["result"]["churn"]["probability"],
        churn["results"][0]["churn_probability"]
    );
    assert_eq!(
        one["result"]["churn"]["reasons"],
        churn["results"][0]["reasons"]
    );
}

#[test]
fn every_rule_of_the_shipped_policy_is_reached_and_consistent() {
    let server = server();
    let (_, status) = get(server, "/v1/policy");
    let rules: BTreeSet<String> = status["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_string())
        .collect();
    assert!(rules.len() >= 6, "{status}");
    let mut seen = BTreeSet::new();
    let mut ids: Vec<Value> = snapshot_ids(3000).into_iter().map(Value::from).collect();
    ids.push(json!("NEW-SIGNUP-1"));
    for chunk in ids.chunks(500) {
        let (code, body) = post(
            server,
            "/v1/insights",
            &json!({"customer_ids": chunk, "k": 3}),
        );
        assert_eq!(code, 200, "{body}");
        for result in body["results"].as_array().expect("results") {
            let nba = &result["next_best_action"];
            let rule = nba["rule"]
                .as_str()
                .expect("every customer gets a rule")
                .to_string();
            let on = &nba["matched_on"];
            match rule.as_str() {
                "welcome_unknown" => {
                    assert_eq!(result["cold_start"], true, "{result}");
                    assert!(result.get("churn").is_none());
                    assert_eq!(result["offers"].as_array().map(Vec::len), Some(3));
                }
                "save_high_value" => {
                    assert_eq!(on["risk"], "high", "{result}");
                    assert!(on["lifetime_value"].as_f64().expect("ltv") >= 1500.0);
                    assert_eq!(nba["action"], "retention_call");
                    assert!(nba["expected_value"].is_number());
                    for offer in result["offers"].as_array().expect("offers") {
                        let category = offer["category"].as_str().expect("category");
                        assert!(
                            ["mobile plans", "broadband", "support plans"].contains(&category),
                            "offer filter: {offer}"
                        );
                    }
                }
                "rescue_high_risk" => {
                    assert_eq!(result["churn"]["risk"], "high");
                    for offer in result["offers"].as_array().expect("offers") {
                        assert!(
                            ["low", "mid"].contains(&offer["price_band"].as_str().expect("band"))
                        );
                    }
                }
                "resolve_service_issues" => assert_eq!(result["churn"]["risk"], "medium"),
                "grow_low_risk" => {
                    assert_eq!(result["churn"]["risk"], "low");
                    assert!(on["num_products"].as_f64().expect("products") <= 2.0);
                }
                _ => {}
            }
            seen.insert(rule);
        }
    }
    let missed: Vec<&String> = rules.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "rules no test customer reached: {missed:?}"
    );
    let (_, _, metrics) = get_text(server, "/metrics");
    assert!(metrics.contains(
        "crmscore_next_best_actions_total{action=\"retention_call\",rule=\"save_high_value\"}"
    ));
}

#[test]
fn unknown_customers_are_per_item_errors_or_cold_starts() {
    let server = server();
    let (status, body) = post(
        server,
        "/v1/insights",
        &json!({"customer_ids": ["C0000042", "NOPE-1"]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][1]["cold_start"], true,
        "the shipped policy welcomes them"
    );
    // Without a cold-start rule, an unknown customer is a per-item error and the batch still answers.
    let dir = TempDir::new("policy-no-cold");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = \"t1\"\n[[rules]]\nname = \"all\"\nwhen = \"true\"\naction = \"no_action\"\npriority = 1\n",
    )
    .expect("write");
    let other = start_ready(with_policy(config(&sample_snapshot()), &policy));
    let (status, body) = post(
        &other,
        "/v1/insights",
        &json!({"customer_ids": ["NOPE-1", "C0000042"]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["error"]["code"], "unknown_customer");
    assert_eq!(
        body["results"][1]["next_best_action"]["action"],
        "no_action"
    );
    let (status, body) = get(&other, "/v1/customers/NOPE-1/insights");
    assert_eq!(status, 404, "{body}");
    v1_error(&body, "not_found");
    other.stop();
}

#[test]
fn a_missing_model_leaves_its_part_out_and_says_so() {
    let dir = TempDir::new("partial-models");
    for model in ["churn", "recommendation"] {
        let to = dir.path().join(model);
        std::fs::create_dir_all(&to).expect("mkdir");
        for entry in std::fs::read_dir(models().join(model)).expect("model dir") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
    let server = start_ready(with_policy(
        Config::for_tests(dir.path(), sample_snapshot()),
        &policy_path(),
    ));
    let (status, body) = post(
        &server,
        "/v1/insights",
        &json!({"customer_ids": ["C0000042"]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["missing"], json!(["segmentation"]), "{body}");
    let result = &body["results"][0];
    assert!(result.get("segment").is_none());
    assert!(result["churn"]["probability"].is_number());
    assert!(result["next_best_action"]["rule"].is_string());
    // No policy at all: the scores still come, and "policy" is listed as missing.
    let bare = start_ready(Config::for_tests(dir.path(), sample_snapshot()));
    let (_, body) = post(
        &bare,
        "/v1/insights",
        &json!({"customer_ids": ["C0000042"]}),
    );
    assert_eq!(body["missing"], json!(["segmentation", "policy"]), "{body}");
    assert!(body["results"][0].get("next_best_action").is_none());
    let (status, body) = get(&bare, "/v1/policy");
    assert_eq!(status, 404, "{body}");
    server.stop();
    bare.stop();
}

#[test]
fn bad_insights_requests_are_clear_400s() {
    let server = server();
    let cases = [
        (json!({"customer_ids": []}), "bad_request"),
        (json!({"customer_ids": ["C0000042"], "k": 0}), "bad_request"),
        (
            json!({"customer_ids": ["C0000042"], "reasons": 500}),
            "bad_request",
        ),
        (
            json!({"customer_ids": ["C0000042"], "explain": 3}),
            "invalid_json",
        ),
        (json!({"ids": ["C0000042"]}), "invalid_json"),
    ];
    for (body, code) in cases {
        let (status, reply) = post(server, "/v1/insights", &body);
        assert_eq!(status, 400, "{body}: {reply}");
        v1_error(&reply, code);
    }
    let (status, reply) = get(server, "/v1/customers/C0000042/insights?k=abc");
    assert_eq!(status, 400, "{reply}");
    v1_error(&reply, "bad_request");
}

#[test]
fn a_bad_policy_is_refused_while_the_old_one_serves() {
    let dir = TempDir::new("policy-reload");
    let policy = dir.path().join("engagement.toml");
    std::fs::copy(policy_path(), &policy).expect("copy");
    let server = start_ready(with_policy(config(&sample_snapshot()), &policy));
    let wait_for = |what: &str, ok: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, status) = get(&server, "/v1/policy");
            if ok(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "{what}: {status}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let good = std::fs::read_to_string(&policy).expect("read");
    std::fs::write(&policy, good.replace("risk == 'high'\"", "risk > 3\"")).expect("write");
    let status = wait_for("refused", &|s| s["last_error"].is_string());
    assert!(
        status["last_error"]
            .as_str()
            .expect("error")
            .contains("rescue_high_risk"),
        "{status}"
    );
    assert_eq!(status["version"], "2026-12-01");
    let (code, body) = post(
        &server,
        "/v1/insights",
        &json!({"customer_ids": ["C0000042"]}),
    );
    assert_eq!(code, 200, "the old policy serves: {body}");
    assert_eq!(body["policy"], "2026-12-01");
    let (_, _, metrics) = get_text(&server, "/metrics");
    assert!(
        metrics.contains("crmscore_policy_file_refused 1"),
        "{metrics}"
    );
    assert!(metrics.contains("crmscore_policy_load_failures_total 1"));

    std::fs::write(
        &policy,
        good.replace("version = \"2026-12-01\"", "version = \"2026-12-02\""),
    )
    .expect("write");
    wait_for("reloaded", &|s| {
        s["version"] == "2026-12-02" && s["last_error"].is_null()
    });
    let (_, body) = post(
        &server,
        "/v1/insights",
        &json!({"customer_ids": ["C0000042"]}),
    );
    assert_eq!(body["policy"], "2026-12-02");
    let (_, _, metrics) = get_text(&server, "/metrics");
    assert!(
        metrics.contains("crmscore_policy_file_refused 0"),
        "{metrics}"
    );
    server.stop();
}
