//! The engagement policy: ordered rules whose CEL conditions pick a customer's next best action; compiled and
//! validated at load, evaluated per customer in microseconds, hot-reloaded like models.
//!
//! # The policy file (TOML; the shipped `policies/engagement.toml` is the commented example)
//! ```toml
//! version = "2026-12-01"        # required; shown in replies and the status route
//! description = "..."           # optional
//! [[rules]]                     # at least one; ordered: the first rule whose `when` holds wins
//! name = "save_high_value"      # required, unique, snake_case
//! when = "risk == 'high' && lifetime_value >= 1500.0"   # required, CEL → bool
//! action = "retention_call"     # retention_call | discount_offer | cross_sell | nurture_email | no_action
//! channel = "phone"             # free text; required unless action = "no_action"
//! priority = 1                  # required, ≥ 1; 1 = most urgent
//! expected_value = "churn_probability * lifetime_value * 0.3"   # optional, CEL → number; ranks customers
//! offers = { categories = ["broadband"], price_bands = ["low", "mid"], max = 3, source = "recommended" }
//! cold_start = false            # true: may also match customers missing from the snapshot
//! description = "..."           # optional, for people
//! ```
//! `offers` (optional) filters the recommended items shown with the action: `categories` and `price_bands`
//! (catalogue values; unset = any), `max` (≥ 1; unset = all), `source` (`recommended`: the customer's
//! recommender top-k, the default; `popular`: the catalogue's most popular items, for cold starts).
//!
//! # Variables (the vocabulary)
//! `known` (bool), `churn_probability` (double or null), `risk` ("low" | "medium" | "high" or null), `reasons`
//! (list of the feature names among the top reasons that RAISE the churn risk, largest first), `top_reason`
//! (`reasons[0]` or null), `segment` (segment key or null), `segment_name` (or null), `offer_count` (int: items
//! recommendable after owned ones are excluded), and every feature column of the served models by name (double,
//! null when missing). An unknown customer (`known == false`) has only `known` and `offer_count`; every other
//! variable is null, and only `cold_start = true` rules are evaluated for it.
//!
//! # Missing values and errors
//! A condition that errors at request time (a null compared with a number, say) does not match: write
//! `email_open_rate == null || email_open_rate < 0.15` to match a missing value explicitly. An `expected_value`
//! that errors (or is not finite) gives null. CEL never mixes int and double in arithmetic: write `0.3`, not `3`,
//! next to a double (comparisons such as `num_products <= 2` are fine).
//!
//! # Validation (load, reload and `crmscore check-policy`)
//! Every expression compiles and names only vocabulary variables; string literals compared with `risk`,
//! `segment`, `reasons` or `top_reason` are values those can take; `when` gives a bool and `expected_value` a
//! number on sample customers (every feature 1.0, each risk band, each segment); names are unique snake_case;
//! actions known; priority ≥ 1; offer categories and price bands exist in the catalogue. A policy with no
//! catch-all rule (`when = "true"`), or with rules a catch-all hides, loads with a warning.

mod compile;
mod store;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelNull, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Program, Value};
use serde::{Deserialize, Serialize};

use crate::model::ModelSpec;
use crate::model::catalogue::Catalogue;
use crate::model::spec::snapshot_columns;

pub use store::{PolicyStatus, PolicyStore};

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy {}: {source}", path.display())]
    Io {
        /// The policy file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a valid policy; every problem found is listed, each naming its rule.
    #[error("invalid policy {}: {}", path.display(), problems.join("; "))]
    Invalid {
        /// The policy file.
        path: PathBuf,
        /// One sentence per problem.
        problems: Vec<String>,
    },
}

/// The next best actions a rule may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// An agent calls the customer.
    RetentionCall,
    /// A retention discount.
    DiscountOffer,
    /// Offer another product.
    CrossSell,
    /// Content that builds engagement.
    NurtureEmail,
    /// Leave the customer alone.
    NoAction,
}

