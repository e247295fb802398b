//! Compiling a policy file: parsing the TOML, compiling and validating each rule's CEL expressions (names,
//! compared literals, a static type check, evaluation on sample customers), and the load-time warnings.

mod expr;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use cel::{Context, Env, Program, Value};
use serde::Deserialize;

use self::expr::{compared_literals, free_identifiers};
use super::{
    Action, Bindings, Facts, OfferFilter, OfferSource, Policy, PolicyError, Rule, Slot, Var,
    Vocabulary, number,
};

const BUILT_INS: [(&str, Slot); 8] = [
    ("known", Slot::Known),
    ("churn_probability", Slot::ChurnProbability),
    ("risk", Slot::Risk),
    ("reasons", Slot::Reasons),
    ("top_reason", Slot::TopReason),
    ("segment", Slot::Segment),
    ("segment_name", Slot::SegmentName),
    ("offer_count", Slot::OfferCount),
];

/// CEL type names an expression may use as identifiers (`type(x) == double`).
const TYPE_NAMES: [&str; 10] = [
    "bool",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

const RISK_BANDS: [&str; 3] = ["low", "medium", "high"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    when: String,
    action: String,
    #[serde(default)]
    channel: String,
    priority: i64,
    expected_value: Option<String>,
    offers: Option<OfferFilter>,
    #[serde(default)]
    cold_start: bool,
    #[serde(default)]
    description: String,
}

impl Policy {
    pub(super) fn parse(
        path: &Path,
        text: &str,
        vocab: &Vocabulary,
    ) -> Result<Policy, PolicyError> {
        let invalid = |problems| PolicyError::Invalid {
            path: path.to_path_buf(),
            problems,
        };
        let file: PolicyFile = toml::from_str(text)
            .map_err(|e| invalid(vec![e.message().to_string() + &at_line(text, e.span())]))?;
        let mut c = Compiler {
            vocab,
            env: Arc::new(Env::stdlib()),
            vars: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        if file.version.trim().is_empty() {
            c.problems.push("'version' must not be empty".into());
        }
        if file.rules.is_empty() {
            c.problems
                .push("no rules: add at least one [[rules]] table".into());
        }
        let mut names = HashSet::new();
        let rules: Vec<Rule> = file
            .rules
            .into_iter()
            .filter_map(|r| {
                if !names.insert(r.name.clone()) {
                    c.problems
                        .push(format!("rule '{}': the name is used twice", r.name));
                }
                c.rule(r)
            })
            .collect();
        if c.problems.is_empty() {
            c.check_on_samples(&rules);
        }
        if !c.problems.is_empty() {
            return Err(invalid(c.problems));
        }
        c.warn_about_reach(&rules);
        let features_used = (c.vars.iter())
            .filter(|v| v.slot == Slot::Feature)
            .map(|v| v.name.clone())
            .collect();
        Ok(Policy {
            version: file.version,
            description: file.description,
            path: path.to_path_buf(),
            loaded_at: SystemTime::now(),
            rules,
            vars: c.vars,
            features_used,
            warnings: c.warnings,
            env: c.env,
        })
    }
}

fn at_line(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| format!(" (line {})", text[..s.start].matches('\n').count() + 1))
        .unwrap_or_default()
}

/// Compiles rules, collecting every problem instead of stopping at the first.
struct Compiler<'v> {
    vocab: &'v Vocabulary,
    env: Arc<Env>,
    vars: Vec<Var>,
    problems: Vec<String>,
    warnings: Vec<String>,
}

