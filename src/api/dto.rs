//! Wire types: request bodies (validated into what scoring needs) and reply bodies.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::{ErrorBody, ScoreError};
use crate::feedback::DecisionId;
use crate::model::spec::RiskBand;
use crate::snapshot::CustomerId;

/// Body of the tabular score routes: customer ids from the snapshot, or inline feature rows.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// Customers to look up in the served snapshot.
    pub customer_ids: Option<Vec<CustomerId>>,
    /// Inline feature rows (every feature of the model, by name).
    pub rows: Option<Vec<Map<String, Value>>>,
    /// Recommenders: items per customer (default 10).
    pub k: Option<usize>,
    /// Recommenders: leave out items the customer owns (default true).
    pub exclude_owned: Option<bool>,
    /// Text models: the texts to classify.
    pub texts: Option<Vec<Value>>,
    /// Tabular models: add each result's `reasons` (the K largest contributions, or "all").
    pub explain: Option<ExplainDepth>,
}

/// How many reasons to return per result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplainDepth {
    /// The K features with the largest absolute contribution.
    Top(usize),
    /// Every feature (and the base value).
    All,
}

impl<'de> Deserialize<'de> for ExplainDepth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if s == "all" => Ok(ExplainDepth::All),
            Value::Number(n) => match n.as_u64() {
                Some(k) if k >= 1 => Ok(ExplainDepth::Top(k as usize)),
                _ => Err(de::Error::custom(format!(
                    "'explain' must be a positive number of reasons or \"all\", got {n}"
                ))),
            },
            other => Err(de::Error::custom(format!(
                "'explain' must be a positive number of reasons or \"all\", got {other}"
            ))),
        }
    }
}

/// One reason for a score: a feature's contribution to the model's margin.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reason<'a> {
    /// Feature (snapshot column) name.
    pub name: &'a str,
    /// The customer's value (null when missing).
    pub value: Option<f32>,
    /// How much this value moves the margin from the base value.
    pub contribution: f32,
    /// `raises` or `lowers` the score (`none` for a zero contribution).
    pub direction: &'static str,
    /// What the feature means, from the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// Its unit, from the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'a str>,
    /// 95% error bound of a sampled contribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_bound: Option<f32>,
}

/// How a reply's reasons were computed (the same for every result).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplanationInfo<'a> {
    /// `tree_shap` (exact) or `sampling` (estimated, with error bounds).
    pub method: &'static str,
    /// The space contributions add up in: `log_odds`, `probability` or `raw`.
    pub space: &'static str,
    /// The margin of an average customer of the reference sample: base value + Σ contributions = margin.
    pub base_value: f32,
    /// The snapshot whose customers the base value and covers come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<&'a str>,
}

/// A validated score request.
pub enum ScoreInput {
    /// Look these customers up (tabular models).
    Customers(Vec<CustomerId>),
    /// Score these rows as given (tabular models).
    Rows(Vec<Map<String, Value>>),
    /// Recommend `k` items to each of these customers (recommenders).
    Recommend {
        /// Customers.
        customer_ids: Vec<CustomerId>,
        /// Items per customer.
        k: usize,
        /// Leave out owned items.
        exclude_owned: bool,
    },
    /// Classify these texts (text models).
    Texts(Vec<Value>),
}

impl ScoreRequest {
    /// Checks the fields against what a model of `kind` takes.
    pub fn validate(self, kind: &str) -> Result<ScoreInput, ScoreError> {
        let bad = |msg: String| Err(ScoreError::BadRequest(msg));
        let present = [
            ("customer_ids", self.customer_ids.is_some()),
            ("rows", self.rows.is_some()),
            ("k", self.k.is_some()),
            ("exclude_owned", self.exclude_owned.is_some()),
            ("texts", self.texts.is_some()),
            ("explain", self.explain.is_some()),
        ];
        let allowed: &[&str] = match kind {
            "recommender" => &["customer_ids", "k", "exclude_owned"],
            "text" => &["texts"],
            "tabular" => &["customer_ids", "rows", "explain"],
            _ => &["customer_ids", "rows"],
        };
        if let Some((field, _)) = present
            .iter()
            .find(|(name, here)| *here && !allowed.contains(name))
        {
            return bad(format!(
                "'{field}' does not apply to a {kind} model (it takes {allowed:?})"
            ));
        }
        match (kind, self.customer_ids, self.rows, self.texts) {
            ("text", _, _, Some(texts)) => Ok(ScoreInput::Texts(texts)),
            ("text", _, _, None) => bad("the body needs 'texts' (a list of strings)".into()),
            ("recommender", Some(customer_ids), _, _) => Ok(ScoreInput::Recommend {
                customer_ids,
                k: self.k.unwrap_or(10),
                exclude_owned: self.exclude_owned.unwrap_or(true),
            }),
            ("recommender", None, _, _) => bad("the body needs 'customer_ids' (a list of ids)".into()),
            (_, Some(ids), None, _) => Ok(ScoreInput::Customers(ids)),
            (_, None, Some(rows), _) => Ok(ScoreInput::Rows(rows)),
            (_, Some(_), Some(_), _) => bad("send either 'customer_ids' or 'rows', not both".into()),
            (_, None, None, _) => {
                bad("the body needs 'customer_ids' (a list of ids) or 'rows' (a list of feature objects)".into())
            }
        }
    }
}

