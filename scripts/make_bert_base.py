"""Build a BERT-base-shaped sentiment model to measure with: a Hugging Face BertForSequenceClassification (12 layers,
hidden 768, 12 heads, intermediate 3072, 30,522-token embedding, 3 labels; ~110M parameters) from a BertConfig with
random weights (nothing is downloaded), exported the way HF users do, with a crmscore manifest.

    scripts/setup-python.sh --torch && .venv-torch/bin/python scripts/make_bert_base.py [--out .bench/bert-base]

Writes OUT/fp32/sentiment/{model.onnx,tokenizer.json,model.toml} and OUT/fp16/sentiment/... :
- fp32: torch.onnx.export(dynamo=False, opset 17), inputs input_ids, attention_mask, token_type_ids (int64
  [batch, sequence]) -> logits float32 [batch, 3], dynamic batch and sequence (~438 MB).
- fp16: the fp32 graph through onnxruntime.transformers' float16 converter with keep_io_types=True, so the server
  feeds the same int64 inputs and reads float32 logits; weights and activations are half precision (~219 MB). It is
  meant for CUDA (on a CPU, ORT runs most fp16 kernels through casts and is slower). Its logits differ from fp32 by
  up to ~1e-2 on random weights: compare labels and 5e-2 on probabilities, not 1e-4.
The tokenizer is the WordPiece of tests/fixtures/tiny-bert (trained on the feedback corpus, deterministic), with a
vocabulary smaller than the embedding: ids stay in range, which is all a speed measurement needs. The answers mean
nothing (random weights). Not committed (too large): scripts/bert-bench.sh makes it on demand.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from make_bert_fixture import LABELS, build_tokenizer, check_tokenizer_json

ROOT = Path(__file__).resolve().parent.parent

MANIFEST = """# BERT-base-shaped sentiment classifier with random weights, made by scripts/make_bert_base.py ({precision}).
# For speed measurements only: its answers mean nothing.
kind = "text"
version = "bert-base-{precision}"
description = "BERT-base-shaped BertForSequenceClassification, random weights, {precision} ONNX"
tokenizer = "tokenizer.json"
max_length = 128
output = "logits"
labels = ["negative", "neutral", "positive"]

[batching]
# CPU: a batch of 8192 padded tokens is ~30 ms per core for BERT-base; more only adds queueing.
max_tokens = 8192
max_batch_size = 256
queue_capacity = 8192

[batching.cuda]
# GPU: large batches keep the tensor cores busy; 128 texts x 128 tokens per call.
max_tokens = 16384
max_batch_size = 512
"""


def log(msg: str) -> None:
    print(msg, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "bert-base")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    import onnx
    import onnxruntime as ort
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    fp32_dir, fp16_dir = args.out / "fp32" / "sentiment", args.out / "fp16" / "sentiment"
    for d in (fp32_dir, fp16_dir):
        d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer, tokenizer_json = build_tokenizer(Path(tmp), 8000)
        check_tokenizer_json(tokenizer_json)
        text = tokenizer_json.read_text(encoding="utf-8")
    for d, precision in ((fp32_dir, "fp32"), (fp16_dir, "fp16")):
        (d / "tokenizer.json").write_text(text, encoding="utf-8")
        (d / "model.toml").write_text(MANIFEST.format(precision=precision), encoding="utf-8")

    config = BertConfig(
        vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=512, type_vocab_size=2, num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)},
    )  # fmt: skip
    model = BertForSequenceClassification(config).eval()
    model.config.return_dict = False
    params = sum(p.numel() for p in model.parameters())
    log(f"BertForSequenceClassification: {params / 1e6:.1f}M parameters")

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tokenizer(["hello there", "the app is great"], padding=True, return_tensors="pt")
    fp32 = fp32_dir / "model.onnx"
    torch.onnx.export(
        model, tuple(example[n] for n in names), str(fp32), dynamo=False, opset_version=17,
        do_constant_folding=True, input_names=names, output_names=["logits"],
        dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "logits": {0: "batch"}},
    )  # fmt: skip
    log(f"wrote {fp32} ({fp32.stat().st_size / 1e6:.0f} MB)")
    half = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    fp16 = fp16_dir / "model.onnx"
    onnx.save(half, str(fp16))
    log(f"wrote {fp16} ({fp16.stat().st_size / 1e6:.0f} MB)")

    # The export matches torch (fp32), and fp16 stays near it.
    batch = tokenizer(["the refund never arrived", "brilliant engineer, fixed in minutes"], padding=True,
                      return_tensors="np")  # fmt: skip
    feed = {n: batch[n].astype(np.int64) for n in names}
    got = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(["logits"], feed)[0]
    with torch.no_grad():
        want = model(*(torch.tensor(feed[n]) for n in names))[0].numpy()
    log(f"fp32 onnxruntime vs torch: max |diff| {np.abs(got - want).max():.2e}")
    assert np.abs(got - want).max() <= 1e-4
    got16 = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"]).run(["logits"], feed)[0]
    log(f"fp16 vs fp32 logits: max |diff| {np.abs(got16 - got).max():.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
