"""The Python reference for crmscore's load test: churn scoring the way a data-science team would serve it.

FastAPI + uvicorn (one worker) + onnxruntime + pandas. At start it reads the Parquet snapshot into a pandas
DataFrame indexed by customer_id and opens models/churn/model.onnx; each request looks its customers up with
.loc, builds the float32 matrix in the manifest's feature order, runs the ONNX session and bands the churn
probability with the manifest's risk thresholds. Same request and reply shape as crmscore's POST /v1/churn/score:

    {"customer_ids": ["C0004211"]}
    -> {"model": {"name": "churn", "version": "1"}, "snapshot": "customers-1m.parquet",
        "results": [{"customer_id": "C0004211", "churn_probability": 0.12, "risk": "low"}]}

Run (scripts/loadtest.sh does this, pinned with taskset, in the .bench/venv made from requirements.txt):

    .bench/venv/bin/python scripts/reference/app.py --snapshot snapshots/customers-sample.parquet --port 18100

ONNX Runtime's intra-op pool is set to --intra-threads (default 1, like crmscore's --intra-threads default), so
that a service pinned to one CPU does not spin a second thread against itself.
"""

from __future__ import annotations

import argparse
import os
import time
import tomllib
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "churn"

# Filled once at start (lifespan); read-only afterwards.
STATE: dict = {}


class ScoreRequest(BaseModel):
    customer_ids: list[str]


def load(model_dir: Path, snapshot: Path, intra_threads: int) -> None:
    manifest = tomllib.loads((model_dir / "model.toml").read_text())
    if manifest.get("missing", "nan") != "nan":
        raise SystemExit(f"reference service supports only missing = 'nan', not {manifest['missing']!r}")
    features = list(manifest["features"])

    started = time.perf_counter()
    frame = pd.read_parquet(snapshot, columns=["customer_id", *features]).set_index("customer_id")
    print(f"loaded {snapshot} ({len(frame):,} customers) in {time.perf_counter() - started:.1f}s", flush=True)

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])

    STATE.update(
        frame=frame,
        features=features,
        session=session,
        input=manifest["input"],
        output=manifest["output"],
        positive=manifest["labels"].index(manifest["positive_label"]),
        medium=float(manifest["risk"]["medium"]),
        high=float(manifest["risk"]["high"]),
        model={"name": MODEL_NAME, "version": str(manifest["version"])},
        snapshot=snapshot.name,
    )


def risk_band(p: float) -> str:
    if p >= STATE["high"]:
        return "high"
    if p >= STATE["medium"]:
        return "medium"
    return "low"


@asynccontextmanager
async def lifespan(_app: FastAPI):
    load(
        Path(os.environ.get("REFERENCE_MODELS", ROOT / "models")) / MODEL_NAME,
        Path(os.environ.get("REFERENCE_SNAPSHOT", ROOT / "snapshots" / "customers-sample.parquet")),
        int(os.environ.get("REFERENCE_INTRA_THREADS", "1")),
    )
    yield


app = FastAPI(title="churn reference", lifespan=lifespan)


@app.get("/v2/health/ready")
def ready():
    return {"ready": True}


@app.post("/v1/churn/score")
def score(request: ScoreRequest):
    if not request.customer_ids:
        raise HTTPException(status_code=400, detail="customer_ids is empty")
    frame = STATE["frame"]
    known = [cid for cid in request.customer_ids if cid in frame.index]
    probabilities = {}
    if known:
        x = frame.loc[known, STATE["features"]].to_numpy(dtype=np.float32, na_value=np.nan)
        probs = STATE["session"].run([STATE["output"]], {STATE["input"]: x})[0][:, STATE["positive"]]
        probabilities = dict(zip(known, probs.tolist()))

    results = []
    for cid in request.customer_ids:
        p = probabilities.get(cid)
        if p is None:
            results.append({
                "customer_id": cid,
                "error": {"code": "unknown_customer",
                          "message": f"customer '{cid}' is not in snapshot {STATE['snapshot']}"},
            })  # fmt: skip
        else:
            results.append({"customer_id": cid, "churn_probability": p, "risk": risk_band(p)})
    return {"model": STATE["model"], "snapshot": STATE["snapshot"], "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshot", type=Path, required=True, help="Parquet snapshot file")
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="model repository (default: models)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18100)
    parser.add_argument("--intra-threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    os.environ["REFERENCE_SNAPSHOT"] = str(args.snapshot.resolve())
    os.environ["REFERENCE_MODELS"] = str(args.models.resolve())
    os.environ["REFERENCE_INTRA_THREADS"] = str(args.intra_threads)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
