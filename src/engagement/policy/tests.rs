//! Unit tests of the policy: deciding (first match, unknown customers, missing values, what a decision carries,
//! offer filters, speed); loading, validation, warnings and the store are in `tests/load.rs`.

use std::path::Path;

use super::*;

mod load;

fn vocab() -> Vocabulary {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
    Vocabulary {
        features: s(&[
            "tenure_months",
            "lifetime_value",
            "email_open_rate",
            "logins_per_month",
            "num_products",
            "complaints_12m",
            "monthly_charges",
        ]),
        segments: s(&["young_digital", "families"]),
        categories: s(&["broadband", "devices", "support plans"]),
        price_bands: s(&["low", "mid", "high"]),
    }
}

const POLICY: &str = r#"
version = "t1"
[[rules]]
name = "welcome"
when = "!known"
cold_start = true
action = "nurture_email"
channel = "email"
priority = 4
offers = { source = "popular", max = 2 }
[[rules]]
name = "save"
when = "risk == 'high' && lifetime_value >= 1500.0"
action = "retention_call"
channel = "phone"
priority = 1
expected_value = "churn_probability * lifetime_value * 0.3"
offers = { categories = ["broadband", "support plans"], price_bands = ["low", "mid"], max = 3 }
[[rules]]
name = "rescue"
when = "risk == 'high'"
action = "discount_offer"
channel = "sms"
priority = 2
[[rules]]
name = "service"
when = "risk == 'medium' && reasons.exists(r, r in ['complaints_12m'])"
action = "retention_call"
channel = "phone"
priority = 2
[[rules]]
name = "dormant"
when = "email_open_rate == null || email_open_rate < 0.15"
action = "nurture_email"
channel = "email"
priority = 3
[[rules]]
name = "grow"
when = "risk == 'low' && num_products <= 2 && offer_count > 0 && segment == 'young_digital'"
action = "cross_sell"
channel = "app"
priority = 4
[[rules]]
name = "rest"
when = "true"
action = "no_action"
priority = 5
"#;

fn policy() -> Policy {
    Policy::from_str(POLICY, &vocab()).unwrap()
}

/// A known, low-risk, engaged customer of the young_digital segment with one product and offers left.
fn decide_on<'p>(
    p: &'p Policy,
    edit: impl FnOnce(&mut Facts<'_>, &mut Vec<(&'static str, Option<f64>)>),
) -> Option<Decision<'p>> {
    let mut features = vec![
        ("lifetime_value", Some(800.0)),
        ("email_open_rate", Some(0.4)),
        ("num_products", Some(1.0)),
    ];
    let mut facts = Facts {
        known: true,
        churn_probability: Some(0.1),
        risk: Some("low"),
        reasons: &[],
        segment: Some("young_digital"),
        segment_name: Some("Young digital"),
        offer_count: 5,
        features: &[],
    };
    edit(&mut facts, &mut features);
    let facts = Facts {
        features: &features,
        ..facts
    };
    p.decide(&facts)
}

fn rule_for(
    p: &Policy,
    edit: impl FnOnce(&mut Facts<'_>, &mut Vec<(&'static str, Option<f64>)>),
) -> String {
    decide_on(p, edit).map_or("<none>".into(), |d| d.rule.to_string())
}

#[test]
fn every_rule_is_reachable_and_the_first_match_wins() {
    let p = policy();
    assert!(p.warnings().is_empty(), "{:?}", p.warnings());
    let high = |f: &mut Facts, _: &mut Vec<_>| {
        f.risk = Some("high");
        f.churn_probability = Some(0.8);
    };
    assert_eq!(
        rule_for(&p, |f, _| *f = Facts {
            offer_count: 3,
            ..Facts::default()
        }),
        "welcome"
    );
    assert_eq!(
        rule_for(&p, |f, x| {
            high(f, x);
            x[0].1 = Some(2000.0);
        }),
        "save"
    );
    assert_eq!(
        rule_for(&p, high),
        "rescue",
        "high risk, low value: the second rule"
    );
    assert_eq!(
        rule_for(&p, |f, _| {
            f.risk = Some("medium");
            f.reasons = &["tenure_months", "complaints_12m"];
        }),
        "service"
    );
    assert_eq!(rule_for(&p, |_, x| x[1].1 = Some(0.05)), "dormant");
    assert_eq!(rule_for(&p, |_, _| {}), "grow");
    assert_eq!(rule_for(&p, |f, _| f.segment = Some("families")), "rest");
    // Order: a high-risk, high-value, dormant customer matches `save` (first), not `rescue` or `dormant`.
    assert_eq!(
        rule_for(&p, |f, x| {
            high(f, x);
            x[0].1 = Some(2000.0);
            x[1].1 = Some(0.0);
        }),
        "save"
    );
}

#[test]
fn unknown_customers_only_meet_cold_start_rules() {
    let p = Policy::from_str(&POLICY.replace("cold_start = true\n", ""), &vocab()).unwrap();
    assert_eq!(rule_for(&p, |f, _| *f = Facts::default()), "<none>");
    assert!(
        p.warnings()
            .iter()
            .any(|w| w.contains("no cold_start rule")),
        "{:?}",
        p.warnings()
    );
}

