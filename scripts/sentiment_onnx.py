"""The sentiment model's ONNX graph, written with onnx.helper, and the same arithmetic in numpy.

    input_ids, attention_mask int64 [batch, sequence] -> logits float32 [batch, 3] (negative, neutral, positive)

    h      = relu(mean_t W_tok[id_t] + mean_t W_bi[bucket(id_t, id_t+1)] + lexicon_features(ids) @ W_lex + b1)
    logits = h @ W_out + b_out            (W_out, b_out already divided by the calibration temperature)

Means run over real tokens (mask 1) and real bigrams (both positions real), so padding never changes a text's
logits. The bigram bucket of adjacent ids a, b is (a * prime + b) % buckets, prime > vocabulary size, computed in the
graph. lexicon_features (scripts/sentiment_lexicon.py) gathers VADER valences, negators and contrast words from
constant per-token tables inside the graph. The server feeds only input_ids and attention_mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sentiment_lexicon import (COMPOUND_ALPHA, CONTRAST_AFTER, CONTRAST_BEFORE, NEGATION_SCALE, NEGATION_WINDOW,
                               TokenTables, lexicon_features)  # fmt: skip

OPSET = 17


@dataclass(frozen=True)
class BagWeights:
    """Trained weights (float32), output layer already divided by the temperature."""

    tokens: np.ndarray  # [vocab, hidden]
    bigrams: np.ndarray  # [buckets, hidden]
    lexicon: np.ndarray  # [N_FEATURES, hidden]
    bias: np.ndarray  # [hidden]
    out: np.ndarray  # [hidden, 3]
    out_bias: np.ndarray  # [3]
    prime: int


def bigram_buckets(ids: np.ndarray, prime: int, buckets: int) -> np.ndarray:
    return (ids[:, :-1] * prime + ids[:, 1:]) % buckets


def forward(w: BagWeights, tables: TokenTables, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """numpy reference of the graph: logits float32 [batch, 3]."""
    m = mask.astype(np.float32)
    n = np.maximum(m.sum(axis=1, keepdims=True), 1.0)
    tok = (w.tokens[ids] * m[:, :, None]).sum(axis=1) / n
    m2 = m[:, :-1] * m[:, 1:]
    n2 = np.maximum(m2.sum(axis=1, keepdims=True), 1.0)
    bi = (w.bigrams[bigram_buckets(ids, w.prime, len(w.bigrams))] * m2[:, :, None]).sum(axis=1) / n2
    h = np.maximum(tok + bi + lexicon_features(tables, ids, mask) @ w.lexicon + w.bias, 0.0)
    return (h @ w.out + w.out_bias).astype(np.float32)


def build_graph(w: BagWeights, tables: TokenTables, doc: str):
    """The ONNX ModelProto (checked)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits: list = []
    nodes: list = []

    def const(name: str, value) -> str:
        arr = np.asarray(value)
        inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(kind: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    f32 = np.float32
    const("W_tok", w.tokens.astype(f32))
    const("W_bi", w.bigrams.astype(f32))
    const("b1", w.bias.astype(f32))
    const("W_out", w.out.astype(f32))
    const("b_out", w.out_bias.astype(f32))
    const("t_lex", np.stack([tables.valence, tables.negator, tables.contrast, tables.question, tables.exclaim,
                             (tables.valence != 0).astype(f32)], axis=1).astype(f32))  # fmt: skip
    const("axis1", np.array([1], np.int64))
    const("axis2", np.array([2], np.int64))
    const("zero_i", np.array([0], np.int64))
    const("one_i", np.array([1], np.int64))
    const("minus1_i", np.array([-1], np.int64))
    const("big_i", np.array([np.iinfo(np.int64).max], np.int64))
    const("prime", np.array(w.prime, np.int64))
    const("buckets", np.array(len(w.bigrams), np.int64))
    const("f_one", np.array(1.0, f32))
    const("f_zero", np.array(0.0, f32))
    const("cumsum_axis2", np.array(2, np.int64))
    const("half", np.array(0.5, f32))
    assert CONTRAST_AFTER - 1.0 == 0.5 and 1.0 - CONTRAST_BEFORE == 0.5, "the weight nodes below assume +-0.5"

    # Masked means of token and bigram embeddings.
    m = op("Cast", ["attention_mask"], "m", to=TensorProto.FLOAT)
    m3 = op("Unsqueeze", [m, "axis2"], "m3")
    n = op("Max", [op("ReduceSum", [m, "axis1"], "n_raw", keepdims=1), "f_one"], "n")
    tok = op("Gather", ["W_tok", "input_ids"], "tok_emb", axis=0)
    tok_mean = op("Div", [op("ReduceSum", [op("Mul", [tok, m3], "tok_masked"), "axis1"], "tok_sum", keepdims=0), n],
                  "tok_mean")  # fmt: skip
    ids_a = op("Slice", ["input_ids", "zero_i", "minus1_i", "axis1"], "ids_a")
    ids_b = op("Slice", ["input_ids", "one_i", "big_i", "axis1"], "ids_b")
    bucket = op("Mod", [op("Add", [op("Mul", [ids_a, "prime"], "ids_ap"), ids_b], "pair"), "buckets"], "bucket")
    m2 = op("Mul", [op("Slice", [m, "zero_i", "minus1_i", "axis1"], "m_a"),
                    op("Slice", [m, "one_i", "big_i", "axis1"], "m_b")], "m2")  # fmt: skip
    n2 = op("Max", [op("ReduceSum", [m2, "axis1"], "n2_raw", keepdims=1), "f_one"], "n2")
    bi = op("Gather", ["W_bi", bucket], "bi_emb", axis=0)
    bi_masked = op("Mul", [bi, op("Unsqueeze", [m2, "axis2"], "m2_3")], "bi_masked")
    bi_mean = op("Div", [op("ReduceSum", [bi_masked, "axis1"], "bi_sum", keepdims=0), n2], "bi_mean")

    # Lexicon features (sentiment_lexicon.lexicon_features), few nodes: one gather of a [vocab, 6] table, the
    # negation window as a convolution, and the three "has ..." flags as one ReduceMax feeding the matmul directly.
    g = op("Transpose", [op("Mul", [op("Gather", ["t_lex", "input_ids"], "lex_raw", axis=0), m3], "lex_tok")],
           "lex_t", perm=[0, 2, 1])  # fmt: skip  [batch, 6, seq]
    maxes = op("ReduceMax", [g], "lex_max", axes=[2], keepdims=0)  # [batch, 6]
    nodes.append(helper.make_node("Split", [g], ["val", "neg", "con", "q_tok", "ex_tok", "rated"], name="lex_split",
                                  axis=1))  # fmt: skip
    window = np.zeros((1, 6, NEGATION_WINDOW + 1), f32)
    window[0, 1, :NEGATION_WINDOW] = 1.0  # out[t] = neg[t-3] + neg[t-2] + neg[t-1]
    count = op("Conv", ["lex_t", const("neg_window", window)], "neg_count", pads=[NEGATION_WINDOW, 0])
    negated = op("Min", [count, "f_one"], "negated")
    scale = op("Add", ["f_one", op("Mul", [negated, const("neg_scale", f32(NEGATION_SCALE - 1.0))], "neg_term")],
               "neg_factor")  # fmt: skip
    eff = op("Mul", ["val", scale], "eff")
    after = op("Cast", [op("Greater", [op("Sub", [op("CumSum", ["con", "cumsum_axis2"], "con_cum"), "con"],
                                          "con_before"), "f_zero"], "after_b")], "after", to=TensorProto.FLOAT)
    any_half = op("Mul", [op("ReduceMax", ["con"], "any_con", axes=[2], keepdims=1), "half"], "any_half")
    # 1 + 0.5 after - 0.5 any (1 - after) = (1 - 0.5 any) + after (0.5 + 0.5 any): exact for 0/1 values.
    weight = op("Add", [op("Sub", ["f_one", any_half], "w_base"),
                        op("Mul", [after, op("Add", ["half", any_half], "w_slope")], "w_after")], "weight")  # fmt: skip
    wv = op("Mul", [eff, weight], "wv")
    s = op("ReduceSum", [wv, "axis2"], "s", keepdims=0)
    compound = op("Div", [s, op("Sqrt", [op("Add", [op("Mul", [s, s], "s2"), const("alpha", f32(COMPOUND_ALPHA))],
                                                   "s2a")], "s_norm")], "compound")  # fmt: skip
    pos = op("ReduceSum", [op("Relu", [wv], "wv_pos"), "axis2"], "pos_sum", keepdims=0)
    negs = op("ReduceSum", [op("Relu", [op("Neg", [wv], "wv_neg")], "wv_negr"), "axis2"], "neg_sum", keepdims=0)
    hits = op("ReduceSum", ["rated", "axis2"], "hits", keepdims=0)
    squashed = op("Tanh", [op("Mul", [op("Concat", [pos, negs, hits], "to_squash", axis=1),
                                      const("squash", np.array([0.5, 0.5, 1 / 3], f32))], "scaled")], "squashed")
    feats = op("Concat", [compound, squashed, maxes], "lex_features", axis=1)  # fmt: skip
    # Rows of W_lex in the order of feats: compound, pos, neg, hits, then max of (valence, negator, contrast, ?, !,
    # rated): only negator, ? and ! are features.
    lex_rows = np.zeros((10, w.lexicon.shape[1]), f32)
    lex_rows[[0, 1, 2, 3, 5, 7, 8]] = w.lexicon[[0, 1, 2, 6, 5, 3, 4]]
    const("W_lex10", lex_rows)

    pre = op("Add", [op("Add", [op("Add", [tok_mean, bi_mean], "bag"), op("MatMul", [feats, "W_lex10"], "lex")],
                            "pre0"), "b1"], "pre")  # fmt: skip
    h = op("Relu", [pre], "hidden")
    op("Add", [op("MatMul", [h, "W_out"], "out_raw"), "b_out"], "logits")

    graph = helper.make_graph(
        nodes, "crmscore_sentiment",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="crmscore",
                              doc_string=doc)  # fmt: skip
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
