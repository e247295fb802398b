"""Writes the test fixtures of the explanation feature ("reasons"): small models of every tree-ensemble flavour
crmscore must read from an ONNX graph, plus the values an independent implementation gives for them.

    .venv-explain/bin/python scripts/make_explain_fixtures.py      (after scripts/setup-python.sh --explain)

tests/fixtures/explain/
    data.parquet              300 customers X0000..X0299: customer_id, 8 float32 CRM features (nulls in nps_score,
                              logins_per_month and email_open_rate, ~10% each) and label_churned (not a feature)
    models/<name>/model.onnx  sk_gb sk_hgb sk_rf lightgbm xgboost (classifiers: `label` int64[N],
    models/<name>/model.toml  `probabilities` float[N,2]), lgbm_reg, te5_reg (regressors, `variable` float[N,1];
                              te5_reg uses the ai.onnx.ml opset-5 TreeEnsemble op), logreg, mlp (not trees)
    expected.json             per model: method, space, base_value and, for 40 customers, margin, output and the
                              8 contributions
tests/fixtures/churn_explain_expected.json
                              the same TreeSHAP for the shipped models/churn model, covers counted over all rows of
                              snapshots/customers-sample.parquet, for 30 of its customers

Semantics (what the Rust server must reproduce; everything here is computed from the ONNX graph with the `onnx`
package, independently of the Rust code):
  * tree ensembles: path-dependent TreeSHAP in the margin space (before post_transform). Node covers are counted by
    routing every data row through each tree as ONNX Runtime does (float32 compare by node mode; NaN fails every
    comparison and goes to the true branch only where nodes_missing_value_tracks_true = 1); cover(leaf) = rows + 1,
    cover(node) = sum of its children. Computed twice: with shap.TreeExplainer on a dict model and with a direct
    per-leaf Shapley enumeration in this file; the two must agree.
  * other graphs (logreg, mlp): exact baseline Shapley over all 2^8 coalitions against one reference row (per
    feature the lower median of the non-null values), value function logit(onnxruntime P(positive)).
Deterministic: fixed seeds, single-threaded training.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import sys
import time
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "explain"
CHURN_DIR = ROOT / "models" / "churn"
SNAPSHOT = ROOT / "snapshots" / "customers-sample.parquet"
CHURN_EXPECTED = ROOT / "tests" / "fixtures" / "churn_explain_expected.json"

SEED = 20261123
N_DATA = 300  # customers in data.parquet (all of them count the covers)
N_TRAIN = 4000  # training customers (another draw of the same process)
N_EXPLAINED = 40
N_CHURN_EXPLAINED = 30
TOL = 1e-5

FEATURES = [
    "tenure_months", "monthly_charges", "support_tickets_90d", "nps_score",
    "logins_per_month", "discount_usage_rate", "late_payments_12m", "email_open_rate",
]  # fmt: skip
NULLABLE = ("nps_score", "logins_per_month", "email_open_rate")
LABELS = ["retained", "churned"]
MODE_CODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4, "BRANCH_NEQ": 5}
CODE_MODES = {v: k for k, v in MODE_CODES.items()}
TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble")


def log(msg: str) -> None:
    print(msg, flush=True)


def ort_session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    src = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


# --- data ------------------------------------------------------------------------------------------------------------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def make_customers(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n customers: float32 [n, 8] features in FEATURES order (NaN = null) and a 0/1 churn label drawn from a
    nonlinear logistic process (interactions, thresholds, informative missingness)."""
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal
    engagement, price_sens, issues = normal(n), normal(n), rng.gamma(1.0, 1.0, n)
    tenure = np.clip(np.ceil(rng.exponential(22.0, n)), 1, 72)
    monthly = np.round(np.clip(30.0 + 22.0 * rng.poisson(1.3, n) - 4.0 * price_sens + 7.0 * normal(n), 18.25, 180), 2)
    tickets = rng.poisson(0.3 + 0.6 * issues)
    nps = np.clip(np.round(7.2 + 1.6 * (0.5 * engagement - 0.5 * (issues - 1) + 0.7 * normal(n))), 0, 10)
    logins = np.round(np.clip(np.exp(1.6 + 0.7 * engagement + 0.3 * normal(n)) - 1.0, 0, None), 1)
    discount = np.round(_sigmoid(-1.2 + 0.9 * price_sens + 0.5 * normal(n)), 3)
    late = np.clip(rng.poisson(0.2 + 0.5 * np.exp(0.6 * normal(n) - 0.3)), 0, 12)
    email = np.round(_sigmoid(-0.5 + 0.8 * engagement + 0.6 * normal(n)), 3)
    nps_null = rng.random(n) < 0.10
    logins_null = rng.random(n) < 0.10
    email_null = rng.random(n) < 0.10
    nps_seen = np.where(nps_null, 7.0, nps)
    logins_seen = np.where(logins_null, 3.0, logins)
    logit = (
        -1.7
        + 2.2 * np.exp(-tenure / 10.0)                              # new customers leave
        + 0.5 * np.minimum(tickets, 5) * (nps_null | (nps <= 6))    # unresolved problems of unhappy customers
        + 2.4 * discount * (monthly > 75.0)                         # price-sensitive on an expensive plan
        - 0.7 * (np.log1p(logins_seen) - 1.6)                       # low engagement
        + 0.35 * np.minimum(late, 4)
        + 0.7 * nps_null - 0.6 * (nps_seen >= 9)
        + 0.8 * (~email_null & (email < 0.15))
        + 0.4 * normal(n)                                           # what the CRM never sees
    )  # fmt: skip
    y = (rng.random(n) < _sigmoid(logit)).astype(np.int64)
    X = np.column_stack([tenure, monthly, tickets, nps, logins, discount, late, email]).astype(np.float32)
    X[nps_null, FEATURES.index("nps_score")] = np.nan
    X[logins_null, FEATURES.index("logins_per_month")] = np.nan
    X[email_null, FEATURES.index("email_open_rate")] = np.nan
    return X, y