#[test]
fn missing_values_make_a_condition_fail_not_match() {
    let p = policy();
    // email_open_rate missing: `== null` matches explicitly.
    assert_eq!(rule_for(&p, |_, x| x[1].1 = None), "dormant");
    // NaN counts as missing; a feature absent from the facts too.
    assert_eq!(rule_for(&p, |_, x| x[1].1 = Some(f64::NAN)), "dormant");
    assert_eq!(
        rule_for(&p, |_, x| {
            x.remove(1);
        }),
        "dormant"
    );
    // lifetime_value missing: `null >= 1500.0` errors, so `save` does not match and `rescue` does.
    let d = decide_on(&p, |f, x| {
        f.risk = Some("high");
        x[0].1 = None;
    })
    .unwrap();
    assert_eq!(d.rule, "rescue");
    // No churn model: risk null never equals a band; the rule falls through to the catch-all.
    assert_eq!(
        rule_for(&p, |f, _| {
            f.risk = None;
            f.churn_probability = None;
        }),
        "rest"
    );
}

#[test]
fn a_decision_carries_what_the_rule_matched_on_and_its_value() {
    let p = policy();
    let d = decide_on(&p, |f, x| {
        f.risk = Some("high");
        f.churn_probability = Some(0.75);
        x[0].1 = Some(2000.0);
    })
    .unwrap();
    assert_eq!(
        (d.action, d.channel, d.priority),
        (Action::RetentionCall, "phone", 1)
    );
    assert_eq!(
        d.matched_on,
        vec![
            ("risk", serde_json::json!("high")),
            ("lifetime_value", serde_json::json!(2000.0))
        ]
    );
    assert!((d.expected_value.unwrap() - 0.75 * 2000.0 * 0.3).abs() < 1e-9);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json["matched_on"],
        serde_json::json!({"risk": "high", "lifetime_value": 2000.0})
    );
    assert_eq!(json["action"], "retention_call");
    assert_eq!(json["offers"]["max"], 3);

    // The comprehension variable `r` is not a matched-on variable; reasons is.
    let d = decide_on(&p, |f, _| {
        f.risk = Some("medium");
        f.reasons = &["complaints_12m"];
    })
    .unwrap();
    let names: Vec<_> = d.matched_on.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["risk", "reasons"]);
    assert_eq!(d.matched_on[1].1, serde_json::json!(["complaints_12m"]));
    assert_eq!(d.expected_value, None, "no expected_value expression");

    // A missing input makes expected_value null, not the decision.
    let d = decide_on(&p, |f, x| {
        f.risk = Some("high");
        f.churn_probability = None;
        x[0].1 = Some(2000.0);
    })
    .unwrap();
    assert_eq!((d.rule, d.expected_value), ("save", None));
    // The catch-all references nothing.
    let d = decide_on(&p, |f, _| f.segment = None).unwrap();
    assert_eq!((d.rule, d.matched_on.len()), ("rest", 0));
}

#[test]
fn offer_filters_allow_listed_categories_and_bands() {
    let p = policy();
    let d = decide_on(&p, |f, x| {
        f.risk = Some("high");
        x[0].1 = Some(2000.0);
    })
    .unwrap();
    let o = d.offers.unwrap();
    assert!(o.allows(Some("broadband"), Some("low")));
    assert!(!o.allows(Some("broadband"), Some("high")));
    assert!(!o.allows(Some("devices"), Some("low")));
    assert!(
        !o.allows(None, Some("low")),
        "an item without a category fails a category filter"
    );
    assert_eq!((o.max, o.source), (Some(3), OfferSource::Recommended));
    assert!(OfferFilter::default().allows(None, None));
    let welcome = decide_on(&p, |f, _| *f = Facts::default()).unwrap();
    assert_eq!(welcome.offers.unwrap().source, OfferSource::Popular);
}

#[test]
fn decide_is_fast_on_the_shipped_policy() {
    // The churn model's features (tests/check_policy.rs checks the shipped policy against models/ itself).
    let churn = "tenure_months monthly_charges total_charges contract_type payment_method num_products \
                 support_tickets_90d days_since_last_purchase complaints_12m nps_score logins_per_month \
                 discount_usage_rate age_band paperless_billing avg_session_minutes late_payments_12m \
                 email_open_rate app_rating referrals monthly_data_mb lifetime_value";
    let v = Vocabulary {
        features: churn.split_whitespace().map(str::to_string).collect(),
        ..Vocabulary::default()
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Policy::load(&root.join("policies/engagement.toml"), &v).unwrap();
    assert!(p.warnings().is_empty(), "{:?}", p.warnings());
    let values: Vec<(&str, Option<f64>)> = (p.features_used().iter())
        .map(|f| {
            (
                f.as_str(),
                Some(if f == "lifetime_value" { 900.0 } else { 3.0 }),
            )
        })
        .collect();
    let cases = [
        ("high", 0.7, &["complaints_12m"][..], "rescue_high_risk"),
        ("medium", 0.4, &["tenure_months"][..], "nurture_medium_risk"),
        ("low", 0.1, &[][..], "leave_alone"),
    ];
    for (risk, churn, reasons, want) in cases {
        let facts = Facts {
            known: true,
            churn_probability: Some(churn),
            risk: Some(risk),
            reasons,
            segment: None,
            segment_name: None,
            offer_count: 5,
            features: &values,
        };
        assert_eq!(p.decide(&facts).unwrap().rule, want);
        let n = 20_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(p.decide(std::hint::black_box(&facts)));
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!(
            "decide → {want} (rule {} of {}): {us:.2} µs",
            p.rules().iter().position(|r| r.name == want).unwrap() + 1,
            p.rules().len()
        );
    }
}
