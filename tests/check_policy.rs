//! `crmscore check-policy` over the real binary: the shipped policy passes; broken ones fail with the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check_policy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crmscore"))
        .arg("check-policy")
        .args(args)
        .current_dir(repo())
        .env_remove("CRMSCORE_POLICY")
        .env_remove("CRMSCORE_MODELS")
        .output()
        .expect("run crmscore")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "crmscore-check-policy-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const GOOD: &str = r#"
version = "test"
[[rules]]
name = "save"
when = "risk == 'high' && lifetime_value >= 1500.0"
action = "retention_call"
channel = "phone"
priority = 1
[[rules]]
name = "rest"
when = "true"
action = "no_action"
priority = 2
"#;

#[test]
fn the_shipped_policy_passes() {
    // Defaults: policies/engagement.toml against models/.
    let out = check_policy(&[]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("verdict  OK"), "{report}");
    for rule in ["welcome_unknown", "save_high_value", "leave_alone"] {
        assert!(report.contains(rule), "{report}");
    }
    assert!(report.contains("uses: risk, lifetime_value"), "{report}");
    assert!(!report.contains("warning"), "{report}");
}

#[test]
fn broken_policies_fail_with_the_reason() {
    let dir = TempDir::new("bad");
    let models = repo().join("models");
    let cases = [
        (
            GOOD.replace("lifetime_value >=", "lifetime_val >="),
            "rule 'save': when = \"risk == 'high' && lifetime_val >= 1500.0\" uses unknown variable 'lifetime_val' (did you mean 'lifetime_value'?)",
        ),
        (
            GOOD.replace("&& lifetime_value", "&& (lifetime_value"),
            "rule 'save': when = \"risk == 'high' && (lifetime_value >= 1500.0\" does not compile",
        ),
        (
            GOOD.replace("risk == 'high'", "risk > 3"),
            "'risk > 3' compares a string with an int",
        ),
        (
            GOOD.replace("retention_call", "phone_call"),
            "rule 'save': unknown action 'phone_call'",
        ),
        (
            GOOD.replace("name = \"rest\"", "name = \"save\""),
            "rule 'save': the name is used twice",
        ),
        ("version = \"x\"\nrules = []\n".to_string(), "no rules"),
        (
            GOOD.replace("priority = 1", "priority = 0"),
            "priority 0 must be at least 1",
        ),
        (
            GOOD.replace("phone\"", "phone\"\noffers = { categories = [\"cars\"] }"),
            "offers.categories names 'cars', which the catalogue lacks",
        ),
        (
            GOOD.replace("[[rules]]", "[[rule]]"),
            "unknown field `rule`",
        ),
    ];
    for (i, (policy, want)) in cases.iter().enumerate() {
        let file = dir.0.join(format!("bad-{i}.toml"));
        std::fs::write(&file, policy).unwrap();
        let out = check_policy(&[file.to_str().unwrap(), "--models", models.to_str().unwrap()]);
        let report = text(&out);
        assert_eq!(out.status.code(), Some(1), "{want}: {report}");
        assert!(report.contains(want), "{report}\nshould contain\n{want}");
        assert!(report.contains("verdict  FAIL"), "{report}");
    }
    let good = dir.0.join("good.toml");
    std::fs::write(&good, GOOD).unwrap();
    let out = check_policy(&[good.to_str().unwrap()]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("warning  no cold_start rule"), "{report}");
}

#[test]
fn missing_inputs_and_usage_errors_have_their_exit_codes() {
    let out = check_policy(&["policies/missing.toml"]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("cannot read policy policies/missing.toml"),
        "{report}"
    );

    let out = check_policy(&["--models", "no-such-models"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no-such-models"), "{}", text(&out));

    let out = check_policy(&["--strict"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(Path::new(&repo().join("policies/engagement.toml")).is_file());
}
