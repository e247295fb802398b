//! Triton's binary tensor data extension over HTTP: a body of `Inference-Header-Content-Length` bytes of JSON, then
//! the raw bytes of each binary input in input order (`parameters.binary_data_size` each); a reply the same way for
//! the outputs asked for as binary data. Also turns JSON-carried tensors into the inference use case's tensors.

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::dto::{InferInput, InferOutput, InferResponse, OutputParameters, RequestedOutput};
use crate::error::ScoreError;
use crate::inference::{Inferred, InputTensor, InputValues, raw};

/// The HTTP header giving the length of the JSON part of a body that carries binary tensor data.
pub const HEADER_LENGTH: &str = "Inference-Header-Content-Length";

/// A request body split into its JSON header and the binary tensor data after it.
#[derive(Debug, PartialEq)]
pub struct Body<'b> {
    /// The JSON inference request.
    pub json: &'b [u8],
    /// The bytes after the JSON header; None when the request has no `Inference-Header-Content-Length`.
    pub binary: Option<&'b [u8]>,
}

/// Splits `body` at the length the `Inference-Header-Content-Length` header gives (the whole body is JSON without
/// it).
pub fn split<'b>(headers: &HeaderMap, body: &'b [u8]) -> Result<Body<'b>, ScoreError> {
    let Some(value) = headers.get(HEADER_LENGTH) else {
        return Ok(Body {
            json: body,
            binary: None,
        });
    };
    let length = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or_else(|| {
            ScoreError::BadRequest(format!(
                "header '{HEADER_LENGTH}' must be the byte length of the JSON part of the body, got {:?}",
                String::from_utf8_lossy(value.as_bytes())
            ))
        })?;
    if length > body.len() {
        return Err(ScoreError::BadRequest(format!(
            "header '{HEADER_LENGTH}' says the JSON part is {length} bytes but the body has only {}",
            body.len()
        )));
    }
    let (json, binary) = body.split_at(length);
    Ok(Body {
        json,
        binary: Some(binary),
    })
}

/// The request's inputs as the inference use case takes them: JSON `data`, or the next `binary_data_size` bytes of
/// `binary` in input order, which must be used up exactly.
pub fn input_tensors(
    inputs: Vec<InferInput>,
    binary: Option<&[u8]>,
) -> Result<Vec<InputTensor>, ScoreError> {
    let mut offset = 0;
    let mut tensors = Vec::with_capacity(inputs.len());
    for input in inputs {
        let bad = |msg: String| ScoreError::BadRequest(format!("input '{}' {msg}", input.name));
        let size = binary_data_size(&input)?;
        let values = match (input.data, size, binary) {
            (Some(_), Some(_), _) => {
                return Err(bad(
                    "has both 'data' and parameters.binary_data_size; send its values one way"
                        .into(),
                ));
            }
            (Some(data), None, _) => match data.strings.is_empty() {
                true => InputValues::Numbers(data.numbers.iter().map(|&v| v as f32).collect()),
                false => InputValues::Texts(data.strings),
            },
            (None, Some(_), None) => {
                return Err(bad(format!(
                    "has parameters.binary_data_size but the request has no '{HEADER_LENGTH}' header (the length \
                     of the JSON part, after which the binary data starts)"
                )));
            }
            (None, Some(size), Some(binary)) => {
                let rest = binary.len() - offset;
                if size > rest {
                    return Err(bad(format!(
                        "has binary_data_size {size} but only {rest} bytes of binary data remain after the \
                         inputs before it"
                    )));
                }
                let bytes = &binary[offset..offset + size];
                offset += size;
                raw::decode(&input.name, &input.datatype, &input.shape, bytes)?
            }
            (None, None, _) => {
                return Err(bad(
                    "has no 'data' (and no parameters.binary_data_size for binary data)".into(),
                ));
            }
        };
        tensors.push(InputTensor {
            name: input.name,
            datatype: input.datatype,
            shape: input.shape,
            values,
        });
    }
    if let Some(binary) = binary
        && offset != binary.len()
    {
        return Err(ScoreError::BadRequest(format!(
            "the body has {} bytes of binary tensor data after the JSON part, but the inputs' binary_data_size \
             add up to {offset}",
            binary.len()
        )));
    }
    Ok(tensors)
}