impl Action {
    /// Every action, in the order the docs list them.
    pub const ALL: [Action; 5] = [
        Action::RetentionCall,
        Action::DiscountOffer,
        Action::CrossSell,
        Action::NurtureEmail,
        Action::NoAction,
    ];

    /// The policy file's (and the wire's) name of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RetentionCall => "retention_call",
            Action::DiscountOffer => "discount_offer",
            Action::CrossSell => "cross_sell",
            Action::NurtureEmail => "nurture_email",
            Action::NoAction => "no_action",
        }
    }

    fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// Where a rule's offers come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferSource {
    /// The customer's recommender top-k (owned items excluded).
    #[default]
    Recommended,
    /// The catalogue's most popular items (all an unknown customer can get).
    Popular,
}

/// Which offers go with a rule's action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferFilter {
    /// Allowed item categories (unset: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Allowed price bands (unset: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_bands: Option<Vec<String>>,
    /// Most items to show (unset: all that pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<usize>,
    /// Recommended or popular items.
    #[serde(default)]
    pub source: OfferSource,
}

impl OfferFilter {
    /// Whether an item of this category and price band may be offered (an item lacking a filtered field is not).
    pub fn allows(&self, category: Option<&str>, price_band: Option<&str>) -> bool {
        let ok = |allowed: &Option<Vec<String>>, value: Option<&str>| match allowed {
            None => true,
            Some(list) => value.is_some_and(|v| list.iter().any(|a| a == v)),
        };
        ok(&self.categories, category) && ok(&self.price_bands, price_band)
    }
}

/// What expressions may name beyond the built-in variables: the served models' features and segments, and the
/// catalogue values offer filters may name (an empty list is not checked).
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Feature columns of the served models.
    pub features: Vec<String>,
    /// Segment keys of the segmentation model (empty: no segmentation model).
    pub segments: Vec<String>,
    /// Item categories of the recommender's catalogue.
    pub categories: Vec<String>,
    /// Price bands of the recommender's catalogue.
    pub price_bands: Vec<String>,
}

impl Vocabulary {
    /// The feature columns of these manifests, in first-use order (segment keys and catalogue values: set
    /// `segments`, see [`Vocabulary::add_catalogue`]).
    pub fn from_specs<'a>(specs: impl IntoIterator<Item = &'a ModelSpec>) -> Vocabulary {
        Vocabulary {
            features: snapshot_columns(specs),
            ..Vocabulary::default()
        }
    }

    /// Adds the categories and price bands of a recommender's catalogue.
    pub fn add_catalogue(&mut self, catalogue: &Catalogue) {
        for item in &catalogue.items {
            for (value, list) in [
                (&item.category, &mut self.categories),
                (&item.price_band, &mut self.price_bands),
            ] {
                if let Some(v) = value
                    && !list.contains(v)
                {
                    list.push(v.clone());
                }
            }
        }
    }
}

/// What the policy knows about one customer. An unknown customer: `known: false`, `offer_count`, the rest empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// The customer is in the served snapshot.
    pub known: bool,
    /// Churn probability (None: no churn model, or unknown customer).
    pub churn_probability: Option<f64>,
    /// Risk band: "low", "medium" or "high".
    pub risk: Option<&'a str>,
    /// Features among the top reasons that raise the churn risk, largest contribution first.
    pub reasons: &'a [&'a str],
    /// Segment key.
    pub segment: Option<&'a str>,
    /// Segment display name.
    pub segment_name: Option<&'a str>,
    /// Items recommendable after owned ones are excluded.
    pub offer_count: i64,
    /// Feature values by column (None or NaN: missing). Only [`Policy::features_used`] are read.
    pub features: &'a [(&'a str, Option<f64>)],
}

/// The rule that matched a customer and what it asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision<'p> {
    /// The rule's name.
    pub rule: &'p str,
    /// What to do.
    pub action: Action,
    /// How to reach the customer.
    pub channel: &'p str,
    /// 1 = most urgent.
    pub priority: u32,
    /// The rule's expected value for this customer (None: no expression, or it failed on missing data).
    pub expected_value: Option<f64>,
    /// Which offers to show with the action.
    pub offers: Option<&'p OfferFilter>,
    /// Every variable the matched condition references, with this customer's value, in order of appearance.
    #[serde(serialize_with = "as_map")]
    pub matched_on: Vec<(&'p str, serde_json::Value)>,
}