/// One recommended item.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendedItem<'a> {
    /// Catalogue id.
    pub item_id: &'a str,
    /// Model score (0 for cold-start popularity picks).
    pub score: f32,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// Product category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'a str>,
    /// Price band.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_band: Option<&'a str>,
}

/// One result of a recommender.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationResult<'a> {
    /// The customer, echoed as given.
    pub customer_id: &'a CustomerId,
    /// The id of this decision, to name in `POST /v1/outcomes` (absent on a per-item error).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "01KBF3Q6W2M9T1X8C4R7N5P0ZD")]
    pub decision_id: Option<DecisionId>,
    /// Best items first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<RecommendedItem<'a>>>,
    /// True when the customer is unknown and the items are the most popular ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<bool>,
    /// Why this customer has no list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody<'a>>,
}

/// One result of a text classifier.
#[derive(Debug, Serialize, ToSchema)]
pub struct TextResult<'a> {
    /// The id of this decision, to name in `POST /v1/outcomes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "01KBF3Q6W2M9T1X8C4R7N5P0ZD")]
    pub decision_id: Option<DecisionId>,
    /// Most probable label.
    pub label: &'a str,
    /// Softmaxed probability of every label.
    pub scores: BTreeMap<&'a str, f32>,
}

/// Model name and version, as replies report them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelRef<'a> {
    /// Model name.
    pub name: &'a str,
    /// Model version.
    pub version: &'a str,
}

/// Reply of the tabular score routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoreReply<'a, R> {
    /// Which model answered.
    pub model: ModelRef<'a>,
    /// Which snapshot the features came from (absent for inline rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<&'a str>,
    /// Present (true) only when the snapshot is older than --max-snapshot-age.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// How the results' reasons were computed, when asked with `explain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<ExplanationInfo<'a>>,
    /// One result per requested item, in request order.
    pub results: Vec<R>,
}

/// One result of a segmentation model.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentResult<'a> {
    /// The item.
    #[serde(flatten)]
    pub key: ItemKey<'a>,
    /// The id of this decision, to name in `POST /v1/outcomes` (absent on a per-item error).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "01KBF3Q6W2M9T1X8C4R7N5P0ZD")]
    pub decision_id: Option<DecisionId>,
    /// The nearest segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<&'a crate::model::spec::Segment>,
    /// Distance to each segment's centre, by key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distances: Option<BTreeMap<&'a str, f32>>,
    /// Why this item has no segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody<'a>>,
}

/// Which item a result is about.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKey<'a> {
    /// A customer id, echoed as given.
    CustomerId(&'a CustomerId),
    /// The index of an inline row.
    Row(usize),
}

/// One result of `/v1/models/{model}/score` for a tabular model.
#[derive(Debug, Serialize, ToSchema)]
pub struct TabularResult<'a> {
    /// The item.
    #[serde(flatten)]
    pub key: ItemKey<'a>,
    /// The id of this decision, to name in `POST /v1/outcomes` (absent on a per-item error).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "01KBF3Q6W2M9T1X8C4R7N5P0ZD")]
    pub decision_id: Option<DecisionId>,
    /// Probability of the positive class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f32>,
    /// Most probable class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
    /// Risk band of `probability`, when the manifest defines bands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskBand>,
    /// Probability of every class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<BTreeMap<&'a str, f32>>,
    /// The largest contributions to the score, when asked with `explain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<Reason<'a>>>,
    /// Why this item has no score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody<'a>>,
}

/// One result of `/v1/churn/score`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChurnResult<'a> {
    /// The item.
    #[serde(flatten)]
    pub key: ItemKey<'a>,
    /// The id of this decision, to name in `POST /v1/outcomes` (absent on a per-item error).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "01KBF3Q6W2M9T1X8C4R7N5P0ZD")]
    pub decision_id: Option<DecisionId>,
    /// Probability that the customer churns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn_probability: Option<f32>,
    /// low / medium / high, from the manifest's thresholds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskBand>,
    /// The largest contributions to the churn score, when asked with `explain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<Reason<'a>>>,
    /// Why this item has no score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody<'a>>,
}

/// KServe v2 inference request (the JSON header of a binary one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// Echoed in the reply.
    pub id: Option<String>,
    /// `timeout` (ms) and `binary_data_output` are read; others are ignored.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Input tensors.
    pub inputs: Vec<InferInput>,
    /// Requested outputs (default: all the model serves).
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One v2 input tensor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferInput {
    /// Tensor name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<i64>,
    /// v2 datatype, e.g. "FP32".
    pub datatype: String,
    /// `binary_data_size` (the tensor's bytes after the JSON header) is read; others are ignored.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Row-major values, flat or nested: numbers (`null` for a missing value), or strings for BYTES. Absent when
    /// the tensor travels as binary data.
    #[serde(default)]
    pub data: Option<TensorData>,
}

