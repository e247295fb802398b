"""Train crmscore's sentiment model: a WordPiece tokenizer and an embedding bag with in-graph VADER lexicon features.

    scripts/setup-python.sh --sentiment && .venv-sentiment/bin/python scripts/train_sentiment.py

No PyTorch: numpy + scikit-learn train it, onnx.helper writes the graph (scripts/sentiment_onnx.py). Deterministic:
one thread, fixed seeds; the same command writes byte-identical files.

Data (never the development set tests/fixtures/sentiment_dev.tsv, which is only measured):
  - scripts/feedback_corpus.py (30,000 synthetic texts, seed 42), training families only: the held-out families are
    measured, as before;
  - scripts/sentiment_data/handwritten_train.tsv: 528 hand-written realistic texts, repeated --repeat times (copies
    with 10% of pieces replaced by [UNK]), plus lexicon swaps of them (sentiment_lexicon.swap_variants). A first fit
    leaves out 20% of them (stratified, seeded), which fit the temperature and are measured; the final fit, same
    settings, uses all of them;
  - lexicon swaps of 4,000 positive and negative corpus training texts.
Tokenizer: BERT-style WordPiece (lowercase, [CLS] ... [SEP], [PAD] = 0, [UNK] = 1) from a deterministic
re-implementation of tokenizers' WordPiece trainer on the training texts, plus every alphabetic VADER word as a
whole token, so a rated word the corpus never used still carries its human rating.
Model: h = relu(mean token embedding + mean hashed-bigram embedding + 7 lexicon features @ W + b) (hidden 32),
logits = h @ W_out + b_out, trained as scikit-learn's MLPClassifier on the equivalent sparse features (mean one-hot
token and bigram counts, lexicon features). Rows of tokens and bigrams never seen in training are set to zero.
The lexicon features (VADER valence with its negation window and "but" rule; scripts/sentiment_lexicon.py) are
computed inside the graph from constant per-token tables. Calibration: the temperature of the first fit, by log loss
on its held-back 20%, is folded into the final fit's output layer (the server has no temperature setting).
Settings (L2 1e-3, 8 epochs, x32, 10% [UNK]) were chosen on the held-back texts and held-out families, never on the
development set.

Writes models/sentiment/{tokenizer.json, model.onnx, model.toml} and tests/fixtures/sentiment_expected.json
(token ids and onnxruntime logits of 30 texts, each scored alone), and prints the accuracy, confusion, recall and
ECE on the held-out families, the held-back hand-written texts and the development set.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np

import feedback_corpus
import sentiment_eval as ev
import sentiment_lexicon as lx
import sentiment_onnx as gx

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "sentiment"
FIXTURE_PATH = ROOT / "tests" / "fixtures" / "sentiment_expected.json"
HANDWRITTEN_PATH = ROOT / "scripts" / "sentiment_data" / "handwritten_train.tsv"
LABELS = ev.LABELS
MAX_LENGTH = ev.MAX_LENGTH
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] first: id 0

# Parity-fixture texts written by hand (in neither the training nor the development set).
FIXTURE_TEXTS = [
    "Honestly the technician fixed everything in ten minutes, impressed",
    "third time this month my invoice is wrong",
    "can I change my delivery address?",
    "The router you sent last week keeps blinking orange and I still have no internet",
    "Just wanted to say the lady at the Oxford Street shop was lovely to my grandmother",
    "What time do you close on bank holidays?",
    "Why am I paying for 500 Mb when I get 40 on a good day",
    "Moved over from my old network last month, best decision I've made this year",
    "Please cancel the extra SIM on my account from the end of the month",
    "The new app update is gorgeous, but it logs me out every single day",
    "No complaints, the phone arrived the next morning as promised",
    "I need a copy of last year's statements for my mortgage application",
]
# Extra fixture texts: edge cases for the Rust tokenizer (unicode, emoji, accents, digits, very short, very long).
EDGE_TEXTS = [
    "ok",
    "Great service 👍 thanks!!",
    "Très bien, merci — the café-style store in Leeds is lovely",
    "Order #48213: 2x USB-C chargers (30W) @ £19.99 each, deliver to 221B Baker St.",
    "   WHY IS MY BILL £310???   ",
    # Longer than max_length tokens: exercises truncation (the tail, including the verdict, is cut off).
    "Dear team, I am writing for the fourth time about my broadband. " * 3
    + "The engineer visit on Monday was cancelled twenty minutes before it started, the replacement router "
    "restarts itself every hour, the helpline kept me on hold for ninety minutes and then cut me off, and the "
    "refund I was promised in March still has not arrived. I work from home three days a week and I have lost "
    "two days of pay because of this. I have been a customer for twelve years and I have never been treated "
    "like this. Please escalate this complaint to a manager, release me from my contract without an exit fee "
    "and refund every month in which the service did not work. Regards, Anna",
]


def log(msg: str) -> None:
    print(msg, flush=True)


# --- tokenizer ----------------------------------------------------------------------------------------------------

def wordpiece_vocab(words: Counter, vocab_size: int) -> list[str]:
    """WordPiece vocabulary the way tokenizers' WordPieceTrainer builds one (BPE merges over "##"-prefixed
    characters, most frequent pair first, until vocab_size or nothing is left to merge), but deterministic:
    ties go to the smallest pair."""
    names = sorted(words)
    seqs = [[w[0]] + ["##" + ch for ch in w[1:]] for w in names]
    freq = [words[w] for w in names]
    vocab = SPECIALS + sorted({piece for seq in seqs for piece in seq})
    count: Counter = Counter()
    where: dict[tuple[str, str], set[int]] = {}
    for i, seq in enumerate(seqs):
        for pair in zip(seq, seq[1:]):
            count[pair] += freq[i]
            where.setdefault(pair, set()).add(i)
    heap = [(-c, pair) for pair, c in count.items()]
    heapq.heapify(heap)
    while heap and len(vocab) < vocab_size:
        c, pair = heapq.heappop(heap)
        if count.get(pair, 0) != -c or c == 0:
            continue  # stale entry: the pair's count changed after it was pushed
        a, b = pair
        merged = a + b[2:]
        vocab.append(merged)
        changed = set()
        for i in sorted(where.pop(pair)):
            seq, out, j = seqs[i], [], 0
            for p in zip(seq, seq[1:]):
                count[p] -= freq[i]
                changed.add(p)
            while j < len(seq):
                if j + 1 < len(seq) and seq[j] == a and seq[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(seq[j])
                    j += 1
            seqs[i] = out
            for p in zip(out, out[1:]):
                count[p] += freq[i]
                where.setdefault(p, set()).add(i)
                changed.add(p)
        del count[pair]
        for p in changed - {pair}:
            if count[p] > 0:
                heapq.heappush(heap, (-count[p], p))
    return vocab


def train_tokenizer(texts: list[str], vocab_size: int, whole_words: list[str]):
    """WordPiece from the training texts (at most vocab_size pieces), then whole_words appended as whole tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                            lowercase=True)  # fmt: skip
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = Counter(w for text in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = wordpiece_vocab(words, vocab_size)
    known = set(vocab)
    vocab += [w for w in sorted(set(whole_words)) if w not in known]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]",
                                     max_input_chars_per_word=100))  # fmt: skip
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(SPECIALS)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    assert tok.token_to_id("[PAD]") == 0 and tok.token_to_id("[UNK]") == 1
    return tok, vocab


