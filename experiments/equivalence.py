"""The gradient-equivalence harness: five gradients of every op and every model must agree.

For one op (a layer pair or a loss) and one set of inputs, `compare_op` computes the gradient
five ways and compares every pair with cs231n's relative error
max(|a - b| / max(1e-8, |a| + |b|)):

- manual      the jaxnets pair: `forward`, then the hand-written `backward(dout, cache)`;
- autodiff    `jax.vjp` / `jax.grad` of `jaxnets.ops.AUTODIFF.<op>` (differentiates the forward);
- custom_vjp  the same through `jaxnets.ops.CUSTOM_VJP.<op>` (jax.custom_vjp -> hand-written backward);
- numpy       `reference_numpy.layers`, float64;
- fd          central finite differences of the NumPy forward (of sum(out * dout) for a layer,
              of the loss for a loss), Richardson-extrapolated from steps FD_STEP and
              FD_STEP / 2 (error O(h^4), so small gradient entries still meet TOL_FD_F64).

`compare_model` does the same for a whole network: the three `jaxnets.grads` modes, the NumPy
model's `loss_and_grads`, and finite differences of the NumPy loss.

Both checkers take the implementation under test as a parameter (`impl`: a replacement
backward for a layer, a replacement `(value, grad)` function for a loss), which is how
`experiments.mutants` plants bugs into copies of the correct functions. The checker never
crashes on a broken implementation: an exception, a shape mismatch or a non-finite value is
recorded as a failed comparison (error = inf) with its message.

Inputs. Hypothesis (tests) or a seeded loop (`experiments.gradcheck`) picks, per example, a
geometry (shapes, strides, pads, pool sizes) from the op's pool, a seed and a "stress" flag.
A new shape costs a new XLA compilation (~1 s for a conv's three modes), so the geometries come from a
fixed pool per op: the hand-picked edge cases of EDGE_GEOMETRIES (batch 1, C > 1, pad 0,
non-square kernels, stride != pool size, overlapping pools, windows that do not fit exactly)
plus seeded draws from the same geometry space (`OpSpec.draw_geometry`) up to POOL_SIZE;
a few further hypothesis examples per op draw the geometry freely from that space.
Stress inputs put kinks in on purpose (exact zeros into ReLU, tied maxima in pool windows,
saturated activations, scores of ~1000 for the softmax); the four analytic gradients must
agree there too (ReLU'(0) = 0, max-pool gradient to the first maximum in row-major order),
but finite differences are invalid at a kink, so FD runs only on kink-free inputs (at least
KINK_MARGIN from every kink, i.e. 10x the largest FD step).

Tolerances live here and nowhere else.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import jax
import numpy as np

from jaxnets import ops
from jaxnets.grads import MODES, value_and_grad
from jaxnets.models import MODELS
from jaxnets.ops._vjp import loss_vjp, manual_vjp
from reference_numpy import layers as npl
from reference_numpy import models as npm
from reference_numpy.gradcheck import max_rel_error, numerical_gradient, numerical_gradient_array

# ----------------------------------------------------------------------------- tolerances

#: manual / autodiff / custom_vjp / NumPy, float64: they differ only in summation order.
TOL_ANALYTIC_F64 = 1e-10
#: any analytic gradient vs Richardson-extrapolated central differences, float64.
TOL_FD_F64 = 1e-6
#: float32 JAX modes vs each other and vs the float64 NumPy reference on the same (float32)
#: inputs, per op. cs231n's relative error has no absolute floor above 1e-8, so an entry that
#: is a sum with cancellation (a conv dw over N*Ho*Wo terms, an overlapping avg-pool dx of
#: +-dout/6 terms) carries float32's eps times the cancellation ratio. Measured over ~25,000
#: float32 op cases: 99.9% below 1e-3, p99 ~3e-5, max 1.0e-2 (an avg-pool entry of 7e-7);
#: bound = 3x the max. (A floor relative to the parameter's gradient scale does not tame
#: the tail: the worst entries are whole gradients that cancel, such as a bias.)
TOL_ANALYTIC_F32 = 3e-2
#: the same for whole models, whose 784- and 1568-wide sums cancel more: over 720 float32
#: model cases p90 2e-4, p99 7e-3, max 4.8e-2 (a digits W1 entry of 1e-7 from cancelling
#: sums; occupancy's b2 ~1e-6 out of +-0.5/N terms, 1e-2); bound = 2x the max.
TOL_ANALYTIC_F32_MODELS = 1e-1

#: the larger of the two central-difference steps; the Richardson pair is (FD_STEP, FD_STEP / 2).
FD_STEP = 1e-3
#: kink-free inputs keep every ReLU input and every pool-window tie gap at least this far
#: from a kink, so no finite-difference step crosses one.
KINK_MARGIN = 1e-2
#: finite differences on at most this many coordinates per parameter (all of them when the
#: parameter is smaller; otherwise a seeded random subset, as cs231n's grad_check_sparse).
FD_MAX_COORDS = 16
#: geometries per op in the pool hypothesis and the report draw from.
POOL_SIZE = 12

ANALYTIC = ("manual", "autodiff", "custom_vjp", "numpy")
JAX_MODES = tuple(MODES)  # ("manual", "autodiff", "custom_vjp")

_F64 = np.dtype(np.float64)


def tolerances(dtype, model=False):
    """(analytic tolerance, finite-difference tolerance or None) for a dtype."""
    if np.dtype(dtype) == _F64:
        return TOL_ANALYTIC_F64, TOL_FD_F64
    return (TOL_ANALYTIC_F32_MODELS if model else TOL_ANALYTIC_F32), None


@contextlib.contextmanager
def precise_jax():
    """Enable float64 and full-precision matmuls (GPUs default to TF32), restoring after."""
    old = (jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision)
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old[0])
        jax.config.update("jax_default_matmul_precision", old[1])


def _require_x64(dtype):
    if np.dtype(dtype) == _F64 and not jax.config.jax_enable_x64:
        raise RuntimeError("float64 gradient checks need jax_enable_x64 (use experiments.equivalence.precise_jax())")


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Comparison:
    """One parameter compared between two gradient sources."""

    param: str
    a: str
    b: str
    err: float
    index: tuple
    tol: float
    detail: str = ""

    @property
    def pair(self):
        return f"{self.a} vs {self.b}"

    @property
    def ok(self):
        return math.isfinite(self.err) and self.err <= self.tol

    def __str__(self):
        text = f"{self.param}: {self.pair} max rel error {self.err:.3e} at index {self.index} (tol {self.tol:.0e})"
        return f"{text}; {self.detail}" if self.detail else text


@dataclass
class CheckResult:
    """Every comparison made for one case."""

    label: str
    dtype: str
    fd: bool
    comparisons: list = field(default_factory=list)

    @property
    def failures(self):
        return [c for c in self.comparisons if not c.ok]

    @property
    def ok(self):
        return not self.failures

    def max_by_pair(self):
        """{"manual vs numpy": largest error over parameters, ...}."""
        out = {}
        for c in self.comparisons:
            out[c.pair] = max(out.get(c.pair, 0.0), c.err)
        return out

    def report(self, limit=12):
        bad = self.failures
        head = f"{self.label} [{self.dtype}, fd={'on' if self.fd else 'off'}]: "
        if not bad:
            return head + f"all {len(self.comparisons)} comparisons within tolerance"
        lines = [head + f"{len(bad)} of {len(self.comparisons)} comparisons FAILED"]
        lines += [f"  {c}" for c in sorted(bad, key=lambda c: -c.err)[:limit]]
        if len(bad) > limit:
            lines.append(f"  ... and {len(bad) - limit} more")
        return "\n".join(lines)


def compare_arrays(param, a_name, a, b_name, b, tol, coords=None):
    """cs231n relative error of a vs b as a Comparison; shape mismatches and non-finite values
    are failures (err = inf). `coords` maps the index of 1-D subset arrays back to the full
    parameter's index."""
    try:
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
    except Exception as exc:  # a mutant may return something that is not an array
        return Comparison(param, a_name, b_name, math.inf, (), tol, f"not an array: {exc}")
    if a.shape != b.shape:
        return Comparison(param, a_name, b_name, math.inf, (), tol, f"shape {a.shape} vs {b.shape}")

    def full_index(idx):
        return tuple(int(c[idx[0]]) for c in coords) if coords is not None and idx else idx

    finite = np.isfinite(a) & np.isfinite(b)
    if not finite.all():
        idx = np.unravel_index(int(np.argmin(finite)), a.shape) if a.ndim else ()
        return Comparison(param, a_name, b_name, math.inf, full_index(tuple(int(i) for i in idx)), tol,
                          f"non-finite value: {a_name} {float(a[idx]):.10g}, {b_name} {float(b[idx]):.10g}")
    err, idx = max_rel_error(a, b)
    return Comparison(param, a_name, b_name, err, full_index(idx), tol,
                      f"{a_name} {float(a[idx]):.10g}, {b_name} {float(b[idx]):.10g}")


