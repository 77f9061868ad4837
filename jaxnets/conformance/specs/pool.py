"""Specs of max and average pooling: overlapping and non-square windows, stride != pool size,
strides that leave gaps, batch 1. Max pooling's stress inputs are those after a ReLU (many
zeros, small integers tied within windows: the gradient goes to the first maximum in
row-major order, no finite differences); its ordinary inputs are distinct values apart by
more than a step."""
from __future__ import annotations

import numpy as np

from jaxnets import ops
from jaxnets.conformance.opspec import layer_spec
from jaxnets.gradcheck.tolerances import KINK_MARGIN
from reference_numpy import layers as npl


def _g_pool(draw):
    ph, pw = draw("pool_height", 1, 3), draw("pool_width", 1, 3)
    return {
        "N": draw("N", 1, 2), "C": draw("C", 1, 3), "ph": ph, "pw": pw,
        "H": ph + draw("H extra", 0, 4), "W": pw + draw("W extra", 0, 4), "stride": draw("stride", 1, 3),
    }


EDGES = {
    "max_pool": (
        {"N": 2, "C": 3, "ph": 3, "pw": 2, "H": 6, "W": 5, "stride": 1},  # overlapping, non-square
        {"N": 1, "C": 2, "ph": 2, "pw": 2, "H": 4, "W": 4, "stride": 2},  # the documents' 2x2/2, batch 1
        {"N": 2, "C": 1, "ph": 2, "pw": 3, "H": 7, "W": 6, "stride": 3},  # stride > pool: gaps
        {"N": 1, "C": 2, "ph": 3, "pw": 3, "H": 5, "W": 6, "stride": 2},  # overlapping, stride != pool
    ),
}
EDGES["avg_pool"] = EDGES["max_pool"]


def window_gap(a, ph, pw, stride):
    """The smallest gap between a max-pool window's positive maximum and its runner-up in a
    (N, C, H, W): how far the window is from a tie, where its gradient would jump to another
    element (windows whose maximum is <= 0 lie after a ReLU's kink and count as inf)."""
    ho, wo = (a.shape[2] - ph) // stride + 1, (a.shape[3] - pw) // stride + 1
    win = np.sort(np.stack([a[:, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]
                            for i in range(ph) for j in range(pw)], axis=-1), axis=-1)
    top, second = win[..., -1], win[..., -2] if win.shape[-1] > 1 else np.zeros_like(win[..., -1])
    return float(np.min(np.where(top > 0, top - second, np.inf)))


def _v_max_pool(g, rng, stress):
    shape = (g["N"], g["C"], g["H"], g["W"])
    if stress:  # after a ReLU: many zeros, and small integers tie within windows
        return (np.maximum(rng.integers(-2, 3, shape), 0).astype(np.float64),), (), False
    # distinct values >= 3 KINK_MARGIN apart: no tie within any FD step
    size = int(np.prod(shape))
    x = (rng.permutation(size) - size / 2) * (5 * KINK_MARGIN) + rng.uniform(-KINK_MARGIN, KINK_MARGIN, size)
    return (x.reshape(shape),), (), True


def _v_avg_pool(g, rng, stress):
    shape = (g["N"], g["C"], g["H"], g["W"])
    if stress:
        return (np.maximum(rng.integers(-2, 3, shape), 0).astype(np.float64),), (), True
    return (rng.standard_normal(shape),), (), True


_POOL_STATIC = lambda g: (g["ph"], g["pw"], g["stride"])  # noqa: E731

SPECS = (
    layer_spec("max_pool", ("x",), _g_pool, _v_max_pool,
               (ops.max_pool_forward, ops.max_pool_backward), (npl.max_pool_forward, npl.max_pool_backward),
               EDGES["max_pool"], static=_POOL_STATIC),
    layer_spec("avg_pool", ("x",), _g_pool, _v_avg_pool,
               (ops.avg_pool_forward, ops.avg_pool_backward), (npl.avg_pool_forward, npl.avg_pool_backward),
               EDGES["avg_pool"], static=_POOL_STATIC),
)
