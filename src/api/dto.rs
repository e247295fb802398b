//! Wire types: request bodies (validated into what scoring needs) and reply bodies.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ErrorBody, ScoreError};
use crate::model::spec::RiskBand;
use crate::snapshot::CustomerId;

/// Body of the tabular score routes: customer ids from the snapshot, or inline feature rows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// Customers to look up in the served snapshot.
    pub customer_ids: Option<Vec<CustomerId>>,
    /// Inline feature rows (every feature of the model, by name).
    pub rows: Option<Vec<Map<String, Value>>>,
}

/// A validated score request.
pub enum ScoreInput {
    /// Look these customers up.
    Customers(Vec<CustomerId>),
    /// Score these rows as given.
    Rows(Vec<Map<String, Value>>),
}

impl TryFrom<ScoreRequest> for ScoreInput {
    type Error = ScoreError;

    fn try_from(r: ScoreRequest) -> Result<Self, ScoreError> {
        match (r.customer_ids, r.rows) {
            (Some(ids), None) => Ok(ScoreInput::Customers(ids)),
            (None, Some(rows)) => Ok(ScoreInput::Rows(rows)),
            (Some(_), Some(_)) => Err(ScoreError::BadRequest(
                "send either 'customer_ids' or 'rows', not both".into(),
            )),
            (None, None) => Err(ScoreError::BadRequest(
                "the body needs 'customer_ids' (a list of ids) or 'rows' (a list of feature objects)".into(),
            )),
        }
    }
}

/// Model name and version, as replies report them.
#[derive(Debug, Serialize)]
pub struct ModelRef<'a> {
    /// Model name.
    pub name: &'a str,
    /// Model version.
    pub version: &'a str,
}

/// Reply of the tabular score routes.
#[derive(Debug, Serialize)]
pub struct ScoreReply<'a, R> {
    /// Which model answered.
    pub model: ModelRef<'a>,
    /// Which snapshot the features came from (absent for inline rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<&'a str>,
    /// Present (true) only when the snapshot is older than --max-snapshot-age.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// One result per requested item, in request order.
    pub results: Vec<R>,
}

/// Which item a result is about.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKey<'a> {
    /// A customer id, echoed as given.
    CustomerId(&'a CustomerId),
    /// The index of an inline row.
    Row(usize),
}

/// One result of `/v1/models/{model}/score` for a tabular model.
#[derive(Debug, Serialize)]
pub struct TabularResult<'a> {
    /// The item.
    #[serde(flatten)]
    pub key: ItemKey<'a>,
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
    /// Why this item has no score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody<'a>>,
}

/// One result of `/v1/churn/score`.
#[derive(Debug, Serialize)]
pub struct ChurnResult<'a> {
    /// The item.
    #[serde(flatten)]
    pub key: ItemKey<'a>,
    /// Probability that the customer churns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn_probability: Option<f32>,
    /// low / medium / high, from the manifest's thresholds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskBand>,
    /// Why this item has no score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody<'a>>,
}

/// KServe v2 inference request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// Echoed in the reply.
    pub id: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Input tensors.
    pub inputs: Vec<InferInput>,
    /// Requested outputs (default: all the model serves).
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One v2 input tensor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferInput {
    /// Tensor name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<i64>,
    /// v2 datatype, e.g. "FP32".
    pub datatype: String,
    /// Accepted and ignored.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Row-major values, flat or nested.
    pub data: FlatNumbers,
}

/// One requested v2 output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedOutput {
    /// Tensor name.
    pub name: String,
    /// Accepted and ignored.
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// KServe v2 inference reply.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
pub struct InferOutput<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// v2 datatype.
    pub datatype: &'static str,
    /// Row-major values.
    pub data: &'a [f32],
}

/// Name, datatype and shape of a tensor in v2 model metadata.
#[derive(Debug, Serialize)]
pub struct TensorMetadata {
    /// Tensor name.
    pub name: String,
    /// v2 datatype.
    pub datatype: String,
    /// Dimensions, -1 where dynamic.
    pub shape: Vec<i64>,
}

/// v2 numbers, flattened from any nesting in row-major order.
#[derive(Debug, Default, PartialEq)]
pub struct FlatNumbers(pub Vec<f64>);

impl<'de> Deserialize<'de> for FlatNumbers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut values = Vec::new();
        d.deserialize_seq(Flatten(&mut values, 0))?;
        Ok(FlatNumbers(values))
    }
}

/// Visits one nesting level; numbers are appended, arrays recurse (up to a sane depth).
struct Flatten<'v>(&'v mut Vec<f64>, usize);

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("numbers, or arrays of numbers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.1 > 8 {
            return Err(de::Error::custom("data is nested more than 8 levels deep"));
        }
        if let Some(n) = seq.size_hint() {
            self.0.reserve(n);
        }
        while seq
            .next_element_seed(Element(self.0, self.1 + 1))?
            .is_some()
        {}
        Ok(())
    }
}

/// One element: a number, or a nested array.
struct Element<'v>(&'v mut Vec<f64>, usize);

impl<'de> de::DeserializeSeed<'de> for Element<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or an array of numbers")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(v as f64);
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
        let flat: FlatNumbers = serde_json::from_str("[1, 2.5, 3]").unwrap();
        let nested: FlatNumbers = serde_json::from_str("[[1, 2.5], [3]]").unwrap();
        assert_eq!(flat.0, vec![1.0, 2.5, 3.0]);
        assert_eq!(nested.0, vec![1.0, 2.5, 3.0]);
        assert!(serde_json::from_str::<FlatNumbers>(r#"[1, "2"]"#).is_err());
        assert!(serde_json::from_str::<FlatNumbers>("[1, null]").is_err());
        assert!(serde_json::from_str::<FlatNumbers>("3").is_err());
    }

    #[test]
    fn score_request_needs_exactly_one_input() {
        let parse =
            |s: &str| ScoreInput::try_from(serde_json::from_str::<ScoreRequest>(s).unwrap());
        assert!(matches!(
            parse(r#"{"customer_ids": ["a"]}"#),
            Ok(ScoreInput::Customers(_))
        ));
        assert!(matches!(
            parse(r#"{"rows": [{}]}"#),
            Ok(ScoreInput::Rows(_))
        ));
        assert!(parse(r#"{}"#).is_err());
        assert!(parse(r#"{"customer_ids": [], "rows": []}"#).is_err());
        assert!(serde_json::from_str::<ScoreRequest>(r#"{"customer_id": ["a"]}"#).is_err());
    }
}
