"""The Python reference for crmscore's load test: the three shipped models the way a data-science team would serve them.

FastAPI + uvicorn (one worker) + onnxruntime + pandas (+ Hugging Face `tokenizers` for text). At start it reads
the Parquet snapshot into a pandas DataFrame indexed by customer_id (the churn and recommender features and the
recommender's owned-items column) and opens one ONNX Runtime session per model under --models (churn,
recommendation, sentiment). Same request and reply shapes as crmscore's routes:

    POST /v1/churn/score      {"customer_ids": ["C0004211"]}
    -> {"model": {"name": "churn", "version": "1"}, "snapshot": "customers-1m.parquet",
        "results": [{"customer_id": "C0004211", "churn_probability": 0.12, "risk": "low"}]}
    POST /v1/recommendations  {"customer_ids": ["C0004211"], "k": 10, "exclude_owned": true}
    -> {"model": {...}, "snapshot": "...", "results": [{"customer_id": "C0004211", "items": [{"item_id": "P0208",
        "score": 3.86, "name": "...", "category": "...", "price_band": "..."}, ...], "cold_start": false}]}
    POST /v1/sentiment        {"texts": ["Third time this month my invoice is wrong, fix it"]}
    -> {"model": {...}, "results": [{"label": "negative", "scores": {"negative": 0.97, "neutral": 0.02,
        "positive": 0.01}}]}

- churn: .loc the customers, the float32 matrix in the manifest's feature order, the ONNX session, the positive
  class's probability banded with the manifest's risk thresholds.
- recommendations: .loc the customers' features (the recommender manifest's order and missing-value policy), the
  ONNX session's scores over the catalogue (columns in models/recommendation/items.parquet row order), the items in
  the customer's owned-items column left out when exclude_owned (default true), then a stable numpy argsort: best
  score first, the lower catalogue index first on ties, NaN last. A customer not in the snapshot gets the k most
  popular items (catalogue `popularity`), score 0 and "cold_start": true. k is 1..max_k (manifest, default 100).
- sentiment: the model's tokenizer.json with truncation to the manifest's max_length and padding to the longest
  text of the request, the ONNX session's logits, softmax in numpy, the label of the highest probability.

Run (scripts/loadtest.sh does this, pinned with taskset, in the .bench/venv made from requirements.txt):

    .bench/venv/bin/python scripts/reference/app.py --snapshot snapshots/customers-sample.parquet --port 18100

Every ONNX Runtime session's intra-op pool is set to --intra-threads (default 1, like crmscore's --intra-threads
default) and its inter-op pool to 1, so that a service pinned to one CPU does not spin a second thread against itself.
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
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
CHURN, RECOMMENDATION, SENTIMENT = "churn", "recommendation", "sentiment"

# Filled once at start (lifespan); read-only afterwards.
STATE: dict = {}


class ScoreRequest(BaseModel):
    customer_ids: list[str]


class RecommendRequest(BaseModel):
    customer_ids: list[str]
    k: int = 10
    exclude_owned: bool = True


class SentimentRequest(BaseModel):
    texts: list[str]


def read_manifest(model_dir: Path) -> dict:
    return tomllib.loads((model_dir / "model.toml").read_text())


def open_session(path: Path, intra_threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load(models: Path, snapshot: Path, intra_threads: int) -> None:
    churn = read_manifest(models / CHURN)
    rec = read_manifest(models / RECOMMENDATION)
    text = read_manifest(models / SENTIMENT)
    if churn.get("missing", "nan") != "nan":
        raise SystemExit(f"reference service supports only missing = 'nan' for churn, not {churn['missing']!r}")
    owned = rec.get("owned_column")

    started = time.perf_counter()
    columns = list(dict.fromkeys(["customer_id", *churn["features"], *rec["features"], *([owned] if owned else [])]))
    frame = pd.read_parquet(snapshot, columns=columns).set_index("customer_id")
    print(f"loaded {snapshot} ({len(frame):,} customers) in {time.perf_counter() - started:.1f}s", flush=True)

    items = pd.read_parquet(models / RECOMMENDATION / rec["items"])
    if "popularity" not in items:
        items["popularity"] = 0
    popularity = items["popularity"].fillna(0).to_numpy()
    tokenizer = Tokenizer.from_file(str(models / SENTIMENT / text.get("tokenizer", "tokenizer.json")))
    tokenizer.enable_truncation(max_length=int(text.get("max_length", 128)))
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")

    STATE.update(
        frame=frame,
        snapshot=snapshot.name,
        churn=dict(
            session=open_session(models / CHURN / "model.onnx", intra_threads),
            features=list(churn["features"]),
            input=churn["input"],
            output=churn["output"],
            positive=churn["labels"].index(churn["positive_label"]),
            medium=float(churn["risk"]["medium"]),
            high=float(churn["risk"]["high"]),
            model={"name": CHURN, "version": str(churn["version"])},
        ),
        rec=dict(
            session=open_session(models / RECOMMENDATION / "model.onnx", intra_threads),
            features=list(rec["features"]),
            missing=rec.get("missing", "nan"),
            input=rec["input"],
            output=rec["output"],
            owned=owned,
            items=items,
            item_index={item_id: i for i, item_id in enumerate(items["item_id"])},
            popular=np.lexsort((np.arange(len(items)), -popularity)),  # most popular first, lower index on ties
            max_k=min(int(rec.get("max_k", 100)), len(items)),
            model={"name": RECOMMENDATION, "version": str(rec["version"])},
        ),
        text=dict(
            session=open_session(models / SENTIMENT / "model.onnx", intra_threads),
            tokenizer=tokenizer,
            input_ids=text.get("input_ids", "input_ids"),
            attention_mask=text.get("attention_mask", "attention_mask"),
            token_type_ids=text.get("token_type_ids"),
            output=text["output"],
            labels=list(text["labels"]),
            model={"name": SENTIMENT, "version": str(text["version"])},
        ),
    )


def risk_band(p: float) -> str:
    churn = STATE["churn"]
    if p >= churn["high"]:
        return "high"
    if p >= churn["medium"]:
        return "medium"
    return "low"


def item_error(cid: str, code: str, message: str) -> dict:
    return {"customer_id": cid, "error": {"code": code, "message": message}}


def unknown_customer(cid: str) -> dict:
    return item_error(cid, "unknown_customer", f"customer '{cid}' is not in snapshot {STATE['snapshot']}")


@asynccontextmanager
async def lifespan(_app: FastAPI):
    load(
        Path(os.environ.get("REFERENCE_MODELS", ROOT / "models")),
        Path(os.environ.get("REFERENCE_SNAPSHOT", ROOT / "snapshots" / "customers-sample.parquet")),
        int(os.environ.get("REFERENCE_INTRA_THREADS", "1")),
    )
    yield


app = FastAPI(title="crmscore reference", lifespan=lifespan)


@app.get("/v2/health/ready")
def ready():
    return {"ready": True}


@app.post("/v1/churn/score")
def score(request: ScoreRequest):
    if not request.customer_ids:
        raise HTTPException(status_code=400, detail="customer_ids is empty")
    frame, churn = STATE["frame"], STATE["churn"]
    known = [cid for cid in request.customer_ids if cid in frame.index]
    probabilities = {}
    if known:
        x = frame.loc[known, churn["features"]].to_numpy(dtype=np.float32, na_value=np.nan)
        probs = churn["session"].run([churn["output"]], {churn["input"]: x})[0][:, churn["positive"]]
        probabilities = dict(zip(known, probs.tolist()))

    results = []
    for cid in request.customer_ids:
        p = probabilities.get(cid)
        if p is None:
            results.append(unknown_customer(cid))
        else:
            results.append({"customer_id": cid, "churn_probability": p, "risk": risk_band(p)})
    return {"model": churn["model"], "snapshot": STATE["snapshot"], "results": results}


def item_list(rec: dict, indices: np.ndarray, scores: np.ndarray) -> list[dict]:
    fields = [c for c in ("name", "category", "price_band") if c in rec["items"]]
    rows = rec["items"].iloc[indices][["item_id", *fields]].to_dict("records")
    return [{"item_id": row["item_id"], "score": float(score), **{f: row[f] for f in fields if pd.notna(row[f])}}
            for row, score in zip(rows, scores)]  # fmt: skip


@app.post("/v1/recommendations")
def recommend(request: RecommendRequest):
    rec, frame = STATE["rec"], STATE["frame"]
    if not request.customer_ids:
        raise HTTPException(status_code=400, detail="customer_ids is empty")
    if not 1 <= request.k <= rec["max_k"]:
        raise HTTPException(status_code=400, detail=f"'k' must be between 1 and {rec['max_k']}")
    k = request.k
    known = [cid for cid in request.customer_ids if cid in frame.index]
    x = frame.loc[known, rec["features"]]
    if rec["missing"] == "zero":
        x = x.fillna(0)
    elif rec["missing"] == "reject":
        x = x.dropna()
    scores = {}
    if len(x):
        out = rec["session"].run([rec["output"]], {rec["input"]: x.to_numpy(dtype=np.float32, na_value=np.nan)})[0]
        scores = dict(zip(x.index, out))

    results = []
    for cid in request.customer_ids:
        if cid not in frame.index:  # cold start: the most popular items
            top = rec["popular"][:k]
            items = item_list(rec, top, np.zeros(len(top)))
            results.append({"customer_id": cid, "items": items, "cold_start": True})
            continue
        if cid not in scores:
            message = f"customer '{cid}' has a missing feature and model '{RECOMMENDATION}' rejects missing values"
            results.append(item_error(cid, "missing_feature", message))
            continue
        s = np.where(np.isnan(scores[cid]), -np.inf, scores[cid])
        candidates = np.arange(len(s))
        owned = frame.at[cid, rec["owned"]] if rec["owned"] and request.exclude_owned else None
        if owned is not None and len(owned):
            excluded = [rec["item_index"][i] for i in owned if i in rec["item_index"]]
            candidates = np.setdiff1d(candidates, excluded)
        top = candidates[np.argsort(-s[candidates], kind="stable")[:k]]
        results.append({"customer_id": cid, "items": item_list(rec, top, s[top]), "cold_start": False})
    return {"model": rec["model"], "snapshot": STATE["snapshot"], "results": results}


@app.post("/v1/sentiment")
def sentiment(request: SentimentRequest):
    text = STATE["text"]
    if not request.texts:
        raise HTTPException(status_code=400, detail="texts is empty")
    if any(not t.strip() for t in request.texts):
        raise HTTPException(status_code=400, detail="texts must not be empty")
    encodings = text["tokenizer"].encode_batch(request.texts)
    input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
    feed = {text["input_ids"]: input_ids,
            text["attention_mask"]: np.array([e.attention_mask for e in encodings], dtype=np.int64)}  # fmt: skip
    if text["token_type_ids"]:
        feed[text["token_type_ids"]] = np.zeros_like(input_ids)
    logits = text["session"].run([text["output"]], feed)[0]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    labels = text["labels"]
    results = [{"label": labels[int(p.argmax())], "scores": dict(zip(labels, p.tolist()))} for p in probs]
    return {"model": text["model"], "results": results}


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
