//! Unit tests of loading a policy: refused policies name rule and problem, warnings, and the store's hot reload.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::*;

fn problems(text: &str) -> String {
    match Policy::from_str(text, &vocab()) {
        Err(PolicyError::Invalid { problems, .. }) => problems.join("\n"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("should be refused:\n{text}"),
    }
}

#[test]
fn invalid_policies_are_refused_naming_rule_and_problem() {
    let cases = [
        (
            "lifetime_value >= 1500.0",
            "lifetime_valu >= 1500.0",
            "rule 'save': when = \"risk == 'high' && lifetime_valu >= 1500.0\" uses unknown variable 'lifetime_valu' (did you mean 'lifetime_value'?)",
        ),
        (
            "lifetime_value >= 1500.0",
            "lifetime_value >=",
            "rule 'save': when = \"risk == 'high' && lifetime_value >=\" does not compile",
        ),
        (
            "risk == 'high' && lifetime_value",
            "risk > 3 && lifetime_value",
            "rule 'save': when = \"risk > 3 && lifetime_value >= 1500.0\": 'risk > 3' compares a string with an int",
        ),
        (
            "risk == 'high' && lifetime_value",
            "risk == 'hihg' && lifetime_value",
            "compares risk with 'hihg', a value it never takes (it takes: low, medium, high)",
        ),
        (
            "r in ['complaints_12m']",
            "r in ['complaints']",
            "<no problem: r is a comprehension variable>",
        ),
        (
            "segment == 'young_digital'",
            "segment == 'old_analog'",
            "rule 'grow': when = \"risk == 'low' && num_products <= 2 && offer_count > 0 && segment == 'old_analog'\" compares segment with 'old_analog'",
        ),
        (
            "when = \"true\"",
            "when = \"1.0\"",
            "rule 'rest': when = \"1.0\" gives Float(1.0), not a bool",
        ),
        (
            "* 0.3\"",
            "* 3\"",
            "rule 'save': expected_value = \"churn_probability * lifetime_value * 3\": 'churn_probability * lifetime_value * 3' applies '*' to a double and an int (CEL does not mix int and double",
        ),
        (
            "* 0.3\"",
            "* 0.3 > 1.0\"",
            "expected_value = \"churn_probability * lifetime_value * 0.3 > 1.0\" gives Bool(false), not a number",
        ),
        (
            "when = \"risk == 'high'\"",
            "when = \"lifetime_value > 'a lot' && false\"",
            "rule 'rescue': when = \"lifetime_value > 'a lot' && false\": 'lifetime_value > 'a lot'' compares a double with a string",
        ),
        (
            "when = \"risk == 'high'\"",
            "when = \"tenure_months || risk == 3\"",
            "'tenure_months || risk == 3' needs bools, not a double",
        ),
        (
            "when = \"risk == 'high'\"",
            "when = \"risk == 3\"",
            "'risk == 3' compares a string with an int: they are never equal",
        ),
        (
            "when = \"risk == 'high'\"",
            "when = \"risk in tenure_months\"",
            "'risk in tenure_months' looks for a value in a double, not in a list",
        ),
        (
            "when = \"risk == 'high'\"",
            "when = \"risk == 'high' && nps_score > 5.0\"",
            "uses unknown variable 'nps_score' (variables: the built-ins known",
        ),
        (
            "when = \"risk == 'high'\"",
            "when = \"!(tenure_months > 3.0) && type(tenure_months) == double && size(reasons) < 2\"",
            "<no problem: type names and functions are not variables>",
        ),
        (
            "action = \"discount_offer\"",
            "action = \"discount\"",
            "rule 'rescue': unknown action 'discount' (one of: retention_call, discount_offer, cross_sell, nurture_email, no_action)",
        ),
        (
            "name = \"rescue\"",
            "name = \"save\"",
            "rule 'save': the name is used twice",
        ),
        (
            "name = \"rescue\"",
            "name = \"Rescue-Me\"",
            "rule 'Rescue-Me': the name must be snake_case",
        ),
        (
            "priority = 2\n[[rules]]\nname = \"service\"",
            "priority = 0\n[[rules]]\nname = \"service\"",
            "rule 'rescue': priority 0 must be at least 1",
        ),
        (
            "channel = \"sms\"\n",
            "",
            "rule 'rescue': 'channel' is required",
        ),
        (
            "price_bands = [\"low\", \"mid\"]",
            "price_bands = [\"cheap\"]",
            "rule 'save': offers.price_bands names 'cheap', which the catalogue lacks (it has: low, mid, high)",
        ),
        (
            "categories = [\"broadband\", \"support plans\"]",
            "categories = [\"tv\"]",
            "offers.categories names 'tv'",
        ),
        (
            "max = 3 }",
            "max = 0 }",
            "rule 'save': offers.max must be at least 1",
        ),
        ("max = 3 }", "limit = 3 }", "unknown field `limit`"),
        (
            "priority = 1\n",
            "priority = 1\nurgent = true\n",
            "unknown field `urgent`",
        ),
        (
            "version = \"t1\"",
            "version = \"\"",
            "'version' must not be empty",
        ),
        ("version = \"t1\"", "", "missing field `version`"),
    ];
    for (from, to, want) in cases {
        assert!(POLICY.contains(from), "{from}");
        let text = POLICY.replacen(from, to, 1);
        if want.starts_with("<no problem") {
            Policy::from_str(&text, &vocab()).unwrap();
            continue;
        }
        let got = problems(&text);
        assert!(got.contains(want), "{got}\n  should contain\n{want}");
    }
    let line = problems("version = \"x\"\n\n[[rules]]\nname = \"a\"\nwhen = 3\n");
    assert!(
        line.contains("invalid type: integer `3`") && line.ends_with("(line 5)"),
        "{line}"
    );
    let empty = problems("version = \"x\"\n");
    assert!(empty.contains("no rules"), "{empty}");
    // Every problem is reported, not just the first.
    let two = problems(
        &POLICY
            .replace("action = \"discount_offer\"", "action = \"x\"")
            .replace("priority = 5", "priority = -1"),
    );
    assert!(
        two.contains("unknown action 'x'") && two.contains("priority -1"),
        "{two}"
    );
    let e = Policy::from_str("version = \"x\"\n", &vocab())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("invalid policy <inline>: no rules"), "{e}");
}

