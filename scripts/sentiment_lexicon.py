"""Human-rated sentiment knowledge for crmscore's sentiment model: VADER's lexicon, turned into per-token tables.

VADER (vaderSentiment 3.3.2 on PyPI, MIT licence; Hutto & Gilbert 2014) ships ~7,500 words, slang and emoticons,
each rated by ten people on -4..+4, plus its negation words and the "but" rule. This module
  - reads the lexicon file from the installed package (no network),
  - maps it onto a WordPiece vocabulary: TokenTables holds, per token id, the valence (/4, whole words only), whether
    the token negates ("not", "never", the "t" of "don't", ...), whether it is a contrast word ("but", "however"),
    "?" and "!",
  - computes the lexicon features of a padded batch of ids (lexicon_features) exactly as the ONNX graph does
    (scripts/sentiment_onnx.py builds the same arithmetic from the same tables), and
  - generates extra training text by swapping lexicon words for others of the same polarity (swap_variants).

Lexicon features of one text (a padded row; mask 1 = token):
  valence v_t of each token; negated when one of the 3 tokens before it negates (VADER's window), then v_t * -0.74
  (VADER's N_SCALAR); weighted 1.5 after a contrast word and 0.5 before one (VADER's "but" rule); s = sum of
  weighted valences. Features: s / sqrt(s^2 + 15) (VADER's compound), tanh(positive sum / 2), tanh(negative sum /
  2), has "?", has "!", has a negator, tanh(lexicon hits / 3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

NEGATION_SCALE = -0.74  # VADER's N_SCALAR
NEGATION_WINDOW = 3  # tokens before a word that can negate it
CONTRAST_AFTER, CONTRAST_BEFORE = 1.5, 0.5
COMPOUND_ALPHA = 15.0
N_FEATURES = 7
# Negators as the BERT pre-tokenizer leaves them: "don't" -> "don" "'" "t", so "t" stands for every "n't".
NEGATORS = {"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "cannot", "without",
            "t", "nt", "aint", "arent", "cant", "couldnt", "didnt", "doesnt", "dont", "hadnt", "hasnt", "havent",
            "isnt", "mightnt", "mustnt", "neednt", "shouldnt", "wasnt", "werent", "wont", "wouldnt", "rarely",
            "seldom", "hardly", "barely", "nope"}  # fmt: skip
CONTRASTS = {"but", "however"}
# Rated words whose everyday CRM use carries no sentiment ("please" in a request, "like" as a preposition, "help" in a
# question, "hand" in "came off in my hand", "no" is a negator here) or the opposite of its rating ("won" is what the
# pre-tokenizer leaves of "won't", rated as in "won a prize").
DROPPED = {"like", "please", "help", "no", "yes", "ok", "okay", "want", "kind", "pretty", "well", "free", "pay",
           "care", "cancel", "cancelled", "fine", "matter", "question", "true", "sure", "share", "chance", "party",
           "play", "joke", "sweet", "cut", "block", "blocked", "charge", "charged", "charges", "ready", "clear", "won",
           "hand"}  # fmt: skip


def vader_lexicon() -> dict[str, float]:
    """Lowercase alphabetic single words of VADER's lexicon -> mean rating (-4..+4)."""
    text = resources.files("vaderSentiment").joinpath("vader_lexicon.txt").read_text(encoding="utf-8")
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and re.fullmatch(r"[a-z]{2,}", parts[0]) and parts[0] not in DROPPED:
            out[parts[0]] = float(parts[1])
    return out


@dataclass(frozen=True)
class TokenTables:
    """Per-token-id tables (float32 [vocab]) the graph gathers from."""

    valence: np.ndarray
    negator: np.ndarray
    contrast: np.ndarray
    question: np.ndarray
    exclaim: np.ndarray


def token_tables(vocab: list[str], lexicon: dict[str, float]) -> TokenTables:
    def table(pick) -> np.ndarray:
        return np.array([pick(t) for t in vocab], dtype=np.float32)

    return TokenTables(
        valence=table(lambda t: lexicon.get(t, 0.0) / 4.0),
        negator=table(lambda t: float(t in NEGATORS)),
        contrast=table(lambda t: float(t in CONTRASTS)),
        question=table(lambda t: float(t == "?")),
        exclaim=table(lambda t: float(t == "!")),
    )


def shift_right(x: np.ndarray, k: int) -> np.ndarray:
    """x[:, t - k] at t (zeros for t < k): the value k tokens earlier."""
    return np.concatenate([np.zeros((x.shape[0], k), x.dtype), x[:, : x.shape[1] - k]], axis=1)


def lexicon_features(tables: TokenTables, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float32 [batch, N_FEATURES] for padded int64 ids/mask [batch, seq]; the ONNX graph computes the same."""
    m = mask.astype(np.float32)
    val = tables.valence[ids] * m
    neg = tables.negator[ids] * m
    negated = np.maximum.reduce([shift_right(neg, k) for k in range(1, NEGATION_WINDOW + 1)])
    eff = val * (1.0 + (NEGATION_SCALE - 1.0) * negated)
    con = tables.contrast[ids] * m
    after = (np.cumsum(con, axis=1) - con > 0).astype(np.float32)
    any_con = con.max(axis=1, keepdims=True)
    weight = 1.0 + (CONTRAST_AFTER - 1.0) * after + (CONTRAST_BEFORE - 1.0) * any_con * (1.0 - after)
    w = eff * weight
    s = w.sum(axis=1)
    pos = np.maximum(w, 0).sum(axis=1)
    negsum = np.maximum(-w, 0).sum(axis=1)
    hits = (val != 0).astype(np.float32).sum(axis=1)
    feats = [s / np.sqrt(s * s + COMPOUND_ALPHA), np.tanh(pos / 2), np.tanh(negsum / 2),
             (tables.question[ids] * m).max(axis=1), (tables.exclaim[ids] * m).max(axis=1), neg.max(axis=1),
             np.tanh(hits / 3)]  # fmt: skip
    return np.stack(feats, axis=1).astype(np.float32)


def swap_variants(text: str, lexicon: dict[str, float], rng: np.random.Generator, n: int) -> list[str]:
    """Up to n copies of text with each rated word (|rating| >= 1) replaced by another word of the same sign and a
    rating within 1 of it, so the label stays (the sentence may read oddly; the polarity does not change)."""
    words = sorted(lexicon)
    by_sign = {s: [w for w in words if s * lexicon[w] >= 1.0] for s in (-1, 1)}
    spots = [m for m in re.finditer(r"[A-Za-z]+", text) if abs(lexicon.get(m.group().lower(), 0.0)) >= 1.0]
    if not spots:
        return []
    out: list[str] = []
    for _ in range(n):
        pieces, last = [], 0
        for m in spots:
            r = lexicon[m.group().lower()]
            pool = [w for w in by_sign[1 if r > 0 else -1] if abs(lexicon[w] - r) <= 1.0]
            pieces += [text[last : m.start()], pool[int(rng.integers(len(pool)))]]
            last = m.end()
        variant = "".join(pieces) + text[last:]
        if variant != text and variant not in out:
            out.append(variant)
    return out
