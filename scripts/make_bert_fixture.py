"""Build tests/fixtures/tiny-bert: a tiny, randomly initialised Hugging Face BERT classifier exported the way HF users
export one, to prove that such a model drops into crmscore as a `text` model.

    scripts/setup-python.sh --torch && .venv-torch/bin/python scripts/make_bert_fixture.py

Nothing is downloaded: the vocabulary is a WordPiece trained on the feedback corpus (scripts/feedback_corpus.py,
with train_sentiment's deterministic trainer)
and the model comes from a BertConfig (hidden 32, 2 layers, 2 heads, intermediate 64, 3 labels, 128 positions,
fixed torch seed). The tokenizer goes through BertTokenizerFast.save_pretrained, so tokenizer.json is the standard
HF layout (BertNormalizer, BertPreTokenizer, WordPiece, [CLS] $A [SEP] template post-processor).
Export: torch.onnx.export(dynamo=False, opset 17) with inputs input_ids, attention_mask, token_type_ids (int64
[batch, sequence]) -> logits [batch, 3], dynamic batch and sequence.

Writes model.onnx, tokenizer.json and expected.json (6 texts: token ids truncated to max_length 64 and the logits
Python onnxruntime gives for each text alone, token_type_ids all zero). The logits mean nothing (random weights);
they only pin down what the server must compute. No model.toml: the Rust test writes its own manifest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

import feedback_corpus
from train_sentiment import wordpiece_vocab

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "fixtures" / "tiny-bert"
MAX_LENGTH = 64
LABELS = ["negative", "neutral", "positive"]
TEXTS = [
    "The engineer fixed my broadband in twenty minutes, brilliant service!",
    "third time this month my invoice is wrong",
    "Can I change my delivery address?",
    "ok",
    "Très bien — the café-style store in Leeds 👍 (order #48213, £19.99)",
    # Longer than MAX_LENGTH tokens: the server must truncate exactly like the tokenizer does.
    "I have called your helpline five times about the router that restarts every hour, I was promised a callback "
    "on Monday that never came, the replacement arrived with a cracked case, and the refund of £45.99 for the "
    "days without internet still has not reached my account, so please escalate this to a manager today.",
]


def log(msg: str) -> None:
    print(msg, flush=True)


def build_tokenizer(tmp: Path, vocab_size: int):
    """WordPiece vocabulary from the corpus, wrapped and saved the way HF does it; returns the reloaded tokenizer."""
    from tokenizers import normalizers, pre_tokenizers
    from transformers import BertTokenizerFast

    texts = [ex.text for ex in feedback_corpus.generate_corpus(30_000, seed=42) if ex.split == "train"]
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(w for text in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = wordpiece_vocab(words, vocab_size)  # deterministic, unlike tokenizers' WordPieceTrainer
    (tmp / "vocab.txt").write_text("".join(token + "\n" for token in vocab), encoding="utf-8")
    hf = BertTokenizerFast(vocab=str(tmp / "vocab.txt"), do_lower_case=True)
    hf.model_max_length = MAX_LENGTH
    hf.save_pretrained(str(tmp / "hf"))
    return BertTokenizerFast.from_pretrained(str(tmp / "hf")), tmp / "hf" / "tokenizer.json"


def check_tokenizer_json(path: Path) -> None:
    spec = json.loads(path.read_text(encoding="utf-8"))
    post = spec["post_processor"]
    assert spec["model"]["type"] == "WordPiece" and spec["normalizer"]["type"] == "BertNormalizer", spec["model"]
    assert post["type"] == "TemplateProcessing", post["type"]
    assert [p.get("SpecialToken", {}).get("id") for p in post["single"]] == ["[CLS]", None, "[SEP]"], post["single"]
    assert spec["model"]["vocab"]["[PAD]"] == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--vocab", type=int, default=1500, help="WordPiece vocabulary size (default 1500)")
    args = parser.parse_args()
    import onnx
    import onnxruntime as ort
    import transformers
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer, tokenizer_json = build_tokenizer(Path(tmp), args.vocab)
        check_tokenizer_json(tokenizer_json)
        shutil.copyfile(tokenizer_json, OUT_DIR / "tokenizer.json")
    log(f"tokenizer: {len(tokenizer):,} tokens -> {OUT_DIR / 'tokenizer.json'}")

    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, type_vocab_size=2, num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)},
        initializer_range=0.2,  # wider than BERT's 0.02 so logits actually move with the input
    )  # fmt: skip
    model = BertForSequenceClassification(config).eval()
    model.config.return_dict = False  # a plain tuple out of forward: what the TorchScript exporter traces best

    onnx_path = OUT_DIR / "model.onnx"
    example = tokenizer(["hello there", "the app is great"], padding=True, return_tensors="pt")
    inputs = (example["input_ids"], example["attention_mask"], example["token_type_ids"])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(
        model, inputs, str(onnx_path), dynamo=False, opset_version=17, do_constant_folding=True,
        input_names=names, output_names=["logits"],
        dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "logits": {0: "batch"}},
    )  # fmt: skip
    onnx.checker.check_model(onnx.load(str(onnx_path)), full_check=True)
    log(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e3:.0f} kB, transformers {transformers.__version__}, "
        f"torch {torch.__version__.split('+')[0]})")  # fmt: skip

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def run(ids: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in ids)
        arr = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros_like(arr)
        for i, x in enumerate(ids):
            arr[i, : len(x)], mask[i, : len(x)] = x, 1
        return session.run(["logits"], {"input_ids": arr, "attention_mask": mask,
                                        "token_type_ids": np.zeros_like(arr)})[0]  # fmt: skip

    untruncated = len(tokenizer.backend_tokenizer.encode(TEXTS[-1]).ids)  # (the HF call below sets truncation)
    encoded = [tokenizer(t, truncation=True, max_length=MAX_LENGTH)["input_ids"] for t in TEXTS]
    assert len(encoded[-1]) == MAX_LENGTH and untruncated > MAX_LENGTH, untruncated
    alone = np.concatenate([run([ids]) for ids in encoded])
    with torch.no_grad():
        expected = np.concatenate([model(torch.tensor([ids]))[0].numpy() for ids in encoded])
    batched = run(encoded)  # all six padded to the longest: padding must not matter
    log(f"onnxruntime {ort.__version__} vs torch: max |diff| {np.abs(alone - expected).max():.2e}; alone vs padded "
        f"batch: max |diff| {np.abs(alone - batched).max():.2e}")  # fmt: skip
    assert np.abs(alone - expected).max() <= 1e-5 and np.abs(alone - batched).max() <= 1e-5

    cases = [{"text": t, "input_ids": ids, "logits": [float(v) for v in row]}
             for t, ids, row in zip(TEXTS, encoded, alone)]  # fmt: skip
    body = ",\n".join(json.dumps(case, ensure_ascii=False) for case in cases)
    labels = json.dumps(LABELS)
    (OUT_DIR / "expected.json").write_text(
        f'{{"max_length": {MAX_LENGTH}, "labels": {labels}, "cases": [\n{body}\n]}}\n', encoding="utf-8")
    for case in cases:
        log(f"  {len(case['input_ids']):3d} tokens  logits {np.round(case['logits'], 4).tolist()}  {case['text'][:60]}")
    log(f"wrote {OUT_DIR / 'expected.json'}")


if __name__ == "__main__":
    sys.exit(main())
