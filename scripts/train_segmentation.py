"""Train crmscore's customer segmentation model (k-means over behaviour and value columns of the snapshot).

    .venv/bin/python scripts/train_segmentation.py        (after scripts/setup-python.sh)

Generates 60,000 customers with crm_data.generate (the snapshot's generator, seed 42: the sample snapshot is drawn
with seed 43, so none of its customers are trained on), fits SimpleImputer(median) -> StandardScaler ->
KMeans(k=K, n_init=10) on 50,000 of them, exports the pipeline with skl2onnx (input `features` float32 [N, F];
outputs `label` int64 [N] and `scores` float32 [N, K], the distance to each segment's centre) and checks that
onnxruntime's argmin(scores) equals scikit-learn's labels on the other 10,000. Names and descriptions of the
segments are derived from the centroids by the rules in `describe_segments`. Writes:
    models/segmentation/model.onnx, models/segmentation/model.toml
    tests/fixtures/segmentation_expected.json   onnxruntime's scores and argmin for 25 snapshot customers
"""

from __future__ import annotations

import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import crm_data

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "segmentation"
SNAPSHOT = ROOT / "snapshots" / "customers-sample.parquet"
EXPECTED = ROOT / "tests" / "fixtures" / "segmentation_expected.json"
SEED = 42
K = 6
TRAIN_ROWS = 50_000
HOLDOUT_ROWS = 10_000
N_EXPECTED = 25

FEATURES = [
    "age_band", "tenure_months", "monthly_charges", "num_products", "monthly_data_mb",
    "logins_per_month", "avg_session_minutes", "email_open_rate", "discount_usage_rate",
]  # fmt: skip

# Themes a segment is named after, in the order the words appear in a name: (theme, features averaged as z-scores,
# (key, word) when above average, (key, word) when below).
THEMES = [
    ("age", ["age_band"], ("senior", "senior"), ("young", "young")),
    ("tenure", ["tenure_months"], ("loyal", "long-standing"), ("new", "new")),
    ("price", ["discount_usage_rate"], ("price_sensitive", "price-sensitive"), ("full_price", "full-price")),
    ("value", ["monthly_charges", "num_products"], ("high_value", "high-value"), ("low_spend", "low-spend")),
    ("digital", ["logins_per_month", "avg_session_minutes", "email_open_rate"], ("digital", "digitally engaged"),
     ("offline", "rarely online")),
    ("data", ["monthly_data_mb"], ("heavy_data", "heavy-data"), ("light_data", "light-data")),
]  # fmt: skip
# How a feature is told to a person: (label, value with its unit, value alone).
SAY = {
    "age_band": ("age band (0: 18-24 ... 5: 65+)", "{:.1f}", "{:.1f}"),
    "tenure_months": ("tenure", "{:.0f} months", "{:.0f}"),
    "monthly_charges": ("monthly bill", "{:.0f} EUR", "{:.0f}"),
    "num_products": ("products", "{:.1f}", "{:.1f}"),
    "monthly_data_mb": ("mobile data", "{:,.0f} MB a month", "{:,.0f}"),
    "logins_per_month": ("logins", "{:.1f} a month", "{:.1f}"),
    "avg_session_minutes": ("visits", "{:.1f} minutes long", "{:.1f}"),
    "email_open_rate": ("opens", "{:.0%} of emails", "{:.0%}"),
    "discount_usage_rate": ("uses a discount on", "{:.0%} of purchases", "{:.0%}"),
}


def log(msg: str) -> None:
    print(msg, flush=True)


def matrix(table) -> np.ndarray:
    """float32 [n, F] in FEATURES order, nulls -> NaN (what the server builds from the snapshot)."""
    out = np.empty((table.num_rows, len(FEATURES)), dtype=np.float32)
    for j, name in enumerate(FEATURES):
        out[:, j] = table.column(name).to_numpy(zero_copy_only=False).astype(np.float32)
    return out


