//! Explanations checked against an independent implementation (scripts/make_explain_fixtures.py: shap's
//! TreeExplainer and a direct per-leaf enumeration, margins from ONNX Runtime): TreeSHAP read from every tree
//! fixture graph with covers counted over tests/fixtures/explain/data.parquet, the shipped churn model with covers
//! over the sample snapshot, refusals of non-tree graphs, and the sampling estimator's reference row.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::{Array, Float32Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use crmscore::explain::{ExplainError, TreeModel, TreeShap, reference_row, reference_sample};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;
use serde_json::Value;

/// The brief's tolerance for margins, base values and contributions.
const TOL: f64 = 1e-4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/explain")
}

/// The manifest fields the explanation needs.
#[derive(Deserialize)]
struct Manifest {
    features: Vec<String>,
    labels: Vec<String>,
    positive_label: String,
    missing: String,
}

impl Manifest {
    fn load(dir: &Path) -> Manifest {
        let text = std::fs::read_to_string(dir.join("model.toml")).expect("manifest");
        toml::from_str(&text).expect("manifest parses")
    }

    fn positive(&self) -> usize {
        self.labels
            .iter()
            .position(|l| *l == self.positive_label)
            .expect("positive label listed")
    }

    /// The row the server feeds the model: nulls stay NaN, or become 0 under `missing = "zero"`.
    fn apply_missing(&self, rows: &mut [f32]) {
        if self.missing == "zero" {
            rows.iter_mut()
                .filter(|v| v.is_nan())
                .for_each(|v| *v = 0.0);
        }
    }
}

/// Customer ids (as text) and the `features` columns as float32, row-major, nulls as NaN.
fn read_table(path: &Path, features: &[String]) -> (Vec<String>, Vec<f32>) {
    let file = File::open(path).expect("parquet file");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet footer");
    let wanted: Vec<&str> = std::iter::once("customer_id")
        .chain(features.iter().map(String::as_str))
        .collect();
    let mask = ProjectionMask::columns(builder.parquet_schema(), wanted.iter().copied());
    let reader = builder.with_projection(mask).build().expect("reader");
    let (mut ids, mut rows) = (Vec::new(), Vec::new());
    for batch in reader {
        let batch: RecordBatch = batch.expect("batch");
        let id = batch.column_by_name("customer_id").expect("customer_id");
        let id = arrow_cast::cast(id, &DataType::Utf8).expect("ids as text");
        let id = id.as_any().downcast_ref::<StringArray>().expect("utf8");
        let columns: Vec<Float32Array> = features
            .iter()
            .map(|f| {
                let col = batch
                    .column_by_name(f)
                    .unwrap_or_else(|| panic!("column {f}"));
                let col = arrow_cast::cast(col, &DataType::Float32).expect("float32");
                col.as_any()
                    .downcast_ref::<Float32Array>()
                    .expect("float32")
                    .clone()
            })
            .collect();
        for r in 0..batch.num_rows() {
            ids.push(id.value(r).to_string());
            rows.extend(
                columns
                    .iter()
                    .map(|c| if c.is_null(r) { f32::NAN } else { c.value(r) }),
            );
        }
    }
    (ids, rows)
}

fn close(what: &str, got: f64, want: f64, tol: f64, worst: &mut f64) {
    let diff = (got - want).abs();
    *worst = worst.max(diff);
    assert!(
        diff <= tol,
        "{what}: got {got}, want {want} (|diff| {diff:.2e})"
    );
}