def write_data(path: Path, X: np.ndarray, y: np.ndarray) -> list[str]:
    ids = [f"X{i:04d}" for i in range(len(X))]
    cols = {"customer_id": pa.array(ids, pa.string())}
    for j, name in enumerate(FEATURES):
        cols[name] = pa.array(X[:, j], pa.float32(), mask=np.isnan(X[:, j]))
    cols["label_churned"] = pa.array(y.astype(np.int8), pa.int8())
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path, compression="zstd")
    return ids


def read_features(path: Path, features: list[str]) -> tuple[list[str], np.ndarray]:
    """customer ids and float32 [n, F] in `features` order, nulls -> NaN (what the server builds)."""
    table = pq.read_table(path, columns=["customer_id", *features])
    X = np.empty((table.num_rows, len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        X[:, j] = table.column(name).to_numpy(zero_copy_only=False).astype(np.float32)
    return table.column("customer_id").to_pylist(), X


def apply_missing(X: np.ndarray, policy: str) -> np.ndarray:
    if policy == "nan":
        return X
    if policy == "zero":
        return np.where(np.isnan(X), np.float32(0), X).astype(np.float32)
    raise ValueError(policy)


# --- training & export -----------------------------------------------------------------------------------------------


def tidy_onnx(onx: onnx.ModelProto, name: str, doc: str) -> onnx.ModelProto:
    """One opset entry per domain, named batch dimension, fixed graph name (onnxmltools draws a UUID), checker."""
    onx.graph.name = name
    opsets: dict[str, int] = {}
    for op in onx.opset_import:
        opsets[op.domain] = max(op.version, opsets.get(op.domain, 0))
    del onx.opset_import[:]
    onx.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(opsets.items()))
    for value in (*onx.graph.input, *onx.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "batch"
    onx.doc_string = doc
    onnx.checker.check_model(onx, full_check=True)
    return onx


def export_sklearn(model, name: str, doc: str) -> onnx.ModelProto:
    import skl2onnx.common._container as container
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    # Same patch as scripts/train_models.py: skl2onnx 1.20 passes Python bools (HistGradientBoosting's
    # nodes_missing_value_tracks_true) to an INTS attribute, which protobuf >= 6 rejects.
    make_node = container.make_node

    def make_node_with_int_flags(*args, **attrs):
        for key, value in attrs.items():
            if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
                attrs[key] = [int(v) for v in value]
        return make_node(*args, **attrs)

    container.make_node = make_node_with_int_flags
    try:
        is_classifier = hasattr(model, "predict_proba")
        options = {id(model): {"zipmap": False}} if is_classifier else None
        onx = to_onnx(model, initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
                      options=options, target_opset={"": 17, "ai.onnx.ml": 3})  # fmt: skip
    finally:
        container.make_node = make_node
    return tidy_onnx(onx, name, doc)


def export_onnxmltools(model, name: str, doc: str) -> onnx.ModelProto:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("features", FloatTensorType([None, len(FEATURES)]))]
    if type(model).__module__.startswith("xgboost"):
        onx = onnxmltools.convert_xgboost(model, initial_types=types, target_opset=15)
    else:
        kwargs = {"zipmap": False} if hasattr(model, "predict_proba") else {}
        onx = onnxmltools.convert_lightgbm(model, initial_types=types, target_opset=15, **kwargs)
    return tidy_onnx(onx, name, doc)


def check_outputs(onx: onnx.ModelProto, classifier: bool) -> None:
    names = ([i.name for i in onx.graph.input], [o.name for o in onx.graph.output])
    want = (["features"], ["label", "probabilities"] if classifier else ["variable"])
    assert names == want, names


def train_models(X: np.ndarray, y: np.ndarray, risk: np.ndarray, X_check: np.ndarray) -> dict[str, dict]:
    """Fits every fixture model on (X, y) and exports it; returns name -> {onnx, manifest fields, native predict}."""
    import lightgbm as lgb
    import sklearn
    import xgboost as xgb
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    medians = np.nanmedian(X, axis=0).astype(np.float32)
    X_imputed = np.where(np.isnan(X), medians, X).astype(np.float32)  # for estimators that cannot fit NaN
    X_zero = apply_missing(X, "zero")  # logreg / mlp: trained on what the server feeds them (missing = "zero")
    skv = f"scikit-learn {sklearn.__version__}"
    specs = {
        "sk_gb": (GradientBoostingClassifier(n_estimators=20, max_depth=3, learning_rate=0.3, random_state=SEED),
                  X_imputed, y, "nan", f"{skv} GradientBoostingClassifier, 20 trees of depth 3 (fit on median-imputed data)"),
        "sk_hgb": (HistGradientBoostingClassifier(max_iter=20, max_leaf_nodes=8, learning_rate=0.3,
                                                  early_stopping=False, random_state=SEED),
                   X, y, "nan", f"{skv} HistGradientBoostingClassifier, 20 iterations of 8 leaves (NaN native)"),
        "sk_rf": (RandomForestClassifier(n_estimators=8, max_depth=5, random_state=SEED, n_jobs=1),
                  X_imputed, y, "nan", f"{skv} RandomForestClassifier, 8 trees of depth 5 (fit on median-imputed data)"),
        "lightgbm": (lgb.LGBMClassifier(n_estimators=20, num_leaves=8, learning_rate=0.2, random_state=SEED, n_jobs=1,
                                        deterministic=True, force_row_wise=True, verbose=-1),
                     X, y, "nan", f"LightGBM {lgb.__version__} LGBMClassifier, 20 trees of 8 leaves (NaN native)"),
        "xgboost": (xgb.XGBClassifier(n_estimators=20, max_depth=3, learning_rate=0.3, random_state=SEED, n_jobs=1,
                                      tree_method="hist"),
                    X, y, "nan", f"XGBoost {xgb.__version__} XGBClassifier, 20 trees of depth 3 (NaN native)"),
        "lgbm_reg": (lgb.LGBMRegressor(n_estimators=20, num_leaves=8, learning_rate=0.2, random_state=SEED, n_jobs=1,
                                       deterministic=True, force_row_wise=True, verbose=-1),
                     X, risk, "nan", f"LightGBM {lgb.__version__} LGBMRegressor of a churn-risk score, 20 trees of 8 leaves"),
        "logreg": (make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=1000)),
                   X_zero, y, "zero", f"{skv} StandardScaler + LogisticRegression (nulls as 0)"),
        "mlp": (make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), alpha=1e-2, max_iter=600,
                                                              random_state=SEED)),
                X_zero, y, "zero", f"{skv} StandardScaler + MLPClassifier(16) (nulls as 0)"),
    }  # fmt: skip
    out = {}
    for name, (model, Xf, target, missing, description) in specs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence and feature-name chatter
            model.fit(Xf, target)
        classifier = hasattr(model, "predict_proba")
        doc = f"crmscore explain fixture {name}: {description}"
        export = export_onnxmltools if name in ("lightgbm", "xgboost", "lgbm_reg") else export_sklearn
        onx = export(model, name, doc)
        check_outputs(onx, classifier)
        # The exported graph must reproduce the trainer on held-out rows (NaN ones included where NaN is native).
        Xc = apply_missing(X_check, missing)
        if missing == "nan" and np.isnan(Xf).sum() == 0:
            Xc = np.where(np.isnan(Xc), medians, Xc).astype(np.float32)  # trained imputed: compare on imputed rows
        got = ort_session(onx).run(None, {"features": Xc})
        native = model.predict_proba(Xc)[:, 1] if classifier else model.predict(Xc)
        mine = got[1][:, 1] if classifier else got[0][:, 0]
        diff = float(np.abs(mine - native).max())
        assert diff < 1e-4, (name, diff)
        out[name] = {"onnx": onx, "missing": missing, "classifier": classifier, "description": description,
                     "native_diff": diff, "model": model}  # fmt: skip
    out["te5_reg"] = {"onnx": build_tree_ensemble_v5(out["lgbm_reg"]["onnx"]), "missing": "nan", "classifier": False,
                      "description": "the lgbm_reg trees rewritten as one ai.onnx.ml opset-5 TreeEnsemble node",
                      "native_diff": 0.0, "model": None}  # fmt: skip
    return out


