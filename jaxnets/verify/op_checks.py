"""Checking one op five ways: the hand-written backward (manual), `jax.vjp` of its AUTODIFF
forward, `jax.vjp` through its CUSTOM_VJP wiring, the NumPy float64 pair, and finite
differences of the NumPy forward (of sum(out * dout) for a layer, of the loss for a loss).

`compare_op` takes the implementation under test as a parameter (`impl`: a replacement
backward for a layer, a replacement `(value, grad)` function for a loss; `wiring`: a
replacement for `jaxnets.ops.vjp`'s manual_vjp / loss_vjp), which is how
`jaxnets.verify.mutants` plants bugs into copies of the correct functions. The checker never
crashes on a broken implementation: an exception, a shape mismatch or a non-finite value is
recorded as a failed comparison (error = inf) with its message.

Losses are differentiated with an upstream cotangent other than 1 (a random scalar per case,
`OpCase.dout`): as the root of `jax.grad` a loss only ever sees 1, and a custom_vjp rule that
ignores its incoming cotangent would pass, yet `jax.grad(lambda s: 3 * loss(s, y))` would be
3x off.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
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


class LossAux(NamedTuple):
    """A loss's non-differentiable inputs and the upstream cotangent of its value."""

    targets: tuple
    cotangent: Any


@dataclass(frozen=True)
class OpCase:
    """One example: float64 inputs, the upstream gradient (a layer's dout, a loss's scalar
    cotangent) and whether FD is valid."""

    op: str
    geometry: dict
    seed: int
    stress: bool
    arrays: tuple
    extras: tuple  # layers: static ints (stride, pad, pool sizes); losses: targets / reg
    dout: np.ndarray
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
    if spec.kind == "layer":
        extras = spec.static(geometry)
        out = spec.np_forward(*arrays, *extras)[0]
        dout = rng.standard_normal(out.shape)
    else:
        dout = np.asarray(loss_cotangent(rng))
    return OpCase(name, dict(geometry), int(seed), bool(stress), tuple(arrays), tuple(extras), dout, bool(fd_ok))


def loss_cotangent(rng):
    """A random upstream cotangent for a loss value, |c| in [0.5, 3] with either sign: never
    1, so a backward that ignores it is off by the factor."""
    return float(rng.uniform(0.5, 3.0) * rng.choice([-1.0, 1.0]))


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

def op_gradient_fn(name, mode, static=(), impl=None, wiring=None):
    """The pure function `f(arrays, aux) -> (value_or_out, grads tuple)` of one JAX mode.

    Layers: aux = dout, value = the forward output, grads = d sum(out * dout) / d arrays
    (the manual pair, or jax.vjp of AUTODIFF.<op> / CUSTOM_VJP.<op>); `static` holds the
    geometry ints (stride, pad, pool sizes). Losses: aux = the targets tuple ((y,) or
    (reg,)), or `LossAux(targets, cotangent)`; value = the loss, grads = (cotangent *
    d loss / d arrays[0],) (cotangent 1 for a bare targets tuple, as the root of jax.grad).
    `impl` replaces the hand-written backward (layers) or the `(value, grad)` function
    (losses) in the manual and custom_vjp modes, `wiring` the custom_vjp wiring
    (`manual_vjp` / `loss_vjp`). f can be jitted and vmapped.
    """
    spec = OPS[name]
    if mode not in JAX_MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {JAX_MODES}")
    if mode == "autodiff":
        fn = spec.autodiff
    elif mode == "custom_vjp":
        if impl is None and wiring is None:
            fn = spec.custom_vjp
        else:
            fn = _custom_vjp_of(name, impl or _default_impl(spec), len(static), wiring)
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

        def f(arrays, aux):
            targets, cotangent = _loss_aux(aux)
            value, grad = pair(arrays[0], *targets)
            return value, (grad if cotangent is None else cotangent * grad,)
    else:
        def f(arrays, aux):
            targets, cotangent = _loss_aux(aux)
            value, pullback = jax.vjp(lambda v: fn(v, *targets), arrays[0])
            return value, tuple(pullback(jnp.ones_like(value) if cotangent is None
                                         else jnp.asarray(cotangent, value.dtype)))
    return f


def _loss_aux(aux):
    """(targets, cotangent or None) from a loss's aux: LossAux or a bare targets tuple."""
    return (tuple(aux.targets), aux.cotangent) if isinstance(aux, LossAux) else (tuple(aux), None)


def _default_impl(spec):
    return spec.jax_backward if spec.kind == "layer" else spec.jax_forward