def describe_segments(z: np.ndarray, means: np.ndarray, population: np.ndarray, share: np.ndarray) -> list[dict]:
    """A key, a name and a description per centroid. z: centroids as z-scores [K, F]; means: the same in data units;
    population: the overall means. A segment is named after its strongest themes (mean z of the theme's features,
    |z| >= 0.35; two, or more until its key is unique), its description lists the columns that set it apart most."""
    col = {f: j for j, f in enumerate(FEATURES)}
    scores = np.array([[z[k, [col[f] for f in feats]].mean() for _, feats, _, _ in THEMES] for k in range(len(z))])
    ranked = [[t for t in np.argsort(-np.abs(scores[k]), kind="stable") if abs(scores[k, t]) >= 0.35]
              for k in range(len(z))]  # fmt: skip
    used = [min(2, len(r)) for r in ranked]

    def chosen(k: int) -> list[tuple[str, str]]:  # (key, word) of the themes used, in THEMES order
        return [THEMES[t][2 if scores[k, t] > 0 else 3] for t in sorted(ranked[k][: used[k]])]

    while True:  # lengthen the names of segments that share a key until every key is distinct
        keys = ["_".join(key for key, _ in chosen(k)) or "mainstream" for k in range(len(z))]
        clash = [k for k in range(len(z)) if keys.count(keys[k]) > 1 and used[k] < len(ranked[k])]
        if not clash:
            break
        for k in clash:
            used[k] += 1
    assert len(set(keys)) == len(keys), keys
    out = []
    for k in range(len(z)):
        words = [word for _, word in chosen(k)] or ["mainstream"]
        name = (" " if len(words) <= 2 else ", ").join(words) + " customers"
        traits = []
        for j in np.argsort(-np.abs(z[k]), kind="stable"):
            if len(traits) == 4 or (abs(z[k, j]) < 0.4 and len(traits) >= 2):
                break
            label, unit, plain = SAY[FEATURES[j]]
            traits.append(f"{label} {unit.format(means[k, j])} vs {plain.format(population[j])} on average")
        description = f"{share[k]:.0%} of customers: " + "; ".join(traits) + "."
        out.append({"key": keys[k], "name": name[0].upper() + name[1:], "description": description})
    return out