# --- reading tree ensembles from ONNX --------------------------------------------------------------------------------


@dataclass
class Tree:
    """One tree in preorder: node 0 is the root; leaves have mode "LEAF"."""

    mode: list[str] = field(default_factory=list)
    feature: list[int] = field(default_factory=list)
    threshold: list[np.float32] = field(default_factory=list)
    true_child: list[int] = field(default_factory=list)
    false_child: list[int] = field(default_factory=list)
    missing_true: list[bool] = field(default_factory=list)
    value: list[float] = field(default_factory=list)  # leaf weight of the explained target (aggregate applied)

    def add(self, mode, feature=-1, threshold=np.float32(0), missing_true=False, value=0.0) -> int:
        self.mode.append(mode)
        self.feature.append(feature)
        self.threshold.append(np.float32(threshold))
        self.true_child.append(-1)
        self.false_child.append(-1)
        self.missing_true.append(bool(missing_true))
        self.value.append(float(value))
        return len(self.mode) - 1

    def arrays(self) -> None:
        self.is_leaf = np.array([m == "LEAF" for m in self.mode])
        self.f = np.array(self.feature, dtype=np.int64)
        self.t = np.array(self.threshold, dtype=np.float32)
        self.tc = np.array(self.true_child, dtype=np.int64)
        self.fc = np.array(self.false_child, dtype=np.int64)
        self.mt = np.array(self.missing_true, dtype=bool)
        self.v = np.array(self.value, dtype=np.float64)
        self.codes = np.array([MODE_CODES.get(m, -1) for m in self.mode])

    def depth(self) -> int:
        def d(i):
            return 0 if self.is_leaf[i] else 1 + max(d(self.tc[i]), d(self.fc[i]))
        return d(0)


@dataclass
class Ensemble:
    op: str
    node_name: str
    trees: list[Tree]
    base: float  # base value of the explained target
    post_transform: str
    aggregate: str
    classifier: bool
    target: int  # column of the tree op's score output that is explained
    n_targets: int
    notes: list[str]


def attrs_of(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v).tolist()
        elif isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


def tree_node(onx: onnx.ModelProto) -> onnx.NodeProto:
    nodes = [n for n in onx.graph.node if n.op_type in TREE_OPS and n.domain == "ai.onnx.ml"]
    assert len(nodes) == 1, [n.op_type for n in onx.graph.node]
    return nodes[0]


