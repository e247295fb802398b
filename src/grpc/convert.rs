//! Protobuf <-> the protocol-neutral inference types: request tensors (typed `contents` or `raw_input_contents`)
//! to an [`InferCall`], and an [`Inferred`] to a reply carrying `raw_output_contents` (what Triton sends).

use std::collections::HashMap;

use super::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use super::proto::model_infer_response::InferOutputTensor;
use super::proto::{InferTensorContents, ModelInferResponse};
use crate::error::ScoreError;
use crate::inference::{InferCall, Inferred, InputTensor, InputValues, raw};

/// Input and output parameters that ask for features this server does not have.
const UNSUPPORTED_PARAMETERS: [(&str, &str); 2] = [
    (
        "shared_memory_region",
        "shared memory is not supported; send the data in the request",
    ),
    (
        "classification",
        "classification outputs are not supported; ask for the output itself",
    ),
];

/// A ModelInfer request's tensors as the inference use case takes them. Either every input carries its data in
/// `raw_input_contents` (in input order) or none does and each has typed `contents`.
pub fn infer_call(
    inputs: Vec<InferInputTensor>,
    raw_contents: Vec<Vec<u8>>,
    outputs: Vec<InferRequestedOutputTensor>,
) -> Result<InferCall, ScoreError> {
    let bad = ScoreError::BadRequest;
    for input in &inputs {
        refuse_parameters(&format!("input '{}'", input.name), input.parameters.keys())?;
    }
    for output in &outputs {
        refuse_parameters(
            &format!("output '{}'", output.name),
            output.parameters.keys(),
        )?;
    }
    if !raw_contents.is_empty() && raw_contents.len() != inputs.len() {
        return Err(bad(format!(
            "raw_input_contents has {} entries for {} inputs; send raw data for every input (in input order) or \
             for none",
            raw_contents.len(),
            inputs.len()
        )));
    }
    let tensors = match raw_contents.is_empty() {
        true => inputs
            .into_iter()
            .map(|input| {
                let values = typed_values(&input)?;
                Ok(tensor(input, values))
            })
            .collect::<Result<Vec<_>, ScoreError>>()?,
        false => inputs
            .into_iter()
            .zip(raw_contents)
            .map(|(input, bytes)| {
                if input.contents.is_some() {
                    return Err(bad(format!(
                        "input '{}' has both contents and raw_input_contents; send one",
                        input.name
                    )));
                }
                let values = raw::decode(&input.name, &input.datatype, &input.shape, &bytes)?;
                Ok(tensor(input, values))
            })
            .collect::<Result<Vec<_>, ScoreError>>()?,
    };
    let outputs = (!outputs.is_empty()).then(|| outputs.into_iter().map(|o| o.name).collect());
    Ok(InferCall {
        inputs: tensors,
        outputs,
    })
}

fn refuse_parameters<'p>(
    what: &str,
    mut keys: impl Iterator<Item = &'p String>,
) -> Result<(), ScoreError> {
    match keys.find_map(|k| UNSUPPORTED_PARAMETERS.iter().find(|(name, _)| name == k)) {
        Some((name, why)) => Err(ScoreError::BadRequest(format!(
            "{what}: parameter '{name}': {why}"
        ))),
        None => Ok(()),
    }
}

fn tensor(input: InferInputTensor, values: InputValues) -> InputTensor {
    InputTensor {
        name: input.name,
        datatype: input.datatype,
        shape: input.shape,
        values,
    }
}

