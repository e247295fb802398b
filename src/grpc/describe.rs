//! A served model as Triton describes it over gRPC: model metadata (the v2 tensors) and model config (batching,
//! instance group, per-row dims).

use std::collections::HashMap;

use super::proto::model_metadata_response::TensorMetadata;
use super::proto::{
    DataType, ModelConfig, ModelDynamicBatching, ModelInput, ModelInstanceGroup,
    ModelMetadataResponse, ModelOutput, ModelParameter, ModelTensorReshape, ModelVersionPolicy,
    model_config, model_instance_group, model_version_policy,
};
use crate::inference::metadata::{self, TensorSpec};
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
/// dimension; the texts of a text model are one BYTES element per row (dims [1], reshaped to a scalar).
pub fn model_config(model: &ModelHandle) -> ModelConfig {
    let spec = &model.spec;
    let batching = &spec.batching;
    let text = matches!(spec.kind, ModelKind::Text(_));
    let input = metadata::inputs(model)
        .into_iter()
        .map(|t| ModelInput {
            name: t.name,
            data_type: data_type(&t.datatype) as i32,
            dims: if text { vec![1] } else { per_row(&t.shape) },
            reshape: text.then(ModelTensorReshape::default),
            ..ModelInput::default()
        })
        .collect();
    let output = metadata::outputs(model)
        .into_iter()
        .map(|t| ModelOutput {
            name: t.name,
            data_type: data_type(&t.datatype) as i32,
            dims: per_row(&t.shape),
            ..ModelOutput::default()
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

/// A v2 shape without its leading batch dimension.
fn per_row(shape: &[i64]) -> Vec<i64> {
    shape.get(1..).unwrap_or_default().to_vec()
}

/// Triton's config data type of a v2 datatype name.
fn data_type(datatype: &str) -> DataType {
    match datatype {
        "BOOL" => DataType::TypeBool,
        "UINT8" => DataType::TypeUint8,
        "UINT16" => DataType::TypeUint16,
        "UINT32" => DataType::TypeUint32,
        "UINT64" => DataType::TypeUint64,
        "INT8" => DataType::TypeInt8,
        "INT16" => DataType::TypeInt16,
        "INT32" => DataType::TypeInt32,
        "INT64" => DataType::TypeInt64,
        "FP16" => DataType::TypeFp16,
        "FP32" => DataType::TypeFp32,
        "FP64" => DataType::TypeFp64,
        "BYTES" => DataType::TypeString,
        "BF16" => DataType::TypeBf16,
        _ => DataType::TypeInvalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_dimension_is_left_out_of_config_dims() {
        assert_eq!(per_row(&[-1, 21]), vec![21]);
        assert_eq!(per_row(&[-1]), Vec::<i64>::new());
        assert_eq!(data_type("BYTES"), DataType::TypeString);
        assert_eq!(data_type("FP32"), DataType::TypeFp32);
    }
}