/// Checks one TreeSHAP record (expected.json model entry or the churn file) and returns the largest difference.
fn check_tree_record(name: &str, dir: &Path, data: &Path, record: &Value) -> f64 {
    let manifest = Manifest::load(dir);
    let width = manifest.features.len();
    let model = TreeModel::from_onnx_file(
        &dir.join("model.onnx"),
        width,
        manifest.labels.len(),
        manifest.positive(),
    )
    .unwrap_or_else(|e| panic!("{}", e.for_model(name)));
    assert_eq!(
        model.space().as_str(),
        record["space"].as_str().expect("space"),
        "{name}: space"
    );
    let (ids, mut rows) = read_table(data, &manifest.features);
    manifest.apply_missing(&mut rows);
    let shap = TreeShap::new(&model, rows.chunks_exact(width)).expect("covers");
    assert_eq!(shap.reference_rows(), ids.len());
    let mut worst = 0.0f64;
    let base = shap.base_value();
    close(
        &format!("{name} base_value"),
        base,
        record["base_value"].as_f64().expect("base"),
        TOL,
        &mut worst,
    );
    let expected_rows = record["rows"].as_array().expect("rows");
    assert!(!expected_rows.is_empty(), "{name}: no rows to check");
    for want in expected_rows {
        let id = want["customer_id"].as_str().expect("customer_id");
        let at = ids
            .iter()
            .position(|i| i == id)
            .unwrap_or_else(|| panic!("{name}: customer {id} not in data"));
        let row = &rows[at * width..][..width];
        let margin = model.margin(row).expect("width");
        let who = format!("{name} {id}");
        close(
            &format!("{who} margin"),
            margin,
            want["margin"].as_f64().expect("margin"),
            TOL,
            &mut worst,
        );
        if let Some(output) = model.output_of_margin(margin) {
            close(
                &format!("{who} output"),
                output,
                want["output"].as_f64().expect("output"),
                1e-5,
                &mut worst,
            );
        }
        let mut phi = vec![0.0; width];
        shap.explain(row, &mut phi).expect("explains");
        close(
            &format!("{who} additivity"),
            base + phi.iter().sum::<f64>(),
            margin,
            TOL,
            &mut worst,
        );
        let contributions = want["contributions"].as_array().expect("contributions");
        assert_eq!(contributions.len(), width, "{who}: contribution count");
        for (j, c) in contributions.iter().enumerate() {
            let feature = &manifest.features[j];
            close(
                &format!("{who} {feature}"),
                phi[j],
                c.as_f64().expect("number"),
                TOL,
                &mut worst,
            );
        }
    }
    worst
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json"))
        .expect("tests/fixtures/explain/expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

#[test]
fn tree_fixtures_match_shap() {
    let expected = expected();
    let models = expected["models"].as_object().expect("models");
    let data = fixtures().join("data.parquet");
    let mut checked = Vec::new();
    for (name, record) in models {
        if record["method"] == "tree_shap" {
            let worst =
                check_tree_record(name, &fixtures().join("models").join(name), &data, record);
            checked.push(format!("{name} {worst:.1e}"));
        }
    }
    // Every flavour the generator documents: sklearn GB/HGB/RF, LightGBM, XGBoost, a regressor, opset-5.
    assert!(checked.len() >= 7, "tree fixtures checked: {checked:?}");
    eprintln!("largest |diff| per model: {}", checked.join(", "));
}

#[test]
fn churn_model_matches_shap() {
    let path = root().join("tests/fixtures/churn_explain_expected.json");
    let text = std::fs::read_to_string(&path).expect("tests/fixtures/churn_explain_expected.json");
    let record: Value = serde_json::from_str(&text).expect("parses");
    assert_eq!(record["method"], "tree_shap");
    let worst = check_tree_record(
        "churn",
        &root().join("models/churn"),
        &root().join("snapshots/customers-sample.parquet"),
        &record,
    );
    eprintln!("churn: largest |diff| {worst:.1e}");
}

#[test]
fn non_tree_graphs_are_refused_with_a_reason() {
    for name in ["logreg", "mlp"] {
        let dir = fixtures().join("models").join(name);
        let manifest = Manifest::load(&dir);
        let err = TreeModel::from_onnx_file(
            &dir.join("model.onnx"),
            manifest.features.len(),
            manifest.labels.len(),
            manifest.positive(),
        )
        .expect_err("not a tree ensemble");
        assert!(matches!(err, ExplainError::Unsupported(_)), "{err:?}");
        let message = err.for_model(name);
        assert!(
            message.starts_with(&format!("model '{name}' cannot be explained by TreeSHAP: ")),
            "{message}"
        );
    }
    let err = TreeModel::from_onnx_bytes(b"not a model", 8, 2, 1).expect_err("garbage");
    assert!(
        err.to_string().contains("cannot be explained by TreeSHAP"),
        "{err}"
    );
}

#[test]
fn sampling_reference_row_matches_fixture() {
    let expected = expected();
    let data = fixtures().join("data.parquet");
    for (name, record) in expected["models"].as_object().expect("models") {
        if record["method"] != "sampling" {
            continue;
        }
        let manifest = Manifest::load(&fixtures().join("models").join(name));
        let width = manifest.features.len();
        let (ids, rows) = read_table(&data, &manifest.features);
        let picked = reference_sample(ids.len(), 100_000, 1);
        assert_eq!(picked.len(), ids.len(), "300 rows are all used");
        // Lower medians of the non-null values, then the manifest's missing policy.
        let mut reference =
            reference_row(picked.iter().map(|&i| &rows[i * width..][..width]), width);
        manifest.apply_missing(&mut reference);
        let want = record["reference"].as_array().expect("reference");
        assert_eq!(want.len(), width);
        for (j, w) in want.iter().enumerate() {
            assert_eq!(
                f64::from(reference[j]),
                w.as_f64().expect("number"),
                "{name} {}",
                manifest.features[j]
            );
        }
    }
}
