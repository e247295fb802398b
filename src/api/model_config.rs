//! A served model described in Triton's JSON model configuration (what `tritonclient`'s `get_model_config` reads):
//! tensors without the batch dimension, the batcher's limits, the instances.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::dto::TensorMetadata;
use crate::inference::metadata::{config_dims, triton_data_type};
use crate::model::ModelHandle;

/// Triton's model configuration, as the config routes answer it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelConfig<'a> {
    /// Model name.
    pub name: &'a str,
    /// Always `onnxruntime_onnx`.
    pub platform: &'static str,
    /// Always `onnxruntime`.
    pub backend: &'static str,
    /// The one served version.
    pub version_policy: VersionPolicy<'a>,
    /// Largest batch the batcher forms.
    pub max_batch_size: usize,
    /// Input tensors, without the batch dimension.
    pub input: Vec<ConfigTensor>,
    /// Output tensors, without the batch dimension.
    pub output: Vec<ConfigTensor>,
    /// The batcher's limits.
    pub dynamic_batching: DynamicBatching,
    /// The batching workers.
    pub instance_group: Vec<InstanceGroup<'a>>,
    /// Always `model.onnx`.
    pub default_model_filename: &'static str,
    /// `kind` and `queue_capacity`, as Triton string parameters.
    pub parameters: BTreeMap<&'static str, StringValue>,
}

/// `{"specific": {"versions": [...]}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionPolicy<'a> {
    /// The versions served.
    pub specific: SpecificVersions<'a>,
}

/// The versions served.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpecificVersions<'a> {
    /// Version names.
    pub versions: Vec<&'a str>,
}

/// One tensor of the configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigTensor {
    /// Tensor name.
    pub name: String,
    /// Triton data type, e.g. `TYPE_FP32`.
    pub data_type: String,
    /// Dimensions after the batch dimension (-1 where dynamic).
    pub dims: Vec<i64>,
    /// `{"shape": []}` for a [batch] tensor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reshape: Option<Reshape>,
}

/// A tensor's reshape.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reshape {
    /// The shape the model sees.
    pub shape: Vec<i64>,
}

/// The batcher's limits.
#[derive(Debug, Serialize, ToSchema)]
pub struct DynamicBatching {
    /// Longest wait for a batch to fill.
    pub max_queue_delay_microseconds: u64,
    /// Always empty.
    pub preferred_batch_size: Vec<usize>,
}

/// The batching workers of a model.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceGroup<'a> {
    /// Model name.
    pub name: &'a str,
    /// `KIND_GPU` or `KIND_CPU`.
    pub kind: &'static str,
    /// Worker threads.
    pub count: usize,
}

/// A Triton string parameter.
#[derive(Debug, Serialize, ToSchema)]
pub struct StringValue {
    /// The value.
    pub string_value: String,
}

/// One tensor of the configuration: the dims after the batch dimension; a [batch] tensor is `dims: [1]` reshaped
/// to `[]`, as Triton writes it (clients may send [batch] or [batch, 1]).
fn tensor(t: &TensorMetadata) -> ConfigTensor {
    let (dims, scalar) = config_dims(&t.shape);
    ConfigTensor {
        name: t.name.clone(),
        data_type: triton_data_type(&t.datatype),
        dims,
        reshape: scalar.then(|| Reshape { shape: vec![] }),
    }
}

/// The configuration of `m`, whose v2 tensors are `inputs` and `outputs` (as its metadata shows them).
pub fn model_config<'a>(
    m: &'a ModelHandle,
    inputs: &[TensorMetadata],
    outputs: &[TensorMetadata],
) -> ModelConfig<'a> {
    let spec = &m.spec;
    let kind = match m.provider {
        "CUDAExecutionProvider" => "KIND_GPU",
        _ => "KIND_CPU",
    };
    let string = |v: String| StringValue { string_value: v };
    ModelConfig {
        name: &spec.name,
        platform: super::v2::PLATFORM,
        backend: "onnxruntime",
        version_policy: VersionPolicy {
            specific: SpecificVersions {
                versions: vec![&spec.version],
            },
        },
        max_batch_size: spec.batching.max_batch_size,
        input: inputs.iter().map(tensor).collect(),
        output: outputs.iter().map(tensor).collect(),
        dynamic_batching: DynamicBatching {
            max_queue_delay_microseconds: spec.batching.max_delay_us,
            preferred_batch_size: vec![],
        },
        instance_group: vec![InstanceGroup {
            name: &spec.name,
            kind,
            count: spec.batching.workers,
        }],
        default_model_filename: "model.onnx",
        parameters: BTreeMap::from([
            ("kind", string(spec.kind.name().to_string())),
            (
                "queue_capacity",
                string(spec.batching.queue_capacity.to_string()),
            ),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(name: &str, datatype: &str, shape: &[i64]) -> TensorMetadata {
        TensorMetadata {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn tensors_lose_the_batch_dimension() {
        let features = serde_json::to_value(tensor(&meta("features", "FP32", &[-1, 21]))).unwrap();
        assert_eq!(
            features,
            json!({"name": "features", "data_type": "TYPE_FP32", "dims": [21]})
        );
        let text = serde_json::to_value(tensor(&meta("text", "BYTES", &[-1]))).unwrap();
        assert_eq!(
            text,
            json!({"name": "text", "data_type": "TYPE_STRING", "dims": [1], "reshape": {"shape": []}})
        );
        assert_eq!(triton_data_type("INT64"), "TYPE_INT64");
    }
}
