//! One ONNX Runtime session: execution provider choice, the check of its inputs/outputs against the manifest, and
//! running a batch.

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session};
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::cuda::{self, CudaOptions};
use super::spec::{ModelDevice, ModelKind, ModelSpec};
use super::{ModelError, runtime};
use crate::config::Device;

/// How sessions are built, shared by every model of a server.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Where inference runs.
    pub device: Device,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// CUDA provider settings, used when the device is CUDA or auto.
    pub cuda: CudaOptions,
}

impl SessionOptions {
    /// CPU sessions with `intra_threads` threads each (tools and batch scoring).
    pub fn cpu(intra_threads: usize) -> SessionOptions {
        SessionOptions {
            device: Device::Cpu,
            intra_threads,
            cuda: CudaOptions::default(),
        }
    }
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
            // ONNX Runtime's own spelling, e.g. "Sequence<Map<i64, f32>>".
            other => TensorInfo {
                name: name.to_string(),
                datatype: other.to_string(),
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
    let builder = || {
        Session::builder(env)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
            .and_then(|b| Ok(b.with_intra_threads(options.intra_threads.max(1))?))
            .and_then(|b| Ok(b.with_inter_threads(1)?))
            .map_err(|e| rt(e.to_string()))
    };
    let path = spec.onnx_path();
    if !path.is_file() {
        return Err(ModelError::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "model.onnx is missing"),
        });
    }
    let commit = |mut b: ort::session::builder::SessionBuilder| {
        b.commit_from_file(&path)
            .map_err(|e| format!("cannot load {}: {e}", path.display()))
    };
    let cpu = || {
        commit(builder()?).map_err(rt).map(|session| OpenSession {
            session,
            provider: "CPUExecutionProvider",
        })
    };
    // A server decides auto once at start (cuda::decide); a caller that passes it here gets the same decision.
    let device = match options.device {
        Device::Auto => cuda::decide(Device::Auto, &options.cuda).map_err(rt)?,
        device => device,
    };
    if device == Device::Cpu || spec.device == ModelDevice::Cpu {
        return cpu();
    }
    let mut b = builder()?;
    // CUDA problems show up in two places: registering (libraries) and committing (no GPU, old driver, no memory).
    let reason = match cuda::register(&mut b, &options.cuda) {
        Ok(()) => match commit(b) {
            Ok(session) => {
                return Ok(OpenSession {
                    session,
                    provider: "CUDAExecutionProvider",
                });
            }
            Err(e) => cuda::explain_failure(&e),
        },
        Err(reason) => reason,
    };
    Err(rt(format!(
        "--device cuda was asked for but CUDA cannot be used: {reason}"
    )))
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

/// A Hugging Face export has a `token_type_ids` input: feed it zeros even when the manifest does not name it.
pub fn adopt_token_types(spec: &mut ModelSpec, inputs: &[TensorInfo]) {
    if let ModelKind::Text(t) = &mut spec.kind
        && t.token_type_ids.is_none()
        && inputs.iter().any(|i| i.name == "token_type_ids")
    {
        t.token_type_ids = Some("token_type_ids".into());
    }
}

/// Every way the graph differs from what the manifest promises; empty when they agree. `items` is the catalogue
/// size of a recommender (its output width).
pub fn io_problems(
    spec: &ModelSpec,
    inputs: &[TensorInfo],
    outputs: &[TensorInfo],
    items: usize,
) -> Vec<String> {
    let mut problems: Vec<String> = outputs.iter().filter_map(zipmap_problem).collect();
    let fed: Vec<&str> = match &spec.kind {
        ModelKind::Tabular(t) => {
            expect_matrix(
                &mut problems,
                "input",
                &t.input,
                inputs,
                "FP32",
                t.features.len(),
                "features",
            );
            expect_matrix(
                &mut problems,
                "output",
                &t.output,
                outputs,
                "FP32",
                t.labels.len(),
                "labels",
            );
            vec![t.input.as_str()]
        }
        ModelKind::Recommender(r) => {
            expect_matrix(
                &mut problems,
                "input",
                &r.input,
                inputs,
                "FP32",
                r.features.len(),
                "features",
            );
            expect_matrix(
                &mut problems,
                "output",
                &r.output,
                outputs,
                "FP32",
                items,
                "catalogue items",
            );
            vec![r.input.as_str()]
        }
        ModelKind::Segmentation(g) => {
            expect_matrix(
                &mut problems,
                "input",
                &g.input,
                inputs,
                "FP32",
                g.features.len(),
                "features",
            );
            expect_matrix(
                &mut problems,
                "output",
                &g.output,
                outputs,
                "FP32",
                g.segments.len(),
                "segments",
            );
            vec![g.input.as_str()]
        }
        ModelKind::Text(t) => {
            let mut fed = vec![t.input_ids.as_str(), t.attention_mask.as_str()];
            fed.extend(t.token_type_ids.as_deref());
            for name in &fed {
                expect_sequence(&mut problems, name, inputs);
            }
            expect_matrix(
                &mut problems,
                "output",
                &t.output,
                outputs,
                "FP32",
                t.labels.len(),
                "labels",
            );
            fed
        }
    };
    for extra in inputs.iter().filter(|i| !fed.contains(&i.name.as_str())) {
        problems.push(format!(
            "the graph has input '{}' that a {} model cannot feed (fed: {fed:?})",
            extra.name,
            spec.kind.name()
        ));
    }
    problems
}

/// A sequence-of-maps output is scikit-learn's ZipMap (probabilities as one {label: p} map per row), which the
/// server cannot read: say how to export without it.
fn zipmap_problem(output: &TensorInfo) -> Option<String> {
    output.datatype.starts_with("Sequence<Map<").then(|| {
        format!(
            "output '{}' is a sequence of maps ({}), scikit-learn's ZipMap; export the model with \
             options={{id(model): {{\"zipmap\": False}}}} (skl2onnx) so probabilities come as a float tensor",
            output.name, output.datatype
        )
    })
}