/// An input's `parameters.binary_data_size`, if given.
fn binary_data_size(input: &InferInput) -> Result<Option<usize>, ScoreError> {
    let Some(value) = input
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_size"))
    else {
        return Ok(None);
    };
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            ScoreError::BadRequest(format!(
                "input '{}' parameters.binary_data_size must be a whole number of bytes, got {value}",
                input.name
            ))
        })
}

/// Which reply outputs travel as binary data.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyFormat {
    /// The request's `parameters.binary_data_output`: the default for outputs that do not say.
    all_binary: bool,
    /// Outputs requested with `parameters.binary_data`, and its value.
    asked: Vec<(String, bool)>,
}

impl ReplyFormat {
    /// Reads `binary_data_output` from the request's parameters and `binary_data` from each requested output's.
    pub fn of(
        parameters: Option<&Value>,
        outputs: Option<&[RequestedOutput]>,
    ) -> Result<ReplyFormat, ScoreError> {
        let flag = |parameters: Option<&Value>, key: &str, owner: &str| match parameters
            .and_then(|p| p.get(key))
        {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(ScoreError::BadRequest(format!(
                "{owner}parameters.{key} must be true or false, got {other}"
            ))),
        };
        let all_binary = flag(parameters, "binary_data_output", "")?.unwrap_or(false);
        let mut asked = Vec::new();
        for output in outputs.unwrap_or_default() {
            let owner = format!("output '{}' ", output.name);
            if let Some(binary) = flag(output.parameters.as_ref(), "binary_data", &owner)? {
                asked.push((output.name.clone(), binary));
            }
        }
        Ok(ReplyFormat { all_binary, asked })
    }

    /// Whether the output `name` is sent as binary data.
    pub fn is_binary(&self, name: &str) -> bool {
        self.asked
            .iter()
            .find(|(asked, _)| asked == name)
            .map_or(self.all_binary, |(_, binary)| *binary)
    }
}

/// An encoded reply body: JSON alone, or a JSON header followed by binary output data.
#[derive(Debug)]
pub struct Reply {
    /// The bytes to send.
    pub body: Vec<u8>,
    /// The JSON header's length when binary data follows it (the reply's `Inference-Header-Content-Length`).
    pub header_length: Option<usize>,
}