def encode(tok, texts: list[str]) -> list[list[int]]:
    """Token ids with [CLS]/[SEP], truncated to MAX_LENGTH: what the server computes from tokenizer.json."""
    tok.enable_truncation(MAX_LENGTH)
    try:
        return [e.ids for e in tok.encode_batch(texts)]
    finally:
        tok.no_truncation()


# --- data ---------------------------------------------------------------------------------------------------------

def split_handwritten(args) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(trained on, held back for the temperature): a stratified, seeded share of the hand-written texts."""
    hand = ev.load_tsv(HANDWRITTEN_PATH)
    dev = {t.lower() for t, _ in ev.load_tsv(ev.DEV_PATH)}
    assert not any(t.lower() in dev for t, _ in hand), "a hand-written training text is in the development set"
    rng = np.random.default_rng([args.seed, 3])
    calib_idx: set[int] = set()
    for label in LABELS:
        idx = [i for i, (_, lab) in enumerate(hand) if lab == label]
        calib_idx |= set(rng.choice(idx, round(len(idx) * args.calibration_share), replace=False).tolist())
    return [hand[i] for i in range(len(hand)) if i not in calib_idx], [hand[i] for i in sorted(calib_idx)]


def training_data(args, lexicon: dict[str, float], train_set: list, hand: list[tuple[str, str]]):
    """(texts, labels, whether each text is a repeated copy): corpus training texts, the hand-written texts
    repeated, lexicon swaps of the hand-written texts and of some positive and negative corpus texts."""
    rng = np.random.default_rng(args.seed)
    texts = [ex.text for ex in train_set]
    labels = [ex.label for ex in train_set]
    copies = [False] * len(texts)
    for text, label in hand:
        texts += [text] * args.repeat
        labels += [label] * args.repeat
        copies += [False] + [True] * (args.repeat - 1)
        variants = lx.swap_variants(text, lexicon, rng, args.swaps)
        texts += variants
        labels += [label] * len(variants)
        copies += [False] * len(variants)
    polar = [ex for ex in train_set if ex.label != "neutral"]
    for i in rng.choice(len(polar), args.corpus_swaps, replace=False):
        variants = lx.swap_variants(polar[i].text, lexicon, rng, 1)
        texts += variants
        labels += [polar[i].label] * len(variants)
        copies += [False] * len(variants)
    log(f"training texts: {len(texts):,} = {len(train_set):,} corpus + {len(hand)} hand-written x{args.repeat} + "
        f"{len(texts) - len(train_set) - len(hand) * args.repeat:,} lexicon swaps")  # fmt: skip
    return texts, labels, copies


def drop_tokens(encoded: list[list[int]], copies: list[bool], rate: float, rng: np.random.Generator) -> list[list[int]]:
    """Each word piece (not [CLS]/[SEP]) of a repeated copy becomes [UNK] with probability `rate`: the copies of a
    hand-written text differ, and the model cannot lean on one cue word."""
    out = []
    for ids, copy in zip(encoded, copies):
        if copy and rate > 0:
            ids = np.array(ids)
            hit = rng.random(len(ids)) < rate
            hit[0] = hit[-1] = False
            ids[hit] = 1  # [UNK]
            ids = ids.tolist()
        out.append(ids)
    return out


def sparse_features(encoded: list[list[int]], vocab: int, buckets: int, prime: int, tables):
    """Rows [mean one-hot tokens (vocab) | mean one-hot bigram buckets (buckets) | lexicon features] (scipy CSR): a
    linear layer on these equals the graph's masked-mean embedding bag plus W_lex."""
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for r, ids in enumerate(encoded):
        a = np.asarray(ids, np.int64)
        rows += [r] * len(a)
        cols += a.tolist()
        vals += [1.0 / len(a)] * len(a)
        b = (a[:-1] * prime + a[1:]) % buckets
        rows += [r] * len(b)
        cols += (vocab + b).tolist()
        vals += [1.0 / max(len(b), 1)] * len(b)
    bag = sp.csr_matrix((np.array(vals, np.float64), (rows, cols)), shape=(len(encoded), vocab + buckets))
    bag.sum_duplicates()
    lex = np.concatenate([lx.lexicon_features(tables, *ev.pad(encoded[lo : lo + 512]))
                          for lo in range(0, len(encoded), 512)])  # fmt: skip
    return sp.hstack([bag, sp.csr_matrix(lex.astype(np.float64))], format="csr")


