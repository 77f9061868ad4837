"""Checking one op five ways: the hand-written backward (manual), `jax.vjp` of its AUTODIFF
forward, `jax.vjp` through its CUSTOM_VJP wiring, the NumPy float64 pair, and finite
differences of the NumPy forward (of sum(out * dout) for a layer, of the loss for a loss).

`compare_op` takes the implementation under test as a parameter (`impl`: a replacement
backward for a layer, a replacement `(value, grad)` function for a loss), which is how
`jaxnets.verify.mutants` plants bugs into copies of the correct functions. The checker never
crashes on a broken implementation: an exception, a shape mismatch or a non-finite value is
recorded as a failed comparison (error = inf) with its message.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jax
import numpy as np

from jaxnets.grads import MODES
from jaxnets.ops.vjp import loss_vjp, manual_vjp
from jaxnets.verify.compare import CheckResult, cast_floats, compare_arrays, compare_sources, record_errors
from jaxnets.verify.finite_diff import fd_coords, fd_layer, fd_scalar
from jaxnets.verify.op_specs import OPS, POOL_SIZE, geometry_pool
from jaxnets.verify.tolerances import require_x64, tolerances

#: the gradient sources compared pairwise (finite differences are the fifth)
ANALYTIC = ("manual", "autodiff", "custom_vjp", "numpy")
JAX_MODES = tuple(MODES)  # ("manual", "autodiff", "custom_vjp")


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
        fn = spec.custom_vjp if impl is None else _custom_vjp_of(name, impl, len(static))
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
def _custom_vjp_of(name, impl, n_static):
    """jax.custom_vjp function whose derivative is `impl` (a copy of CUSTOM_VJP.<op>); the
    `n_static` arguments after the arrays are static (stride, pad, pool sizes)."""
    spec = OPS[name]
    if spec.kind == "loss":
        return loss_vjp(impl)
    n = len(spec.params)
    return manual_vjp(spec.jax_forward, impl, nondiff_argnums=tuple(range(n, n + n_static)))


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


def compare_op(case, impl=None, dtype=np.float64, fd=None):
    """Compare the five gradients of `case` (an OpCase); returns a CheckResult.

    dtype float64: the four analytic gradients pairwise within TOL_ANALYTIC_F64 and each
    against finite differences within TOL_FD_F64 (when the case is kink-free, or `fd=True`).
    dtype float32: the JAX modes run in float32, NumPy in float64 on the same values; all
    pairs within TOL_ANALYTIC_F32; no finite differences (see `float32_meaningful`).
    """
    require_x64(dtype)
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
        extras = tuple(cast_floats(e, dtype) for e in case.extras)
        np_extras = tuple(cast_floats(e, np.float64) for e in extras)
        np_out, np_grad = spec.np_forward(np_arrays[0], *np_extras)
        np_grads = (np_grad,)
        names = ("loss",) + spec.params

    sources = jax_op_modes(case.op, arrays, extras, dout, impl)
    record_errors(result, sources, tol)
    sources["numpy"] = (np.asarray(np_out), tuple(np.asarray(g) for g in np_grads))
    compare_sources(result, names, sources, tol, ANALYTIC)

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