# ----------------------------------------------------------------------------- finite differences

def _richardson(central):
    """(4 D(h/2) - D(h)) / 3 for the central difference D(h) = central(h): O(h^4) error."""
    return (4.0 * central(FD_STEP / 2) - central(FD_STEP)) / 3.0


def fd_coords(shape, rng, limit=FD_MAX_COORDS):
    """Index arrays of the coordinates finite differences perturb: all, or `limit` at random."""
    size = int(np.prod(shape, dtype=np.int64))
    flat = np.arange(size) if size <= limit else np.sort(rng.choice(size, limit, replace=False))
    return np.unravel_index(flat, shape)


def fd_layer(forward, arrays, k, dout, coords):
    """d sum(forward(*arrays) * dout) / d arrays[k] at `coords` (1-D), by central differences
    of the NumPy forward (reference_numpy.gradcheck.numerical_gradient_array)."""
    work = [np.array(a, dtype=np.float64) for a in arrays]

    def f(v):
        work[k][coords] = v
        return forward(*work)

    v0 = np.array(arrays[k][coords], dtype=np.float64)
    return _richardson(lambda h: numerical_gradient_array(f, v0.copy(), dout, h=h))


def fd_scalar(loss, arrays, k, coords):
    """d loss(*arrays) / d arrays[k] at `coords` (1-D), by central differences
    (reference_numpy.gradcheck.numerical_gradient)."""
    work = [np.array(a, dtype=np.float64) if isinstance(a, np.ndarray) else a for a in arrays]

    def f(v):
        work[k][coords] = v
        return loss(*work)

    v0 = np.array(arrays[k][coords], dtype=np.float64)
    return _richardson(lambda h: numerical_gradient(f, v0.copy(), h=h))