impl Compiler<'_> {
    fn rule(&mut self, r: RuleFile) -> Option<Rule> {
        let before = self.problems.len();
        let name = r.name.as_str();
        let bad = |problems: &mut Vec<String>, msg: String| {
            problems.push(format!("rule '{name}': {msg}"))
        };
        if !is_snake_case(name) {
            bad(
                &mut self.problems,
                "the name must be snake_case (a-z, 0-9, _)".into(),
            );
        }
        let action = Action::parse(&r.action);
        if action.is_none() {
            let all: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
            bad(
                &mut self.problems,
                format!("unknown action '{}' (one of: {})", r.action, all.join(", ")),
            );
        }
        if !(1..=i64::from(u32::MAX)).contains(&r.priority) {
            bad(
                &mut self.problems,
                format!("priority {} must be at least 1", r.priority),
            );
        }
        if r.channel.trim().is_empty() && action != Some(Action::NoAction) {
            bad(
                &mut self.problems,
                "'channel' is required (phone, email, app, sms, ...)".into(),
            );
        }
        if let Some(o) = &r.offers {
            self.check_offers(name, o, r.cold_start);
        }
        let when = self.expression(name, "when", &r.when);
        let expected_value =
            (r.expected_value.as_deref()).map(|src| self.expression(name, "expected_value", src));
        if self.problems.len() > before {
            return None;
        }
        let (when, when_vars) = when?;
        let expected_value = match expected_value {
            Some(e) => Some(e?.0),
            None => None,
        };
        Some(Rule {
            name: r.name,
            action: action?,
            channel: r.channel,
            priority: u32::try_from(r.priority).ok()?,
            cold_start: r.cold_start,
            when,
            when_vars,
            expected_value,
            offers: r.offers,
            description: r.description,
        })
    }

    fn check_offers(&mut self, rule: &str, o: &OfferFilter, cold_start: bool) {
        for (field, values, known) in [
            ("categories", &o.categories, &self.vocab.categories),
            ("price_bands", &o.price_bands, &self.vocab.price_bands),
        ] {
            for v in values.iter().flatten() {
                if !known.is_empty() && !known.contains(v) {
                    self.problems.push(format!(
                        "rule '{rule}': offers.{field} names '{v}', which the catalogue lacks (it has: {})",
                        known.join(", ")
                    ));
                }
            }
        }
        if o.max == Some(0) {
            self.problems
                .push(format!("rule '{rule}': offers.max must be at least 1"));
        }
        if cold_start && o.source == OfferSource::Recommended {
            self.warnings.push(format!(
                "rule '{rule}' is cold_start but its offers come from the recommender, which has none for \
                 unknown customers: use offers.source = \"popular\""
            ));
        }
    }

    /// Compiles one expression and checks the names it uses; returns it with its variables' indices.
    fn expression(&mut self, rule: &str, field: &str, src: &str) -> Option<(Program, Vec<usize>)> {
        let program = match self.env.compile(src) {
            Ok(p) => p,
            Err(e) => {
                self.problems.push(format!(
                    "rule '{rule}': {field} = \"{src}\" does not compile: {}",
                    e.to_string().replace('\n', "\n    ")
                ));
                return None;
            }
        };
        let mut names = Vec::new();
        free_identifiers(program.expression(), &mut Vec::new(), &mut names);
        let mut indices = Vec::new();
        let mut ok = true;
        for name in names {
            if TYPE_NAMES.contains(&name) {
                continue;
            }
            let slot = match BUILT_INS.iter().find(|(n, _)| *n == name) {
                Some((_, slot)) => *slot,
                None if self.vocab.features.iter().any(|f| f == name) => Slot::Feature,
                None => {
                    self.problems.push(format!(
                        "rule '{rule}': {field} = \"{src}\" uses unknown variable '{name}'{}",
                        self.suggestion(name)
                    ));
                    ok = false;
                    continue;
                }
            };
            if matches!(slot, Slot::Segment | Slot::SegmentName) && self.vocab.segments.is_empty() {
                self.warn_once(format!(
                    "'{name}' is always null: no segmentation model is served"
                ));
            }
            indices.push(self.var(name, slot));
        }
        self.check_literals(rule, field, src, program.expression());
        let mut mistakes = Vec::new();
        self.type_of(program.expression(), &mut Vec::new(), &mut mistakes);
        for m in mistakes {
            self.problems
                .push(format!("rule '{rule}': {field} = \"{src}\": {m}"));
        }
        ok.then_some((program, indices))
    }

    fn var(&mut self, name: &str, slot: Slot) -> usize {
        if let Some(i) = self.vars.iter().position(|v| v.name == name) {
            return i;
        }
        self.vars.push(Var {
            name: name.to_string(),
            slot,
        });
        self.vars.len() - 1
    }

    fn warn_once(&mut self, warning: String) {
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    fn suggestion(&self, name: &str) -> String {
        let candidates = BUILT_INS.iter().map(|(n, _)| *n);
        let best = candidates
            .chain(self.vocab.features.iter().map(String::as_str))
            .map(|c| (edit_distance(name, c), c))
            .min();
        match best {
            Some((d, c)) if d <= 2 + name.len() / 4 => format!(" (did you mean '{c}'?)"),
            _ => " (variables: the built-ins known, churn_probability, risk, reasons, top_reason, segment, \
                  segment_name, offer_count, and the models' feature columns)"
                .into(),
        }
    }

    /// String literals compared with `risk`, `segment`, `top_reason` or tested against `reasons` must be values
    /// those can take: a typo would silently make the rule dead.
    fn check_literals(&mut self, rule: &str, field: &str, src: &str, e: &IdedExpr) {
        let mut found = Vec::new();
        compared_literals(e, &mut found);
        for (var, literal) in found {
            let allowed: Vec<&str> = match var {
                "risk" => RISK_BANDS.to_vec(),
                "segment" => self.vocab.segments.iter().map(String::as_str).collect(),
                "reasons" | "top_reason" => {
                    self.vocab.features.iter().map(String::as_str).collect()
                }
                _ => continue,
            };
            if !allowed.is_empty() && !allowed.contains(&literal) {
                let shown = if allowed.len() > 8 {
                    "the models' feature columns".to_string()
                } else {
                    allowed.join(", ")
                };
                self.problems.push(format!(
                    "rule '{rule}': {field} = \"{src}\" compares {var} with '{literal}', a value it never takes \
                     (it takes: {shown})"
                ));
            }
        }
    }

    /// Evaluates every rule on sample customers: `when` must give a bool and `expected_value` a number, without
    /// error, whatever the risk band and segment (every feature 1.0, reasons = the first feature).
    fn check_on_samples(&mut self, rules: &[Rule]) {
        let reasons: Vec<&str> = self
            .vocab
            .features
            .iter()
            .take(1)
            .map(String::as_str)
            .collect();
        let features: Vec<(&str, Option<f64>)> = self
            .vocab
            .features
            .iter()
            .map(|f| (f.as_str(), Some(1.0)))
            .collect();
        let samples = RISK_BANDS.len().max(self.vocab.segments.len());
        let mut seen = HashSet::new();
        for i in 0..samples {
            let band = RISK_BANDS[i % RISK_BANDS.len()];
            let segment = (!self.vocab.segments.is_empty())
                .then(|| self.vocab.segments[i % self.vocab.segments.len()].as_str());
            let facts = Facts {
                known: true,
                churn_probability: Some([0.1, 0.4, 0.8][i % 3]),
                risk: Some(band),
                reasons: &reasons,
                segment,
                segment_name: segment,
                offer_count: 3,
                features: &features,
            };
            let bindings = Bindings::new(&self.vars, &facts);
            let mut ctx = Context::with_env(Arc::clone(&self.env));
            ctx.set_variable_resolver(&bindings);
            let sample = format!(
                "a sample customer with risk '{band}'{}",
                segment
                    .map(|s| format!(", segment '{s}'"))
                    .unwrap_or_default()
            );
            for r in rules {
                let mut check = |field: &str, p: &Program, want: &str, ok: fn(&Value) -> bool| {
                    let problem = match p.execute(&ctx) {
                        Ok(v) if ok(&v) => return,
                        Ok(v) => format!("gives {v:?}, not {want}"),
                        Err(e) => format!("fails: {e}"),
                    };
                    if seen.insert((r.name.clone(), field.to_string())) {
                        self.problems.push(format!(
                            "rule '{}': {field} = \"{}\" {problem} (on {sample})",
                            r.name,
                            source(p)
                        ));
                    }
                };
                check("when", &r.when, "a bool", |v| matches!(v, Value::Bool(_)));
                if let Some(ev) = &r.expected_value {
                    check("expected_value", ev, "a number", |v| number(v).is_some());
                }
            }
        }
    }

    fn warn_about_reach(&mut self, rules: &[Rule]) {
        let catch_all = |r: &Rule| matches!(&r.when.expression().expr, Expr::Literal(LiteralValue::Boolean(b)) if bool::from(*b));
        let mut hidden_by: Option<(&str, bool)> = None;
        for r in rules {
            if let Some((by, covers_unknown)) = hidden_by
                && (covers_unknown || !r.cold_start)
            {
                self.warnings.push(format!(
                    "rule '{}' is unreachable: the catch-all rule '{by}' above it matches first",
                    r.name
                ));
            }
            if catch_all(r) && hidden_by.is_none_or(|(_, c)| !c && r.cold_start) {
                hidden_by = Some((&r.name, r.cold_start));
            }
        }
        if !rules.iter().any(catch_all) {
            self.warnings.push(
                "no catch-all rule (when = \"true\"): customers no rule matches get no next_best_action".into(),
            );
        }
        if !rules.iter().any(|r| r.cold_start) {
            self.warnings.push(
                "no cold_start rule: customers missing from the snapshot get no next_best_action"
                    .into(),
            );
        }
    }
}

fn source(p: &Program) -> &str {
    &p.source_info().source
}

fn is_snake_case(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}
