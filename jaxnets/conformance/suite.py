"""The equivalence suite through the one engine: every built-in op and model, five ways.

`make_op_case` / `op_cases` build an op's deterministic cases (geometry, seed, stress: the
registry's generators in `specs/`); `make_model_case` (in `models`) a model's.
`compare_op(case)` runs an op's case through `tables.SUITE_OPS` — the hand-written pair
(manual), `jax.vjp` of its AUTODIFF function, `jax.vjp` of its CUSTOM_VJP function, the NumPy
float64 twin, each pair within TOL_ANALYTIC_F64, and each against Richardson finite
differences of the NumPy forward within TOL_FD_F64 on kink-free cases; float32 runs the JAX
sources in float32 against the float64 twin on the same (rounded) values, within
TOL_ANALYTIC_F32. `compare_model(case)` does the same for a model in each gradient mode of
`jaxnets.grads`. Both return a `Report`; `impl` / `wiring` plant a mutant.

Losses are differentiated with an upstream cotangent other than 1 (a random scalar per case):
as the root of `jax.grad` a loss only ever sees 1, and a custom_vjp rule that ignores its
incoming cotangent would pass, yet `jax.grad(lambda s: 3 * loss(s, y))` would be 3x off.
"""
from __future__ import annotations

from functools import lru_cache

import jax
import numpy as np

from jaxnets.grads import MODES
from jaxnets.gradcheck import engine, tree
from jaxnets.conformance.builtin import model_subject, op_subject
from jaxnets.gradcheck.case import Case, loss_cotangent
from jaxnets.conformance.tables import SUITE_OPS, suite_model_table, without_fd
from jaxnets.conformance.models import FD_MAX_COORDS_MODEL, MODEL_SPECS, config_key
from jaxnets.conformance.specs import OPS, POOL_SIZE, geometry_pool
from jaxnets.gradcheck.tolerances import FD_MAX_COORDS, Tolerance, require_x64, tolerances

#: the gradient sources compared pairwise (finite differences are the fifth)
ANALYTIC = ("manual", "autodiff", "custom_vjp", "numpy")
JAX_MODES = tuple(MODES)  # ("manual", "autodiff", "custom_vjp")
_ONE_OUTPUT = tree.flat_outputs(np.zeros(()))[1]


class OpCase(Case):
    """A Case of a built-in op, with its parts named: `op`, `arrays` (differentiated),
    `extras` (static values of a layer, targets of a loss), `dout` (the cotangent)."""

    @property
    def op(self):
        return self.tags["op"]

    @property
    def arrays(self):
        return self.args[:len(OPS[self.op].params)]

    @property
    def extras(self):
        return self.args[len(OPS[self.op].params):]

    @property
    def dout(self):
        return self.cotangent[0]

    @property
    def geometry(self):
        return self.tags["geometry"]


def make_op_case(name, geometry, seed, stress=False):
    """An op's Case from a geometry, a seed and the stress flag (deterministic): args are the
    differentiated arrays then the static values (a layer) or the targets (a loss); the
    cotangent a random dout (a layer) or a random scalar, never 1 (a loss)."""
    spec = OPS[name]
    rng = np.random.default_rng(seed)
    arrays, extras, fd_ok = spec.values(geometry, rng, stress)
    if spec.kind == "layer":
        extras = spec.static(geometry)
        outs = spec.np_forward(*arrays, *extras)[:spec.n_out]
        cotangent = [rng.standard_normal(np.shape(o)) for o in outs]
    else:
        dout = np.asarray(loss_cotangent(rng))
        # a loss's float targets (l2's reg) are traced values, as in a training step
        extras = tuple(np.asarray(e, np.float64) if isinstance(e, float) else e for e in extras)
        cotangent = [dout]
    geo = ", ".join(f"{k}={v}" for k, v in geometry.items())
    label = f"{name}({geo}) seed={seed}{' stress' if stress else ''}"
    tags = {"op": name, "geometry": dict(geometry), "seed": int(seed), "stress": bool(stress)}
    return OpCase(0, tuple(arrays) + tuple(extras), {}, cotangent, tags, bool(fd_ok), label)


def hand_op_case(op, arrays, extras, dout):
    """An OpCase from given values (a test's hand-written inputs), without finite differences."""
    return OpCase(0, tuple(np.asarray(a, np.float64) for a in arrays) + tuple(extras), {},
                  [np.asarray(dout, np.float64)], {"op": op, "geometry": {}, "seed": 0, "stress": True}, False,
                  f"{op}(hand-written)")