def jitted_op_gradient_fn(name, mode, static=(), impl=None, wiring=None):
    """jax.jit(op_gradient_fn(...)), one per (op, mode, geometry ints, implementation, wiring)
    (a `jaxnets.ops.Layout`, for conv, is one of the static values): a pool geometry
    compiles once and every further example with its shapes is a cache hit."""
    return _jitted(name, mode, tuple(static), impl, wiring)


@lru_cache(maxsize=None)
def _jitted(name, mode, static, impl, wiring):
    return jax.jit(op_gradient_fn(name, mode, static, impl, wiring))


@lru_cache(maxsize=None)
def _custom_vjp_of(name, impl, n_static, wiring=None):
    """jax.custom_vjp function whose derivative is `impl` (a copy of CUSTOM_VJP.<op>), wired
    by `wiring` (default manual_vjp / loss_vjp); the `n_static` arguments after the arrays
    are static (stride, pad, pool sizes)."""
    spec = OPS[name]
    if spec.kind == "loss":
        return (wiring or loss_vjp)(impl)
    n = len(spec.params)
    return (wiring or manual_vjp)(spec.jax_forward, impl, nondiff_argnums=tuple(range(n, n + n_static)))


def jax_op_modes(name, arrays, extras, dout=None, impl=None, wiring=None):
    """{mode: (value_or_out, grads tuple) as NumPy, or the Exception raised} for the three JAX
    modes, jitted, on already-cast inputs (`extras`: static ints for a layer, targets for a
    loss; `dout`: a layer's upstream gradient, a loss's scalar cotangent or None for 1)."""
    spec = OPS[name]
    if spec.kind == "layer":
        static, aux = tuple(extras), dout
    else:
        static, aux = (), (tuple(extras) if dout is None else LossAux(tuple(extras), dout))
    results = {}
    for mode in JAX_MODES:
        try:
            fn = jitted_op_gradient_fn(name, mode, static, impl, wiring)
            value, grads = jax.device_get(fn(tuple(arrays), aux))
            results[mode] = (np.asarray(value), tuple(np.asarray(g) for g in grads))
        except Exception as exc:  # a broken implementation is a failed check, not a crash
            results[mode] = exc
    return results


def compare_op(case, impl=None, dtype=np.float64, fd=None, wiring=None, layout=None):
    """Compare the five gradients of `case` (an OpCase); returns a CheckResult.

    dtype float64: the four analytic gradients pairwise within TOL_ANALYTIC_F64 and each
    against finite differences within TOL_FD_F64 (when the case is kink-free, or `fd=True`).
    dtype float32: the JAX modes run in float32, NumPy in float64 on the same values; all
    pairs within TOL_ANALYTIC_F32; no finite differences (see `float32_meaningful`).
    A loss's gradients are of cotangent * loss (cotangent = case.dout, random per case).
    layout: None, or the `jaxnets.ops.Layout` a layout-dependent op (conv) is given in the
    JAX modes, after its static values.
    """
    require_x64(dtype)
    dtype = np.dtype(dtype)
    spec = OPS[case.op]
    tol, tol_fd = tolerances(dtype)
    fd = (case.fd if fd is None else fd) and tol_fd is not None
    result = CheckResult(case.label, dtype.name, fd)

    arrays = tuple(a.astype(dtype) for a in case.arrays)
    np_arrays = tuple(a.astype(np.float64) for a in arrays)
    dout = np.asarray(case.dout).astype(dtype)
    np_dout = dout.astype(np.float64)
    if spec.kind == "layer":
        extras = case.extras
        np_out, cache = spec.np_forward(*np_arrays, *extras)
        np_grads = spec.np_backward(np_dout, cache)
        np_grads = np_grads if isinstance(np_grads, tuple) else (np_grads,)
        names = ("out",) + spec.params
    else:
        extras = tuple(cast_floats(e, dtype) for e in case.extras)
        np_extras = tuple(cast_floats(e, np.float64) for e in extras)
        np_out, np_grad = spec.np_forward(np_arrays[0], *np_extras)
        np_grads = (np_dout * np_grad,)
        names = ("loss",) + spec.params

    jax_extras = tuple(extras) + ((layout,) if layout is not None else ())
    sources = jax_op_modes(case.op, arrays, jax_extras, dout, impl, wiring)
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
                est = fd_scalar(lambda v: np_dout * spec.np_forward(v, *np_extras)[0], np_arrays, k, coords)
            for mode in ANALYTIC:
                r = sources[mode]
                if isinstance(r, Exception) or len(r[1]) <= k:
                    continue
                g = np.asarray(r[1][k])
                sub = g[coords] if g.shape == np_arrays[k].shape else g  # wrong shape: reported below
                result.comparisons.append(compare_arrays(param, mode, sub, "fd", est, tol_fd, coords))
    return result
