"""Train crmscore's recommendation model: a two-tower scorer of the 800-item catalogue from customer features.

    scripts/setup-python.sh --torch && .venv-torch/bin/python scripts/train_recommender.py

Generates 200,000 customers with purchase histories (crm_data, --seed 42: not the sample snapshot's seed 43),
holds out 10% of them, and trains in PyTorch (CPU):
    customer tower  features -> NaN to training mean -> log1p of skewed columns -> standardise
                    (+ missing indicators of the nullable columns) -> MLP -> 32-d embedding u
    item side       a 32-d embedding v_i and a bias b_i per catalogue item
    score           u . v_i + b_i  (full softmax over the catalogue, one positive per owned item)
The preprocessing lives inside the ONNX graph, so the server feeds raw snapshot values with NULL as NaN.

Evaluation (held-out customers with at least one purchase): the last purchased item is hidden, the rest are the
owned items; both the model and a popularity baseline (training purchase counts) rank the catalogue without the
owned items, and recall@10 / NDCG@10 of the hidden item are reported.

Writes models/recommendation/{model.onnx, model.toml, items.parquet} (items in score-column order) and
tests/fixtures/recommendation_expected.json (top-10 for 25 sample-snapshot customers, from onnxruntime; the
snapshot must be current: `.venv/bin/python scripts/train_models.py --snapshot-only` rewrites it after a change to
crm_data's purchase model, and this script refuses a stale one).
Deterministic: fixed seeds and a fixed torch thread count.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch import nn

import crm_data

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "recommendation"
SAMPLE_PATH = ROOT / "snapshots" / "customers-sample.parquet"
FIXTURE_PATH = ROOT / "tests" / "fixtures" / "recommendation_expected.json"
SNAPSHOT_SEED = 43  # scripts/train_models.py writes the sample snapshot with its seed 42 + 1
K = 10
FEATURES = crm_data.FEATURE_NAMES  # the churn model's 21 columns: what the snapshot carries for every customer
# Heavy-tailed, non-negative columns: log1p before standardising so a few large values do not dominate.
LOG_COLUMNS = ("total_charges", "lifetime_value", "monthly_data_mb", "logins_per_month", "avg_session_minutes",
               "days_since_last_purchase")  # fmt: skip
NULLABLE = [name for name in FEATURES if name in crm_data.NULLABLE]  # get a 0/1 "was missing" input each


def log(msg: str) -> None:
    print(msg, flush=True)


class TwoTower(nn.Module):
    """features float32 [batch, F] (NaN = missing) -> scores float32 [batch, items]."""

    def __init__(self, fill: np.ndarray, center: np.ndarray, scale: np.ndarray, n_items: int,
                 dim: int = 32, hidden: int = 128) -> None:  # fmt: skip
        super().__init__()
        self.register_buffer("fill", torch.tensor(fill, dtype=torch.float32))
        self.register_buffer("center", torch.tensor(center, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("log_mask", torch.tensor([name in LOG_COLUMNS for name in FEATURES]))
        self.register_buffer("nullable", torch.tensor([FEATURES.index(name) for name in NULLABLE]))
        self.tower = nn.Sequential(
            nn.Linear(len(FEATURES) + len(NULLABLE), hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, dim),
        )  # fmt: skip
        self.item_embedding = nn.Parameter(torch.randn(n_items, dim) * 0.05)
        self.item_bias = nn.Parameter(torch.zeros(n_items))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(features)
        x = torch.where(missing, self.fill, features)
        x = torch.where(self.log_mask, torch.log1p(torch.clamp(x, min=0.0)), x)
        x = (x - self.center) / self.scale
        x = torch.cat([x, missing[:, self.nullable].to(x.dtype)], dim=1)
        return self.tower(x) @ self.item_embedding.T + self.item_bias


def purchases(table: pa.Table, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """owned_items as CSR: (offsets [n + 1], catalogue row per purchase, null mask [n]); purchase order kept."""
    owned = table["owned_items"].combine_chunks()
    null = owned.is_null().to_numpy(zero_copy_only=False)
    offsets = owned.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    index = pc.index_in(owned.values, value_set=pa.array(ids)).to_numpy(zero_copy_only=False)
    assert not np.isnan(index.astype(float)).any(), "owned_items holds an id that is not in the catalogue"
    return offsets, index.astype(np.int64), null


def rank_metrics(scores: np.ndarray, owned: list[np.ndarray], hidden: np.ndarray) -> tuple[float, float]:
    """recall@K and NDCG@K of one hidden item per row, owned items excluded from the ranking."""
    scores = scores.astype(np.float64).copy()
    for row, items in enumerate(owned):
        scores[row, items] = -np.inf
    target = scores[np.arange(len(scores)), hidden]
    rank = (scores > target[:, None]).sum(axis=1)  # 0-based; ties counted in the item's favour (popularity has some)
    hit = rank < K
    return float(hit.mean()), float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean())


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()
    cat = crm_data.catalogue()
    table, _ = crm_data.generate(args.customers, args.seed)
    X = crm_data.feature_matrix(table)
    offsets, items, null = purchases(table, cat.ids)
    counts = np.diff(offsets)
    rng = np.random.default_rng(args.seed)
    is_test = rng.random(len(X)) < args.holdout
    train_rows = np.flatnonzero(~is_test & ~null & (counts > 0))
    test_rows = np.flatnonzero(is_test & ~null & (counts > 0))
    log(f"generated {len(X):,} customers ({time.perf_counter() - started:.1f}s): {len(train_rows):,} train and "
        f"{len(test_rows):,} held-out customers with purchases, "
        f"{counts[train_rows].mean():.2f} items each")  # fmt: skip

    popularity = np.bincount(np.concatenate([items[offsets[r] : offsets[r + 1]] for r in train_rows]),
                             minlength=cat.size).astype(np.int64)  # fmt: skip

    # Preprocessing statistics from the training customers, in the graph's order: fill, then log, then scale.
    Xt = X[train_rows].astype(np.float64)
    fill = np.nanmean(Xt, axis=0)
    Xt = np.where(np.isnan(Xt), fill, Xt)
    log_mask = np.array([name in LOG_COLUMNS for name in FEATURES])
    Xt[:, log_mask] = np.log1p(np.clip(Xt[:, log_mask], 0.0, None))
    center, scale = Xt.mean(axis=0), np.maximum(Xt.std(axis=0), 1e-6)
    model = TwoTower(fill, center, scale, cat.size, dim=args.dim)

    # Targets: each training customer's owned items share probability mass 1 (multinomial likelihood).
    features = torch.from_numpy(X[train_rows])
    own_offsets = np.concatenate([[0], np.cumsum(counts[train_rows])])
    own_items = np.concatenate([items[offsets[r] : offsets[r + 1]] for r in train_rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * ((len(train_rows) + args.batch - 1) // args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    t = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = rng.permutation(len(train_rows))
        total = 0.0
        for lo in range(0, len(perm), args.batch):
            batch = perm[lo : lo + args.batch]
            n_own = own_offsets[batch + 1] - own_offsets[batch]
            rows = np.repeat(np.arange(len(batch)), n_own)
            cols = np.concatenate([own_items[own_offsets[b] : own_offsets[b + 1]] for b in batch])
            target = torch.zeros(len(batch), cat.size)
            target[rows, cols] = torch.from_numpy(1.0 / n_own[rows]).float()
            loss = -(target * torch.log_softmax(model(features[batch]), dim=1)).sum(dim=1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        log(f"  epoch {epoch + 1:2d}/{args.epochs}: loss {total / len(perm):.4f}")
    log(f"trained two-tower model ({sum(p.numel() for p in model.parameters()):,} parameters) on "
        f"{len(train_rows):,} customers in {time.perf_counter() - t:.1f}s")  # fmt: skip

    # Held-out: the last purchase is hidden, the earlier ones are what the customer owns.
    model.eval()
    hidden = items[offsets[test_rows + 1] - 1]
    owned = [items[offsets[r] : offsets[r + 1] - 1] for r in test_rows]
    with torch.no_grad():
        test_scores = model(torch.from_numpy(X[test_rows])).numpy()
    recall, ndcg = rank_metrics(test_scores, owned, hidden)
    pop_recall, pop_ndcg = rank_metrics(np.tile(popularity.astype(np.float32), (len(test_rows), 1)), owned, hidden)
    log(f"held-out ({len(test_rows):,} customers, last purchase hidden): recall@{K} {recall:.4f}, NDCG@{K} "
        f"{ndcg:.4f}; popularity baseline recall@{K} {pop_recall:.4f}, NDCG@{K} {pop_ndcg:.4f}")  # fmt: skip

    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    onnx_path = MODEL_DIR / "model.onnx"
    export_onnx(model, onnx_path)
    verify_onnx(onnx_path, model, X[test_rows])
    write_items(MODEL_DIR / "items.parquet", cat, popularity)
    write_manifest(MODEL_DIR / "model.toml", recall=recall, ndcg=ndcg, pop_recall=pop_recall, pop_ndcg=pop_ndcg,
                   trained=len(train_rows), holdout=len(test_rows), dim=args.dim, seed=args.seed)  # fmt: skip
    write_fixture(onnx_path, cat.ids)
    log(f"done in {time.perf_counter() - started:.1f}s")


def export_onnx(model: TwoTower, path: Path) -> None:
    import onnx

    example = torch.zeros(2, len(FEATURES))
    torch.onnx.export(
        model, (example,), str(path), dynamo=False, opset_version=17, do_constant_folding=True,
        input_names=["features"], output_names=["scores"],
        dynamic_axes={"features": {0: "batch"}, "scores": {0: "batch"}},
    )  # fmt: skip
    onx = onnx.load(str(path))
    onx.doc_string = "crmscore recommender: two-tower scores over the item catalogue from CRM snapshot features"
    onnx.checker.check_model(onx, full_check=True)
    onnx.save(onx, str(path))
    log(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


def verify_onnx(path: Path, model: TwoTower, X: np.ndarray) -> None:
    """onnxruntime must reproduce torch on held-out rows, NaN rows included (and on an all-NaN row)."""
    import onnxruntime as ort

    X = np.concatenate([X, np.full((1, X.shape[1]), np.nan, dtype=np.float32)])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["scores"], {"features": X})
    with torch.no_grad():
        expected = model(torch.from_numpy(X)).numpy()
    nan_rows = np.isnan(X).any(axis=1)
    diff = float(np.abs(got - expected).max())
    log(f"onnxruntime {ort.__version__} vs torch on {len(X):,} held-out rows ({nan_rows.sum():,} with NaN): "
        f"max |diff| = {diff:.2e} (NaN rows {np.abs(got - expected)[nan_rows].max():.2e})")  # fmt: skip
    assert got.dtype == np.float32 and got.shape == expected.shape and np.isfinite(got).all()
    assert diff <= 1e-5, f"ONNX scores differ from torch by {diff}"


def write_items(path: Path, cat: crm_data.Catalogue, popularity: np.ndarray) -> None:
    items = cat.table.append_column("popularity", pa.array(popularity, pa.int64()))
    pq.write_table(items, path, compression="zstd")
    log(f"wrote {path} ({items.num_rows} items, {path.stat().st_size / 1e3:.0f} kB)")


def write_manifest(path: Path, *, recall: float, ndcg: float, pop_recall: float, pop_ndcg: float, trained: int,
                   holdout: int, dim: int, seed: int) -> None:  # fmt: skip
    features = "".join(f'    "{name}",\n' for name in FEATURES)
    text = f"""\
