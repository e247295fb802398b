//! The model manifest (`models/<name>/model.toml`): what the server needs to know beyond the ONNX graph.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ModelError;

/// Parsed and checked `model.toml`.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Model name (the folder name), used in routes.
    pub name: String,
    /// Version string reported in replies and metadata.
    pub version: String,
    /// Human description.
    pub description: String,
    /// The model folder.
    pub dir: PathBuf,
    /// What kind of model this is and its kind-specific settings.
    pub kind: ModelKind,
    /// Queue and batch settings.
    pub batching: Batching,
    /// Free-form metadata (training metrics and the like), shown in model metadata.
    pub metadata: toml::Table,
    /// What each feature means, for people reading explanations (`[feature_info.<name>]`).
    pub feature_info: BTreeMap<String, FeatureInfo>,
    /// Where the model may run: `any` (the server's --device) or `cpu` (small tree ensembles: a GPU only adds
    /// transfer time).
    pub device: ModelDevice,
}

/// A manifest's `device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelDevice {
    /// Wherever the server's --device says.
    #[default]
    Any,
    /// On the CPU even when the server runs others on CUDA.
    Cpu,
}

/// A feature's human description and unit.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureInfo {
    /// What the feature measures, in words a call-centre agent understands.
    #[serde(default)]
    pub description: String,
    /// Its unit, if any (months, EUR, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// The kinds of model the server knows how to feed and read.
#[derive(Debug, Clone)]
pub enum ModelKind {
    /// Float features → class probabilities.
    Tabular(TabularSpec),
    /// Customer features → a score per catalogue item; top-k chosen in Rust.
    Recommender(RecommenderSpec),
    /// Text → tokens → class logits (a Hugging Face sequence-classification export).
    Text(TextSpec),
    /// Float features → distance to each segment's centre; the nearest segment is the customer's.
    Segmentation(SegmentationSpec),
}

impl ModelKind {
    /// The manifest's name for this kind.
    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::Tabular(_) => "tabular",
            ModelKind::Recommender(_) => "recommender",
            ModelKind::Text(_) => "text",
            ModelKind::Segmentation(_) => "segmentation",
        }
    }
}

/// Settings of a recommender.
#[derive(Debug, Clone)]
pub struct RecommenderSpec {
    /// ONNX input tensor: float32 [batch, features].
    pub input: String,
    /// ONNX output tensor: float32 [batch, items].
    pub output: String,
    /// Snapshot columns, in input tensor order.
    pub features: Vec<String>,
    /// How a null feature becomes model input.
    pub missing: MissingPolicy,
    /// The item catalogue (Parquet: item_id, and optional name, category, price_band, popularity), one row per
    /// output column.
    pub items: PathBuf,
    /// Snapshot list column with the item ids each customer owns.
    pub owned_column: Option<String>,
    /// Largest k a request may ask for.
    pub max_k: usize,
}

/// Settings of a segmentation (clustering) model.
#[derive(Debug, Clone)]
pub struct SegmentationSpec {
    /// ONNX input tensor: float32 [batch, features].
    pub input: String,
    /// ONNX output tensor: float32 [batch, segments], distance to each segment's centre (smaller is closer).
    pub output: String,
    /// Snapshot columns, in input tensor order.
    pub features: Vec<String>,
    /// How a null feature becomes model input.
    pub missing: MissingPolicy,
    /// The segments, one per output column.
    pub segments: Vec<Segment>,
}

/// A named customer segment.
#[derive(Debug, Clone, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// snake_case key, used by engagement policies.
    pub key: String,
    /// Display name.
    pub name: String,
    /// What characterises its customers.
    #[serde(default)]
    pub description: String,
}

/// Settings of a text classifier.
#[derive(Debug, Clone)]
pub struct TextSpec {
    /// Hugging Face tokenizer.json.
    pub tokenizer: PathBuf,
    /// Tokens per text after truncation (special tokens included).
    pub max_length: usize,
    /// ONNX input: int64 [batch, sequence] token ids.
    pub input_ids: String,
    /// ONNX input: int64 [batch, sequence], 1 for tokens, 0 for padding.
    pub attention_mask: String,
    /// Optional ONNX input: int64 [batch, sequence] segment ids (all 0 for one text).
    pub token_type_ids: Option<String>,
    /// ONNX output: float32 [batch, labels] logits.
    pub output: String,
    /// Class labels, in output column order.
    pub labels: Vec<String>,
}