def next_prime(n: int) -> int:
    def prime(k: int) -> bool:
        return k > 1 and all(k % d for d in range(2, int(k**0.5) + 1))

    while not prime(n):
        n += 1
    return n


# --- training -----------------------------------------------------------------------------------------------------

def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature (0.50..5.00, step 0.01) with the lowest log loss."""
    grid = np.round(np.arange(0.5, 5.0001, 0.01), 2)
    loss = [-np.log(ev.softmax(logits / t)[np.arange(len(y)), y] + 1e-12).mean() for t in grid]
    return float(grid[int(np.argmin(loss))])


def fit(args, tok, vocab: list[str], tables, texts: list[str], labels: list[str], copies: list[bool],
        prime: int) -> gx.BagWeights:  # fmt: skip
    """Trains the MLP on the sparse equivalent of the graph's features; returns the weights (temperature 1)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X_enc = drop_tokens(encode(tok, texts), copies, args.token_dropout, np.random.default_rng([args.seed, 1]))
    X = sparse_features(X_enc, len(vocab), args.buckets, prime, tables)
    y = np.array([LABELS.index(lab) for lab in labels])
    t = time.perf_counter()
    mlp = MLPClassifier(hidden_layer_sizes=(args.hidden,), activation="relu", solver="adam", alpha=args.alpha,
                        batch_size=args.batch, learning_rate_init=args.lr, max_iter=args.epochs, shuffle=True,
                        random_state=args.seed, tol=0.0, n_iter_no_change=args.epochs + 1)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fixed epochs, no convergence test
        mlp.fit(X, y)
    W1 = mlp.coefs_[0].astype(np.float32).copy()
    seen = np.asarray((X[:, : len(vocab) + args.buckets] != 0).sum(axis=0)).ravel() > 0
    W1[: len(vocab) + args.buckets][~seen] = 0.0  # never trained: no signal, only initial noise
    log(f"trained {X.shape[0]:,} texts x {X.shape[1]:,} features, {args.epochs} epochs, final loss {mlp.loss_:.4f}, "
        f"in {time.perf_counter() - t:.1f}s; {int(seen[: len(vocab)].sum()):,} tokens and "
        f"{int(seen[len(vocab):].sum()):,} bigram buckets seen")  # fmt: skip
    return gx.BagWeights(tokens=W1[: len(vocab)], bigrams=W1[len(vocab) : len(vocab) + args.buckets],
                         lexicon=W1[len(vocab) + args.buckets :], bias=mlp.intercepts_[0].astype(np.float32),
                         out=mlp.coefs_[1].astype(np.float32), out_bias=mlp.intercepts_[1].astype(np.float32),
                         prime=prime)  # fmt: skip


