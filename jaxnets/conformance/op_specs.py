"""The registry of checked ops: for every layer and loss, its geometry space, edge cases,
input generator and its five implementations (the jaxnets pair, AUTODIFF / CUSTOM_VJP, NumPy).

A geometry is a dict of ints/tuples drawn by `draw_geometry(draw)`, where `draw(label, lo, hi)`
returns an int in [lo, hi] (hypothesis' st.integers or a seeded numpy generator), so one
function defines the space. A new shape costs a new XLA compilation (~1 s for a conv's three
modes), so the cases come from a fixed pool per op: the op's hand-picked edge geometries
(batch 1, C > 1, pad 0, non-square kernels, stride != pool size, overlapping pools, windows
that do not fit exactly) plus seeded draws from its space, up to POOL_SIZE.

Value generators, `(geometry, rng, stress) -> (differentiable arrays, extras, fd_ok)`: stress
inputs put kinks in on purpose (exact zeros into ReLU, tied maxima in pool windows, saturated
activations, scores of ~1000 for the softmax); the analytic gradients must agree there too
(ReLU'(0) = 0, max-pool gradient to the first maximum in row-major order), but finite
differences are invalid at a kink, so fd_ok is True only for inputs at least KINK_MARGIN from
every kink (10x the largest FD step).

A new op: its geometry space, value generator, edge geometries and one `OPS` entry here (the
documents' ops) or in `specs_cs231n` (the layers cs231n's assignments add: norms, dropout, the
SVM loss, the leaky ReLU).
"""
from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

from jaxnets import ops
from jaxnets.conformance import specs_cs231n, specs_sequence
from jaxnets.conformance.opspec import OpSpec
from jaxnets.gradcheck.tolerances import FD_STEP, KINK_MARGIN
from reference_numpy import layers as npl

#: geometries per op in the pool hypothesis and the report draw from.
POOL_SIZE = 12


def _g_affine(draw):
    n, k = draw("N", 1, 4), draw("feature dims", 1, 3)
    return {"x": (n, *(draw(f"d{i + 1}", 1, 3) for i in range(k))), "M": draw("M", 1, 4)}


def _g_elementwise(draw):
    return {"x": tuple(draw(f"dim{i}", 1, 4) for i in range(draw("ndim", 1, 4)))}


def _g_conv(draw):
    hh, ww, pad = draw("HH", 1, 3), draw("WW", 1, 3), draw("pad", 0, 2)
    return {
        "N": draw("N", 1, 2), "C": draw("C", 1, 3), "F": draw("F", 1, 3), "HH": hh, "WW": ww,
        "H": max(1, hh - 2 * pad) + draw("H extra", 0, 4), "W": max(1, ww - 2 * pad) + draw("W extra", 0, 4),
        "stride": draw("stride", 1, 3), "pad": pad,
    }


def _g_pool(draw):
    ph, pw = draw("pool_height", 1, 3), draw("pool_width", 1, 3)
    return {
        "N": draw("N", 1, 2), "C": draw("C", 1, 3), "ph": ph, "pw": pw,
        "H": ph + draw("H extra", 0, 4), "W": pw + draw("W extra", 0, 4), "stride": draw("stride", 1, 3),
    }


def _g_conv_relu_pool(draw):
    hh, ww, pad, pool = draw("HH", 1, 3), draw("WW", 1, 3), draw("pad", 0, 2), draw("pool", 1, 3)
    return {
        "N": draw("N", 1, 2), "C": draw("C", 1, 3), "F": draw("F", 1, 3), "HH": hh, "WW": ww,
        "H": max(1, pool + hh - 1 - 2 * pad) + draw("H extra", 0, 3),
        "W": max(1, pool + ww - 1 - 2 * pad) + draw("W extra", 0, 3), "pad": pad, "pool": pool,
    }


def _g_softmax(draw):
    return {"N": draw("N", 1, 5), "C": draw("C", 1, 6)}


def _g_binary(draw):
    return {"N": draw("N", 1, 6), "column": draw("(N, 1) instead of (N,)", 0, 1)}


def _g_l2(draw):
    return {"w": tuple(draw(f"dim{i}", 1, 4) for i in range(draw("ndim", 1, 3)))}