/// Settings of a tabular classifier.
#[derive(Debug, Clone)]
pub struct TabularSpec {
    /// ONNX input tensor: float32 [batch, features].
    pub input: String,
    /// ONNX output tensor: float32 [batch, labels].
    pub output: String,
    /// Class labels, in output column order.
    pub labels: Vec<String>,
    /// Index into `labels` of the class whose probability is reported.
    pub positive: usize,
    /// Snapshot columns, in input tensor order.
    pub features: Vec<String>,
    /// How a null or NaN feature becomes model input.
    pub missing: MissingPolicy,
    /// Probability thresholds of the risk bands, if any.
    pub risk: Option<RiskBands>,
}

/// What a missing feature value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// NaN (tree ensembles route it natively).
    Nan,
    /// 0.0
    Zero,
    /// The customer or row is answered with an error.
    Reject,
}

/// Thresholds on the positive-class probability.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskBands {
    /// probability ≥ medium → "medium"
    pub medium: f64,
    /// probability ≥ high → "high"
    pub high: f64,
}

/// A risk band label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskBand {
    /// below `medium`
    Low,
    /// between `medium` and `high`
    Medium,
    /// at or above `high`
    High,
}

impl RiskBand {
    /// Its name as replies, policies and output files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskBand::Low => "low",
            RiskBand::Medium => "medium",
            RiskBand::High => "high",
        }
    }
}

impl RiskBands {
    /// The band a probability falls into.
    pub fn band(&self, probability: f32) -> RiskBand {
        let probability = f64::from(probability);
        if probability >= self.high {
            RiskBand::High
        } else if probability >= self.medium {
            RiskBand::Medium
        } else {
            RiskBand::Low
        }
    }
}

/// Queue and batch settings of one model.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Batching {
    /// Most rows in one inference call.
    pub max_batch_size: usize,
    /// How long a worker waits for more jobs after the first one, in microseconds. 0 (the default): it runs
    /// whatever is queued as soon as it is free, so batches grow with load and a lone request waits for nothing.
    pub max_delay_us: u64,
    /// Jobs that may wait in the queue; more are refused with 503.
    pub queue_capacity: usize,
    /// Worker threads, each owning one ONNX Runtime session.
    pub workers: usize,
    /// Text models: most padded tokens (rows × longest sequence) per inference call.
    pub max_tokens: usize,
    /// The batch limits when the model runs on CUDA (`[batching.cuda]`).
    pub cuda: DeviceBatching,
}

/// Batch limits for one device: a GPU wants far larger batches than a CPU core to be worth a kernel launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceBatching {
    /// Most rows in one inference call.
    pub max_batch_size: usize,
    /// Text models: most padded tokens per inference call.
    pub max_tokens: usize,
}

impl Default for DeviceBatching {
    fn default() -> Self {
        DeviceBatching {
            max_batch_size: 1024,
            max_tokens: 65_536,
        }
    }
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_batch_size: 256,
            max_delay_us: 0,
            queue_capacity: 1024,
            workers: 1,
            max_tokens: 8192,
            cuda: DeviceBatching::default(),
        }
    }
}

impl Batching {
    /// The limits that apply on `provider` (ONNX Runtime's name): the `cuda` ones on CUDA, the top-level ones
    /// elsewhere.
    pub fn on(self, provider: &str) -> Batching {
        if provider == "CUDAExecutionProvider" {
            Batching {
                max_batch_size: self.cuda.max_batch_size.max(1),
                max_tokens: self.cuda.max_tokens.max(1),
                ..self
            }
        } else {
            self
        }
    }
}