def train(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    lexicon = lx.vader_lexicon()
    corpus = feedback_corpus.generate_corpus(args.examples, args.seed)
    train_set = [ex for ex in corpus if ex.split == "train"]
    test_set = [ex for ex in corpus if ex.split == "test"]
    hand_train, calib = split_handwritten(args)
    log(f"corpus: {len(train_set):,} training texts, {len(test_set):,} in the held-out families; hand-written: "
        f"{len(hand_train)} to train on, {len(calib)} held back for the temperature")  # fmt: skip
    final = training_data(args, lexicon, train_set, hand_train + calib)
    tok, vocab = train_tokenizer(final[0], args.vocab, sorted(lexicon))
    prime = next_prime(len(vocab) + 1)
    tables = lx.token_tables(vocab, lexicon)
    log(f"WordPiece tokenizer: {len(vocab):,} tokens (VADER words added whole); {int((tables.valence != 0).sum()):,} "
        f"rated tokens; bigram prime {prime}")  # fmt: skip

    def logits_of(w: gx.BagWeights, rows: list[tuple[str, str]]) -> np.ndarray:
        return np.concatenate([gx.forward(w, tables, *ev.pad([ids])) for ids in encode(tok, [t for t, _ in rows])])

    # Stage 1: without the held-back texts, to fit the temperature (and measure them honestly).
    held = fit(args, tok, vocab, tables, *training_data(args, lexicon, train_set, hand_train), prime)
    calib_y = np.array([LABELS.index(lab) for _, lab in calib])
    calib_logits = logits_of(held, calib)
    temperature = fit_temperature(calib_logits, calib_y)
    held_back = ev.scores(ev.softmax(calib_logits / temperature), calib_y)
    log(f"temperature {temperature:.2f} (log loss on {len(calib)} held-back hand-written texts)")
    # Stage 2: every hand-written text, same settings; the temperature is folded into the output layer.
    raw = fit(args, tok, vocab, tables, *final, prime)
    weights = gx.BagWeights(**{**raw.__dict__, "out": (raw.out / temperature).astype(np.float32),
                               "out_bias": (raw.out_bias / temperature).astype(np.float32)})  # fmt: skip

    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    tok.save(str(MODEL_DIR / "tokenizer.json"))
    onnx_path = MODEL_DIR / "model.onnx"
    import onnx

    onnx.save(gx.build_graph(weights, tables, "crmscore sentiment: logits over (negative, neutral, positive) for "
                                              "WordPiece token ids"), str(onnx_path))  # fmt: skip
    log(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB) and tokenizer.json "
        f"({(MODEL_DIR / 'tokenizer.json').stat().st_size / 1e3:.0f} kB)")
    session = ev.session_of(onnx_path)
    test_enc = encode(tok, [ex.text for ex in test_set])
    verify_onnx(session, weights, tables, test_enc)

    results = {"held-back hand-written": held_back}
    log(ev.describe("held-back hand-written (stage-1 model, never trained on them)", held_back))
    for name, rows in (("held-out families", [(ex.text, ex.label) for ex in test_set]),
                       ("development set", ev.load_tsv(ev.DEV_PATH))):  # fmt: skip
        s, _, _ = ev.evaluate(MODEL_DIR, rows)
        results[name] = s
        log(ev.describe(name, s))
    test_probs = np.concatenate([ev.run(session, test_enc[lo : lo + 256]) for lo in range(0, len(test_enc), 256)])
    test_y = np.array([LABELS.index(ex.label) for ex in test_set])
    for family in sorted(feedback_corpus.HOLDOUT_FAMILIES):
        rows = [i for i, ex in enumerate(test_set) if ex.family == family]
        log(f"  {family:18s} {float((test_probs[rows].argmax(1) == test_y[rows]).mean()):.3f} ({len(rows)} texts)")
    write_manifest(MODEL_DIR / "model.toml", results=results, vocab=len(vocab), trained=len(final[0]), args=args,
                   temperature=temperature, prime=prime)  # fmt: skip
    write_fixture(session, tok, test_set)
    log(f"done in {time.perf_counter() - started:.1f}s")