# crmscore model manifest — written by scripts/train_recommender.py
kind = "recommender"
version = "1"
description = "Two-tower recommender (customer-feature MLP x item embeddings) over an 800-item catalogue, \
trained on synthetic CRM purchase histories"
input = "features"            # ONNX input: float32 [batch, len(features)]; NaN = missing (imputed in the graph)
output = "scores"             # ONNX output: float32 [batch, items], columns in items.parquet row order
features = [                  # snapshot columns, in input column order
{features}]
missing = "nan"
items = "items.parquet"       # item_id, name, category, price_band, popularity
owned_column = "owned_items"  # snapshot list<string> column of item ids to exclude

[batching]
max_batch_size = 128
max_delay_us = 0               # no batch window: a worker runs what is queued when it is free (docs/performance.md)
queue_capacity = 1024
workers = 1

[metadata]                      # held-out customers: last purchase hidden, owned items excluded from the top 10
recall_at_10 = {recall:.4f}
ndcg_at_10 = {ndcg:.4f}
popularity_recall_at_10 = {pop_recall:.4f}
popularity_ndcg_at_10 = {pop_ndcg:.4f}
items = 800
embedding_dim = {dim}
trained_customers = {trained}
holdout_customers = {holdout}
trainer = "PyTorch {torch.__version__.split('+')[0]} two-tower"
seed = {seed}
"""
    manifest = tomllib.loads(text)  # fail here, not in the server, if the TOML is malformed
    assert manifest["features"] == FEATURES and manifest["metadata"]["items"] == crm_data.catalogue().size
    path.write_text(text, encoding="utf-8")
    log(f"wrote {path}")


def fixture_customers(sample: pa.Table, X: np.ndarray) -> list[int]:
    """25 sample rows covering the cases the server must get right: several owned items (some more than K),
    an empty list, a NULL list, and NULL features (nps_score, email_open_rate, app_rating)."""
    counts = pc.list_value_length(sample["owned_items"]).to_numpy(zero_copy_only=False)
    null_owned = sample["owned_items"].is_null().to_numpy(zero_copy_only=False)
    null_features = np.isnan(X).any(axis=1)
    picks: list[int] = []

    def take(mask: np.ndarray, n: int) -> None:
        picks.extend([int(i) for i in np.flatnonzero(mask) if i not in picks][:n])

    take(null_owned, 1)
    take(~null_owned & (counts == 0), 2)
    take(~null_owned & (counts == 0) & null_features, 1)
    take(counts >= 11, 3)
    take((counts >= 1) & null_features, 6)
    take(np.isnan(X).sum(axis=1) >= 2, 2)
    take((counts >= 1) & (counts <= 10) & ~null_features, 25 - len(picks))
    assert len(picks) == 25
    return sorted(picks)


def write_fixture(onnx_path: Path, ids: np.ndarray) -> None:
    """Top-K per customer from the sample snapshot with Python onnxruntime: what the Rust server must return."""
    import onnxruntime as ort

    sample = pq.read_table(SAMPLE_PATH)
    regenerated, _ = crm_data.generate(sample.num_rows, SNAPSHOT_SEED)
    assert sample["owned_items"].equals(regenerated["owned_items"]), (
        f"{SAMPLE_PATH} is stale: run `.venv/bin/python scripts/train_models.py --snapshot-only` first")
    X = crm_data.feature_matrix(sample)
    rows = fixture_customers(sample, X)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (scores,) = session.run(["scores"], {"features": X[rows]})
    index = {item: i for i, item in enumerate(ids.tolist())}
    customers, ties = [], []
    for row, s in zip(rows, scores):
        owned = sample["owned_items"][row].as_py() or []  # NULL list: nothing to exclude
        allowed = np.ones(len(s), dtype=bool)
        allowed[[index[i] for i in owned]] = False
        order = [int(i) for i in np.argsort(-s, kind="stable") if allowed[i]][: K + 1]
        top = [float(s[i]) for i in order]
        if len(set(top)) < len(top):
            ties.append(sample["customer_id"][row].as_py())
        customers.append({
            "customer_id": sample["customer_id"][row].as_py(),
            "owned": owned,
            "top": [{"item_id": str(ids[i]), "score": float(s[i])} for i in order[:K]],
        })  # fmt: skip
    FIXTURE_PATH.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE_PATH.write_text(json.dumps({"k": K, "customers": customers}, indent=1) + "\n", encoding="utf-8")
    gaps = [c["top"][i]["score"] - c["top"][i + 1]["score"] for c in customers for i in range(K - 1)]
    log(f"wrote {FIXTURE_PATH} ({len(customers)} customers; ties in the top {K + 1}: {ties or 'none'}; "
        f"smallest gap between neighbours {min(gaps):.2e})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42, help="data, split and torch seed (default 42)")
    parser.add_argument("--customers", type=int, default=200_000, help="generated customers incl. held-out")
    parser.add_argument("--holdout", type=float, default=0.1, help="held-out share of customers (default 0.1)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--dim", type=int, default=32, help="embedding size (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads; fixed for reproducibility")
    train(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