EDGE_GEOMETRIES = {
    "affine": (
        {"x": (1, 3), "M": 2},  # batch 1
        {"x": (2, 2, 3, 2), "M": 3},  # (N, d1, d2, d3) flattened
        {"x": (3, 4), "M": 1},  # one output unit (occupancy's output layer)
        {"x": (3, 3), "M": 3},  # D == M: a transposed dw has the right shape
    ),
    "relu": ({"x": (1, 5)}, {"x": (2, 3, 4, 4)}, {"x": (7,)}),
    "tanh": ({"x": (1, 5)}, {"x": (2, 3, 4, 4)}, {"x": (7,)}),
    "sigmoid": ({"x": (1, 5)}, {"x": (2, 3, 4, 4)}, {"x": (7,)}),
    "conv": (
        # C > 1, non-square kernel, stride 2, pad 1
        {"N": 2, "C": 3, "F": 2, "HH": 3, "WW": 2, "H": 5, "W": 6, "stride": 2, "pad": 1},
        # batch 1, pad 0, non-square the other way
        {"N": 1, "C": 2, "F": 3, "HH": 2, "WW": 3, "H": 4, "W": 5, "stride": 1, "pad": 0},
        # stride 3 with pad 2: windows do not fit exactly, the last rows are dropped
        {"N": 2, "C": 1, "F": 2, "HH": 3, "WW": 3, "H": 5, "W": 5, "stride": 3, "pad": 2},
        # 1x1 kernel
        {"N": 1, "C": 3, "F": 1, "HH": 1, "WW": 1, "H": 3, "W": 3, "stride": 1, "pad": 0},
    ),
    "max_pool": (
        {"N": 2, "C": 3, "ph": 3, "pw": 2, "H": 6, "W": 5, "stride": 1},  # overlapping, non-square
        {"N": 1, "C": 2, "ph": 2, "pw": 2, "H": 4, "W": 4, "stride": 2},  # the documents' 2x2/2, batch 1
        {"N": 2, "C": 1, "ph": 2, "pw": 3, "H": 7, "W": 6, "stride": 3},  # stride > pool: gaps
        {"N": 1, "C": 2, "ph": 3, "pw": 3, "H": 5, "W": 6, "stride": 2},  # overlapping, stride != pool
    ),
    "conv_relu_pool": (
        # C > 1, non-square kernel; the last column is read by no pool window
        {"N": 2, "C": 3, "F": 2, "HH": 3, "WW": 2, "H": 6, "W": 7, "pad": 1, "pool": 2},
        # the ConvNet's 3x3 / pad 1 / 2x2 pool, batch 1
        {"N": 1, "C": 1, "F": 3, "HH": 3, "WW": 3, "H": 8, "W": 8, "pad": 1, "pool": 2},
        # 3x3 pool, pad 0, rows and columns dropped
        {"N": 2, "C": 2, "F": 2, "HH": 2, "WW": 3, "H": 7, "W": 6, "pad": 0, "pool": 3},
        # 1x1 kernel, no pooling (pool 1), wide zero border
        {"N": 1, "C": 2, "F": 1, "HH": 1, "WW": 1, "H": 4, "W": 5, "pad": 2, "pool": 1},
    ),
    "softmax_loss": ({"N": 1, "C": 3}, {"N": 5, "C": 4}, {"N": 4, "C": 10}, {"N": 3, "C": 1}),
    "bce_with_logits": ({"N": 1, "column": 0}, {"N": 5, "column": 1}, {"N": 4, "column": 0}),
    "bce": ({"N": 1, "column": 0}, {"N": 5, "column": 1}, {"N": 4, "column": 0}),
    "l2_penalty": ({"w": (3, 4)}, {"w": (2, 1, 3)}, {"w": (5,)}),
}
EDGE_GEOMETRIES["avg_pool"] = EDGE_GEOMETRIES["max_pool"]


def _binary_shape(g):
    return (g["N"], 1) if g["column"] else (g["N"],)


# Value generators: (geometry, rng, stress) -> (differentiable arrays, targets, fd_ok).
# Stress inputs are what breaks careless code: kinks and ties, saturation, huge scores.