# ----------------------------------------------------------------------------- op registry
# A geometry is a dict of ints/tuples; `draw(label, lo, hi)` returns an int in [lo, hi]
# (hypothesis' st.integers or a seeded numpy generator), so one function defines the space.

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
    "softmax_loss": ({"N": 1, "C": 3}, {"N": 5, "C": 4}, {"N": 4, "C": 10}, {"N": 3, "C": 1}),
    "bce_with_logits": ({"N": 1, "column": 0}, {"N": 5, "column": 1}, {"N": 4, "column": 0}),
    "bce": ({"N": 1, "column": 0}, {"N": 5, "column": 1}, {"N": 4, "column": 0}),
    "l2_penalty": ({"w": (3, 4)}, {"w": (2, 1, 3)}, {"w": (5,)}),
}
EDGE_GEOMETRIES["avg_pool"] = EDGE_GEOMETRIES["max_pool"]


def _binary_shape(g):
    return (g["N"], 1) if g["column"] else (g["N"],)


def _pool_out_shape(g):
    return (g["N"], g["C"], (g["H"] - g["ph"]) // g["stride"] + 1, (g["W"] - g["pw"]) // g["stride"] + 1)


# Value generators: (geometry, rng, stress) -> (differentiable arrays, targets, fd_ok).
# Stress inputs are what breaks careless code: kinks and ties, saturation, huge scores.

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


@dataclass(frozen=True)
class OpSpec:
    """How to exercise one op: its geometry space, inputs, and the five implementations.

    Layer ops: `jax_forward(*arrays, *static) -> (out, cache)`, `jax_backward(dout, cache)`,
    and the NumPy pair likewise. Loss ops: `jax_forward(v, *targets) -> (value, grad)` (no
    backward) and `np_forward` likewise. `field` names the `jaxnets.ops.Layers` function.
    """

    name: str
    kind: str
    params: tuple
    draw_geometry: Callable
    values: Callable
    jax_forward: Callable
    np_forward: Callable
    jax_backward: Callable | None = None
    np_backward: Callable | None = None
    static: Callable = lambda g: ()
    field: str = ""
    #: whether stress inputs are meaningful in float32: not where they saturate or underflow
    #: (1 - out at tanh/sigmoid's tails, softmax probabilities of e^-300), since float32 vs
    #: float64 then compares rounding noise; kinks and ties are exact in float32 and stay in.
    stress_in_float32: bool = True

    @property
    def autodiff(self):
        return getattr(ops.AUTODIFF, self.field or self.name)

    @property
    def custom_vjp(self):
        return getattr(ops.CUSTOM_VJP, self.field or self.name)


def _layer(name, params, draw, values, jax_pair, np_pair, static=lambda g: ()):
    return OpSpec(name, "layer", params, draw, values, jax_pair[0], np_pair[0], jax_pair[1], np_pair[1], static)


def _loss(name, param, draw, values, jax_fn, np_fn, field_name, stress_in_float32=False):
    return OpSpec(name, "loss", (param,), draw, values, jax_fn, np_fn, field=field_name,
                  stress_in_float32=stress_in_float32)


def _smooth(name, scale, stress_scale, jax_pair, np_pair):
    return OpSpec(name, "layer", ("x",), _g_elementwise, _v_smooth(scale, stress_scale), jax_pair[0], np_pair[0],
                  jax_pair[1], np_pair[1], stress_in_float32=False)


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
        _loss("softmax_loss", "scores", _g_softmax, _v_softmax, ops.softmax_loss, npl.softmax_loss, "softmax_loss"),
        _loss("bce_with_logits", "z", _g_binary, _v_bce_logits, ops.binary_cross_entropy_with_logits,
              npl.binary_cross_entropy_with_logits, "bce_with_logits"),
        _loss("bce", "p", _g_binary, _v_bce, ops.binary_cross_entropy, npl.binary_cross_entropy, "bce"),
        _loss("l2_penalty", "w", _g_l2, _v_l2, ops.l2_penalty, npl.l2_penalty, "l2_penalty", True),
    )
}
OP_NAMES = tuple(OPS)


