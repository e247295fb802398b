//! A served model as Triton describes it over gRPC: model metadata (the v2 tensors) and model config (batching,
//! instance group, per-row dims).

use std::collections::HashMap;

use super::proto::model_metadata_response::TensorMetadata;
use super::proto::{
    DataType, ModelConfig, ModelDynamicBatching, ModelInput, ModelInstanceGroup,
    ModelMetadataResponse, ModelOutput, ModelParameter, ModelTensorReshape, ModelVersionPolicy,
    model_config, model_instance_group, model_version_policy,
};
use crate::inference::metadata::{self, TensorSpec, config_dims, triton_data_type};
use crate::model::ModelHandle;
use crate::model::spec::ModelKind;

/// Triton's model metadata of a served model.
pub fn model_metadata(model: &ModelHandle) -> ModelMetadataResponse {
    let tensors = |specs: Vec<TensorSpec>| {
        specs
            .into_iter()
            .map(|t| TensorMetadata {
                name: t.name,
                datatype: t.datatype,
                shape: t.shape,
            })
            .collect()
    };
    ModelMetadataResponse {
        name: model.spec.name.clone(),
        versions: vec![model.spec.version.clone()],
        platform: "onnxruntime_onnx".into(),
        inputs: tensors(metadata::inputs(model)),
        outputs: tensors(metadata::outputs(model)),
    }
}

/// Triton's model config of a served model. As in Triton with `max_batch_size > 0`, dims leave out the batch
/// dimension, and a [batch] tensor (the texts of a text model) is dims [1] reshaped to a scalar — the rules of the
/// HTTP config route (`inference::metadata::config_dims`).
pub fn model_config(model: &ModelHandle) -> ModelConfig {
    let spec = &model.spec;
    let batching = &spec.batching;
    let text = matches!(spec.kind, ModelKind::Text(_));
    let input = metadata::inputs(model)
        .into_iter()
        .map(|t| {
            let (dims, scalar) = config_dims(&t.shape);
            ModelInput {
                name: t.name,
                data_type: data_type(&t.datatype) as i32,
                dims,
                reshape: scalar.then(ModelTensorReshape::default),
                ..ModelInput::default()
            }
        })
        .collect();
    let output = metadata::outputs(model)
        .into_iter()
        .map(|t| {
            let (dims, scalar) = config_dims(&t.shape);
            ModelOutput {
                name: t.name,
                data_type: data_type(&t.datatype) as i32,
                dims,
                reshape: scalar.then(ModelTensorReshape::default),
                ..ModelOutput::default()
            }
        })
        .collect();
    let kind = match model.provider {
        "CUDAExecutionProvider" => model_instance_group::Kind::Gpu,
        _ => model_instance_group::Kind::Cpu,
    };
    let parameter = |value: String| ModelParameter {
        string_value: value,
    };
    let mut parameters = HashMap::from([
        ("kind".to_string(), parameter(spec.kind.name().into())),
        (
            "queue_capacity".to_string(),
            parameter(batching.queue_capacity.to_string()),
        ),
        (
            "execution_provider".to_string(),
            parameter(model.provider.into()),
        ),
    ]);
    if text {
        parameters.insert(
            "max_tokens".into(),
            parameter(batching.max_tokens.to_string()),
        );
    }
    ModelConfig {
        name: spec.name.clone(),
        platform: "onnxruntime_onnx".into(),
        backend: "onnxruntime".into(),
        version_policy: Some(ModelVersionPolicy {
            policy_choice: Some(model_version_policy::PolicyChoice::Latest(
                model_version_policy::Latest { num_versions: 1 },
            )),
        }),
        max_batch_size: i32::try_from(batching.max_batch_size).unwrap_or(i32::MAX),
        input,
        output,
        scheduling_choice: Some(model_config::SchedulingChoice::DynamicBatching(
            ModelDynamicBatching {
                max_queue_delay_microseconds: batching.max_delay_us,
                ..ModelDynamicBatching::default()
            },
        )),
        instance_group: vec![ModelInstanceGroup {
            name: spec.name.clone(),
            kind: kind as i32,
            count: i32::try_from(batching.workers).unwrap_or(i32::MAX),
            ..ModelInstanceGroup::default()
        }],
        default_model_filename: "model.onnx".into(),
        parameters,
        ..ModelConfig::default()
    }
}

/// The protobuf enum of a v2 datatype, by Triton's type name.
fn data_type(datatype: &str) -> DataType {
    DataType::from_str_name(&triton_data_type(datatype)).unwrap_or(DataType::TypeInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_dimension_is_left_out_of_config_dims() {
        assert_eq!(config_dims(&[-1, 21]), (vec![21], false));
        assert_eq!(config_dims(&[-1]), (vec![1], true));
        assert_eq!(data_type("BYTES"), DataType::TypeString);
        assert_eq!(data_type("FP32"), DataType::TypeFp32);
        assert_eq!(data_type("UINT64"), DataType::TypeUint64);
        assert_eq!(data_type("COMPLEX"), DataType::TypeInvalid);
    }
}