#: draws a value generator tries for kink-free inputs before giving up finite differences
_KINK_ATTEMPTS = 20


def _v_affine(g, rng, stress):
    d = int(np.prod(g["x"][1:]))
    shapes = (g["x"], (d, g["M"]), (g["M"],))
    if stress:  # small integers: exact zeros and repeated values, still smooth (linear)
        return tuple(rng.integers(-2, 3, s).astype(np.float64) for s in shapes), (), True
    return tuple(rng.standard_normal(s) for s in shapes), (), True


def _v_relu(g, rng, stress):
    x = rng.standard_normal(g["x"])
    if stress:  # exact zeros (both signs) into the kink, FD invalid there
        u = rng.random(x.shape)
        x = np.where(u < 0.3, 0.0, np.where(u < 0.4, -0.0, x))
        return (x,), (), False
    return (np.where(x >= 0, 1.0, -1.0) * (KINK_MARGIN + np.abs(x)),), (), True


def _v_smooth(scale, saturated):
    """Ordinary inputs scale * N(0, 1); stress mixes in saturated ones, |x| in [saturated, 400],
    where tanh / sigmoid round to exactly +-1 / 1 (or a tiny exact-enough value), the
    gradient underflows to 0 or below FD's noise floor (so no FD). Between the two, 1 - out**2
    and 1 - out cancel: every implementation is then off by ~eps / (1 - out) relatively, as
    the derivative is written in terms of the rounded output (000), so the zone is skipped."""

    def values(g, rng, stress):
        x = rng.standard_normal(g["x"]) * scale
        if stress:
            big = rng.uniform(saturated, 400.0, x.shape) * rng.choice([-1.0, 1.0], x.shape)
            x = np.where(rng.random(x.shape) < 0.6, big, x)
        return (x,), (), not stress

    return values


def _v_conv(g, rng, stress):
    shapes = ((g["N"], g["C"], g["H"], g["W"]), (g["F"], g["C"], g["HH"], g["WW"]), (g["F"],))
    if stress:
        return tuple(rng.integers(-2, 3, s).astype(np.float64) for s in shapes), (), True
    return tuple(rng.standard_normal(s) for s in shapes), (), True


def window_gap(a, ph, pw, stride):
    """The smallest gap between a max-pool window's positive maximum and its runner-up in a
    (N, C, H, W): how far the window is from a tie, where its gradient would jump to another
    element (windows whose maximum is <= 0 lie after a ReLU's kink and count as inf)."""
    ho, wo = (a.shape[2] - ph) // stride + 1, (a.shape[3] - pw) // stride + 1
    win = np.sort(np.stack([a[:, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]
                            for i in range(ph) for j in range(pw)], axis=-1), axis=-1)
    top, second = win[..., -1], win[..., -2] if win.shape[-1] > 1 else np.zeros_like(win[..., -1])
    return float(np.min(np.where(top > 0, top - second, np.inf)))


def relu_pool_kink_distance(z, pool):
    """How far conv outputs z are from the kinks of ReLU then a pool x pool max pool of
    stride pool: min |z| and the window gaps of relu(z)."""
    return min(float(np.min(np.abs(z))), window_gap(np.maximum(z, 0.0), pool, pool, pool))


def _v_conv_relu_pool(g, rng, stress):
    shapes = ((g["N"], g["C"], g["H"], g["W"]), (g["F"], g["C"], g["HH"], g["WW"]), (g["F"],))
    if stress:  # small integers: ReLU inputs exactly 0, tied maxima in pool windows
        return tuple(rng.integers(-2, 3, s).astype(np.float64) for s in shapes), (), False
    for _ in range(_KINK_ATTEMPTS):  # kink-free draws, so that finite differences are valid
        arrays = tuple(rng.standard_normal(s) for s in shapes)
        z = npl.conv_forward(*arrays, 1, g["pad"])[0]
        reach = 4.0 * FD_STEP * max(1.0, *(float(np.max(np.abs(a))) for a in arrays))
        if relu_pool_kink_distance(z, g["pool"]) > max(reach, KINK_MARGIN):
            return arrays, (), True
    return arrays, (), False


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