def read_ensemble(onx: onnx.ModelProto, positive: int | None) -> Ensemble:
    """Parses the one tree-ensemble node of the graph. `positive`: class index of the positive label (classifiers)."""
    node = tree_node(onx)
    a = attrs_of(node)
    notes = []
    others = [n.op_type for n in onx.graph.node if n is not node]
    if others:
        notes.append("other nodes: " + ", ".join(others))
    if node.op_type == "TreeEnsemble":
        return read_ensemble_v5(node, a, notes)
    classifier = node.op_type == "TreeEnsembleClassifier"
    post = a.get("post_transform", "NONE")
    aggregate = a.get("aggregate_function", "SUM")
    thresholds = a["nodes_values_as_tensor"] if "nodes_values_as_tensor" in a else a["nodes_values"]
    bases = a.get("base_values_as_tensor", a.get("base_values", []))
    if classifier:
        n_classes = len(a.get("classlabels_int64s", a.get("classlabels_strings", [])))
        ids, tids, nids, ws = a["class_ids"], a["class_treeids"], a["class_nodeids"], a["class_weights"]
        if "class_weights_as_tensor" in a:
            ws = a["class_weights_as_tensor"]
        distinct = sorted(set(ids))
        if n_classes == 2 and len(distinct) == 1:
            # Binary with one score: ONNX Runtime outputs [1 - f(s), f(s)] (or [-s, s]); s is the positive class's.
            target, n_targets = distinct[0], 1
            notes.append(f"binary classifier with one score column (class_ids all {target})")
            base = float(bases[0]) if len(bases) >= 1 else 0.0
            assert len(bases) <= 1, bases
        else:
            target, n_targets = positive, n_classes
            notes.append(f"one score column per class ({n_classes})")
            base = float(bases[target]) if bases else 0.0
    else:
        n_targets = a.get("n_targets", 1)
        ids, tids, nids, ws = a["target_ids"], a["target_treeids"], a["target_nodeids"], a["target_weights"]
        if "target_weights_as_tensor" in a:
            ws = a["target_weights_as_tensor"]
        target = 0
        base = float(bases[0]) if bases else 0.0
    notes.append(f"base_values={[float(b) for b in bases]}")

    by_tree: dict[int, dict[int, int]] = {}  # treeid -> nodeid -> attribute index
    for k, (t, n) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"])):
        by_tree.setdefault(t, {})[n] = k
    leaf_w: dict[tuple[int, int], float] = {}
    for cid, t, n, w in zip(ids, tids, nids, ws):
        if cid == target:
            leaf_w[(t, n)] = leaf_w.get((t, n), 0.0) + float(np.float32(w))
    scale = 1.0 / len(by_tree) if aggregate == "AVERAGE" else 1.0
    assert aggregate in ("SUM", "AVERAGE"), aggregate
    missing = a.get("nodes_missing_value_tracks_true", [0] * len(a["nodes_modes"]))
    trees = []
    for t in sorted(by_tree):
        ids_of = by_tree[t]
        tree = Tree()
        root = min(ids_of)  # node ids are 0-based per tree in practice; the root is node 0

        def walk(nid: int) -> int:
            k = ids_of[nid]
            mode = a["nodes_modes"][k]
            if mode == "LEAF":
                return tree.add("LEAF", value=leaf_w.get((t, nid), 0.0) * scale)
            me = tree.add(mode, a["nodes_featureids"][k], thresholds[k], missing[k])
            tree.true_child[me] = walk(a["nodes_truenodeids"][k])
            tree.false_child[me] = walk(a["nodes_falsenodeids"][k])
            return me

        walk(root)
        tree.arrays()
        trees.append(tree)
    return Ensemble(node.op_type, node.name, trees, base, post, aggregate, classifier, target, n_targets, notes)


def read_ensemble_v5(node: onnx.NodeProto, a: dict, notes: list[str]) -> Ensemble:
    post = {0: "NONE", 1: "SOFTMAX", 2: "LOGISTIC", 3: "SOFTMAX_ZERO", 4: "PROBIT"}[a.get("post_transform", 0)]
    aggregate = {0: "AVERAGE", 1: "SUM", 2: "MIN", 3: "MAX"}[a.get("aggregate_function", 1)]
    assert aggregate in ("SUM", "AVERAGE"), aggregate
    scale = 1.0 / len(a["tree_roots"]) if aggregate == "AVERAGE" else 1.0
    modes = [CODE_MODES[int(m)] for m in a["nodes_modes"]]
    missing = a.get("nodes_missing_value_tracks_true", [0] * len(modes))
    splits = np.asarray(a["nodes_splits"], dtype=np.float32)
    trees = []
    for root in a["tree_roots"]:
        tree = Tree()

        def leaf(k: int) -> int:
            assert a["leaf_targetids"][k] == 0
            return tree.add("LEAF", value=float(np.float32(a["leaf_weights"][k])) * scale)

        def walk(k: int) -> int:
            me = tree.add(modes[k], a["nodes_featureids"][k], splits[k], missing[k])
            t, f = a["nodes_truenodeids"][k], a["nodes_falsenodeids"][k]
            tree.true_child[me] = leaf(t) if a["nodes_trueleafs"][k] else walk(t)
            tree.false_child[me] = leaf(f) if a["nodes_falseleafs"][k] else walk(f)
            return me

        walk(root)
        tree.arrays()
        trees.append(tree)
    notes.append("opset-5 TreeEnsemble (no base_values attribute)")
    return Ensemble(node.op_type, node.name, trees, 0.0, post, aggregate, False, 0, a["n_targets"], notes)


def goes_true(tree: Tree, nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's branch decision at `nodes` (internal) for float32 values `x` (one per node)."""
    t = tree.t[nodes]
    codes = tree.codes[nodes]
    with np.errstate(invalid="ignore"):
        cond = np.select(
            [codes == 0, codes == 1, codes == 2, codes == 3, codes == 4, codes == 5],
            [x <= t, x < t, x >= t, x > t, x == t, (x != t) & ~np.isnan(x)],
            False,
        ).astype(bool)  # NaN fails every comparison
    return cond | (np.isnan(x) & tree.mt[nodes])


def route(tree: Tree, X: np.ndarray) -> np.ndarray:
    """Leaf index reached by every row of X (float32 [n, F])."""
    node = np.zeros(len(X), dtype=np.int64)
    rows = np.arange(len(X))
    while True:
        active = ~tree.is_leaf[node]
        if not active.any():
            return node
        r, nd = rows[active], node[active]
        cond = goes_true(tree, nd, X[r, tree.f[nd]])
        node[active] = np.where(cond, tree.tc[nd], tree.fc[nd])


def covers(tree: Tree, X: np.ndarray) -> np.ndarray:
    counts = np.bincount(route(tree, X), minlength=len(tree.mode)).astype(np.float64)
    cover = np.where(tree.is_leaf, counts + 1.0, 0.0)
    for i in reversed(range(len(tree.mode))):  # preorder: children come after their parent
        if not tree.is_leaf[i]:
            cover[i] = cover[tree.tc[i]] + cover[tree.fc[i]]
    return cover


def own_margin(ens: Ensemble, X: np.ndarray) -> np.ndarray:
    return ens.base + sum(tree.v[route(tree, X)] for tree in ens.trees)


# --- TreeSHAP, twice -------------------------------------------------------------------------------------------------


def shap_dict_model(ens: Ensemble, Xcov: np.ndarray) -> dict:
    """shap's dict model format, with covers counted from Xcov and shap's `x <= threshold -> left` rule made equal to
    ONNX Runtime's float32 comparison."""
    trees = []
    for tree in ens.trees:
        n = len(tree.mode)
        cover = covers(tree, Xcov)
        left, right, default = -np.ones(n, np.int64), -np.ones(n, np.int64), -np.ones(n, np.int64)
        thr, feat = np.zeros(n), -np.ones(n, np.int64)
        values = np.zeros(n)
        for i in reversed(range(n)):
            if tree.is_leaf[i]:
                values[i] = tree.v[i]
                continue
            t, tc, fc = tree.t[i], tree.tc[i], tree.fc[i]
            below = np.nextafter(t, np.float32(-np.inf), dtype=np.float32)  # largest float32 < t
            mode = tree.mode[i]
            if mode == "BRANCH_LEQ":  # true iff x <= t
                thr[i], left[i], right[i] = float(t), tc, fc
            elif mode == "BRANCH_LT":  # true iff x < t iff x <= below (x is float32)
                thr[i], left[i], right[i] = float(below), tc, fc
            elif mode == "BRANCH_GT":  # true iff not x <= t
                thr[i], left[i], right[i] = float(t), fc, tc
            elif mode == "BRANCH_GTE":  # true iff not x <= below
                thr[i], left[i], right[i] = float(below), fc, tc
            else:
                raise ValueError(f"{mode} cannot be written as one x <= threshold split")
            feat[i] = tree.f[i]
            default[i] = tc if tree.mt[i] else fc  # NaN -> shap's default child
            values[i] = (values[tc] * cover[tc] + values[fc] * cover[fc]) / cover[i]  # root value = expectation
        trees.append({"children_left": left, "children_right": right, "children_default": default,
                      "features": feat, "thresholds": thr, "values": values[:, None],
                      "node_sample_weight": cover})  # fmt: skip
    return {"trees": trees, "base_offset": ens.base, "input_dtype": np.float64, "internal_dtype": np.float64}


def shap_values(ens: Ensemble, Xcov: np.ndarray, X: np.ndarray) -> tuple[float, np.ndarray]:
    import shap

    explainer = shap.TreeExplainer(shap_dict_model(ens, Xcov), feature_perturbation="tree_path_dependent")
    phi = np.asarray(explainer.shap_values(X.astype(np.float64), check_additivity=False), dtype=np.float64)
    base = np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)[0]
    return float(base), phi.reshape(len(X), X.shape[1])


