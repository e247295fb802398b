//! One ONNX Runtime session: execution provider choice, the check of its inputs/outputs against the manifest, and
//! running a batch.

use std::path::Path;

use ort::ep::{self, ExecutionProvider};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::spec::{ModelKind, ModelSpec};
use super::{ModelError, runtime};
use crate::config::Device;

/// How sessions are built, shared by every model of a server.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Where inference runs.
    pub device: Device,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
}

/// The name and type of one graph input or output, for metadata and checks.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name in the graph.
    pub name: String,
    /// KServe v2 datatype (`FP32`, `INT64`, `BYTES`, ...), or the value kind for non-tensors.
    pub datatype: String,
    /// Dimensions, -1 where dynamic.
    pub shape: Vec<i64>,
}

impl TensorInfo {
    fn of(name: &str, ty: &ValueType) -> TensorInfo {
        match ty {
            ValueType::Tensor { ty, shape, .. } => TensorInfo {
                name: name.to_string(),
                datatype: v2_datatype(*ty),
                shape: shape.to_vec(),
            },
            other => TensorInfo {
                name: name.to_string(),
                datatype: format!("{other:?}"),
                shape: Vec::new(),
            },
        }
    }
}

/// The KServe v2 name of an ONNX element type.
pub fn v2_datatype(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Bool => "BOOL",
        TensorElementType::Uint8 => "UINT8",
        TensorElementType::Uint16 => "UINT16",
        TensorElementType::Uint32 => "UINT32",
        TensorElementType::Uint64 => "UINT64",
        TensorElementType::Int8 => "INT8",
        TensorElementType::Int16 => "INT16",
        TensorElementType::Int32 => "INT32",
        TensorElementType::Int64 => "INT64",
        TensorElementType::Float16 => "FP16",
        TensorElementType::Float32 => "FP32",
        TensorElementType::Float64 => "FP64",
        TensorElementType::Bfloat16 => "BF16",
        TensorElementType::String => "BYTES",
        other => return other.to_string(),
    }
    .to_string()
}

/// An open session and which execution provider it runs on.
pub struct OpenSession {
    /// The ORT session (its `run` needs `&mut`, so each batching worker owns one).
    pub session: Session,
    /// "CUDAExecutionProvider" or "CPUExecutionProvider".
    pub provider: &'static str,
}

/// Opens `spec`'s ONNX file on the requested device.
pub fn open(spec: &ModelSpec, options: &SessionOptions) -> Result<OpenSession, ModelError> {
    let env = runtime::environment(None)?;
    let rt = |message: String| ModelError::Runtime {
        model: spec.name.clone(),
        message,
    };
    let mut builder = Session::builder(env)
        .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
        .and_then(|b| Ok(b.with_intra_threads(options.intra_threads.max(1))?))
        .and_then(|b| Ok(b.with_inter_threads(1)?))
        .map_err(|e| rt(e.to_string()))?;
    let provider = match options.device {
        Device::Cpu => "CPUExecutionProvider",
        Device::Auto | Device::Cuda => match register_cuda(&mut builder) {
            Ok(()) => "CUDAExecutionProvider",
            Err(reason) if options.device == Device::Cuda => {
                return Err(rt(format!(
                    "--device cuda was asked for but CUDA cannot be used: {reason}"
                )));
            }
            Err(reason) => {
                tracing::info!(model = %spec.name, %reason, "CUDA not used; running on CPU");
                "CPUExecutionProvider"
            }
        },
    };
    let path = spec.onnx_path();
    if !path.is_file() {
        return Err(ModelError::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "model.onnx is missing"),
        });
    }
    let session = builder
        .commit_from_file(&path)
        .map_err(|e| rt(format!("cannot load {}: {e}", path.display())))?;
    Ok(OpenSession { session, provider })
}

/// Registers CUDA, loading its libraries from beside ONNX Runtime when they are there (setup-onnxruntime.sh --gpu).
fn register_cuda(builder: &mut ort::session::builder::SessionBuilder) -> Result<(), String> {
    let lib_dir = runtime::library_path()
        .and_then(Path::parent)
        .ok_or("ONNX Runtime library path unknown")?;
    if !lib_dir.join("libonnxruntime_providers_cuda.so").is_file() {
        return Err(format!(
            "this ONNX Runtime build has no CUDA provider ({} lacks libonnxruntime_providers_cuda.so; \
             run scripts/setup-onnxruntime.sh --gpu)",
            lib_dir.display()
        ));
    }
    for lib in ep::cuda::CUDA_DYLIBS.iter().chain(ep::cuda::CUDNN_DYLIBS) {
        let local = lib_dir.join(lib);
        // Missing here is fine: the system loader may still find them (LD_LIBRARY_PATH, a CUDA install).
        if local.is_file() {
            ort::util::preload_dylib(&local)
                .map_err(|e| format!("cannot load {}: {e}", local.display()))?;
        }
    }
    ep::CUDA::default()
        .register(builder)
        .map_err(|e| format!("CUDA execution provider failed to register: {e}"))
}