def _seeded_draw(rng):
    return lambda label, lo, hi: int(rng.integers(lo, hi + 1))


@lru_cache(maxsize=None)
def _pool(name, size):
    spec = OPS[name]
    pool = [dict(g) for g in EDGE_GEOMETRIES[name]]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for _ in range(1000):
        if len(pool) >= size:
            break
        g = spec.draw_geometry(_seeded_draw(rng))
        if g not in pool:
            pool.append(g)
    return tuple(pool)


def geometry_pool(name, size=POOL_SIZE):
    """The op's geometries: EDGE_GEOMETRIES first, then seeded draws from its space."""
    return [dict(g) for g in _pool(name, size)]


# ----------------------------------------------------------------------------- op cases

@dataclass(frozen=True)
class OpCase:
    """One example: float64 inputs, the upstream gradient (layers) and whether FD is valid."""

    op: str
    geometry: dict
    seed: int
    stress: bool
    arrays: tuple
    extras: tuple  # layers: static ints (stride, pad, pool sizes); losses: targets / reg
    dout: np.ndarray | None
    fd: bool

    @property
    def label(self):
        geo = ", ".join(f"{k}={v}" for k, v in self.geometry.items())
        return f"{self.op}({geo}) seed={self.seed}{' stress' if self.stress else ''}"


def make_op_case(name, geometry, seed, stress=False):
    """Build an OpCase from a geometry, a seed and the stress flag (deterministic)."""
    spec = OPS[name]
    rng = np.random.default_rng(seed)
    arrays, extras, fd_ok = spec.values(geometry, rng, stress)
    dout = None
    if spec.kind == "layer":
        extras = spec.static(geometry)
        out = spec.np_forward(*arrays, *extras)[0]
        dout = rng.standard_normal(out.shape)
    return OpCase(name, dict(geometry), int(seed), bool(stress), tuple(arrays), tuple(extras), dout, bool(fd_ok))


def float32_meaningful(case):
    """Whether a float32 run of `case` compares gradients rather than rounding noise."""
    return not case.stress or OPS[case.op].stress_in_float32