def own_tree_shap(ens: Ensemble, Xcov: np.ndarray, X: np.ndarray) -> tuple[float, np.ndarray]:
    """Path-dependent TreeSHAP by definition, leaf by leaf: with the conditional expectation of the paper
    (a split on a feature in S follows x, any other split weights both sides by cover), a leaf adds
    value * prod_{d in S} o_d * prod_{d not in S} z_d to v(S), where over the leaf's path the features d have
    z_d = product of cover(child)/cover(parent) and o_d = 1 if x takes every one of those edges. The Shapley values
    of that product game are enumerated exactly over the (few) distinct features of the path."""
    n, F = X.shape
    phi = np.zeros((n, F))
    expected = ens.base
    for tree in ens.trees:
        cover = covers(tree, Xcov)
        stack = [(0, {})]  # (node, {feature: (z, o[n])})
        while stack:
            i, path = stack.pop()
            if tree.is_leaf[i]:
                z = {d: zo[0] for d, zo in path.items()}
                expected += tree.v[i] * math.prod(z.values())
                feats = list(path)
                m = len(feats)
                for i_feat in feats:
                    rest = [d for d in feats if d != i_feat]
                    zi, oi = path[i_feat]
                    acc = np.zeros(n)
                    for size in range(len(rest) + 1):
                        w = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                        for S in itertools.combinations(rest, size):
                            term = np.ones(n)
                            for d in rest:
                                term = term * (path[d][1] if d in S else path[d][0])
                            acc += w * term
                    phi[:, i_feat] += tree.v[i] * (oi - zi) * acc
                continue
            x = X[:, tree.f[i]]
            takes_true = goes_true(tree, np.full(n, i), x)
            for child, taken in ((tree.tc[i], takes_true), (tree.fc[i], ~takes_true)):
                z0, o0 = path.get(tree.f[i], (1.0, np.ones(n)))
                new = dict(path)
                new[tree.f[i]] = (z0 * cover[child] / cover[i], o0 * taken)
                stack.append((child, new))
    return float(expected), phi


def margin_session(onx: onnx.ModelProto) -> tuple[ort.InferenceSession, str]:
    """A copy of the graph whose tree node has post_transform NONE and whose score output is a graph output."""
    m = copy.deepcopy(onx)
    node = tree_node(m)
    for a in node.attribute:
        if a.name == "post_transform":
            if a.type == onnx.AttributeProto.STRING:
                a.s = b"NONE"
            else:
                a.i = 0
    score = node.output[1] if node.op_type == "TreeEnsembleClassifier" else node.output[0]
    if score not in [o.name for o in m.graph.output]:
        m.graph.output.append(helper.make_tensor_value_info(score, onnx.TensorProto.FLOAT, None))
    return ort_session(m), score


