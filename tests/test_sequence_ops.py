"""The sequence layers (RNN, LSTM, GRU, embeddings, temporal affine and softmax loss, attention,
multi-head attention, the transformer block) five ways, and their planted mistakes caught.

Until the engine of issue 17 takes `specs_sequence.SequenceOpSpec` (multiple outputs, integer
and boolean inputs), this file runs those specs itself, with the engine's parts: for each
case, the hand-written backward (manual), jax.vjp of AUTODIFF.<op>, jax.vjp through
CUSTOM_VJP.<op> and the NumPy twin, pairwise within TOL_ANALYTIC_F64 (cs231n's relative
error), and each against Richardson central differences of the NumPy forward within
TOL_FD_F64 where the case allows them, with random upstream gradients (one per output; a
loss gets a random scalar cotangent). Every spec's edge geometries run, plain and stressed,
plus a few geometries drawn from its space.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import jax
import numpy as np
import pytest

from jaxnets.ops.vjp import loss_vjp, manual_vjp
from jaxnets.verify.compare import Comparison, compare_arrays
from jaxnets.verify.finite_diff import fd_coords, richardson
from jaxnets.verify.mutants_sequence import PLANTED
from jaxnets.verify.specs_sequence import SEQUENCE_OPS, SPECS
from jaxnets.verify.tolerances import TOL_ANALYTIC_F64, TOL_FD_F64
from reference_numpy.numerical import numerical_gradient, numerical_gradient_array

SOURCES = ("manual", "autodiff", "custom_vjp", "numpy")
SEEDS = (7,)
DRAWN_GEOMETRIES = 1


@dataclass
class Case:
    spec: object
    geometry: dict
    stress: bool
    arrays: tuple
    extras: tuple
    static: tuple
    douts: tuple
    fd: bool
    seed: int

    @property
    def label(self):
        return f"{self.spec.name}({self.geometry}) seed={self.seed}{' stress' if self.stress else ''}"


def make_case(spec, geometry, seed, stress):
    rng = np.random.default_rng(seed)
    arrays, extras, fd_ok = spec.values(geometry, rng, stress)
    static = spec.static(geometry)
    if spec.kind == "layer":
        outs = spec.np_forward(*arrays, *static)[:spec.n_out]
        douts = tuple(rng.standard_normal(np.shape(o)) for o in outs)
    else:
        douts = (float(rng.uniform(0.5, 3.0) * rng.choice([-1.0, 1.0])),)
    return Case(spec, geometry, stress, tuple(arrays), tuple(extras), tuple(static), douts, fd_ok, seed)


def _as_tuple(a):
    return tuple(a) if isinstance(a, (tuple, list)) else (a,)


def _diff_positions(spec):
    return [i for i, p in enumerate(spec.params) if p not in spec.no_grad]


def _layer_jax_sources(spec, static, impl):
    """{source: f(arrays, douts) -> (outputs, grads)} for a layer's three JAX sources, `impl`
    replacing its hand-written backward."""
    diff = _diff_positions(spec)
    backward = impl or spec.jax_backward

    def manual(arrays, douts):
        res = spec.jax_forward(*arrays, *static)
        return tuple(res[:spec.n_out]), _as_tuple(backward(*douts, res[spec.n_out]))

    def through(fn):
        def run(arrays, douts):
            def f(*d):
                full = list(arrays)
                for i, v in zip(diff, d):
                    full[i] = v
                return fn(*full, *static)

            outs, pullback = jax.vjp(f, *(arrays[i] for i in diff))
            return _as_tuple(outs), pullback(douts[0] if spec.n_out == 1 else douts)

        return run

    if impl is None:
        custom = spec.custom_vjp
    else:
        n = len(spec.params)
        custom = manual_vjp(spec.jax_forward, impl, nondiff_argnums=tuple(range(n, n + len(static))),
                            n_out=spec.n_out, no_grad_argnums=tuple(i for i in range(n) if i not in diff))
    return {"manual": manual, "autodiff": through(spec.autodiff), "custom_vjp": through(custom)}


def _loss_jax_sources(spec, impl):
    """The same for a loss: f((x,), (targets, cotangent)) -> ((value,), (cotangent * dx,))."""
    pair = impl or spec.jax_forward

    def manual(arrays, aux):
        targets, c = aux
        value, grad = pair(arrays[0], *targets)
        return (value,), (c * grad,)

    def through(fn):
        def run(arrays, aux):
            targets, c = aux
            value, pullback = jax.vjp(lambda v: fn(v, *targets), arrays[0])
            return (value,), pullback(c.astype(value.dtype))

        return run

    custom = spec.custom_vjp if impl is None else loss_vjp(impl)
    return {"manual": manual, "autodiff": through(spec.autodiff), "custom_vjp": through(custom)}


@lru_cache(maxsize=None)
def _jitted_sources(name, static, impl):
    """The three JAX sources of op `name` as ONE jitted function (one compilation per
    geometry instead of three), per (static arguments, implementation); and the sources one
    by one, for when that raises (a broken implementation fails its own sources only)."""
    spec = SEQUENCE_OPS[name]
    fns = _layer_jax_sources(spec, static, impl) if spec.kind == "layer" else _loss_jax_sources(spec, impl)
    together = jax.jit(lambda arrays, aux: {source: fn(arrays, aux) for source, fn in fns.items()})
    return together, {source: jax.jit(fn) for source, fn in fns.items()}


def _numpy_results(r):
    outs, grads = r
    return tuple(np.asarray(o) for o in outs), tuple(np.asarray(g) for g in grads)


def gradient_sources(case, impl=None):
    """{source: (outputs, grads) as NumPy, or the Exception raised}."""
    spec = case.spec
    aux = case.douts if spec.kind == "layer" else (case.extras, np.asarray(case.douts[0]))
    together, alone = _jitted_sources(spec.name, case.static, impl)
    try:
        results = {s: _numpy_results(r) for s, r in jax.device_get(together(case.arrays, aux)).items()}
    except Exception:  # a broken implementation is a failed comparison, not a crash
        results = {}
        for source, fn in alone.items():
            try:
                results[source] = _numpy_results(jax.device_get(fn(case.arrays, aux)))
            except Exception as exc:
                results[source] = exc
    try:
        if spec.kind == "layer":
            res = spec.np_forward(*case.arrays, *case.static)
            outs, grads = res[:spec.n_out], _as_tuple(spec.np_backward(*case.douts, res[spec.n_out]))
        else:
            value, grad = spec.np_forward(case.arrays[0], *case.extras)
            outs, grads = (value,), (case.douts[0] * grad,)
        results["numpy"] = _numpy_results((outs, grads))
    except Exception as exc:
        results["numpy"] = exc
    return results


def _fd(case, k):
    """Richardson central differences of the NumPy forward w.r.t. array k, at sampled coords:
    of sum over outputs of out * dout (a layer), of cotangent * loss (a loss)."""
    spec = case.spec
    work = list(case.arrays)
    work[k] = np.array(case.arrays[k], dtype=np.float64)
    coords = fd_coords(work[k].shape, np.random.default_rng([case.seed, k]))
    v0 = work[k][coords].copy()

    def at(v):
        work[k][coords] = v

    if spec.kind == "layer":
        dout = np.concatenate([np.ravel(d) for d in case.douts])

        def f(v):
            at(v)
            outs = spec.np_forward(*work, *case.static)[:spec.n_out]
            return np.concatenate([np.ravel(o) for o in outs])

        return coords, richardson(lambda h: numerical_gradient_array(f, v0.copy(), dout, h=h))

    def loss(v):
        at(v)
        return case.douts[0] * spec.np_forward(*work, *case.extras)[0]

    return coords, richardson(lambda h: numerical_gradient(loss, v0.copy(), h=h))


def compare_case(case, impl=None):
    """Every comparison of `case` (a list of Comparison)."""
    spec = case.spec
    sources = gradient_sources(case, impl)
    grad_names = spec.grad_params if spec.kind == "layer" else spec.params
    out_names = [f"out{j}" for j in range(spec.n_out)] if spec.kind == "layer" else ["loss"]
    comparisons = [Comparison("-", s, "-", np.inf, (), TOL_ANALYTIC_F64, f"raised {r!r}")
                   for s, r in sources.items() if isinstance(r, Exception)]
    ok = {s: r for s, r in sources.items() if not isinstance(r, Exception)}
    floor = {}
    if spec.scale_floor is not None and "numpy" in ok:  # the case's gradient scale, from the twin
        scale = max((float(np.max(np.abs(g))) for g in ok["numpy"][1] if g.size), default=0.0)
        floor = {"scale_floor": spec.scale_floor, "scale": scale}
    for a, b in itertools.combinations([s for s in SOURCES if s in ok], 2):
        for name, x, y in zip(out_names, ok[a][0], ok[b][0]):
            comparisons.append(compare_arrays(name, a, x, b, y, TOL_ANALYTIC_F64))
        if len(ok[a][1]) != len(grad_names) or len(ok[b][1]) != len(grad_names):
            comparisons.append(Comparison("grads", a, b, np.inf, (), TOL_ANALYTIC_F64,
                                          f"{len(ok[a][1])} and {len(ok[b][1])} gradients for {grad_names}"))
            continue
        for name, x, y in zip(grad_names, ok[a][1], ok[b][1]):
            comparisons.append(compare_arrays(name, a, x, b, y, TOL_ANALYTIC_F64, **floor))
    if case.fd:
        positions = _diff_positions(spec) if spec.kind == "layer" else [0]
        for j, (name, k) in enumerate(zip(grad_names, positions)):
            coords, est = _fd(case, k)
            for s, (_, grads) in ok.items():
                if j < len(grads) and np.shape(grads[j]) == np.shape(case.arrays[k]):
                    comparisons.append(compare_arrays(name, s, grads[j][coords], "fd", est, TOL_FD_F64, coords,
                                                      **floor))
                else:
                    comparisons.append(Comparison(name, s, "fd", np.inf, (), TOL_FD_F64, "no gradient of that shape"))
    return comparisons


def spec_cases(spec, seeds=SEEDS, drawn=DRAWN_GEOMETRIES):
    """The edge geometries and `drawn` seeded draws from the spec's space, plain and stressed."""
    geometries = list(spec.edges)
    rng = np.random.default_rng(len(spec.name))
    for _ in range(drawn):
        geometries.append(spec.draw_geometry(lambda label, lo, hi: int(rng.integers(lo, hi + 1))))
    return [make_case(spec, g, seed, stress) for g in geometries for stress in (False, True) for seed in seeds]


def _failures(comparisons):
    return [c for c in comparisons if not c.ok]


@pytest.mark.parametrize("name", [spec.name for spec in SPECS])
def test_sequence_op_five_ways(name):
    spec = SEQUENCE_OPS[name]
    report = []
    for case in spec_cases(spec):
        bad = _failures(compare_case(case))
        report += [f"{case.label}: {c}" for c in bad[:4]]
    assert not report, "\n".join(report)


@pytest.mark.parametrize("planted", PLANTED, ids=[p[0] for p in PLANTED])
def test_sequence_mutant_caught(planted, mutant_scoreboard):
    from jaxnets.verify.mutants import MutantResult

    name, op, fn, _ = planted
    caught = None
    for case in spec_cases(SEQUENCE_OPS[op]):
        bad = _failures(compare_case(case, impl=fn))
        if bad:
            caught = f"{case.label}: {max(bad, key=lambda c: c.err)}"
            break
    mutant_scoreboard.append(MutantResult(name, caught is not None, caught or "all cases pass"))
    assert caught, f"mutant {name} of {op} was not caught"
