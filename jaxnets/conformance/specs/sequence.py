"""Specs of the sequence layers of `jaxnets/ops/sequence.py`: word embeddings, the temporal
affine layer, positional embeddings, the last step's summary and the temporal softmax loss.

Stress inputs: repeated word indices (a vocabulary of 1-3 words, or one word everywhere);
small integers for the linear layers; for the temporal softmax loss, fully masked sequences
and scores around 1000 with ties and gaps below the maximum of < 8 or > 40 (as the softmax
loss's stress in `specs/losses.py`).
"""
from __future__ import annotations

import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import OpSpec
from reference_numpy import layers as npl


def _g_embedding(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 5), "V": draw("V", 1, 6), "D": draw("D", 1, 4)}


def _v_embedding(g, rng, stress):
    n, t, v = g["N"], g["T"], g["V"]
    if stress:  # one or two words over and over: every row of dW sums many positions
        x = rng.choice(rng.integers(0, v, 2), (n, t))
    else:
        x = rng.integers(0, v, (n, t))
    return (x, rng.standard_normal((v, g["D"]))), (), True  # linear in W


def _g_temporal_affine(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 4), "D": draw("D", 1, 4), "M": draw("M", 1, 4)}


def _v_temporal_affine(g, rng, stress):
    shapes = ((g["N"], g["T"], g["D"]), (g["D"], g["M"]), (g["M"],))
    if stress:  # small integers: exact zeros and repeated values (the layer is linear)
        return tuple(rng.integers(-2, 3, s).astype(np.float64) for s in shapes), (), True
    return tuple(rng.standard_normal(s) for s in shapes), (), True


def _g_positions(draw):
    g = {"N": draw("N", 1, 3), "T": draw("T", 1, 4), "D": draw("D", 1, 3)}
    g["P"] = g["T"] + draw("extra", 0, 2)  # more positions than steps: the rows beyond get 0
    return g


def _v_positions(g, rng, stress):
    shapes = ((g["N"], g["T"], g["D"]), (g["P"], g["D"]))
    if stress:  # small integers: exact zeros and repeated values (the layer is linear)
        return tuple(rng.integers(-2, 3, s).astype(np.float64) for s in shapes), (), True
    return tuple(rng.standard_normal(s) for s in shapes), (), True


def _g_last_step(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 5), "H": draw("H", 1, 4)}


def _v_last_step(g, rng, stress):
    shape = (g["N"], g["T"], g["H"])
    if stress:  # small integers: exact zeros and repeated values (the layer is linear)
        return (rng.integers(-2, 3, shape).astype(np.float64),), (), True
    return (rng.standard_normal(shape),), (), True


def _g_temporal_loss(draw):
    return {"N": draw("N", 1, 3), "T": draw("T", 1, 5), "V": draw("V", 1, 6)}


def _v_temporal_loss(g, rng, stress):
    n, t, v = g["N"], g["T"], g["V"]
    y = rng.integers(0, v, (n, t))
    mask = rng.random((n, t)) < 0.7
    if not stress:
        return (rng.standard_normal((n, t, v)),), (y, mask), True
    mask[rng.integers(0, n)] = False  # one sequence entirely padding
    # scores around 1000 with each row's maximum twice; the gaps below it < 8 or > 40
    top = 1000.0 + 300.0 * rng.standard_normal((n, t, 1))
    near = rng.random((n, t, v)) < 0.5
    s = top - np.where(near, rng.uniform(0.0, 8.0, (n, t, v)), rng.uniform(40.0, 300.0, (n, t, v)))
    for _ in range(2):
        np.put_along_axis(s, rng.integers(0, v, (n, t, 1)), top, axis=-1)
    return (s,), (y, mask), False


EDGES = {
    "word_embedding": ({"N": 3, "T": 5, "V": 2, "D": 3},  # 15 positions, 2 words
                       {"N": 2, "T": 4, "V": 1, "D": 2},  # one word everywhere
                       {"N": 1, "T": 1, "V": 5, "D": 1}),
    "temporal_affine": ({"N": 1, "T": 1, "D": 1, "M": 1}, {"N": 2, "T": 3, "D": 4, "M": 2},
                        {"N": 3, "T": 2, "D": 3, "M": 3}),
    "positional_embedding": ({"N": 1, "T": 1, "D": 1, "P": 1}, {"N": 3, "T": 4, "D": 2, "P": 6},
                             {"N": 2, "T": 3, "D": 3, "P": 3}),
    "last_step": ({"N": 1, "T": 1, "H": 1}, {"N": 2, "T": 6, "H": 3}, {"N": 3, "T": 2, "H": 1}),
    "temporal_softmax_loss": ({"N": 1, "T": 1, "V": 1}, {"N": 3, "T": 4, "V": 5}, {"N": 2, "T": 5, "V": 2}),
}

SPECS = (
    OpSpec("word_embedding", "layer", ("x", "W"), _g_embedding, _v_embedding, ops.word_embedding_forward,
           npl.word_embedding_forward, ops.word_embedding_backward, npl.word_embedding_backward,
           edges=EDGES["word_embedding"], no_grad=("x",)),
    OpSpec("temporal_affine", "layer", ("x", "w", "b"), _g_temporal_affine, _v_temporal_affine,
           ops.temporal_affine_forward, npl.temporal_affine_forward, ops.temporal_affine_backward,
           npl.temporal_affine_backward, edges=EDGES["temporal_affine"]),
    OpSpec("positional_embedding", "layer", ("x", "W"), _g_positions, _v_positions, ops.positional_embedding_forward,
           npl.positional_embedding_forward, ops.positional_embedding_backward, npl.positional_embedding_backward,
           edges=EDGES["positional_embedding"]),
    OpSpec("last_step", "layer", ("h",), _g_last_step, _v_last_step, ops.last_step_forward, npl.last_step_forward,
           ops.last_step_backward, npl.last_step_backward, edges=EDGES["last_step"]),
    OpSpec("temporal_softmax_loss", "loss", ("x",), _g_temporal_loss, _v_temporal_loss,
           ops.temporal_softmax_loss, npl.temporal_softmax_loss, edges=EDGES["temporal_softmax_loss"],
           stress_in_float32=False),
)