def explain_trees(name: str, onx: onnx.ModelProto, manifest: dict, Xcov: np.ndarray, X: np.ndarray,
                  ids: list[str]) -> tuple[dict, dict]:  # fmt: skip
    """Expected TreeSHAP record of one model: (fixture record, summary row)."""
    classifier = manifest["output"] == "probabilities"
    positive = manifest["labels"].index(manifest["positive_label"]) if classifier else None
    ens = read_ensemble(onx, positive)
    Xcov = apply_missing(Xcov, manifest["missing"])
    X = apply_missing(X, manifest["missing"])

    sess, score = margin_session(onx)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {manifest["input"]: X})))
    margin_ort = got[score][:, ens.target if ens.n_targets > 1 else (1 if classifier else 0)].astype(np.float64)
    original = ort_session(onx).run([manifest["output"]], {manifest["input"]: X})[0]
    output = original[:, positive if classifier else 0].astype(np.float64)
    mine = own_margin(ens, X)
    d_margin = float(np.abs(mine - margin_ort).max())
    assert d_margin <= TOL, (name, d_margin)
    if ens.post_transform == "LOGISTIC":
        assert np.abs(_sigmoid(margin_ort) - output).max() <= 1e-6, name
    elif ens.post_transform == "NONE":
        assert np.abs(margin_ort - output).max() <= 1e-6, name
    else:
        raise ValueError(f"{name}: post_transform {ens.post_transform}")

    base, phi = shap_values(ens, Xcov, X)
    own_base, own_phi = own_tree_shap(ens, Xcov, X)
    d_shap = max(abs(base - own_base), float(np.abs(phi - own_phi).max()))
    assert d_shap <= 1e-9, (name, d_shap)
    # base_value as the brief defines it: sum over leaves of value * cover(leaf) / cover(root), plus base_values.
    by_leaves = ens.base
    for tree in ens.trees:
        c = covers(tree, Xcov)
        by_leaves += float((tree.v * c * tree.is_leaf).sum() / c[0])
    assert abs(by_leaves - base) <= 1e-9, (name, by_leaves, base)
    d_add = float(np.abs(base + phi.sum(axis=1) - margin_ort).max())
    assert d_add <= TOL, (name, d_add)

    space = "raw" if not classifier else {"LOGISTIC": "log_odds", "NONE": "probability"}[ens.post_transform]
    record = {
        "method": "tree_shap",
        "space": space,
        "base_value": base,
        "rows": [{"customer_id": cid, "margin": float(mg), "output": float(o), "contributions": [float(v) for v in p]}
                 for cid, mg, o, p in zip(ids, margin_ort, output, phi)],
    }  # fmt: skip
    modes = sorted({m for t in ens.trees for m in t.mode if m != "LEAF"})
    tracks = sorted({int(v) for t in ens.trees for v, leaf in zip(t.mt, t.is_leaf) if not leaf})
    summary = {"model": name, "op": ens.op, "trees": len(ens.trees), "depth": max(t.depth() for t in ens.trees),
               "nodes": sum(len(t.mode) for t in ens.trees), "modes": "/".join(m.replace("BRANCH_", "") for m in modes),
               "missing_true": tracks, "post": ens.post_transform, "agg": ens.aggregate, "space": space,
               "base": base, "shap_vs_own": d_shap, "ort_vs_own": d_margin, "additivity": d_add,
               "notes": "; ".join(ens.notes)}  # fmt: skip
    return record, summary


# --- sampling (baseline Shapley) for other graphs ---------------------------------------------------------------------


def lower_median_reference(Xall: np.ndarray) -> np.ndarray:
    ref = np.full(Xall.shape[1], np.nan, dtype=np.float32)
    for j in range(Xall.shape[1]):
        col = np.sort(Xall[~np.isnan(Xall[:, j]), j])
        if col.size:
            ref[j] = col[(col.size - 1) // 2]
    return ref


def logit_of(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def explain_sampling(name: str, onx: onnx.ModelProto, manifest: dict, Xall: np.ndarray, X: np.ndarray,
                     ids: list[str]) -> tuple[dict, dict, np.ndarray]:  # fmt: skip
    positive = manifest["labels"].index(manifest["positive_label"])
    ref = apply_missing(lower_median_reference(Xall)[None, :], manifest["missing"])[0]
    X = apply_missing(X, manifest["missing"])
    n, F = X.shape
    masks = np.arange(1 << F)
    inside = ((masks[:, None] >> np.arange(F)) & 1).astype(bool)  # [2^F, F]: feature j in coalition
    rows = np.where(inside[None, :, :], X[:, None, :], ref[None, None, :]).reshape(-1, F).astype(np.float32)
    sess = ort_session(onx)
    p = sess.run([manifest["output"]], {manifest["input"]: rows})[0][:, positive]
    v = logit_of(p).reshape(n, 1 << F)
    sizes = inside.sum(axis=1)
    phi = np.zeros((n, F))
    for j in range(F):
        without = ~inside[:, j]
        w = np.array([math.factorial(s) * math.factorial(F - s - 1) / math.factorial(F) for s in sizes[without]])
        phi[:, j] = ((v[:, masks[without] | (1 << j)] - v[:, masks[without]]) * w).sum(axis=1)
    p_ref = sess.run([manifest["output"]], {manifest["input"]: ref[None, :]})[0][0, positive]
    base = float(logit_of(np.array([p_ref]))[0])
    assert np.abs(v[:, 0] - base).max() <= 1e-6, name
    p_full = p.reshape(n, 1 << F)[:, -1]
    margin = v[:, -1]
    d_add = float(np.abs(base + phi.sum(axis=1) - margin).max())
    assert d_add <= 1e-9, (name, d_add)
    record = {
        "method": "sampling",
        "space": "log_odds",
        "base_value": base,
        "reference": [float(r) for r in ref],
        "rows": [{"customer_id": cid, "margin": float(mg), "output": float(o), "contributions": [float(c) for c in ph]}
                 for cid, mg, o, ph in zip(ids, margin, p_full, phi)],
    }  # fmt: skip
    summary = {"model": name, "op": "-", "trees": 0, "depth": 0, "nodes": len(onx.graph.node), "modes": "-",
               "missing_true": [], "post": "-", "agg": "-", "space": "log_odds", "base": base,
               "shap_vs_own": float("nan"), "ort_vs_own": float("nan"), "additivity": d_add,
               "notes": "nodes: " + ", ".join(nd.op_type for nd in onx.graph.node)}  # fmt: skip
    return record, summary, phi


# --- the fixture models ----------------------------------------------------------------------------------------------


def build_tree_ensemble_v5(legacy: onnx.ModelProto) -> onnx.ModelProto:
    """The trees of a TreeEnsembleRegressor graph as one ai.onnx.ml opset-5 TreeEnsemble node (no converter emits
    it yet). Internal nodes and leaves are separate index spaces; a nonzero base value (TE5 has none) would be
    folded into the first tree's leaves."""
    ens = read_ensemble(legacy, None)
    assert ens.aggregate == "SUM" and ens.n_targets == 1
    feats, splits, modes, tids, tleaf, fids, fleaf, miss, roots, weights = ([] for _ in range(10))
    for k, tree in enumerate(ens.trees):
        assert not tree.is_leaf[0], "a one-leaf tree needs a dummy split in TreeEnsemble"
        local: dict[int, tuple[bool, int]] = {}
        for i in range(len(tree.mode)):  # preorder: parents get their index before their children
            if tree.is_leaf[i]:
                local[i] = (True, len(weights))
                weights.append(tree.v[i] + (ens.base if k == 0 else 0.0))
            else:
                local[i] = (False, len(feats))
                feats.append(int(tree.f[i]))
                splits.append(tree.t[i])
                modes.append(MODE_CODES[tree.mode[i]])
                miss.append(int(tree.mt[i]))
                tids.append(-1), tleaf.append(0), fids.append(-1), fleaf.append(0)
        roots.append(local[0][1])
        for i in range(len(tree.mode)):
            if not tree.is_leaf[i]:
                me = local[i][1]
                tleaf[me], tids[me] = int(local[tree.tc[i]][0]), local[tree.tc[i]][1]
                fleaf[me], fids[me] = int(local[tree.fc[i]][0]), local[tree.fc[i]][1]
    node = helper.make_node(
        "TreeEnsemble", ["features"], ["variable"], domain="ai.onnx.ml", name="TreeEnsemble",
        aggregate_function=1, post_transform=0, n_targets=1, tree_roots=roots,
        nodes_featureids=feats, nodes_splits=numpy_helper.from_array(np.array(splits, np.float32), "nodes_splits"),
        nodes_modes=numpy_helper.from_array(np.array(modes, np.uint8), "nodes_modes"),
        nodes_truenodeids=tids, nodes_trueleafs=tleaf, nodes_falsenodeids=fids, nodes_falseleafs=fleaf,
        nodes_missing_value_tracks_true=miss, leaf_targetids=[0] * len(weights),
        leaf_weights=numpy_helper.from_array(np.array(weights, np.float32), "leaf_weights"),
    )  # fmt: skip
    graph = helper.make_graph(
        [node], "te5_reg",
        [helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, ["batch", len(FEATURES)])],
        [helper.make_tensor_value_info("variable", onnx.TensorProto.FLOAT, ["batch", 1])],
    )  # fmt: skip
    onx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)],
                            producer_name="crmscore make_explain_fixtures.py")  # fmt: skip
    onx.ir_version = 10
    onx = tidy_onnx(onx, "te5_reg", "crmscore explain fixture te5_reg: the lgbm_reg trees as an opset-5 TreeEnsemble")
    rows = make_customers(2000, SEED + 7)[0]
    a = ort_session(legacy).run(None, {"features": rows})[0]
    b = ort_session(onx).run(None, {"features": rows})[0]
    diff = float(np.abs(a - b).max())
    assert b.shape == (len(rows), 1) and diff <= 1e-6, diff
    log(f"te5_reg: TreeEnsemble (ai.onnx.ml 5) runs in onnxruntime {ort.__version__}, max |diff| vs lgbm_reg "
        f"{diff:.1e} on {len(rows)} rows")  # fmt: skip
    return onx


