"""Nightly churn scoring the way a data team writes it in Python: the Python equivalent of `crmscore score-batch
--models churn`, the baseline of scripts/batch-bench.sh.

pandas reads the snapshot's id and feature columns, the manifest's missing-value policy and risk bands are applied,
onnxruntime scores in batches of 100k rows, and pandas writes the same columns as crmscore (customer_id,
churn_probability, risk) to Parquet.

    python scripts/reference/batch_score.py SNAPSHOT.parquet OUT.parquet [--models models]
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

BATCH_ROWS = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshot", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--models", type=Path, default=Path("models"))
    args = parser.parse_args()

    started = time.perf_counter()
    manifest = tomllib.loads((args.models / "churn" / "model.toml").read_text())
    features = manifest["features"]
    positive = manifest["labels"].index(manifest["positive_label"])
    medium, high = manifest["risk"]["medium"], manifest["risk"]["high"]

    df = pd.read_parquet(args.snapshot, columns=["customer_id", *features])
    x = df[features].astype("float32")
    match manifest.get("missing", "nan"):
        case "zero":
            x = x.fillna(0.0)
        case "reject":
            x = x.dropna()
            df = df.loc[x.index]
    x = x.to_numpy()

    session = ort.InferenceSession(str(args.models / "churn" / "model.onnx"), providers=["CPUExecutionProvider"])
    probabilities = np.concatenate([
        session.run([manifest["output"]], {manifest["input"]: x[i : i + BATCH_ROWS]})[0][:, positive]
        for i in range(0, len(x), BATCH_ROWS)
    ])
    risk = np.where(probabilities >= high, "high", np.where(probabilities >= medium, "medium", "low"))
    out = pd.DataFrame({
        "customer_id": df["customer_id"].to_numpy(),
        "churn_probability": probabilities.astype("float32"),
        "risk": risk,
    })
    out.to_parquet(args.output, index=False)
    print(f"scored {len(out)} customers in {time.perf_counter() - started:.2f}s")


if __name__ == "__main__":
    main()