def op_cases(name, n, seed=0, pool_size=POOL_SIZE):
    """n deterministic cases for the report: geometries cycle through the pool, stress
    alternates, seeds count up from `seed`."""
    pool = geometry_pool(name, pool_size)
    return [make_op_case(name, pool[i % len(pool)], seed + i, stress=(i // len(pool)) % 2 == 1)
            for i in range(n)]


# ----------------------------------------------------------------------------- op evaluation

def op_gradient_fn(name, mode, static=(), impl=None):
    """The pure function `f(arrays, aux) -> (value_or_out, grads tuple)` of one JAX mode.

    Layers: aux = dout, value = the forward output, grads = d sum(out * dout) / d arrays
    (the manual pair, or jax.vjp of AUTODIFF.<op> / CUSTOM_VJP.<op>); `static` holds the
    geometry ints (stride, pad, pool sizes). Losses: aux = the targets tuple ((y,) or
    (reg,)), value = the loss, grads = (d loss / d arrays[0],). `impl` replaces the
    hand-written backward (layers) or the `(value, grad)` function (losses) in the manual
    and custom_vjp modes. f can be jitted and vmapped.
    """
    spec = OPS[name]
    if mode not in JAX_MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {JAX_MODES}")
    if mode == "autodiff":
        fn = spec.autodiff
    elif mode == "custom_vjp":
        fn = spec.custom_vjp if impl is None else _custom_vjp_of(name, impl)
    if spec.kind == "layer":
        if mode == "manual":
            backward = impl or spec.jax_backward

            def f(arrays, dout):
                out, cache = spec.jax_forward(*arrays, *static)
                grads = backward(dout, cache)
                return out, tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
        else:
            def f(arrays, dout):
                out, pullback = jax.vjp(lambda *a: fn(*a, *static), *arrays)
                return out, tuple(pullback(dout))
    elif mode == "manual":
        pair = impl or spec.jax_forward

        def f(arrays, targets):
            value, grad = pair(arrays[0], *targets)
            return value, (grad,)
    else:
        def f(arrays, targets):
            value, grad = jax.value_and_grad(fn)(arrays[0], *targets)
            return value, (grad,)
    return f


@lru_cache(maxsize=None)
def jitted_op_gradient_fn(name, mode, static=(), impl=None):
    """jax.jit(op_gradient_fn(...)), one per (op, mode, geometry ints, implementation): a pool
    geometry compiles once and every further example with its shapes is a cache hit."""
    return jax.jit(op_gradient_fn(name, mode, static, impl))


@lru_cache(maxsize=None)
def _custom_vjp_of(name, impl):
    """jax.custom_vjp function whose derivative is `impl` (a copy of CUSTOM_VJP.<op>)."""
    spec = OPS[name]
    if spec.kind == "loss":
        return loss_vjp(impl)
    n = len(spec.params)
    n_static = {"conv": 2, "max_pool": 3, "avg_pool": 3}.get(name, 0)
    return manual_vjp(spec.jax_forward, impl, nondiff_argnums=tuple(range(n, n + n_static)))


def _cast(a, dtype):
    """Floating arrays to `dtype`; integer labels and Python scalars unchanged."""
    if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating):
        return a.astype(dtype)
    return a


def jax_op_modes(name, arrays, extras, dout=None, impl=None):
    """{mode: (value_or_out, grads tuple) as NumPy, or the Exception raised} for the three JAX
    modes, jitted, on already-cast inputs (`extras`: static ints for a layer, targets for a
    loss)."""
    spec = OPS[name]
    static, aux = (tuple(extras), dout) if spec.kind == "layer" else ((), tuple(extras))
    results = {}
    for mode in JAX_MODES:
        try:
            value, grads = jax.device_get(jitted_op_gradient_fn(name, mode, static, impl)(tuple(arrays), aux))
            results[mode] = (np.asarray(value), tuple(np.asarray(g) for g in grads))
        except Exception as exc:  # a broken implementation is a failed check, not a crash
            results[mode] = exc
    return results


def _compare_sources(result, names, sources, tol):
    """All pairs of analytic sources: the value ("out"/"loss") and every gradient."""
    for a, b in itertools.combinations(ANALYTIC, 2):
        ra, rb = sources[a], sources[b]
        if isinstance(ra, Exception) or isinstance(rb, Exception):
            continue
        result.comparisons.append(compare_arrays(names[0], a, ra[0], b, rb[0], tol))
        if len(ra[1]) != len(rb[1]):
            result.comparisons.append(Comparison("*", a, b, math.inf, (), tol,
                                                 f"{len(ra[1])} vs {len(rb[1])} gradients"))
            continue
        for param, ga, gb in zip(names[1:], ra[1], rb[1]):
            result.comparisons.append(compare_arrays(param, a, ga, b, gb, tol))


def _record_errors(result, sources, tol):
    for mode, r in sources.items():
        if isinstance(r, Exception):
            msg = " ".join(str(r).split())[:300]
            result.comparisons.append(Comparison("*", mode, "(raised)", math.inf, (), tol, f"{type(r).__name__}: {msg}"))


def compare_op(case, impl=None, dtype=np.float64, fd=None):
    """Compare the five gradients of `case` (an OpCase); returns a CheckResult.

    dtype float64: the four analytic gradients pairwise within TOL_ANALYTIC_F64 and each
    against finite differences within TOL_FD_F64 (when the case is kink-free, or `fd=True`).
    dtype float32: the JAX modes run in float32, NumPy in float64 on the same values; all
    pairs within TOL_ANALYTIC_F32; no finite differences (see `float32_meaningful`).
    """
    _require_x64(dtype)
    dtype = np.dtype(dtype)
    spec = OPS[case.op]
    tol, tol_fd = tolerances(dtype)
    fd = (case.fd if fd is None else fd) and tol_fd is not None
    result = CheckResult(case.label, dtype.name, fd)

    arrays = tuple(a.astype(dtype) for a in case.arrays)
    np_arrays = tuple(a.astype(np.float64) for a in arrays)
    if spec.kind == "layer":
        dout = case.dout.astype(dtype)
        np_dout = dout.astype(np.float64)
        extras = case.extras
        np_out, cache = spec.np_forward(*np_arrays, *extras)
        np_grads = spec.np_backward(np_dout, cache)
        np_grads = np_grads if isinstance(np_grads, tuple) else (np_grads,)
        names = ("out",) + spec.params
    else:
        dout = np_dout = None
        extras = tuple(_cast(e, dtype) for e in case.extras)
        np_extras = tuple(_cast(e, np.float64) for e in extras)
        np_out, np_grad = spec.np_forward(np_arrays[0], *np_extras)
        np_grads = (np_grad,)
        names = ("loss",) + spec.params

    sources = jax_op_modes(case.op, arrays, extras, dout, impl)
    _record_errors(result, sources, tol)
    sources["numpy"] = (np.asarray(np_out), tuple(np.asarray(g) for g in np_grads))
    _compare_sources(result, names, sources, tol)

    if fd:
        rng = np.random.default_rng([case.seed, 1])
        for k, param in enumerate(spec.params):
            coords = fd_coords(np_arrays[k].shape, rng)
            if spec.kind == "layer":
                est = fd_layer(lambda *a: spec.np_forward(*a, *extras)[0], np_arrays, k, np_dout, coords)
            else:
                est = fd_scalar(lambda v: spec.np_forward(v, *np_extras)[0], np_arrays, k, coords)
            for mode in ANALYTIC:
                r = sources[mode]
                if isinstance(r, Exception) or len(r[1]) <= k:
                    continue
                g = np.asarray(r[1][k])
                sub = g[coords] if g.shape == np_arrays[k].shape else g  # wrong shape: reported below
                result.comparisons.append(compare_arrays(param, mode, sub, "fd", est, tol_fd, coords))
    return result


# ----------------------------------------------------------------------------- models

#: Configurations per model: "document" = the documents' sizes and initialisation, with
#: MNIST-like inputs (analytic checks only: gradients from 0.01- and 1e-4-scale weights are
#: ~1e-8, below what finite differences of an O(1) loss resolve to 1e-6); the others are
#: small, with random O(1) parameters (biases included), and also get finite differences.
MODEL_VARIANTS = {
    "occupancy": {"document": {}, "small": {"hidden": 3, "n_features": 4}},
    "digits": {"document": {}, "small": {"hidden": 6, "input_size": 12, "num_classes": 4}},
    "two_layer": {
        "document": {"hidden_size": 50, "reg": 0.5},
        "small": {"input_size": 12, "hidden_size": 7, "num_classes": 5, "reg": 0.3},
    },
    "conv": {
        "document": {},
        "small": {"input_shape": (2, 6, 6), "num_filters": 3, "filter_size": 3, "stride": 1, "pad": 1,
                  "pool": 2, "num_classes": 4, "reg": 0.1},
        "strided": {"input_shape": (3, 7, 8), "num_filters": 2, "filter_size": 2, "stride": 2, "pad": 0,
                    "pool": 2, "num_classes": 3},
    },
}
#: batch sizes; the conv net's are small so kink-free draws (every ReLU input and pool gap
#: clear of FD's reach) stay likely.
MODEL_BATCH = {"document": 8, "small": 5, "strided": 3}
CONV_BATCH = {"document": 4, "small": 2, "strided": 3}
FD_MAX_COORDS_MODEL = 12
_KINK_ATTEMPTS = 40
#: largest spread of a row of scores (occupancy: largest |logit|). Beyond ~15, p - onehot of
#: a confident, correct row cancels (relative accuracy eps / (1 - p)) in every implementation
#: alike, so larger scores compare rounding noise; W2 and b2 are scaled down to this.
SCORE_SPREAD_MAX = 10.0


@dataclass(frozen=True)
class ModelCase:
    """A model, its configuration, float64 parameters and a batch."""

    name: str
    variant: str
    config: dict
    seed: int
    stress: bool
    params: dict
    x: np.ndarray
    y: np.ndarray
    fd: bool
    kink_distance: float

    @property
    def label(self):
        return f"{self.name}/{self.variant} seed={self.seed}{' stress' if self.stress else ''}"


def _config_key(config):
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config.items()))