/// Encodes the outputs of `inferred` as v2 JSON, with the binary ones' data after the JSON header in output order.
pub fn encode_reply(
    inferred: &Inferred,
    id: Option<String>,
    format: &ReplyFormat,
) -> Result<Reply, ScoreError> {
    let mut binary = Vec::new();
    let outputs = inferred
        .outputs
        .iter()
        .map(|o| {
            let data = inferred.data(o);
            let mut output = InferOutput {
                name: &o.name,
                shape: o.shape.clone(),
                datatype: "FP32",
                parameters: None,
                data: Some(data),
            };
            if format.is_binary(&o.name) {
                let before = binary.len();
                raw::encode_f32(data, &mut binary);
                output.data = None;
                output.parameters = Some(OutputParameters {
                    binary_data_size: binary.len() - before,
                });
            }
            output
        })
        .collect();
    let scored = &inferred.scored;
    let header = InferResponse {
        model_name: &scored.model.spec.name,
        model_version: &scored.model.spec.version,
        id,
        outputs,
    };
    let mut body = serde_json::to_vec(&header).map_err(|e| ScoreError::Inference {
        model: scored.model.spec.name.clone(),
        message: format!("cannot encode the reply: {e}"),
    })?;
    let header_length =
        (inferred.outputs.iter().any(|o| format.is_binary(&o.name))).then_some(body.len());
    body.extend_from_slice(&binary);
    Ok(Reply {
        body,
        header_length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use serde_json::json;

    fn headers(length: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Some(v) = length {
            map.insert(
                HeaderName::from_static("inference-header-content-length"),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn input(json: Value) -> InferInput {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn bodies_split_at_the_header_length() {
        let body = b"{}\x01\x02";
        assert_eq!(
            split(&headers(None), body).unwrap(),
            Body {
                json: body,
                binary: None
            }
        );
        let parts = split(&headers(Some("2")), body).unwrap();
        assert_eq!(
            (parts.json, parts.binary),
            (&b"{}"[..], Some(&b"\x01\x02"[..]))
        );
        for bad in ["5", "-1", "two", ""] {
            let err = split(&headers(Some(bad)), body).unwrap_err().to_string();
            assert!(err.contains(HEADER_LENGTH), "{err}");
        }
    }

    #[test]
    fn binary_inputs_take_their_bytes_in_order() {
        let mut raw = Vec::new();
        raw::encode_f32(&[1.0, f32::NAN], &mut raw);
        raw.extend_from_slice(&[2, 0, 0, 0, b'h', b'i']);
        let inputs = vec![
            input(
                json!({"name": "a", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}),
            ),
            input(
                json!({"name": "b", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}),
            ),
            input(json!({"name": "c", "shape": [1], "datatype": "FP32", "data": [null]})),
        ];
        let tensors = input_tensors(inputs, Some(&raw)).unwrap();
        let InputValues::Numbers(a) = &tensors[0].values else {
            panic!("numbers")
        };
        assert!(a[0] == 1.0 && a[1].is_nan());
        assert_eq!(tensors[1].values, InputValues::Texts(vec!["hi".into()]));
        let InputValues::Numbers(c) = &tensors[2].values else {
            panic!("numbers")
        };
        assert!(c[0].is_nan());
    }

    #[test]
    fn malformed_binary_inputs_name_the_tensor() {
        let fp32 = |size: Value| {
            input(
                json!({"name": "feats", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": size}}),
            )
        };
        let cases = [
            (vec![fp32(json!(12))], Some(&[0u8; 8][..]), "only 8 bytes"),
            (vec![fp32(json!(4))], Some(&[0u8; 4][..]), "needs 8 bytes"),
            (vec![fp32(json!(8))], Some(&[0u8; 9][..]), "add up to 8"),
            (vec![fp32(json!(-8))], Some(&[0u8; 8][..]), "whole number"),
            (
                vec![fp32(json!(8))],
                None,
                "no 'Inference-Header-Content-Length'",
            ),
            (
                vec![input(
                    json!({"name": "feats", "shape": [1, 2], "datatype": "FP32", "data": [1, 2], "parameters": {"binary_data_size": 8}}),
                )],
                Some(&[0u8; 8][..]),
                "both 'data'",
            ),
            (
                vec![input(
                    json!({"name": "feats", "shape": [1, 2], "datatype": "FP32"}),
                )],
                None,
                "has no 'data'",
            ),
        ];
        for (inputs, binary, needle) in cases {
            let err = input_tensors(inputs, binary).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
            assert!(
                needle.contains("add up") || err.contains("'feats'"),
                "{err:?} should name the tensor"
            );
        }
    }

    #[test]
    fn reply_format_follows_output_then_request_parameters() {
        let outputs: Vec<RequestedOutput> = serde_json::from_value(json!([
            {"name": "a", "parameters": {"binary_data": true}},
            {"name": "b", "parameters": {"binary_data": false}},
            {"name": "c"},
        ]))
        .unwrap();
        let plain = ReplyFormat::of(None, Some(&outputs)).unwrap();
        assert!(plain.is_binary("a") && !plain.is_binary("b") && !plain.is_binary("c"));
        let params = json!({"binary_data_output": true});
        let all = ReplyFormat::of(Some(&params), Some(&outputs)).unwrap();
        assert!(all.is_binary("a") && !all.is_binary("b") && all.is_binary("c"));
        let bad = json!({"binary_data_output": "yes"});
        assert!(ReplyFormat::of(Some(&bad), None).is_err());
    }
}
