//! `crmscore inspect-model`: what the ONNX graph declares, and how it matches the manifest.

use std::fmt::Write;

use crate::config::{Device, InspectArgs};
use crate::model::session::{self, SessionOptions, TensorInfo};
use crate::model::spec::ModelKind;
use crate::model::{ModelError, ModelSpec, runtime};

/// Prints the report; Ok(false) when the graph and manifest disagree.
pub fn run(args: &InspectArgs) -> Result<bool, ModelError> {
    runtime::environment(args.onnxruntime_lib.as_deref())?;
    let spec = ModelSpec::load(&args.model_dir)?;
    let options = SessionOptions {
        device: Device::Cpu,
        intra_threads: 1,
    };
    let open = session::open(&spec, &options)?;
    let (inputs, outputs) = (
        session::inputs(&open.session),
        session::outputs(&open.session),
    );
    let problems = session::io_problems(&spec, &inputs, &outputs);
    print!("{}", report(&spec, &inputs, &outputs, &problems));
    Ok(problems.is_empty())
}

/// The human-readable report (split out so tests can check it without a terminal).
pub fn report(
    spec: &ModelSpec,
    inputs: &[TensorInfo],
    outputs: &[TensorInfo],
    problems: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model    {} (version {}, kind {})",
        spec.name,
        spec.version,
        spec.kind.name()
    );
    let _ = writeln!(out, "file     {}", spec.onnx_path().display());
    let ModelKind::Tabular(t) = &spec.kind;
    let role = |name: &str| {
        if name == t.input {
            format!("<- manifest input, {} features", t.features.len())
        } else if name == t.output {
            format!("<- manifest output, labels {:?}", t.labels)
        } else {
            "(not used)".to_string()
        }
    };
    for (title, tensors) in [("inputs", inputs), ("outputs", outputs)] {
        let _ = writeln!(out, "{title}:");
        for t in tensors {
            let _ = writeln!(
                out,
                "  {:<20} {:<6} {:?}  {}",
                t.name,
                t.datatype,
                t.shape,
                role(&t.name)
            );
        }
    }
    if problems.is_empty() {
        let _ = writeln!(out, "match    OK: the graph matches model.toml");
    } else {
        let _ = writeln!(out, "match    MISMATCH:");
        for p in problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    out
}