/// Options asking a run for `output` only: ONNX Runtime then skips what only the other outputs need (e.g. the label
/// of a classifier export).
fn only_output(output: &str) -> Result<RunOptions<HasSelectedOutputs>, String> {
    RunOptions::new()
        .map(|o| o.with_outputs(OutputSelector::no_default().with(output)))
        .map_err(|e| e.to_string())
}

/// Checks an int64 [batch, sequence] token input.
fn expect_sequence(problems: &mut Vec<String>, name: &str, tensors: &[TensorInfo]) {
    let Some(t) = tensors.iter().find(|t| t.name == name) else {
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        problems.push(format!(
            "input tensor '{name}' is not in the graph (it has {names:?})"
        ));
        return;
    };
    if t.datatype != "INT64" {
        problems.push(format!(
            "input '{name}' has element type {}, expected INT64",
            t.datatype
        ));
    }
    if t.shape.len() != 2 {
        problems.push(format!(
            "input '{name}' has shape {:?}, expected [batch, sequence]",
            t.shape
        ));
    }
}

/// Checks a [batch, width] tensor of `datatype` named `name` among `tensors`.
fn expect_matrix(
    problems: &mut Vec<String>,
    role: &str,
    name: &str,
    tensors: &[TensorInfo],
    datatype: &str,
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
    if t.datatype != datatype {
        problems.push(format!(
            "{role} '{name}' has element type {}, expected {datatype}",
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

/// The names of a text model's token inputs.
#[derive(Debug, Clone)]
pub struct TokenInputs {
    /// Token ids.
    pub input_ids: String,
    /// 1 for tokens, 0 for padding.
    pub attention_mask: String,
    /// Segment ids, all 0 (BERT-style exports have it).
    pub token_type_ids: Option<String>,
}

/// Runs a text session on sequences padded to the longest of them, appending [n, labels] logits to `out`.
pub fn run_text(
    session: &mut Session,
    names: &TokenInputs,
    output: &str,
    sequences: &[&[i64]],
    out: &mut Vec<f32>,
) -> Result<(), String> {
    let n = sequences.len();
    let longest = sequences.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
    let mut ids = vec![0_i64; n * longest];
    let mut mask = vec![0_i64; n * longest];
    for (row, seq) in sequences.iter().enumerate() {
        ids[row * longest..row * longest + seq.len()].copy_from_slice(seq);
        mask[row * longest..row * longest + seq.len()].fill(1);
    }
    let types = vec![
        0_i64;
        if names.token_type_ids.is_some() {
            n * longest
        } else {
            0
        }
    ];
    let err = |e: ort::Error| e.to_string();
    let mut inputs = ort::inputs![
        names.input_ids.as_str() => TensorRef::from_array_view(([n, longest], ids.as_slice())).map_err(err)?,
        names.attention_mask.as_str() => TensorRef::from_array_view(([n, longest], mask.as_slice())).map_err(err)?,
    ];
    if let Some(name) = &names.token_type_ids {
        let tensor = TensorRef::from_array_view(([n, longest], types.as_slice())).map_err(err)?;
        inputs.push((name.as_str().into(), tensor.into()));
    }
    let options = only_output(output)?;
    let outputs = session.run_with_options(inputs, &options).map_err(err)?;
    let value = outputs
        .get(output)
        .ok_or_else(|| format!("output '{output}' missing from the run"))?;
    let (shape, data) = value.try_extract_tensor::<f32>().map_err(err)?;
    if shape.first().copied() != Some(n as i64) {
        return Err(format!(
            "output '{output}' has shape {shape:?} for {n} texts"
        ));
    }
    out.extend_from_slice(data);
    Ok(())
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
    let options = only_output(output)?;
    let outputs = session
        .run_with_options(ort::inputs![input => tensor], &options)
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
    use std::path::Path;

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
        assert!(io_problems(&spec, &good_in, &good_out, 0).is_empty());

        let bad_in = [
            info("features", "FP64", &[-1, 4]),
            info("mask", f32_name, &[-1, 3]),
        ];
        let bad_out = [info("probs", f32_name, &[-1, 2])];
        let problems = io_problems(&spec, &bad_in, &bad_out, 0).join("\n");
        for want in [
            "element type FP64",
            "4 columns but the manifest lists 3 features",
            "'mask'",
            "'probabilities' is not in the graph",
        ] {
            assert!(problems.contains(want), "{problems}\nshould mention {want}");
        }
    }

    #[test]
    fn zipmap_outputs_are_refused_with_the_export_option() {
        let spec = ModelSpec::parse(
            "churn",
            Path::new("m"),
            "kind='tabular'\ninput='features'\noutput='probabilities'\nlabels=['a','b']\nfeatures=['x']\n",
        )
        .unwrap();
        let zipmap = ValueType::Sequence(Box::new(ValueType::Map {
            key: TensorElementType::Int64,
            value: TensorElementType::Float32,
        }));
        let outputs = [
            info("output_label", "INT64", &[-1]),
            TensorInfo::of("output_probability", &zipmap),
        ];
        assert_eq!(outputs[1].datatype, "Sequence<Map<i64, f32>>");
        let problems = io_problems(&spec, &[info("features", "FP32", &[-1, 1])], &outputs, 0);
        let first = problems.first().map(String::as_str).unwrap_or_default();
        assert!(
            first.contains("'output_probability'")
                && first.contains("ZipMap")
                && first.contains(r#"options={id(model): {"zipmap": False}}"#),
            "{problems:?}"
        );
    }
}