/// The manifest as written on disk.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    kind: String,
    #[serde(default = "default_version")]
    version: String,
    #[serde(default)]
    description: String,
    input: Option<String>,
    output: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    positive_label: Option<String>,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default = "default_missing")]
    missing: MissingPolicy,
    risk: Option<RiskBands>,
    items: Option<String>,
    owned_column: Option<String>,
    max_k: Option<usize>,
    tokenizer: Option<String>,
    max_length: Option<usize>,
    input_ids: Option<String>,
    attention_mask: Option<String>,
    token_type_ids: Option<String>,
    #[serde(default)]
    batching: Batching,
    #[serde(default)]
    device: ModelDevice,
    #[serde(default)]
    metadata: toml::Table,
    #[serde(default)]
    feature_info: BTreeMap<String, FeatureInfo>,
    #[serde(default)]
    segments: Vec<Segment>,
}

fn default_version() -> String {
    "1".to_string()
}

fn default_missing() -> MissingPolicy {
    MissingPolicy::Nan
}

impl ModelSpec {
    /// Reads and checks `dir/model.toml`; the model is named after its folder.
    pub fn load(dir: &Path) -> Result<ModelSpec, ModelError> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ModelError::manifest(dir, "the folder name is not valid UTF-8"))?
            .to_string();
        let path = dir.join("model.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::Io {
            path: path.clone(),
            source: e,
        })?;
        Self::parse(&name, dir, &text)
    }

    /// Reads every `<models>/<name>/model.toml` (manifests only; no ONNX Runtime), by folder name.
    pub fn load_all(models: &Path) -> Result<Vec<ModelSpec>, ModelError> {
        let io = |source| ModelError::Io {
            path: models.to_path_buf(),
            source,
        };
        let mut dirs: Vec<_> = std::fs::read_dir(models)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("model.toml").is_file())
            .collect();
        dirs.sort();
        dirs.iter().map(|dir| ModelSpec::load(dir)).collect()
    }

    /// Parses manifest text (split from `load` so tests need no files).
    pub fn parse(name: &str, dir: &Path, text: &str) -> Result<ModelSpec, ModelError> {
        let mut m: Manifest =
            toml::from_str(text).map_err(|e| ModelError::manifest(dir, e.to_string()))?;
        let bad = |msg: String| ModelError::manifest(dir, msg);
        if !is_route_safe(name) {
            return Err(bad(format!(
                "model name '{name}' (the folder name) may only hold letters, digits, '-' and '_'"
            )));
        }
        let b = m.batching;
        if b.max_batch_size == 0 || b.queue_capacity == 0 || b.workers == 0 {
            return Err(bad(
                "batching.max_batch_size, queue_capacity and workers must be at least 1".into(),
            ));
        }
        let kind = match m.kind.as_str() {
            "tabular" => {
                let (input, output, features) = feature_io(&mut m, &bad)?;
                // One label is a regressor's (or a scorer's) single output column.
                if m.labels.is_empty() {
                    return Err(bad(
                        "'labels' must name the output columns (classes, or one score)".into(),
                    ));
                }
                let positive = match &m.positive_label {
                    Some(p) => m.labels.iter().position(|l| l == p).ok_or_else(|| {
                        bad(format!(
                            "positive_label '{p}' is not one of labels {:?}",
                            m.labels
                        ))
                    })?,
                    None => m.labels.len() - 1,
                };
                if let Some(r) = m.risk
                    && !(0.0 <= r.medium && r.medium <= r.high && r.high <= 1.0)
                {
                    return Err(bad(
                        "risk thresholds must satisfy 0 <= medium <= high <= 1".into()
                    ));
                }
                ModelKind::Tabular(TabularSpec {
                    input,
                    output,
                    labels: m.labels,
                    positive,
                    features,
                    missing: m.missing,
                    risk: m.risk,
                })
            }
            "recommender" => {
                let (input, output, features) = feature_io(&mut m, &bad)?;
                let items = m.items.ok_or_else(|| {
                    bad("'items' (the catalogue Parquet file) is required".into())
                })?;
                ModelKind::Recommender(RecommenderSpec {
                    input,
                    output,
                    features,
                    missing: m.missing,
                    items: dir.join(items),
                    owned_column: m.owned_column,
                    max_k: m.max_k.unwrap_or(100).max(1),
                })
            }
            "segmentation" => {
                let (input, output, features) = feature_io(&mut m, &bad)?;
                if m.segments.len() < 2 {
                    return Err(bad(
                        "'[[segments]]' must describe at least two segments, one per output column"
                            .into(),
                    ));
                }
                let keys: Vec<String> = m.segments.iter().map(|s| s.key.clone()).collect();
                if let Some(dup) = first_duplicate(&keys) {
                    return Err(bad(format!("segment key '{dup}' is listed twice")));
                }
                if let Some(k) = keys.iter().find(|k| !is_snake_case(k)) {
                    return Err(bad(format!(
                        "segment key '{k}' must be snake_case (lowercase letters, digits, '_')"
                    )));
                }
                ModelKind::Segmentation(SegmentationSpec {
                    input,
                    output,
                    features,
                    missing: m.missing,
                    segments: std::mem::take(&mut m.segments),
                })
            }
            "text" => {
                let tokenizer = m
                    .tokenizer
                    .ok_or_else(|| bad("'tokenizer' (a tokenizer.json file) is required".into()))?;
                let output = m
                    .output
                    .ok_or_else(|| bad("'output' (ONNX logits tensor name) is required".into()))?;
                if m.labels.len() < 2 {
                    return Err(bad("'labels' must name at least two classes".into()));
                }
                let max_length = m.max_length.unwrap_or(128);
                if max_length < 2 {
                    return Err(bad("'max_length' must be at least 2".into()));
                }
                ModelKind::Text(TextSpec {
                    tokenizer: dir.join(tokenizer),
                    max_length,
                    input_ids: m.input_ids.unwrap_or_else(|| "input_ids".into()),
                    attention_mask: m.attention_mask.unwrap_or_else(|| "attention_mask".into()),
                    token_type_ids: m.token_type_ids,
                    output,
                    labels: m.labels,
                })
            }
            other => {
                return Err(bad(format!(
                    "unknown kind '{other}' (this server knows: tabular, recommender, text, segmentation)"
                )));
            }
        };
        if !m.segments.is_empty() && !matches!(kind, ModelKind::Segmentation(_)) {
            return Err(bad(
                "'[[segments]]' applies only to kind = \"segmentation\"".into(),
            ));
        }
        let features = match &kind {
            ModelKind::Tabular(t) => t.features.as_slice(),
            ModelKind::Recommender(r) => &r.features,
            ModelKind::Segmentation(s) => &s.features,
            ModelKind::Text(_) => &[],
        };
        // A description of a feature the model no longer reads is harmless (e.g. a feature just dropped), but
        // likely a typo: said in the log, not refused.
        for unknown in m.feature_info.keys().filter(|k| !features.contains(k)) {
            tracing::warn!(model = name, feature = %unknown, "[feature_info] describes a feature not in 'features'");
        }
        Ok(ModelSpec {
            name: name.to_string(),
            version: m.version,
            description: m.description,
            dir: dir.to_path_buf(),
            kind,
            batching: m.batching,
            metadata: m.metadata,
            feature_info: m.feature_info,
            device: m.device,
        })
    }

    /// The ONNX file of this model.
    pub fn onnx_path(&self) -> PathBuf {
        self.dir.join("model.onnx")
    }

    /// Snapshot feature columns this model reads.
    pub fn feature_columns(&self) -> &[String] {
        match &self.kind {
            ModelKind::Tabular(t) => &t.features,
            ModelKind::Recommender(r) => &r.features,
            ModelKind::Segmentation(s) => &s.features,
            ModelKind::Text(_) => &[],
        }
    }

    /// How nulls among those features become model input (text models read none).
    pub fn missing(&self) -> MissingPolicy {
        match &self.kind {
            ModelKind::Tabular(t) => t.missing,
            ModelKind::Recommender(r) => r.missing,
            ModelKind::Segmentation(s) => s.missing,
            ModelKind::Text(_) => MissingPolicy::Nan,
        }
    }

    /// Snapshot list column of owned items this model reads, if any.
    pub fn owned_column(&self) -> Option<&str> {
        match &self.kind {
            ModelKind::Recommender(r) => r.owned_column.as_deref(),
            _ => None,
        }
    }
}