/// The graph's inputs, described.
pub fn inputs(session: &Session) -> Vec<TensorInfo> {
    session
        .inputs()
        .iter()
        .map(|o| TensorInfo::of(o.name(), o.dtype()))
        .collect()
}

/// The graph's outputs, described.
pub fn outputs(session: &Session) -> Vec<TensorInfo> {
    session
        .outputs()
        .iter()
        .map(|o| TensorInfo::of(o.name(), o.dtype()))
        .collect()
}

/// Every way the graph differs from what the manifest promises; empty when they agree.
pub fn io_problems(spec: &ModelSpec, inputs: &[TensorInfo], outputs: &[TensorInfo]) -> Vec<String> {
    let mut problems = Vec::new();
    match &spec.kind {
        ModelKind::Tabular(t) => {
            expect_matrix(
                &mut problems,
                "input",
                &t.input,
                inputs,
                t.features.len(),
                "features",
            );
            expect_matrix(
                &mut problems,
                "output",
                &t.output,
                outputs,
                t.labels.len(),
                "labels",
            );
            for extra in inputs.iter().filter(|i| i.name != t.input) {
                problems.push(format!(
                    "the graph has input '{}' that a tabular model cannot feed (only '{}' is fed)",
                    extra.name, t.input
                ));
            }
        }
    }
    problems
}

/// Checks a float32 [batch, width] tensor named `name` among `tensors`.
fn expect_matrix(
    problems: &mut Vec<String>,
    role: &str,
    name: &str,
    tensors: &[TensorInfo],
    width: usize,
    width_of: &str,
) {
    let Some(t) = tensors.iter().find(|t| t.name == name) else {
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        problems.push(format!(
            "{role} tensor '{name}' is not in the graph (it has {names:?})"
        ));
        return;
    };
    if t.datatype != "FP32" {
        problems.push(format!(
            "{role} '{name}' has element type {}, expected FP32",
            t.datatype
        ));
    }
    if t.shape.len() != 2 {
        problems.push(format!(
            "{role} '{name}' has shape {:?} (rank {}), expected [batch, {width}]",
            t.shape,
            t.shape.len()
        ));
    } else if t.shape[1] >= 0 && t.shape[1] as usize != width {
        problems.push(format!(
            "{role} '{name}' has {} columns but the manifest lists {width} {width_of}",
            t.shape[1]
        ));
    }
}

/// Runs a tabular session on `n` rows of `rows` (row-major), appending the [n, labels] output to `out`.
pub fn run_tabular(
    session: &mut Session,
    input: &str,
    output: &str,
    rows: &[f32],
    n: usize,
    out: &mut Vec<f32>,
) -> Result<(), String> {
    let width = rows.len().checked_div(n).unwrap_or(0);
    let tensor = TensorRef::from_array_view(([n, width], rows)).map_err(|e| e.to_string())?;
    let outputs = session
        .run(ort::inputs![input => tensor])
        .map_err(|e| e.to_string())?;
    let value = outputs
        .get(output)
        .ok_or_else(|| format!("output '{output}' missing from the run"))?;
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| e.to_string())?;
    if shape.first().copied() != Some(n as i64) {
        return Err(format!(
            "output '{output}' has shape {shape:?} for {n} input rows"
        ));
    }
    out.extend_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, datatype: &str, shape: &[i64]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn reports_each_difference_by_tensor() {
        let spec = ModelSpec::parse(
            "churn",
            Path::new("m"),
            "kind='tabular'\ninput='features'\noutput='probabilities'\nlabels=['a','b']\nfeatures=['x','y','z']\n",
        )
        .unwrap();
        let f32_name = "FP32";
        let good_in = [info("features", f32_name, &[-1, 3])];
        let good_out = [
            info("label", "INT64", &[-1]),
            info("probabilities", f32_name, &[-1, 2]),
        ];
        assert!(io_problems(&spec, &good_in, &good_out).is_empty());

        let bad_in = [
            info("features", "FP64", &[-1, 4]),
            info("mask", f32_name, &[-1, 3]),
        ];
        let bad_out = [info("probs", f32_name, &[-1, 2])];
        let problems = io_problems(&spec, &bad_in, &bad_out).join("\n");
        for want in [
            "element type FP64",
            "4 columns but the manifest lists 3 features",
            "'mask'",
            "'probabilities' is not in the graph",
        ] {
            assert!(problems.contains(want), "{problems}\nshould mention {want}");
        }
    }
}