@lru_cache(maxsize=None)
def _np_model(name, key):
    return npm.MODELS[name](**dict(key))


@lru_cache(maxsize=None)
def _jax_model(name, key):
    return MODELS[name](**dict(key))


@lru_cache(maxsize=None)
def _model_fn(name, key, mode):
    return jax.jit(value_and_grad(_jax_model(name, key), mode))


def _input_shape(name, cfg):
    if name == "occupancy":
        return (cfg.get("n_features", 5),)
    if name == "conv":
        return tuple(cfg.get("input_shape", (1, 28, 28)))
    return (cfg.get("input_size", 784),)


def _num_classes(name, cfg):
    return 2 if name == "occupancy" else cfg.get("num_classes", 10)


def _windows(a, k, s):
    ho, wo = (a.shape[2] - k) // s + 1, (a.shape[3] - k) // s + 1
    return np.stack([a[:, :, i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s]
                     for i in range(k) for j in range(k)], axis=-1)


def kink_distance(name, config, params, x):
    """How far the inputs are from the model's kinks: min |ReLU input|, and for the conv net
    also the smallest gap between a pool window's positive maximum and its runner-up."""
    cfg = dict(config)
    if name == "occupancy":
        return math.inf
    if name in ("digits", "two_layer"):
        z = npl.affine_forward(x, params["W1"], params["b1"])[0]
        return float(np.min(np.abs(z)))
    z = npl.conv_forward(x, params["W1"], params["b1"], cfg.get("stride", 1), cfg.get("pad", 1))[0]
    win = np.sort(_windows(np.maximum(z, 0.0), cfg.get("pool", 2), cfg.get("pool", 2)), axis=-1)
    top, second = win[..., -1], win[..., -2] if win.shape[-1] > 1 else np.zeros_like(win[..., -1])
    gaps = np.where(top > 0, top - second, np.inf)
    return float(min(np.min(np.abs(z)), np.min(gaps)))