def manifest_text(name: str, spec: dict) -> str:
    features = "".join(f'    "{f}",\n' for f in FEATURES)
    if spec["classifier"]:
        head = ('output = "probabilities"      # ONNX output: float32 [batch, len(labels)]\n'
                'labels = ["retained", "churned"]\npositive_label = "churned"\n')  # fmt: skip
    else:
        head = 'output = "variable"           # ONNX output: float32 [batch, 1]\nlabels = ["score"]\npositive_label = "score"\n'
    return f"""\
# crmscore model manifest — explanation test fixture written by scripts/make_explain_fixtures.py
kind = "tabular"
version = "1"
description = "{spec['description']}"
input = "features"            # ONNX input: float32 [batch, len(features)]
{head}missing = "{spec['missing']}"
features = [                  # column order of the input tensor
{features}]

[batching]
max_batch_size = 256
workers = 1
"""


def pick_rows(X: np.ndarray, count: int, seed: int, high: np.ndarray | None = None, n_high: int = 0) -> np.ndarray:
    """Deterministic choice of rows to explain: a third with nulls (the ones with the most nulls first), the
    `n_high` highest of `high`, the rest at random; sorted."""
    rng = np.random.default_rng(seed)
    nulls = np.isnan(X).sum(axis=1)
    with_nulls = np.flatnonzero(nulls > 0)
    most = with_nulls[np.argsort(-nulls[with_nulls], kind="stable")][:3]
    chosen = set(most.tolist())
    chosen |= set(rng.choice(np.setdiff1d(with_nulls, most), size=count // 3 - len(chosen), replace=False).tolist())
    if high is not None:
        for i in np.argsort(-high, kind="stable"):
            if len(chosen) >= count // 3 + n_high:
                break
            chosen.add(int(i))
    rest = np.setdiff1d(np.arange(len(X)), np.array(sorted(chosen)))
    chosen |= set(rng.choice(rest, size=count - len(chosen), replace=False).tolist())
    return np.array(sorted(chosen))


def write_json(path: Path, payload: dict) -> None:
    text = json.dumps(payload, indent=1)
    # Lists of numbers on one line each: diffable and a third of the size.
    text = re.sub(r"\[\s*(-?[0-9][-+0-9.eE,\s]*?)\s*\]", lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]", text)
    assert json.loads(text) == payload
    path.write_text(text + "\n", encoding="utf-8")
    log(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1e3:.1f} kB)")


def print_summary(rows: list[dict]) -> None:
    log(f"{'model':9s} {'op':23s} {'trees':>5s} {'depth':>5s} {'nodes':>5s} {'modes':8s} {'miss':6s} "
        f"{'post':8s} {'agg':4s} {'space':11s} {'base':>9s} {'shap-own':>8s} {'ort-own':>8s} {'additiv':>8s}")  # fmt: skip
    for r in rows:
        log(f"{r['model']:9s} {r['op']:23s} {r['trees']:5d} {r['depth']:5d} {r['nodes']:5d} {r['modes']:8s} "
            f"{','.join(map(str, r['missing_true'])):6s} {r['post']:8s} {r['agg']:4s} {r['space']:11s} "
            f"{r['base']:9.5f} {r['shap_vs_own']:8.1e} {r['ort_vs_own']:8.1e} {r['additivity']:8.1e}")  # fmt: skip
    for r in rows:
        log(f"  {r['model']}: {r['notes']}")


def make_fixtures() -> None:
    started = time.perf_counter()
    X_train, y_train = make_customers(N_TRAIN, SEED + 1)
    X_data, y_data = make_customers(N_DATA, SEED)
    X_check, _ = make_customers(1000, SEED + 2)
    # Regression target (lgbm_reg): a noise-free churn risk score of the training rows, on a log-odds scale.
    Xr = np.nan_to_num(X_train, nan=0.0)
    score = (2.2 * np.exp(-Xr[:, 0] / 10.0) + 0.4 * np.minimum(Xr[:, 2], 5) + 2.4 * Xr[:, 5] * (Xr[:, 1] > 75)
             - 0.7 * np.log1p(Xr[:, 4]) + 0.35 * np.minimum(Xr[:, 6], 4) + 0.7 * np.isnan(X_train[:, 3]))  # fmt: skip
    log(f"training rows {N_TRAIN}, churn rate {y_train.mean():.3f}; data rows {N_DATA}, churn rate {y_data.mean():.3f}")

    ids_all = write_data(OUT / "data.parquet", X_data, y_data)
    # Read back exactly as the server will (float32, nulls -> NaN), by column name.
    ids_all, X_all = read_features(OUT / "data.parquet", FEATURES)
    assert np.array_equal(np.isnan(X_all), np.isnan(X_data))
    log(f"wrote {(OUT / 'data.parquet').relative_to(ROOT)}: {len(ids_all)} rows, nulls per column "
        f"{dict((f, int(np.isnan(X_all[:, j]).sum())) for j, f in enumerate(FEATURES) if np.isnan(X_all[:, j]).any())}")  # fmt: skip

    models = train_models(X_train, y_train, score.astype(np.float32), X_check)
    picked = pick_rows(X_all, N_EXPLAINED, SEED + 3)
    ids = [ids_all[i] for i in picked]
    log(f"explaining {len(ids)} customers, {int(np.isnan(X_all[picked]).any(axis=1).sum())} with nulls")

    expected = {
        "generated_by": "scripts/make_explain_fixtures.py",
        "data": "tests/fixtures/explain/data.parquet",
        "features": FEATURES,
        "covers": "rows of data.parquet routed through each tree (after the manifest's missing policy); "
                  "cover(leaf) = rows + 1, cover(node) = sum of children",
        "tolerance": TOL,
        "models": {},
    }  # fmt: skip
    summary = []
    for name, spec in models.items():
        folder = OUT / "models" / name
        folder.mkdir(parents=True, exist_ok=True)
        onnx.save(spec["onnx"], folder / "model.onnx")
        text = manifest_text(name, spec)
        manifest = tomllib.loads(text)
        (folder / "model.toml").write_text(text, encoding="utf-8")
        size = (folder / "model.onnx").stat().st_size
        assert size < 200_000, (name, size)
        onx = onnx.load(folder / "model.onnx")
        if name in ("logreg", "mlp"):
            record, row, phi = explain_sampling(name, onx, manifest, X_all, X_all[picked], ids)
            if name == "logreg":
                scaler, lr = (step for _, step in spec["model"].steps)
                ref = np.array(record["reference"], dtype=np.float64)
                Xz = apply_missing(X_all[picked], "zero").astype(np.float64)
                linear = lr.coef_[0] / scaler.scale_ * (Xz - ref)
                d_lin = float(np.abs(phi - linear).max())
                assert d_lin <= 1e-4, d_lin
                row["notes"] += f"; |phi - coef/scale*(x-ref)| max {d_lin:.1e}"
        else:
            record, row = explain_trees(name, onx, manifest, X_all, X_all[picked], ids)
        row["notes"] += f"; {size / 1e3:.1f} kB; ORT vs {'lgbm_reg' if name == 'te5_reg' else 'trainer'} {spec['native_diff']:.1e}"
        expected["models"][name] = record
        summary.append(row)
    write_json(OUT / "expected.json", expected)
    print_summary(summary)
    log(f"fixtures done in {time.perf_counter() - started:.1f}s")


def make_churn_expected() -> None:
    """tests/fixtures/churn_explain_expected.json: TreeSHAP of the shipped churn model, covers over the snapshot."""
    started = time.perf_counter()
    manifest = tomllib.loads((CHURN_DIR / "model.toml").read_text(encoding="utf-8"))
    onx = onnx.load(CHURN_DIR / "model.onnx")
    ids_all, X_all = read_features(SNAPSHOT, manifest["features"])
    p_all = ort_session(onx).run([manifest["output"]], {manifest["input"]: apply_missing(X_all, manifest["missing"])})[0]
    p_all = p_all[:, manifest["labels"].index(manifest["positive_label"])]
    picked = pick_rows(X_all, N_CHURN_EXPLAINED, SEED + 4, high=p_all, n_high=6)
    ids = [ids_all[i] for i in picked]
    record, row = explain_trees("churn", onx, manifest, X_all, X_all[picked], ids)
    payload = {
        "generated_by": "scripts/make_explain_fixtures.py",
        "model": "models/churn",
        "snapshot": "snapshots/customers-sample.parquet",
        "covers": f"all {len(X_all)} snapshot rows routed through each tree; cover(leaf) = rows + 1",
        "features": manifest["features"],
        "tolerance": TOL,
        **record,
    }
    write_json(CHURN_EXPECTED, payload)
    print_summary([row])
    n_null = int(np.isnan(X_all[picked]).any(axis=1).sum())
    n_high = int((p_all[picked] >= manifest["risk"]["high"]).sum())
    log(f"churn: {len(ids)} customers ({n_null} with nulls, {n_high} high-risk), "
        f"{time.perf_counter() - started:.1f}s")  # fmt: skip


def main() -> None:
    np.seterr(over="ignore")
    make_fixtures()
    make_churn_expected()


if __name__ == "__main__":
    sys.exit(main())
