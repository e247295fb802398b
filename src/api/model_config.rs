//! A served model described in Triton's JSON model configuration (what `tritonclient`'s `get_model_config` reads):
//! tensors without the batch dimension, the batcher's limits, the instances.

use serde_json::{Value, json};

use super::dto::TensorMetadata;
use crate::model::ModelHandle;

/// Triton's `data_type` name of a v2 datatype (`FP32` → `TYPE_FP32`, `BYTES` → `TYPE_STRING`).
pub fn data_type(datatype: &str) -> String {
    match datatype {
        "BYTES" => "TYPE_STRING".into(),
        other => format!("TYPE_{other}"),
    }
}

/// One tensor of the configuration: the dims after the batch dimension; a [batch] tensor is `dims: [1]` reshaped
/// to `[]`, as Triton writes it (clients may send [batch] or [batch, 1]).
fn tensor(t: &TensorMetadata) -> Value {
    let dims = t.shape.get(1..).unwrap_or_default();
    let mut config = json!({
        "name": t.name,
        "data_type": data_type(&t.datatype),
        "dims": if dims.is_empty() { &[1][..] } else { dims },
    });
    if dims.is_empty() {
        config["reshape"] = json!({ "shape": [] });
    }
    config
}

/// The configuration of `m`, whose v2 tensors are `inputs` and `outputs` (as its metadata shows them).
pub fn model_config(
    m: &ModelHandle,
    inputs: &[TensorMetadata],
    outputs: &[TensorMetadata],
) -> Value {
    let spec = &m.spec;
    let kind = match m.provider {
        "CUDAExecutionProvider" => "KIND_GPU",
        _ => "KIND_CPU",
    };
    json!({
        "name": spec.name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "version_policy": { "specific": { "versions": [spec.version] } },
        "max_batch_size": spec.batching.max_batch_size,
        "input": inputs.iter().map(tensor).collect::<Vec<_>>(),
        "output": outputs.iter().map(tensor).collect::<Vec<_>>(),
        "dynamic_batching": {
            "max_queue_delay_microseconds": spec.batching.max_delay_us,
            "preferred_batch_size": [],
        },
        "instance_group": [{
            "name": spec.name,
            "kind": kind,
            "count": spec.batching.workers,
        }],
        "default_model_filename": "model.onnx",
        "parameters": {
            "kind": { "string_value": spec.kind.name() },
            "queue_capacity": { "string_value": spec.batching.queue_capacity.to_string() },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, datatype: &str, shape: &[i64]) -> TensorMetadata {
        TensorMetadata {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn tensors_lose_the_batch_dimension() {
        let features = tensor(&meta("features", "FP32", &[-1, 21]));
        assert_eq!(
            features,
            json!({"name": "features", "data_type": "TYPE_FP32", "dims": [21]})
        );
        let text = tensor(&meta("text", "BYTES", &[-1]));
        assert_eq!(
            text,
            json!({"name": "text", "data_type": "TYPE_STRING", "dims": [1], "reshape": {"shape": []}})
        );
        assert_eq!(data_type("INT64"), "TYPE_INT64");
    }
}