/// The values of an input's typed `contents`: the field its datatype names, with as many elements as its shape.
fn typed_values(input: &InferInputTensor) -> Result<InputValues, ScoreError> {
    let name = &input.name;
    let bad = |msg: String| ScoreError::BadRequest(format!("input '{name}': {msg}"));
    let empty = InferTensorContents::default();
    let c = input.contents.as_ref().unwrap_or(&empty);
    let numbers = |v: Vec<f32>| InputValues::Numbers(v);
    let (field, values) = match input.datatype.as_str() {
        "FP32" => ("fp32_contents", numbers(c.fp32_contents.clone())),
        "FP64" => (
            "fp64_contents",
            numbers(c.fp64_contents.iter().map(|&v| v as f32).collect()),
        ),
        "INT8" | "INT16" | "INT32" => (
            "int_contents",
            numbers(c.int_contents.iter().map(|&v| v as f32).collect()),
        ),
        "INT64" => (
            "int64_contents",
            numbers(c.int64_contents.iter().map(|&v| v as f32).collect()),
        ),
        "UINT8" | "UINT16" | "UINT32" => (
            "uint_contents",
            numbers(c.uint_contents.iter().map(|&v| v as f32).collect()),
        ),
        "UINT64" => (
            "uint64_contents",
            numbers(c.uint64_contents.iter().map(|&v| v as f32).collect()),
        ),
        "BOOL" => (
            "bool_contents",
            numbers(
                c.bool_contents
                    .iter()
                    .map(|&v| f32::from(u8::from(v)))
                    .collect(),
            ),
        ),
        "BYTES" => {
            let texts = c
                .bytes_contents
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    String::from_utf8(b.clone())
                        .map_err(|e| bad(format!("BYTES element {i} is not UTF-8 text: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            ("bytes_contents", InputValues::Texts(texts))
        }
        other => {
            return Err(bad(format!(
                "datatype '{other}' has no typed contents field; send its data in raw_input_contents"
            )));
        }
    };
    let count = raw::element_count(name, &input.shape)?;
    let len = match &values {
        InputValues::Numbers(v) => v.len(),
        InputValues::Texts(t) => t.len(),
    };
    if len == count {
        return Ok(values);
    }
    let filled = filled_fields(c);
    if len == 0 && filled.is_empty() {
        return Err(bad(format!(
            "no data: send {} elements in contents.{field} or in raw_input_contents",
            count
        )));
    }
    if len == 0 {
        return Err(bad(format!(
            "datatype {} takes its data in contents.{field}, but the data is in contents.{}",
            input.datatype,
            filled.join(", contents.")
        )));
    }
    Err(bad(format!(
        "shape {:?} needs {count} elements, contents.{field} has {len}",
        input.shape
    )))
}

/// The typed fields of `contents` that hold data.
fn filled_fields(c: &InferTensorContents) -> Vec<&'static str> {
    [
        ("bool_contents", c.bool_contents.is_empty()),
        ("int_contents", c.int_contents.is_empty()),
        ("int64_contents", c.int64_contents.is_empty()),
        ("uint_contents", c.uint_contents.is_empty()),
        ("uint64_contents", c.uint64_contents.is_empty()),
        ("fp32_contents", c.fp32_contents.is_empty()),
        ("fp64_contents", c.fp64_contents.is_empty()),
        ("bytes_contents", c.bytes_contents.is_empty()),
    ]
    .into_iter()
    .filter(|(_, empty)| !empty)
    .map(|(field, _)| field)
    .collect()
}

/// The reply to a scored call: FP32 outputs in `raw_output_contents`, in output order.
pub fn infer_response(inferred: &Inferred, id: String) -> ModelInferResponse {
    let spec = &inferred.scored.model.spec;
    let mut outputs = Vec::with_capacity(inferred.outputs.len());
    let mut raw_output_contents = Vec::with_capacity(inferred.outputs.len());
    for output in &inferred.outputs {
        outputs.push(InferOutputTensor {
            name: output.name.clone(),
            datatype: "FP32".into(),
            shape: output.shape.iter().map(|&d| d as i64).collect(),
            parameters: HashMap::new(),
            contents: None,
        });
        let mut bytes = Vec::new();
        raw::encode_f32(inferred.data(output), &mut bytes);
        raw_output_contents.push(bytes);
    }
    ModelInferResponse {
        model_name: spec.name.clone(),
        model_version: spec.version.clone(),
        id,
        parameters: HashMap::new(),
        outputs,
        raw_output_contents,
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::InferParameter;
    use super::*;

    fn input(
        datatype: &str,
        shape: Vec<i64>,
        contents: Option<InferTensorContents>,
    ) -> InferInputTensor {
        InferInputTensor {
            name: "features".into(),
            datatype: datatype.into(),
            shape,
            parameters: HashMap::new(),
            contents,
        }
    }

    fn numbers(call: &InferCall) -> &[f32] {
        match &call.inputs[0].values {
            InputValues::Numbers(v) => v,
            InputValues::Texts(_) => panic!("numbers expected"),
        }
    }

    #[test]
    fn typed_contents_of_every_numeric_kind_decode() {
        let fp64 = InferTensorContents {
            fp64_contents: vec![1.5, f64::NAN],
            ..Default::default()
        };
        let call = infer_call(vec![input("FP64", vec![1, 2], Some(fp64))], vec![], vec![]).unwrap();
        assert_eq!(numbers(&call)[0], 1.5);
        assert!(numbers(&call)[1].is_nan(), "NaN stays a missing value");
        let int = InferTensorContents {
            int_contents: vec![-3, 7],
            ..Default::default()
        };
        let call = infer_call(vec![input("INT32", vec![1, 2], Some(int))], vec![], vec![]).unwrap();
        assert_eq!(numbers(&call), &[-3.0, 7.0]);
        let texts = InferTensorContents {
            bytes_contents: vec![b"great".to_vec(), "ça va".as_bytes().to_vec()],
            ..Default::default()
        };
        let call = infer_call(vec![input("BYTES", vec![2], Some(texts))], vec![], vec![]).unwrap();
        assert_eq!(
            call.inputs[0].values,
            InputValues::Texts(vec!["great".into(), "ça va".into()])
        );
        assert_eq!(call.outputs, None);
    }

    #[test]
    fn raw_contents_decode_in_input_order() {
        let mut bytes = Vec::new();
        raw::encode_f32(&[0.25, f32::NAN], &mut bytes);
        let wanted = InferRequestedOutputTensor {
            name: "probabilities".into(),
            parameters: HashMap::new(),
        };
        let call = infer_call(
            vec![input("FP32", vec![1, 2], None)],
            vec![bytes],
            vec![wanted],
        )
        .unwrap();
        assert_eq!(numbers(&call)[0], 0.25);
        assert!(numbers(&call)[1].is_nan());
        assert_eq!(call.outputs, Some(vec!["probabilities".to_string()]));
    }

    #[test]
    fn malformed_tensors_are_refused_with_the_reason() {
        let err = |r: Result<InferCall, ScoreError>| r.unwrap_err().to_string();
        let short = InferTensorContents {
            fp32_contents: vec![1.0; 3],
            ..Default::default()
        };
        let e = err(infer_call(
            vec![input("FP32", vec![2, 2], Some(short))],
            vec![],
            vec![],
        ));
        assert!(
            e.contains("needs 4 elements") && e.contains("fp32_contents has 3"),
            "{e}"
        );
        let misplaced = InferTensorContents {
            fp64_contents: vec![1.0; 2],
            ..Default::default()
        };
        let e = err(infer_call(
            vec![input("FP32", vec![1, 2], Some(misplaced))],
            vec![],
            vec![],
        ));
        assert!(
            e.contains("contents.fp32_contents") && e.contains("contents.fp64_contents"),
            "{e}"
        );
        let e = err(infer_call(
            vec![input("FP32", vec![1, 2], None)],
            vec![],
            vec![],
        ));
        assert!(e.contains("no data"), "{e}");
        let e = err(infer_call(
            vec![input("FP16", vec![1], None)],
            vec![],
            vec![],
        ));
        assert!(e.contains("raw_input_contents"), "{e}");
        let e = err(infer_call(
            vec![input("FP32", vec![1, 2], None)],
            vec![vec![0; 7]],
            vec![],
        ));
        assert!(e.contains("needs 8 bytes"), "{e}");
        let two = vec![input("FP32", vec![1], None), input("FP32", vec![1], None)];
        let e = err(infer_call(two, vec![vec![0; 4]], vec![]));
        assert!(e.contains("1 entries for 2 inputs"), "{e}");
        let mut shm = input("FP32", vec![1, 2], None);
        shm.parameters
            .insert("shared_memory_region".into(), InferParameter::default());
        let e = err(infer_call(vec![shm], vec![], vec![]));
        assert!(e.contains("shared memory"), "{e}");
    }
}