def op_sources(case, dtype=np.float64):
    """{source: (value, gradients)} of the four analytic sources of an op case, as the
    suite computes them (for tests of conventions at kinks)."""
    report_subject = op_subject_for(case.op)
    ctx = engine.CaseContext(report_subject, case, _options(dtype, False, 1, FD_MAX_COORDS), _ONE_OUTPUT)
    out = {}
    for name, key in (("manual", "rule"), ("autodiff", "autodiff"), ("custom_vjp", "wired"), ("numpy", "reference")):
        r = ctx.get(key)
        out[name] = r if isinstance(r, Exception) else (r.outputs[0], tuple(r.grads))
    return out


def float32_meaningful(case):
    """Whether a float32 run of `case` compares gradients rather than rounding noise."""
    return not case.tags["stress"] or OPS[case.tags["op"]].stress_in_float32


def op_cases(name, n, seed=0, pool_size=POOL_SIZE):
    """n deterministic cases for the report: geometries cycle through the pool, stress
    alternates, seeds count up from `seed`."""
    pool = geometry_pool(name, pool_size)
    return [make_op_case(name, pool[i % len(pool)], seed + i, stress=(i // len(pool)) % 2 == 1)
            for i in range(n)]


@lru_cache(maxsize=128)
def _op_subject(name, impl, wiring, layout):
    """One Subject (and so one pool of compiled programs) per op, mutant and layout."""
    return op_subject(name, impl, wiring, layout)


def clear_subjects():
    """Forget the suite's op and model subjects (with them, their compiled programs)."""
    _op_subject.cache_clear()
    _model_subject.cache_clear()


def op_subject_for(name, impl=None, wiring=None, layout=None):
    return _op_subject(name, impl, wiring, layout)


def _options(dtype, model, salt, limit, floor=None):
    tol, tol_fd = tolerances(dtype, model=model)
    return engine.Options(tol=Tolerance(tol, tol_fd or 0.0, floor, None), dtype=dtype, second_order=False,
                          transforms=False, fd_salt=salt, fd_limit=limit)


def compare_op(case, impl=None, dtype=np.float64, fd=None, wiring=None, layout=None):
    """The suite's check of one op case (a Report); see the module docstring. `layout`: None,
    or the `jaxnets.ops.Layout` a layout-dependent op (conv) is given in the JAX sources, after
    its static values (how the tests run every branch on a CPU)."""
    require_x64(dtype)
    dtype = np.dtype(dtype)
    subject = op_subject_for(case.tags["op"], impl, wiring, layout)
    use_fd = (case.fd if fd is None else fd) and dtype == np.float64
    table = SUITE_OPS if use_fd else without_fd(SUITE_OPS)
    n_out = OPS[case.op].n_out
    treedef = _ONE_OUTPUT if n_out == 1 else tree.flat_outputs(tuple(np.zeros(()) for _ in range(n_out)))[1]
    report, _ = engine.run(subject, [case], table,
                           _options(dtype, False, 1, FD_MAX_COORDS, OPS[case.op].scale_floor),
                           lambda c: treedef, name=case.label, settings={"fd": bool(use_fd)})
    return report


@lru_cache(maxsize=32)
def _model_subject(name, key):
    subject = model_subject(name, dict(key))
    subject.out_treedef = engine.out_treedef_of(subject)
    return subject


def model_subject_for(case):
    return _model_subject(case.tags["model"], config_key(case.tags["config"]))


def compare_model(case, dtype=np.float64, fd=None):
    """The suite's check of one model case in every gradient mode (a Report)."""
    require_x64(dtype)
    dtype = np.dtype(dtype)
    subject = model_subject_for(case)
    use_fd = (case.fd if fd is None else fd) and dtype == np.float64
    table = suite_model_table(tuple(subject.sources))
    table = table if use_fd else without_fd(table)
    report, _ = engine.run(subject, [case], table,
                           _options(dtype, True, 2, FD_MAX_COORDS_MODEL, MODEL_SPECS[case.tags["model"]].scale_floor),
                           subject.out_treedef, name=case.label, settings={"fd": bool(use_fd)})
    return report


def op_gradient_fn(name, mode, static=()):
    """`f(arrays, aux) -> (value, grads)` of one JAX mode of an op, pure (jit- and
    vmap-able): aux is a layer's dout, or a loss's targets tuple (cotangent 1, as the root of
    jax.grad)."""
    s = op_subject_for(name)
    layer = OPS[name].kind == "layer"
    fn = {"manual": None, "autodiff": s.primal, "custom_vjp": s.wired}[mode]

    def f(arrays, aux):
        args = tuple(arrays) + (tuple(static) if layer else tuple(aux))
        n = len(arrays)
        if fn is None:
            cot = aux if layer else jax.numpy.ones(())
            value, grads = s.rule(args, {}, cot)
            return value, tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
        value, pull = jax.vjp(lambda *d: fn(*d, *args[n:]), *arrays)
        return value, tuple(pull(aux if layer else jax.numpy.ones_like(value)))

    return f