def _fd_margin(x):
    # one FD step on a W1 entry moves a ReLU input by at most FD_STEP * max|x| (b1: FD_STEP);
    # a factor 4 leaves room for a tie gap closing from both sides.
    return 4.0 * FD_STEP * max(1.0, float(np.max(np.abs(x))))


def _cap_scores(name, config, params, x):
    """Scale W2 and b2 (in place) so no row of scores spreads more than SCORE_SPREAD_MAX."""
    scores = _np_model(name, _config_key(config)).scores(params, x)
    spread = float(np.max(np.abs(scores))) if name == "occupancy" else float(np.max(np.ptp(scores, axis=1)))
    if spread > SCORE_SPREAD_MAX:
        params["W2"] = params["W2"] * (SCORE_SPREAD_MAX / spread)
        params["b2"] = params["b2"] * (SCORE_SPREAD_MAX / spread)


def make_model_case(name, variant="small", seed=0, stress=False):
    """A deterministic ModelCase. "document" variants use the model's own init (documents'
    initialisation); other variants draw every parameter (biases too) from 0.5 * N(0, 1).
    Stress: integer inputs and first-layer weights with zero bias, so ReLU inputs are exactly
    0 and pool windows tie (occupancy: hidden biases of +-40 saturate tanh). Without stress, up
    to _KINK_ATTEMPTS draws look for kink-free inputs so finite differences are valid."""
    config = dict(MODEL_VARIANTS[name][variant])
    key = _config_key(config)
    n = (CONV_BATCH if name == "conv" else MODEL_BATCH)[variant]
    shape = _input_shape(name, config)
    classes = _num_classes(name, config)
    attempts = 1 if stress else _KINK_ATTEMPTS
    for attempt in range(attempts):
        rng = np.random.default_rng([seed, attempt])
        if variant == "document":
            params = {k: np.asarray(v, dtype=np.float64)
                      for k, v in _jax_model(name, key).init(jax.random.key(seed)).items()}
        else:
            params = {k: 0.5 * rng.standard_normal(np.shape(v))
                      for k, v in _np_model(name, key).init(np.random.default_rng(0)).items()}
        if variant == "document" and name != "occupancy":  # pixels: mostly 0, else in [0, 1)
            x = np.where(rng.random((n, *shape)) < 0.2, rng.random((n, *shape)), 0.0)
            x = x - 0.1 if name == "two_layer" else x  # 002 subtracts the mean image
        else:
            x = rng.standard_normal((n, *shape))
        y = rng.integers(0, classes, n)
        if name == "occupancy":
            y = y.astype(np.float64)
        if stress:
            if name == "occupancy":
                # half the hidden units saturated exactly (tanh = +-1, gradient exactly 0);
                # not merely large, where 1 - a**2 cancels alike in every implementation
                h = params["b1"].shape[0]
                params["b1"] = np.where(rng.random(h) < 0.5, 40.0 * rng.choice([-1.0, 1.0], h), params["b1"])
            else:  # sparse small integers: ReLU inputs exactly 0, ties in pool windows
                density = 1.0 if name == "conv" else min(1.0, 16.0 / shape[0])  # ~16 inputs per unit
                x = np.where(rng.random(x.shape) < density, rng.integers(-2, 3, x.shape), 0).astype(np.float64)
                params["W1"] = rng.integers(-1, 2, params["W1"].shape).astype(np.float64)
                params["b1"] = np.zeros_like(params["b1"])
        _cap_scores(name, config, params, x)
        dist = kink_distance(name, config, params, x)
        fd_ok = not stress and variant != "document" and dist > _fd_margin(x)
        if fd_ok or stress:
            break
    return ModelCase(name, variant, config, int(seed), bool(stress), params, x, y, bool(fd_ok), dist)