fn as_map<S: serde::Serializer>(
    pairs: &[(&str, serde_json::Value)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// A loaded, validated policy.
pub struct Policy {
    /// The file's `version`.
    pub version: String,
    /// The file's `description`.
    pub description: String,
    /// Where it was read from ("<inline>" for [`Policy::from_str`]).
    pub path: PathBuf,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    rules: Vec<Rule>,
    /// The variables some expression references (only these are bound per customer).
    vars: Vec<Var>,
    features_used: Vec<String>,
    warnings: Vec<String>,
    env: Arc<Env>,
}

struct Rule {
    name: String,
    action: Action,
    channel: String,
    priority: u32,
    cold_start: bool,
    when: Program,
    /// Indices into `Policy::vars` of the variables `when` references.
    when_vars: Vec<usize>,
    expected_value: Option<Program>,
    offers: Option<OfferFilter>,
    description: String,
}

struct Var {
    name: String,
    slot: Slot,
}

#[derive(Clone, Copy, PartialEq)]
enum Slot {
    Known,
    ChurnProbability,
    Risk,
    Reasons,
    TopReason,
    Segment,
    SegmentName,
    OfferCount,
    Feature,
}

impl Policy {
    /// Reads, compiles and validates the policy at `path` against the served models' vocabulary.
    pub fn load(path: &Path, vocab: &Vocabulary) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text, vocab)
    }

    /// [`Policy::load`] from text (for tests and `check-policy`).
    pub fn from_str(text: &str, vocab: &Vocabulary) -> Result<Policy, PolicyError> {
        Self::parse(Path::new("<inline>"), text, vocab)
    }

    /// The first rule whose condition holds for this customer (None: no rule matched).
    pub fn decide(&self, facts: &Facts) -> Option<Decision<'_>> {
        let bindings = Bindings::new(&self.vars, facts);
        let mut ctx = Context::with_env(Arc::clone(&self.env));
        ctx.set_variable_resolver(&bindings);
        let rule = self.rules.iter().find(|r| {
            (facts.known || r.cold_start) && matches!(r.when.execute(&ctx), Ok(Value::Bool(true)))
        })?;
        let expected_value = (rule.expected_value.as_ref())
            .and_then(|p| number(&p.execute(&ctx).ok()?))
            .filter(|v| v.is_finite());
        Some(Decision {
            rule: &rule.name,
            action: rule.action,
            channel: &rule.channel,
            priority: rule.priority,
            expected_value,
            offers: rule.offers.as_ref(),
            matched_on: (rule.when_vars.iter())
                .map(|&i| (self.vars[i].name.as_str(), bindings.json(i)))
                .collect(),
        })
    }

    /// Problems that do not stop the policy from serving (no catch-all rule, unreachable rules, ...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The feature columns some expression references: the only ones [`Facts::features`] needs.
    pub fn features_used(&self) -> &[String] {
        &self.features_used
    }

    /// Summaries of the rules, in order.
    pub fn rules(&self) -> Vec<RuleSummary> {
        (self.rules.iter())
            .map(|r| RuleSummary {
                name: r.name.clone(),
                action: r.action,
                channel: r.channel.clone(),
                priority: r.priority,
                cold_start: r.cold_start,
                description: r.description.clone(),
                variables: r
                    .when_vars
                    .iter()
                    .map(|&i| self.vars[i].name.clone())
                    .collect(),
            })
            .collect()
    }

    /// Each rule's offer filter, in rule order (insights cache which items each allows).
    pub fn offer_filters(&self) -> impl Iterator<Item = Option<&OfferFilter>> {
        self.rules.iter().map(|r| r.offers.as_ref())
    }

    /// The position of the rule called `name`.
    pub fn rule_index(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.name == name)
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("version", &self.version)
            .field("path", &self.path)
            .field("rules", &self.rules())
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

