//! `crmscore inspect-model`: what the ONNX graph declares, and how it matches the manifest.

use std::fmt::Write;

use crate::config::InspectArgs;
use crate::model::catalogue::Catalogue;
use crate::model::session::{self, SessionOptions, TensorInfo};
use crate::model::spec::ModelKind;
use crate::model::{ModelError, ModelSpec, runtime};

/// Prints the report; Ok(false) when the graph and manifest disagree.
pub fn run(args: &InspectArgs) -> Result<bool, ModelError> {
    runtime::environment(args.onnxruntime_lib.as_deref())?;
    let mut spec = ModelSpec::load(&args.model_dir)?;
    let options = SessionOptions::cpu(1);
    let open = session::open(&spec, &options)?;
    let (inputs, outputs) = (
        session::inputs(&open.session),
        session::outputs(&open.session),
    );
    session::adopt_token_types(&mut spec, &inputs);
    let items = match &spec.kind {
        ModelKind::Recommender(r) => Catalogue::load(&r.items).map(|c| c.len()).unwrap_or(0),
        _ => 0,
    };
    let problems = session::io_problems(&spec, &inputs, &outputs, items);
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
    let role = |name: &str| match &spec.kind {
        ModelKind::Tabular(t) if name == t.input => {
            format!("<- manifest input, {} features", t.features.len())
        }
        ModelKind::Tabular(t) if name == t.output => {
            format!("<- manifest output, labels {:?}", t.labels)
        }
        ModelKind::Recommender(r) if name == r.input => {
            format!("<- manifest input, {} features", r.features.len())
        }
        ModelKind::Recommender(r) if name == r.output => {
            "<- manifest output, one score per catalogue item".into()
        }
        ModelKind::Segmentation(g) if name == g.input => {
            format!("<- manifest input, {} features", g.features.len())
        }
        ModelKind::Segmentation(g) if name == g.output => {
            format!(
                "<- manifest output, distance to {} segments",
                g.segments.len()
            )
        }
        ModelKind::Text(t) if [&t.input_ids, &t.attention_mask].contains(&&name.to_string()) => {
            "<- token input (from tokenizer.json)".into()
        }
        ModelKind::Text(t)
            if t.token_type_ids.as_deref() == Some(name) || name == "token_type_ids" =>
        {
            "<- token types (zeros)".into()
        }
        ModelKind::Text(t) if name == t.output => {
            format!("<- manifest output, labels {:?}", t.labels)
        }
        _ => "(not used)".to_string(),
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