def verify_onnx(session, weights: gx.BagWeights, tables, encoded: list[list[int]]) -> None:
    """onnxruntime matches the numpy forward pass, and padding does not change any text's logits."""
    sample = encoded[:512]
    got = np.concatenate([ev.run(session, sample[lo : lo + 64]) for lo in range(0, len(sample), 64)])
    want = np.concatenate([gx.forward(weights, tables, *ev.pad(sample[lo : lo + 64]))
                           for lo in range(0, len(sample), 64)])  # fmt: skip
    diff = float(np.abs(got - want).max())
    log(f"onnxruntime vs numpy on {len(sample)} held-out texts (batches of 64): max |diff| {diff:.2e}")
    assert diff <= 1e-4, diff
    texts = sorted(encoded[:200], key=len)[::-1]
    alone = np.concatenate([ev.run(session, [ids]) for ids in texts])
    batched = np.concatenate([ev.run(session, texts[lo : lo + 16]) for lo in range(0, len(texts), 16)])
    long_batch = ev.run(session, [texts[-1], list(range(5, 5 + MAX_LENGTH))])[0]
    pad_diff = max(float(np.abs(alone - batched).max()), float(np.abs(long_batch - alone[-1]).max()))
    log(f"padding invariance (200 texts alone vs padded batches of 16, one padded to {MAX_LENGTH}): "
        f"max |diff| {pad_diff:.2e}")
    assert pad_diff <= 1e-5, pad_diff