/// One rule as the status route and `check-policy` show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleSummary {
    /// The rule's name.
    pub name: String,
    /// Its action.
    pub action: Action,
    /// Its channel.
    pub channel: String,
    /// Its priority.
    pub priority: u32,
    /// Whether it may match unknown customers.
    pub cold_start: bool,
    /// Its description, for people.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The variables its condition references.
    pub variables: Vec<String>,
}

fn number(v: &Value) -> Option<f64> {
    match *v {
        Value::Float(f) => Some(f),
        Value::Int(i) => Some(i as f64),
        Value::UInt(u) => Some(u as f64),
        _ => None,
    }
}

/// Binds the policy's variables to one customer's facts, each built on first use and reused after.
struct Bindings<'a> {
    vars: &'a [Var],
    facts: &'a Facts<'a>,
    values: Vec<OnceLock<Box<dyn Val + 'a>>>,
}

impl<'a> Bindings<'a> {
    fn new(vars: &'a [Var], facts: &'a Facts<'a>) -> Bindings<'a> {
        Bindings {
            vars,
            facts,
            values: (0..vars.len()).map(|_| OnceLock::new()).collect(),
        }
    }

    fn feature(&self, name: &str) -> Option<f64> {
        (self.facts.features.iter())
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| *v)
            .filter(|v| !v.is_nan())
    }

    fn value(&self, var: &Var) -> Box<dyn Val + 'a> {
        let f = self.facts;
        let string = |s: Option<&'a str>| -> Box<dyn Val + 'a> {
            s.map_or_else(null, |s| Box::new(CelString::from(s)))
        };
        match var.slot {
            Slot::Known => Box::new(CelBool::from(f.known)),
            Slot::ChurnProbability => f.churn_probability.map_or_else(null, double),
            Slot::Risk => string(f.risk),
            Slot::Reasons => Box::new(CelList::from(
                (f.reasons.iter())
                    .map(|r| Box::new(CelString::from(*r)) as Box<dyn Val + 'a>)
                    .collect::<Vec<_>>(),
            )),
            Slot::TopReason => string(f.reasons.first().copied()),
            Slot::Segment => string(f.segment),
            Slot::SegmentName => string(f.segment_name),
            Slot::OfferCount => Box::new(CelInt::from(f.offer_count)),
            Slot::Feature => self.feature(&var.name).map_or_else(null, double),
        }
    }

    fn json(&self, i: usize) -> serde_json::Value {
        use serde_json::Value as J;
        let f = self.facts;
        let number = |v: Option<f64>| {
            v.and_then(serde_json::Number::from_f64)
                .map_or(J::Null, J::Number)
        };
        let string = |s: Option<&str>| s.map_or(J::Null, |s| J::String(s.to_string()));
        match self.vars[i].slot {
            Slot::Known => J::Bool(f.known),
            Slot::ChurnProbability => number(f.churn_probability),
            Slot::Risk => string(f.risk),
            Slot::Reasons => J::Array(f.reasons.iter().map(|r| J::String(r.to_string())).collect()),
            Slot::TopReason => string(f.reasons.first().copied()),
            Slot::Segment => string(f.segment),
            Slot::SegmentName => string(f.segment_name),
            Slot::OfferCount => J::from(f.offer_count),
            Slot::Feature => number(self.feature(&self.vars[i].name)),
        }
    }
}

fn null<'a>() -> Box<dyn Val + 'a> {
    Box::new(CelNull)
}

fn double<'a>(v: f64) -> Box<dyn Val + 'a> {
    Box::new(CelDouble::from(v))
}

impl VariableResolver for Bindings<'_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        let i = self.vars.iter().position(|v| v.name == name)?;
        let value = self.values[i].get_or_init(|| self.value(&self.vars[i]));
        Some(CowVal::Borrowed(value.as_ref()))
    }
}
