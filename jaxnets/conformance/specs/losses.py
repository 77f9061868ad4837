"""Specs of the losses: softmax, binary cross-entropy (on logits and on probabilities), the L2
penalty and the SVM loss. Each is checked as a `(value, grad)` function.

Stress inputs: softmax scores around 1000 (exp overflows unless the row max is subtracted)
with tied maxima; saturated logits; probabilities near 0 and 1; the SVM's margins exactly 0
(the hinge's kink: inactive by convention) and tied scores.
"""
from __future__ import annotations

import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import OpSpec
from jaxnets.conformance.specs.inputs import ATTEMPTS
from jaxnets.gradcheck.tolerances import KINK_MARGIN
from reference_numpy import layers as npl


def _g_softmax(draw):
    return {"N": draw("N", 1, 5), "C": draw("C", 1, 6)}


def _g_binary(draw):
    return {"N": draw("N", 1, 6), "column": draw("(N, 1) instead of (N,)", 0, 1)}


def _g_l2(draw):
    return {"w": tuple(draw(f"dim{i}", 1, 4) for i in range(draw("ndim", 1, 3)))}


def _g_svm(draw):
    return {"N": draw("N", 1, 5), "C": draw("C", 1, 6)}


EDGES = {
    "softmax_loss": ({"N": 1, "C": 3}, {"N": 5, "C": 4}, {"N": 4, "C": 10}, {"N": 3, "C": 1}),
    "bce_with_logits": ({"N": 1, "column": 0}, {"N": 5, "column": 1}, {"N": 4, "column": 0}),
    "bce": ({"N": 1, "column": 0}, {"N": 5, "column": 1}, {"N": 4, "column": 0}),
    "l2_penalty": ({"w": (3, 4)}, {"w": (2, 1, 3)}, {"w": (5,)}),
    "svm_loss": ({"N": 1, "C": 3}, {"N": 5, "C": 4}, {"N": 4, "C": 10}, {"N": 3, "C": 1}),
}


def _binary_shape(g):
    return (g["N"], 1) if g["column"] else (g["N"],)


def _v_softmax(g, rng, stress):
    n, c = g["N"], g["C"]
    y = rng.integers(0, c, n)
    if stress:
        # rows around 1000 +- 300: exp(scores) overflows float64 (and float32) unless the row
        # max is subtracted; every row has its maximum twice (a tie). Gaps below the max are
        # < 8 or > 40: for gaps in ~(14, 37) the probability of a row's argmax is 1 - delta
        # with delta < 1e-6, and p - 1 cancels in every implementation alike.
        top = 1000.0 + 300.0 * rng.standard_normal((n, 1))
        near = rng.random((n, c)) < 0.5
        s = top - np.where(near, rng.uniform(0.0, 8.0, (n, c)), rng.uniform(40.0, 300.0, (n, c)))
        s[:, rng.integers(0, c)] = top[:, 0]
        s[:, rng.integers(0, c)] = top[:, 0]
        return (s,), (y,), False
    return (rng.standard_normal((n, c)),), (y,), True


def _v_bce_logits(g, rng, stress):
    shape = _binary_shape(g)
    y = rng.integers(0, 2, shape).astype(np.float64)
    z = rng.standard_normal(shape) * 1.5
    if stress:
        # saturated logits, |z| in [40, 800]: exp(|z|) overflows a naive log(sigmoid); both
        # signs, either label. (Not 8 < z < 37 with y = 1: there sigmoid(z) - 1 cancels in
        # every implementation alike, and correct codes differ by ~eps / e^-z relatively.)
        big = rng.uniform(40.0, 800.0, shape) * rng.choice([-1.0, 1.0], shape)
        z = np.where(rng.random(shape) < 0.6, big, z)
    return (z,), (y,), not stress


def _v_bce(g, rng, stress):
    shape = _binary_shape(g)
    y = rng.integers(0, 2, shape).astype(np.float64)
    if stress:  # probabilities near 0 and 1 (log1p territory)
        p = rng.choice(np.array([1e-6, 1e-3, 0.5, 1 - 1e-3, 1 - 1e-6]), shape)
        return (p,), (y,), False
    return (rng.uniform(0.1, 0.9, shape),), (y,), True


def _v_l2(g, rng, stress):
    reg = float(rng.choice([0.0, 0.05, 0.5, 2.0]))
    w = rng.integers(-2, 3, g["w"]).astype(np.float64) if stress else rng.standard_normal(g["w"])
    return (w,), (reg,), True


def _v_svm(g, rng, stress):
    n, c = g["N"], g["C"]
    y = rng.integers(0, c, n)
    if stress:  # integer scores: margins exactly 0 (s_j = s_y - 1) and ties
        s = rng.integers(-2, 3, (n, c)).astype(np.float64)
        s[np.arange(n), rng.integers(0, c, n)] = s[np.arange(n), y] - 1.0
        return (s,), (y,), False
    for _ in range(ATTEMPTS):  # every margin at least KINK_MARGIN from 0
        s = rng.standard_normal((n, c))
        margins = s - s[np.arange(n), y][:, None] + 1
        margins[np.arange(n), y] = 1.0
        if np.min(np.abs(margins)) > KINK_MARGIN:
            return (s,), (y,), True
    return (s,), (y,), False


def _loss(name, param, draw, values, jax_fn, np_fn, field_name, stress_in_float32=False):
    return OpSpec(name, "loss", (param,), draw, values, jax_fn, np_fn, edges=EDGES[name],
                  field=field_name, stress_in_float32=stress_in_float32)


SPECS = (
    _loss("softmax_loss", "scores", _g_softmax, _v_softmax, ops.softmax_loss, npl.softmax_loss, "softmax_loss"),
    _loss("bce_with_logits", "z", _g_binary, _v_bce_logits, ops.binary_cross_entropy_with_logits,
          npl.binary_cross_entropy_with_logits, "bce_with_logits"),
    _loss("bce", "p", _g_binary, _v_bce, ops.binary_cross_entropy, npl.binary_cross_entropy, "bce"),
    _loss("l2_penalty", "w", _g_l2, _v_l2, ops.l2_penalty, npl.l2_penalty, "l2_penalty", True),
    OpSpec("svm_loss", "loss", ("scores",), _g_svm, _v_svm, ops.svm_loss, npl.svm_loss, edges=EDGES["svm_loss"],
           stress_in_float32=True),
)