#[test]
fn warnings_flag_a_missing_catch_all_and_hidden_rules() {
    let no_catch_all = POLICY.replace("when = \"true\"", "when = \"risk == 'low'\"");
    let p = Policy::from_str(&no_catch_all, &vocab()).unwrap();
    assert!(
        p.warnings()[0].contains("no catch-all rule"),
        "{:?}",
        p.warnings()
    );
    let hidden = POLICY.replace("risk == 'high'\"", "true\"");
    let p = Policy::from_str(&hidden, &vocab()).unwrap();
    let w = p.warnings().join("\n");
    for rule in ["service", "dormant", "grow", "rest"] {
        assert!(
            w.contains(&format!(
                "rule '{rule}' is unreachable: the catch-all rule 'rescue'"
            )),
            "{w}"
        );
    }
    let mut v = vocab();
    v.segments.clear();
    let p = Policy::from_str(
        &POLICY.replace(" && segment == 'young_digital'", " && segment != null"),
        &v,
    )
    .unwrap();
    assert!(
        p.warnings()
            .iter()
            .any(|w| w.contains("'segment' is always null")),
        "{:?}",
        p.warnings()
    );
    let p = Policy::from_str(&POLICY.replace("source = \"popular\", ", ""), &vocab()).unwrap();
    assert!(
        p.warnings()
            .iter()
            .any(|w| w.contains("use offers.source = \"popular\"")),
        "{:?}",
        p.warnings()
    );
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

fn temp_file(tag: &str) -> TempFile {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "crmscore-policy-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempFile(dir.join("engagement.toml"))
}

#[test]
fn the_store_reloads_changes_and_keeps_serving_through_a_bad_file() {
    let file = temp_file("reload");
    let v = vocab();
    std::fs::write(&file.0, POLICY).unwrap();
    let store = PolicyStore::open(&file.0, &v).unwrap();
    assert!(store.reload_if_changed(&v).is_none(), "unchanged file");
    assert_eq!(store.current().version, "t1");

    std::fs::write(&file.0, POLICY.replace("\"t1\"", "\"t2\"")).unwrap();
    let reloaded = store.reload_if_changed(&v).unwrap().unwrap();
    assert_eq!(
        (reloaded.version.as_str(), store.current().version.as_str()),
        ("t2", "t2")
    );

    // A bad change: refused, the old policy keeps serving, the reason is recorded, and it is not retried.
    std::fs::write(
        &file.0,
        POLICY
            .replace("\"t1\"", "\"t3\"")
            .replace("risk == 'high'\"", "risk > 3\""),
    )
    .unwrap();
    let err = store.reload_if_changed(&v).unwrap().unwrap_err();
    assert!(err.to_string().contains("rule 'rescue'"), "{err}");
    let status = store.status();
    assert_eq!(status.version, "t2");
    assert!(
        status.last_error.as_deref().unwrap().contains("risk > 3"),
        "{status:?}"
    );
    assert!(
        store.reload_if_changed(&v).is_none(),
        "the same bad file is not reported again"
    );

    // Fixed: served, error cleared.
    std::fs::write(&file.0, POLICY.replace("\"t1\"", "\"t4\"")).unwrap();
    assert_eq!(store.reload_if_changed(&v).unwrap().unwrap().version, "t4");
    let status = store.status();
    assert_eq!(
        (status.version.as_str(), status.last_error.as_deref()),
        ("t4", None)
    );
    assert_eq!(status.rules.len(), 7);
    assert_eq!(status.rules[1].variables, ["risk", "lifetime_value"]);
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["rules"][1]["action"], "retention_call");
    assert!(json["loaded_at"].as_u64().unwrap() > 1_700_000_000);

    // A deleted file is an error once; the policy keeps serving.
    std::fs::remove_file(&file.0).unwrap();
    assert!(matches!(
        store.reload_if_changed(&v),
        Some(Err(PolicyError::Io { .. }))
    ));
    assert!(store.reload_if_changed(&v).is_none());
    assert_eq!(store.current().version, "t4");
    // Restoring the served content clears the error without a reload.
    std::fs::write(&file.0, POLICY.replace("\"t1\"", "\"t4\"")).unwrap();
    assert!(store.reload_if_changed(&v).is_none());
    assert_eq!(store.status().last_error, None);
    // A forced reload revalidates against a new vocabulary (here: a feature the policy uses is gone).
    let mut fewer = vocab();
    fewer.features.retain(|f| f != "lifetime_value");
    assert!(
        store
            .reload(&fewer)
            .unwrap_err()
            .to_string()
            .contains("unknown variable 'lifetime_value'")
    );
    assert_eq!(store.current().version, "t4");
    assert!(
        PolicyStore::open(&file.0.with_extension("missing"), &v).is_err(),
        "a startup error"
    );
}
