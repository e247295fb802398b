"""Measure a crmscore text model (a models/<name> folder) on the hand-written sentiment development set.

    .venv-sentiment/bin/python scripts/sentiment_eval.py models/sentiment [--baseline /tmp/old_sentiment]

Prints accuracy, the confusion matrix, recall per class, expected calibration error (10 equal-width bins on the
top probability), vocabulary coverage (words of the set that are not one whole token of the tokenizer), the misread
sentences, and onnxruntime's cost per text (1 thread, texts alone and in batches of 32; medians of 5 runs, the
baseline measured in the same run). The functions are shared with scripts/train_sentiment.py.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEV_PATH = ROOT / "tests" / "fixtures" / "sentiment_dev.tsv"
LABELS = ["negative", "neutral", "positive"]
MAX_LENGTH = 128


def load_tsv(path: Path) -> list[tuple[str, str]]:
    """(text, label) pairs of a label<TAB>text file; '#' lines are comments."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            label, text = line.split("\t", 1)
            assert label in LABELS, line
            rows.append((text, label))
    return rows


def pad(batch: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(ids) for ids in batch)
    ids = np.zeros((len(batch), width), np.int64)
    mask = np.zeros((len(batch), width), np.int64)
    for i, row in enumerate(batch):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def session_of(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(session, encoded: list[list[int]]) -> np.ndarray:
    ids, mask = pad(encoded)
    return session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]


def logits_alone(session, encoded: list[list[int]]) -> np.ndarray:
    """Each text scored alone, as the server's parity fixture does."""
    return np.concatenate([run(session, [ids]) for ids in encoded])


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: 10 equal-width bins on the top probability."""
    conf, pred = probs.max(1), probs.argmax(1)
    total = 0.0
    for b in range(bins):
        sel = (conf > b / bins) & (conf <= (b + 1) / bins)
        if sel.any():
            total += sel.mean() * abs(float((pred[sel] == y[sel]).mean()) - float(conf[sel].mean()))
    return total


def scores(probs: np.ndarray, y: np.ndarray) -> dict:
    pred = probs.argmax(1)
    confusion = np.zeros((3, 3), dtype=int)
    np.add.at(confusion, (y, pred), 1)
    return {"accuracy": float((pred == y).mean()), "confusion": confusion,
            "recall": [float(confusion[i, i] / max(confusion[i].sum(), 1)) for i in range(3)],
            "ece": ece(probs, y), "n": len(y)}  # fmt: skip


def describe(name: str, s: dict) -> str:
    recall = ", ".join(f"{lab} {r:.3f}" for lab, r in zip(LABELS, s["recall"]))
    rows = "\n".join(f"      {LABELS[i]:9s} {s['confusion'][i].tolist()}" for i in range(3))
    return (f"{name}: accuracy {s['accuracy']:.4f} on {s['n']} texts; recall {recall}; ECE {s['ece']:.4f}\n"
            f"    confusion (rows true, cols predicted negative/neutral/positive):\n{rows}")  # fmt: skip


def encoder(tokenizer_path: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.enable_truncation(MAX_LENGTH)
    return tok


def coverage(tok, texts: list[str]) -> str:
    vocab = tok.get_vocab()
    words = [w for t in texts for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(t))
             if w.isalpha()]  # fmt: skip
    split = [w for w in words if w not in vocab]
    texts_hit = sum(any(w.isalpha() and w not in vocab for w, _ in
                        tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(t))) for t in texts)  # fmt: skip
    unk = sum(tok.encode(t).ids.count(tok.token_to_id("[UNK]")) for t in texts)
    return (f"{len(split)} of {len(words)} words ({len(split) / len(words):.1%}) are not a whole token (split into "
            f"pieces); {texts_hit} of {len(texts)} texts have one; {unk} [UNK] pieces")  # fmt: skip


def per_text_cost(sessions: dict, runs: int = 5) -> dict:
    """Median over runs of onnxruntime's time per text, each session timed in turn inside every run.
    sessions: name -> (session, the same texts encoded by that model's tokenizer)."""
    rng = np.random.default_rng(0)
    out: dict = {}
    for size, calls in ((1, 300), (32, 30)):
        n = len(next(iter(sessions.values()))[1])
        order = rng.choice(n, size * calls, replace=True)
        feeds: dict = {}
        for name, (_, encoded) in sessions.items():
            feeds[name] = []
            for k in range(calls):
                ids, mask = pad([encoded[i] for i in order[k * size : (k + 1) * size]])
                feeds[name].append({"input_ids": ids, "attention_mask": mask})
        times: dict = {name: [] for name in sessions}
        for _ in range(runs):
            for name, (session, _) in sessions.items():
                t = time.perf_counter()
                for feed in feeds[name]:
                    session.run(["logits"], feed)
                times[name].append((time.perf_counter() - t) / (size * calls) * 1e6)
        for name in sessions:
            out[(name, size)] = statistics.median(times[name])
    return out


def evaluate(model_dir: Path, rows: list[tuple[str, str]]) -> tuple[dict, np.ndarray, list[list[int]]]:
    tok = encoder(model_dir / "tokenizer.json")
    encoded = [e.ids for e in tok.encode_batch([t for t, _ in rows])]
    probs = softmax(logits_alone(session_of(model_dir / "model.onnx"), encoded))
    y = np.array([LABELS.index(label) for _, label in rows])
    return scores(probs, y), probs, encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a text model folder (tokenizer.json, model.onnx)")
    parser.add_argument("--baseline", type=Path, help="another model folder, timed in the same run")
    parser.add_argument("--dev", type=Path, default=DEV_PATH)
    args = parser.parse_args()
    rows = load_tsv(args.dev)
    s, probs, encoded = evaluate(args.model, rows)
    print(describe(f"{args.model} on {args.dev.name}", s))
    print("coverage:", coverage(encoder(args.model / "tokenizer.json"), [t for t, _ in rows]))
    for (text, label), p in zip(rows, probs):
        if LABELS[int(p.argmax())] != label:
            print(f"  MISS {label:8s} -> {LABELS[int(p.argmax())]:8s} {p.max():.2f}  {text}")
    sessions = {"model": (session_of(args.model / "model.onnx"), encoded)}
    if args.baseline:
        base = encoder(args.baseline / "tokenizer.json")
        sessions["baseline"] = (session_of(args.baseline / "model.onnx"),
                                [e.ids for e in base.encode_batch([t for t, _ in rows])])  # fmt: skip
    cost = per_text_cost(sessions)
    for (name, size), us in sorted(cost.items()):
        print(f"onnxruntime, 1 thread, batch {size:2d}: {name} {us:.1f} us per text (median of 5 runs)")
    if math.isnan(s["accuracy"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