/// One requested v2 output.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedOutput {
    /// Tensor name.
    pub name: String,
    /// `binary_data` (reply with this output as binary data) is read; others are ignored.
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// KServe v2 inference reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponse<'a> {
    /// Model name.
    pub model_name: &'a str,
    /// Model version.
    pub model_version: &'a str,
    /// The request's id, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Output tensors.
    pub outputs: Vec<InferOutput<'a>>,
}

/// One v2 output tensor.
#[derive(Debug, Serialize, ToSchema)]
pub struct InferOutput<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// v2 datatype.
    pub datatype: &'static str,
    /// `binary_data_size` when the values follow the JSON header as binary data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<OutputParameters>,
    /// Row-major values (absent when they travel as binary data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a [f32]>,
}

/// Parameters of a v2 output tensor sent as binary data.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputParameters {
    /// Bytes of the tensor's data after the JSON header.
    pub binary_data_size: usize,
}

/// Name, datatype and shape of a tensor in v2 model metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct TensorMetadata {
    /// Tensor name.
    pub name: String,
    /// v2 datatype.
    pub datatype: String,
    /// Dimensions, -1 where dynamic.
    pub shape: Vec<i64>,
}

/// v2 tensor data, flattened from any nesting in row-major order: numbers (`null` is NaN, a missing value), or
/// strings (BYTES).
#[derive(Debug, Default, PartialEq)]
pub struct TensorData {
    /// Numeric elements.
    pub numbers: Vec<f64>,
    /// String elements.
    pub strings: Vec<String>,
}

impl<'de> Deserialize<'de> for TensorData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut data = TensorData::default();
        d.deserialize_seq(Flatten(&mut data, 0))?;
        if !data.numbers.is_empty() && !data.strings.is_empty() {
            return Err(de::Error::custom(
                "data mixes numbers (or null) and strings",
            ));
        }
        Ok(data)
    }
}

/// Visits one nesting level; elements are appended, arrays recurse (up to a sane depth).
struct Flatten<'v>(&'v mut TensorData, usize);

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of numbers or strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.1 > 8 {
            return Err(de::Error::custom("data is nested more than 8 levels deep"));
        }
        while seq
            .next_element_seed(Element(self.0, self.1 + 1))?
            .is_some()
        {}
        Ok(())
    }
}

/// One element: a number, a string, or a nested array.
struct Element<'v>(&'v mut TensorData, usize);

impl<'de> de::DeserializeSeed<'de> for Element<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, a string, or an array of them")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.numbers.push(v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.numbers.push(v as f64);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.numbers.push(v as f64);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.strings.push(v.to_string());
        Ok(())
    }
    /// `null`: a missing value, handled by the model's missing-value policy.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.numbers.push(f64::NAN);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Flatten(self.0, self.1).visit_seq(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_nested_data_flatten_row_major() {
        let flat: TensorData = serde_json::from_str("[1, 2.5, 3]").unwrap();
        let nested: TensorData = serde_json::from_str("[[1, 2.5], [3]]").unwrap();
        assert_eq!(flat.numbers, vec![1.0, 2.5, 3.0]);
        assert_eq!(nested.numbers, vec![1.0, 2.5, 3.0]);
        let texts: TensorData = serde_json::from_str(r#"["a", ["b"]]"#).unwrap();
        assert_eq!(texts.strings, vec!["a", "b"]);
        assert!(serde_json::from_str::<TensorData>(r#"[1, "2"]"#).is_err());
        assert!(serde_json::from_str::<TensorData>(r#"["a", null]"#).is_err());
        let missing: TensorData = serde_json::from_str("[[1, null], [null, 2]]").unwrap();
        assert_eq!(missing.numbers.len(), 4);
        assert!(missing.numbers[1].is_nan() && missing.numbers[2].is_nan());
        assert!(serde_json::from_str::<TensorData>("3").is_err());
    }

    #[test]
    fn score_request_needs_exactly_one_input() {
        let parse = |s: &str, kind: &str| {
            serde_json::from_str::<ScoreRequest>(s)
                .unwrap()
                .validate(kind)
        };
        assert!(matches!(
            parse(r#"{"customer_ids": ["a"]}"#, "tabular"),
            Ok(ScoreInput::Customers(_))
        ));
        assert!(matches!(
            parse(r#"{"rows": [{}]}"#, "tabular"),
            Ok(ScoreInput::Rows(_))
        ));
        assert!(parse(r#"{}"#, "tabular").is_err());
        assert!(parse(r#"{"customer_ids": [], "rows": []}"#, "tabular").is_err());
        assert!(matches!(
            parse(r#"{"customer_ids": ["a"], "k": 3}"#, "recommender"),
            Ok(ScoreInput::Recommend {
                k: 3,
                exclude_owned: true,
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"texts": ["hi"]}"#, "text"),
            Ok(ScoreInput::Texts(_))
        ));
        let err = parse(r#"{"texts": ["hi"]}"#, "tabular")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("'texts' does not apply to a tabular model"),
            "{err}"
        );
        assert!(parse(r#"{"customer_ids": ["a"]}"#, "text").is_err());
        assert!(serde_json::from_str::<ScoreRequest>(r#"{"customer_id": ["a"]}"#).is_err());
    }
}