def export(pipeline, doc: str):
    import onnx
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(pipeline, initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
                  target_opset={"": 17, "ai.onnx.ml": 3})  # fmt: skip
    opsets: dict[str, int] = {}
    for op in onx.opset_import:
        opsets[op.domain] = max(op.version, opsets.get(op.domain, 0))
    del onx.opset_import[:]
    onx.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in sorted(opsets.items()))
    for value in (*onx.graph.input, *onx.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onx.graph.name = "segmentation"
    onx.doc_string = doc
    onnx.checker.check_model(onx, full_check=True)
    names = ([i.name for i in onx.graph.input], [o.name for o in onx.graph.output])
    assert names == (["features"], ["label", "scores"]), names
    return onx


def session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def write_manifest(path: Path, segments: list[dict], meta: dict) -> None:
    features = "".join(f'    "{name}",\n' for name in FEATURES)
    blocks = "".join(
        f'\n[[segments]]\nkey = "{s["key"]}"\nname = "{s["name"]}"\ndescription = "{s["description"]}"\n'
        for s in segments
    )
    text = f"""\
# crmscore model manifest — written by scripts/train_segmentation.py
kind = "segmentation"
version = "1"
description = "Customer segments: k-means (k = {meta['k']}) over behaviour and value columns, on synthetic CRM customers"
input = "features"            # ONNX input: float32 [batch, len(features)]
output = "scores"             # float32 [batch, segments]: distance to each segment's centre (smaller = closer)
missing = "nan"               # the graph's imputer fills nulls (training medians)
features = [                  # column order of the input tensor
{features}]

# One per column of `scores`, in order. key: snake_case, used by policies; name and description come from the
# centroid (scripts/train_segmentation.py, describe_segments).
{blocks}
[batching]
max_batch_size = 256
workers = 1

[metadata]                      # free-form, shown in model metadata
k = {meta['k']}
inertia = {meta['inertia']:.1f}
silhouette = {meta['silhouette']:.4f}  # on a {meta['silhouette_rows']}-row sample of the training rows
trained_rows = {meta['trained_rows']}
trainer = "{meta['trainer']}"
seed = {meta['seed']}
"""
    manifest = tomllib.loads(text)
    assert manifest["features"] == FEATURES and [s["key"] for s in manifest["segments"]] == [s["key"] for s in segments]
    path.write_text(text, encoding="utf-8")
    log(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    import onnx
    import sklearn
    from sklearn.cluster import KMeans
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import silhouette_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    table, _ = crm_data.generate(TRAIN_ROWS + HOLDOUT_ROWS, SEED)
    X = matrix(table)
    X_train, X_hold = X[:TRAIN_ROWS], X[TRAIN_ROWS:]
    pipeline = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                             KMeans(n_clusters=K, n_init=10, random_state=SEED))  # fmt: skip
    pipeline.fit(X_train)
    imputer, scaler, kmeans = (step for _, step in pipeline.steps)
    Z = scaler.transform(imputer.transform(X_train))
    rng = np.random.default_rng(SEED)
    sample = rng.choice(len(Z), size=5000, replace=False)
    silhouette = float(silhouette_score(Z[sample], kmeans.labels_[sample], random_state=SEED))
    log(f"k-means k={K} on {len(X_train):,} customers x {len(FEATURES)} columns: inertia {kmeans.inertia_:,.0f}, "
        f"silhouette {silhouette:.4f} ({time.perf_counter() - started:.1f}s)")  # fmt: skip

    centres_z = kmeans.cluster_centers_.astype(np.float64)
    centres = scaler.inverse_transform(centres_z)
    share = np.bincount(kmeans.labels_, minlength=K) / len(X_train)
    segments = describe_segments(centres_z, centres, scaler.mean_, share)
    log(f"{'segment':34s} {'share':>6s} " + " ".join(f"{f[:10]:>10s}" for f in FEATURES))
    log(f"{'(population mean)':34s} {1:6.1%} " + " ".join(f"{v:10.2f}" for v in scaler.mean_))
    for k, s in enumerate(segments):
        log(f"{k} {s['key']:32s} {share[k]:6.1%} " + " ".join(f"{v:10.2f}" for v in centres[k]))
        log(f"{'':34s} {'z':>6s} " + " ".join(f"{v:10.2f}" for v in centres_z[k]))
    for k, s in enumerate(segments):
        log(f"  {k} {s['name']}: {s['description']}")

    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    onnx_path = MODEL_DIR / "model.onnx"
    trainer = f"scikit-learn {sklearn.__version__} SimpleImputer + StandardScaler + KMeans"
    onnx.save(export(pipeline, f"crmscore segmentation: {trainer}"), onnx_path)
    log(f"wrote {onnx_path.relative_to(ROOT)} ({onnx_path.stat().st_size / 1e3:.1f} kB)")

    sess = session(onnx_path)
    labels, scores = sess.run(None, {"features": X_hold})
    expected_labels = pipeline.predict(X_hold)
    expected_dist = kmeans.transform(scaler.transform(imputer.transform(X_hold)))
    agree = float((np.argmin(scores, axis=1) == expected_labels).mean())
    d = float(np.abs(scores - expected_dist).max())
    log(f"onnxruntime vs scikit-learn on {len(X_hold):,} held-out customers "
        f"({int(np.isnan(X_hold).any(axis=1).sum())} with nulls): argmin agreement {agree:.5f}, "
        f"label agreement {(labels == expected_labels).mean():.5f}, max |distance diff| {d:.1e}")  # fmt: skip
    assert scores.dtype == np.float32 and scores.shape == (len(X_hold), K) and labels.dtype == np.int64
    assert agree == 1.0 and np.array_equal(labels, expected_labels) and d <= 1e-3, (agree, d)

    write_manifest(MODEL_DIR / "model.toml", segments, {
        "k": K, "inertia": float(kmeans.inertia_), "silhouette": silhouette, "silhouette_rows": len(sample),
        "trained_rows": len(X_train), "trainer": trainer, "seed": SEED,
    })  # fmt: skip

    # Expected outputs for the server's tests: snapshot customers read as the server reads them.
    snap = pq.read_table(SNAPSHOT, columns=["customer_id", *FEATURES])
    ids = snap.column("customer_id").to_pylist()
    Xs = matrix(snap)
    s_labels, s_scores = sess.run(None, {"features": Xs})
    shares = np.bincount(np.argmin(s_scores, axis=1), minlength=K) / len(Xs)
    log("snapshot segment shares: " + ", ".join(f"{s['key']} {v:.1%}" for s, v in zip(segments, shares)))
    with_nulls = np.flatnonzero(np.isnan(Xs).any(axis=1))
    picked = set(rng.choice(with_nulls, size=6, replace=False).tolist())
    for k in range(K):  # at least two customers of every segment
        members = np.flatnonzero(np.argmin(s_scores, axis=1) == k)
        picked |= set(rng.choice(members, size=2, replace=False).tolist())
    rest = np.setdiff1d(np.arange(len(Xs)), np.array(sorted(picked)))
    picked |= set(rng.choice(rest, size=N_EXPECTED - len(picked), replace=False).tolist())
    picked_rows = np.array(sorted(picked))
    customers = []
    for i in picked_rows:
        seg = int(np.argmin(s_scores[i]))
        assert seg == int(s_labels[i])
        customers.append({"customer_id": ids[i], "scores": [float(v) for v in s_scores[i]], "segment": seg,
                          "key": segments[seg]["key"]})  # fmt: skip
    payload = {
        "generated_by": "scripts/train_segmentation.py",
        "model": "models/segmentation",
        "snapshot": "snapshots/customers-sample.parquet",
        "features": FEATURES,
        "segments": [s["key"] for s in segments],
        "customers": customers,
    }
    text = json.dumps(payload, indent=1)
    for c in customers:  # one line per score list
        text = text.replace(json.dumps(c["scores"], indent=1).replace("\n", "\n   "), json.dumps(c["scores"]))
    assert json.loads(text) == payload
    EXPECTED.write_text(text + "\n", encoding="utf-8")
    n_null = int(np.isnan(Xs[picked_rows]).any(axis=1).sum())
    log(f"wrote {EXPECTED.relative_to(ROOT)}: {len(customers)} customers ({n_null} with nulls)")
    log(f"done in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    sys.exit(main())