def compare_model(case, dtype=np.float64, fd=None):
    """Compare the loss and every parameter's gradient from the three JAX modes (jitted),
    the NumPy model and (float64, kink-free) finite differences of the NumPy loss; float32
    runs the JAX modes in float32 against TOL_ANALYTIC_F32_MODELS."""
    _require_x64(dtype)
    dtype = np.dtype(dtype)
    tol, tol_fd = tolerances(dtype, model=True)
    fd = (case.fd if fd is None else fd) and tol_fd is not None
    result = CheckResult(case.label, dtype.name, fd)
    key = _config_key(case.config)
    keys = sorted(case.params)
    params = {k: case.params[k].astype(dtype) for k in keys}
    x = case.x.astype(dtype)
    y = _cast(case.y, dtype)
    np_params = {k: v.astype(np.float64) for k, v in params.items()}
    np_x, np_y = x.astype(np.float64), _cast(y, np.float64)

    sources = {}
    for mode in JAX_MODES:
        try:
            value, grads = jax.device_get(_model_fn(case.name, key, mode)(params, x, y))
            sources[mode] = (np.asarray(value), tuple(np.asarray(grads[k]) for k in keys))
        except Exception as exc:
            sources[mode] = exc
    _record_errors(result, sources, tol)
    np_model = _np_model(case.name, key)
    value, grads = np_model.loss_and_grads(np_params, np_x, np_y)
    sources["numpy"] = (np.asarray(value), tuple(np.asarray(grads[k]) for k in keys))
    _compare_sources(result, ("loss", *keys), sources, tol)

    if fd:
        rng = np.random.default_rng([case.seed, 2])
        for i, k in enumerate(keys):
            coords = fd_coords(np_params[k].shape, rng, FD_MAX_COORDS_MODEL)

            def loss(v, k=k):
                return np_model.loss({**np_params, k: v}, np_x, np_y)

            est = fd_scalar(loss, [np_params[k]], 0, coords)
            for mode in ANALYTIC:
                r = sources[mode]
                if isinstance(r, Exception):
                    continue
                result.comparisons.append(compare_arrays(k, mode, r[1][i][coords], "fd", est, tol_fd, coords))
    return result


def model_cases(name, n_per_variant, seed=0):
    """Deterministic model cases for the report: every variant, alternating stress."""
    return [make_model_case(name, variant, seed + i, stress=i % 2 == 1)
            for variant in MODEL_VARIANTS[name] for i in range(n_per_variant)]