def write_manifest(path: Path, *, results: dict, vocab: int, trained: int, args, temperature: float,
                   prime: int) -> None:  # fmt: skip
    def matrix(c: np.ndarray) -> str:
        return "[" + ", ".join("[" + ", ".join(str(v) for v in row) + "]" for row in c) + "]"

    def recall(s: dict) -> str:
        return "[" + ", ".join(f"{r:.4f}" for r in s["recall"]) + "]"

    hold, dev, hand = results["held-out families"], results["development set"], results["held-back hand-written"]
    text = f"""\
# crmscore model manifest — written by scripts/train_sentiment.py (see docs/sentiment.md)
kind = "text"
version = "2"
description = "Embedding bag (token + hashed bigram embeddings, hidden 32) with in-graph VADER lexicon features \
(valence, negation, contrast) classifying customer feedback as negative, neutral or positive; trained on a \
synthetic CRM feedback corpus, hand-written customer texts and lexicon swaps"
tokenizer = "tokenizer.json"  # WordPiece, lowercase, [CLS] ... [SEP], [PAD] = 0; no truncation stored in it
max_length = 128              # tokens incl. [CLS] and [SEP]; longer texts are truncated
input_ids = "input_ids"       # ONNX input: int64 [batch, sequence]
attention_mask = "attention_mask"  # ONNX input: int64 [batch, sequence], 1 = token, 0 = padding
output = "logits"             # ONNX output: float32 [batch, len(labels)], temperature already applied
labels = ["negative", "neutral", "positive"]

# Cost is linear in tokens (no attention), a few us per text in a batch (docs/sentiment.md): up to 64 texts a
# call and no batch window, so calls grow with load; max_tokens stays the 64 x max_length ceiling.
[batching]
max_batch_size = 64
max_delay_us = 0
queue_capacity = 1024
workers = 1
max_tokens = 8192

[metadata]                      # confusion rows = true negative/neutral/positive, cols = predicted
dev_accuracy = {dev['accuracy']:.4f}         # tests/fixtures/sentiment_dev.tsv, hand-written, never trained on
dev_rows = {dev['n']}
dev_recall = {recall(dev)}
dev_ece = {dev['ece']:.4f}
dev_confusion_matrix = {matrix(dev['confusion'])}
accuracy = {hold['accuracy']:.4f}             # generated held-out template families
holdout_rows = {hold['n']}
holdout_recall = {recall(hold)}
holdout_ece = {hold['ece']:.4f}
confusion_matrix = {matrix(hold['confusion'])}
handwritten_heldback_accuracy = {hand['accuracy']:.4f}   # the {hand['n']} hand-written training texts kept for the temperature
temperature = {temperature:.2f}            # folded into the graph's output layer
trained_rows = {trained}
vocab_size = {vocab}
bigram_buckets = {args.buckets}
bigram_prime = {prime}
lexicon = "VADER 3.3.2 (vaderSentiment, MIT)"
trainer = "scikit-learn MLPClassifier (hidden {args.hidden}), graph written with onnx.helper"
seed = {args.seed}
"""
    manifest = tomllib.loads(text)  # fail here, not in the server, if the TOML is malformed
    assert manifest["labels"] == LABELS and manifest["metadata"]["confusion_matrix"] == hold["confusion"].tolist()
    path.write_text(text, encoding="utf-8")
    log(f"wrote {path}")


def write_fixture(session, tok, test_set: list) -> None:
    """30 texts: held-out corpus texts of every label (short and long), hand-written ones and edge cases."""
    rng = np.random.default_rng(7)
    picks = []
    for label in LABELS:
        pool = [ex.text for ex in test_set if ex.label == label]
        by_len = sorted(pool, key=len)
        picks += [by_len[0], by_len[-1]] + [pool[i] for i in rng.choice(len(pool), 2, replace=False)]
    texts = picks + FIXTURE_TEXTS + EDGE_TEXTS
    assert len(texts) == 30 and len(set(texts)) == 30
    encoded = encode(tok, texts)
    assert max(len(ids) for ids in encoded) == MAX_LENGTH and len(tok.encode(EDGE_TEXTS[-1]).ids) > MAX_LENGTH
    cases = [{"text": text, "input_ids": ids, "logits": [float(v) for v in ev.run(session, [ids])[0]]}
             for text, ids in zip(texts, encoded)]  # fmt: skip
    FIXTURE_PATH.parent.mkdir(parents=True, exist_ok=True)
    body = ",\n".join(json.dumps(case, ensure_ascii=False) for case in cases)  # one case per line: readable diffs
    FIXTURE_PATH.write_text(f'{{"max_length": {MAX_LENGTH}, "cases": [\n{body}\n]}}\n', encoding="utf-8")
    log(f"wrote {FIXTURE_PATH} ({len(cases)} cases)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42, help="corpus, split, swaps and training seed (default 42)")
    parser.add_argument("--examples", type=int, default=30_000, help="corpus size (default 30000)")
    parser.add_argument("--vocab", type=int, default=8000, help="WordPiece pieces before VADER words (default 8000)")
    parser.add_argument("--buckets", type=int, default=8192, help="hashed bigram buckets (default 8192)")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--alpha", type=float, default=1e-3, help="L2 penalty")
    parser.add_argument("--repeat", type=int, default=32, help="copies of each hand-written training text")
    parser.add_argument("--token-dropout", type=float, default=0.1, help="[UNK] rate in repeated copies")
    parser.add_argument("--swaps", type=int, default=3, help="lexicon swaps of each hand-written training text")
    parser.add_argument("--corpus-swaps", type=int, default=4000, help="corpus texts given one lexicon swap")
    parser.add_argument("--calibration-share", type=float, default=0.2,
                        help="share of hand-written training texts held back to fit the temperature")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one BLAS thread: bit-identical training from run to run
        train(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