def _layer(name, params, draw, values, jax_pair, np_pair, static=lambda g: ()):
    return OpSpec(name, "layer", params, draw, values, jax_pair[0], np_pair[0], jax_pair[1], np_pair[1], static,
                  edges=EDGE_GEOMETRIES[name])


def _loss(name, param, draw, values, jax_fn, np_fn, field_name, stress_in_float32=False):
    return OpSpec(name, "loss", (param,), draw, values, jax_fn, np_fn, edges=EDGE_GEOMETRIES[name],
                  field=field_name, stress_in_float32=stress_in_float32)


def _smooth(name, scale, stress_scale, jax_pair, np_pair):
    return OpSpec(name, "layer", ("x",), _g_elementwise, _v_smooth(scale, stress_scale), jax_pair[0], np_pair[0],
                  jax_pair[1], np_pair[1], edges=EDGE_GEOMETRIES[name], stress_in_float32=False)


_POOL_STATIC = lambda g: (g["ph"], g["pw"], g["stride"])  # noqa: E731

OPS = {
    s.name: s
    for s in (
        _layer("affine", ("x", "w", "b"), _g_affine, _v_affine,
               (ops.affine_forward, ops.affine_backward), (npl.affine_forward, npl.affine_backward)),
        _layer("relu", ("x",), _g_elementwise, _v_relu,
               (ops.relu_forward, ops.relu_backward), (npl.relu_forward, npl.relu_backward)),
        _smooth("tanh", 1.0, 20.0, (ops.tanh_forward, ops.tanh_backward), (npl.tanh_forward, npl.tanh_backward)),
        _smooth("sigmoid", 2.0, 40.0,
                (ops.sigmoid_forward, ops.sigmoid_backward), (npl.sigmoid_forward, npl.sigmoid_backward)),
        _layer("conv", ("x", "w", "b"), _g_conv, _v_conv,
               (ops.conv_forward, ops.conv_backward), (npl.conv_forward, npl.conv_backward),
               static=lambda g: (g["stride"], g["pad"])),
        _layer("max_pool", ("x",), _g_pool, _v_max_pool,
               (ops.max_pool_forward, ops.max_pool_backward), (npl.max_pool_forward, npl.max_pool_backward),
               static=_POOL_STATIC),
        _layer("avg_pool", ("x",), _g_pool, _v_avg_pool,
               (ops.avg_pool_forward, ops.avg_pool_backward), (npl.avg_pool_forward, npl.avg_pool_backward),
               static=_POOL_STATIC),
        _layer("conv_relu_pool", ("x", "w", "b"), _g_conv_relu_pool, _v_conv_relu_pool,
               (ops.conv_relu_pool_forward, ops.conv_relu_pool_backward),
               (npl.conv_relu_pool_forward, npl.conv_relu_pool_backward),
               static=lambda g: (g["pad"], g["pool"])),
        _loss("softmax_loss", "scores", _g_softmax, _v_softmax, ops.softmax_loss, npl.softmax_loss, "softmax_loss"),
        _loss("bce_with_logits", "z", _g_binary, _v_bce_logits, ops.binary_cross_entropy_with_logits,
              npl.binary_cross_entropy_with_logits, "bce_with_logits"),
        _loss("bce", "p", _g_binary, _v_bce, ops.binary_cross_entropy, npl.binary_cross_entropy, "bce"),
        _loss("l2_penalty", "w", _g_l2, _v_l2, ops.l2_penalty, npl.l2_penalty, "l2_penalty", True),
        *specs_cs231n.SPECS,
        *specs_sequence.SPECS,
    )
}
OP_NAMES = tuple(OPS)


def _seeded_draw(rng):
    return lambda label, lo, hi: int(rng.integers(lo, hi + 1))


@lru_cache(maxsize=None)
def _pool(name, size):
    spec = OPS[name]
    pool = [dict(g) for g in spec.edges]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for _ in range(1000):
        if len(pool) >= size:
            break
        g = spec.draw_geometry(_seeded_draw(rng))
        if g not in pool:
            pool.append(g)
    return tuple(pool)


def geometry_pool(name, size=POOL_SIZE):
    """The op's geometries: its edge geometries first, then seeded draws from its space."""
    return [dict(g) for g in _pool(name, size)]