/// The snapshot feature columns a set of models needs, in first-use order, each once.
pub fn snapshot_columns<'a>(specs: impl IntoIterator<Item = &'a ModelSpec>) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for spec in specs {
        for f in spec.feature_columns() {
            if !columns.contains(f) {
                columns.push(f.clone());
            }
        }
    }
    columns
}

/// The input and output tensor names and the feature list that every snapshot-fed kind needs, checked.
fn feature_io(
    m: &mut Manifest,
    bad: &impl Fn(String) -> ModelError,
) -> Result<(String, String, Vec<String>), ModelError> {
    let input = m
        .input
        .take()
        .ok_or_else(|| bad("'input' (ONNX input tensor name) is required".into()))?;
    let output = m
        .output
        .take()
        .ok_or_else(|| bad("'output' (ONNX output tensor name) is required".into()))?;
    let features = std::mem::take(&mut m.features);
    if features.is_empty() {
        return Err(bad(
            "'features' must list the snapshot columns fed to the model".into(),
        ));
    }
    if let Some(dup) = first_duplicate(&features) {
        return Err(bad(format!("feature '{dup}' is listed twice")));
    }
    Ok((input, output, features))
}

fn is_snake_case(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_route_safe(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn first_duplicate(items: &[String]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    items
        .iter()
        .find(|i| !seen.insert(i.as_str()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
kind = "tabular"
version = "3"
input = "features"
output = "probabilities"
labels = ["retained", "churned"]
positive_label = "churned"
features = ["a", "b"]
[risk]
medium = 0.3
high = 0.6
[batching]
max_batch_size = 64
"#;

    #[test]
    fn parses_a_tabular_manifest() {
        let spec = ModelSpec::parse("churn", Path::new("models/churn"), GOOD).unwrap();
        let ModelKind::Tabular(t) = &spec.kind else {
            panic!("tabular")
        };
        assert_eq!(t.positive, 1);
        assert_eq!(spec.version, "3");
        assert_eq!(spec.batching.max_batch_size, 64);
        assert_eq!(
            spec.batching.workers, 1,
            "unset batching keys keep their defaults"
        );
        let bands = t.risk.unwrap();
        assert_eq!(bands.band(0.1), RiskBand::Low);
        assert_eq!(bands.band(0.3), RiskBand::Medium);
        assert_eq!(bands.band(0.95), RiskBand::High);
    }

    #[test]
    fn parses_recommender_and_text_manifests() {
        let rec = "kind='recommender'\ninput='f'\noutput='s'\nfeatures=['a']\nitems='items.parquet'\nowned_column='owned'\n";
        let spec = ModelSpec::parse("rec", Path::new("models/rec"), rec).unwrap();
        let ModelKind::Recommender(r) = &spec.kind else {
            panic!("recommender")
        };
        assert_eq!(
            (r.items.as_path(), r.max_k),
            (Path::new("models/rec/items.parquet"), 100)
        );
        assert_eq!(spec.owned_column(), Some("owned"));
        let err = ModelSpec::parse(
            "rec",
            Path::new("m"),
            &rec.replace("items='items.parquet'\n", ""),
        )
        .unwrap_err();
        assert!(err.to_string().contains("'items'"), "{err}");

        let text = "kind='text'\ntokenizer='tokenizer.json'\noutput='logits'\nlabels=['neg','pos']\n[batching]\nmax_tokens=512\n";
        let spec = ModelSpec::parse("s", Path::new("models/s"), text).unwrap();
        let ModelKind::Text(t) = &spec.kind else {
            panic!("text")
        };
        assert_eq!(
            (t.input_ids.as_str(), t.max_length, spec.batching.max_tokens),
            ("input_ids", 128, 512)
        );
        assert!(spec.feature_columns().is_empty());
        let err = ModelSpec::parse(
            "s",
            Path::new("m"),
            &text.replace("tokenizer='tokenizer.json'\n", ""),
        )
        .unwrap_err();
        assert!(err.to_string().contains("'tokenizer'"), "{err}");
    }

    #[test]
    fn batch_limits_follow_the_device() {
        let text = "kind='text'\ntokenizer='tokenizer.json'\noutput='logits'\nlabels=['neg','pos']\n\
            [batching]\nmax_tokens=512\nmax_batch_size=64\n[batching.cuda]\nmax_tokens=100000\n";
        let b = ModelSpec::parse("s", Path::new("m"), text)
            .unwrap()
            .batching;
        let cpu = b.on("CPUExecutionProvider");
        assert_eq!((cpu.max_batch_size, cpu.max_tokens), (64, 512));
        let gpu = b.on("CUDAExecutionProvider");
        assert_eq!(
            (gpu.max_batch_size, gpu.max_tokens),
            (1024, 100_000),
            "unset: the CUDA default"
        );
        let cpu_only = format!("device='cpu'\n{text}");
        let spec = ModelSpec::parse("s", Path::new("m"), &cpu_only).unwrap();
        assert_eq!(spec.device, ModelDevice::Cpu);
        let err =
            ModelSpec::parse("s", Path::new("m"), &format!("device='gpu'\n{text}")).unwrap_err();
        assert!(err.to_string().contains("device"), "{err}");
        let bad = text.replace("max_tokens=100000", "max_tokenz=1");
        let err = ModelSpec::parse("s", Path::new("m"), &bad).unwrap_err();
        assert!(err.to_string().contains("max_tokenz"), "{err}");
    }

    #[test]
    fn parses_segments_and_feature_descriptions() {
        let seg = "kind='segmentation'\ninput='features'\noutput='scores'\nfeatures=['a','b']\n\
            [[segments]]\nkey='young'\nname='Young'\n[[segments]]\nkey='old'\nname='Old'\ndescription='d'\n\
            [feature_info.a]\ndescription='Age'\nunit='years'\n";
        let spec = ModelSpec::parse("segmentation", Path::new("m"), seg).unwrap();
        let ModelKind::Segmentation(g) = &spec.kind else {
            panic!("segmentation")
        };
        assert_eq!(g.segments.len(), 2);
        assert_eq!(spec.feature_columns(), ["a", "b"]);
        assert_eq!(spec.feature_info["a"].unit.as_deref(), Some("years"));
        let cases = [
            (seg.replace("key='old'", "key='young'"), "listed twice"),
            (seg.replace("key='old'", "key='Old Ones'"), "snake_case"),
            (
                seg.replace("[[segments]]\nkey='old'\nname='Old'\ndescription='d'\n", ""),
                "at least two segments",
            ),
            (
                GOOD.to_string() + "[[segments]]\nkey='a'\nname='A'\n",
                "only to kind = \"segmentation\"",
            ),
            (
                seg.replace("unit='years'", "units='years'"),
                "unknown field `units`",
            ),
        ];
        for (text, want) in cases {
            let err = ModelSpec::parse("s", Path::new("m"), &text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
        // One label: a regressor's (or a scorer's) single output column.
        let one = GOOD
            .replace("[\"retained\", \"churned\"]", "[\"score\"]")
            .replace("positive_label = \"churned\"", "positive_label = \"score\"")
            .replace("[risk]\nmedium = 0.3\nhigh = 0.6\n", "");
        let spec = ModelSpec::parse("reg", Path::new("m"), &one).unwrap();
        let ModelKind::Tabular(t) = &spec.kind else {
            panic!("tabular")
        };
        assert_eq!((t.labels.len(), t.positive), (1, 0));
    }

    #[test]
    fn rejects_bad_manifests_with_reasons() {
        let cases = [
            (GOOD.replace("tabular", "vision"), "unknown kind 'vision'"),
            (
                GOOD.replace("positive_label = \"churned\"", "positive_label = \"left\""),
                "positive_label 'left'",
            ),
            (
                GOOD.replace("[\"a\", \"b\"]", "[\"a\", \"a\"]"),
                "listed twice",
            ),
            (
                GOOD.replace("max_batch_size = 64", "max_batch_size = 0"),
                "at least 1",
            ),
            (
                GOOD.replace("medium = 0.3", "medium = 0.9"),
                "risk thresholds",
            ),
            (GOOD.replace("input = \"features\"\n", ""), "'input'"),
            (
                GOOD.replace("[batching]", "[batching]\nspeed = 1"),
                "unknown field `speed`",
            ),
            (
                GOOD.replace("version = \"3\"", "version = \"3\"\nowner = \"x\""),
                "unknown field `owner`",
            ),
        ];
        for (text, want) in cases {
            let err = ModelSpec::parse("churn", Path::new("m"), &text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
        let err = ModelSpec::parse("bad name", Path::new("m"), GOOD)
            .unwrap_err()
            .to_string();
        assert!(err.contains("may only hold"), "{err}");
    }
}
