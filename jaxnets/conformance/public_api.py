"""The project's own ops and its mutant catalogue fed to `check_layer` as if they were a
user's layers: the checker's power measured through its public API.

`op_layer(name)` gives check_layer's arguments for an op of `OPS`: its jaxnets pair (a loss:
its `(value, grad)` function), its edge geometries as examples (keyword values by name) and
its NumPy float64 twin as the reference. `mutant_layer(mutant)` swaps in the mutant's
backward or loss function, or, for a mistake in the custom_vjp wiring, the layer a user would
have written with that wiring: a forward through the wired function and a backward that is
its vjp. `public_mutant_score()` checks every mutant that way; a mutant is caught when the
report fails or check_layer refuses the layer as bad input (a gradient of the wrong shape).
"""
from __future__ import annotations

import functools
import inspect
from typing import NamedTuple

import jax
import numpy as np

from jaxnets.ops.vjp import loss_vjp, manual_vjp
from jaxnets.gradcheck.api import check_layer, run_check
from jaxnets.conformance.mutants import MUTANTS
from jaxnets.conformance.mutants.custom import CUSTOM_MUTANTS
from jaxnets.conformance.specs import OPS
from jaxnets.gradcheck.prepare import CheckInputError
from jaxnets.gradcheck.report import STATUSES


class LayerArgs(NamedTuple):
    forward: object
    backward: object
    examples: list
    reference: object


def _static_names(spec):
    """Keyword names for the op's static values (stride, pad, ...): its forward's parameter
    names after the arrays, or static0, static1, ... for a forward taking *args."""
    params = [p for p in inspect.signature(spec.jax_forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][len(spec.params):]
    return lambda n: [p.name for p in params[:n]] + [f"static{i}" for i in range(len(params), n)]


def _examples(spec, seed=0):
    out = []
    rng = np.random.default_rng(seed)
    names = _static_names(spec)
    for g in spec.edges:
        arrays, extras, _ = spec.values(g, rng, False)
        if spec.kind == "layer":
            values = tuple(spec.static(g))
            out.append(tuple(arrays) + (dict(zip(names(len(values)), values)),))
        else:
            targets = [e for e in extras if isinstance(e, np.ndarray)]
            values = [e for e in extras if not isinstance(e, np.ndarray)]
            static = dict(zip(names(len(targets) + len(values))[len(targets):], values))
            out.append(tuple(arrays) + tuple(targets) + ((static,) if static else ()))
    return out


def _positional(fn, arrays=(), statics=()):
    """fn called with its keyword (static) values passed positionally, in its parameters'
    order (the ops' convention, whatever their parameters are named: some forwards take
    *args, whose values are named static0, static1, ...). Not in the dict's order: the
    engine rebuilds keyword dicts as pytrees, with sorted keys. The wrapper's signature
    names the arrays and the statics, so an example's trailing dict reads as keyword values."""
    names = [p.name for p in inspect.signature(fn).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def rank(key):
        if key in names:
            return names.index(key)
        return len(names) + int(key[6:]) if key.startswith("static") and key[6:].isdigit() else 10 ** 6

    def call(*arrays, **static):
        return fn(*arrays, *(static[k] for k in sorted(static, key=rank)))

    call.__name__ = getattr(fn, "__name__", "forward")
    params = [inspect.Parameter(a, inspect.Parameter.POSITIONAL_OR_KEYWORD) for a in arrays]
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY) for k in statics if k not in arrays]
    if arrays:
        call.__signature__ = inspect.Signature(params)
    return call


def _op_names(spec):
    """The names of an op's positional arrays and of its static values (its edges' count)."""
    n_static = max((len(spec.static(g)) if spec.kind == "layer" else 0) for g in spec.edges)
    loss_extras = 0
    if spec.kind == "loss":
        arrays, extras, _ = spec.values(spec.edges[0], np.random.default_rng(0), False)
        loss_extras = len(extras)
    names = _static_names(spec)(n_static + loss_extras)
    return tuple(spec.params) + tuple(names[:loss_extras]) if spec.kind == "loss" else tuple(spec.params), \
        tuple(names[loss_extras:] if spec.kind == "loss" else names)


def spec_layer(spec):
    """check_layer's arguments for an `OpSpec` (an entry of OPS)."""
    arrays, statics = _op_names(spec)
    if spec.kind == "layer":
        return LayerArgs(_positional(spec.jax_forward, arrays, statics), spec.jax_backward, _examples(spec),
                         (_positional(spec.np_forward, arrays, statics), spec.np_backward))
    return LayerArgs(_positional(spec.jax_forward, arrays, statics), None, _examples(spec),
                     _positional(spec.np_forward, arrays, statics))


@functools.lru_cache(maxsize=64)
def op_layer(name):
    """check_layer's arguments for the built-in op `name` (the same functions every call, so
    the checks of its mutants share the forward's compiled programs)."""
    return spec_layer(OPS[name])


def _wired_layer(wiring, pair):
    """A user's layer written with a custom_vjp wiring: forward through the wired function,
    backward = its vjp (so the wiring's mistake is the backward's)."""
    f = wiring(pair)

    def forward(v, *targets):
        return f(v, *targets), (v,) + targets

    def backward(dout, cache):
        _, pullback = jax.vjp(lambda v: f(v, *cache[1:]), cache[0])
        return pullback(dout)[0]

    forward.__name__ = f"{getattr(pair, '__name__', 'loss')}_forward"
    return forward, backward


def mutant_layer(mutant):
    """check_layer's arguments with `mutant` in place of the correct function."""
    args = op_layer(mutant.op)
    if mutant.wiring is not None:
        forward, backward = _wired_layer(mutant.wiring, mutant.fn)
        return args._replace(forward=forward, backward=backward)
    if OPS[mutant.op].kind == "layer":
        return args._replace(backward=mutant.fn)
    return args._replace(forward=_positional(mutant.fn, *_op_names(OPS[mutant.op])))


class ApiResult(NamedTuple):
    name: str
    caught: bool
    how: str  # "fail", "bad input", "ambiguous" or "pass"
    detail: str


def mutant_custom_vjp(mutant, examples=None):
    """The mutant as the `jax.custom_vjp` a user would write, for each call signature of the
    op's first `examples` edge geometries: ([(the object, its examples with static values
    positional)], the NumPy twin as reference). Floating arrays among the op's parameters are
    differentiated, other arrays (a boolean mask) get no gradient, other values (a mask of
    None, flags) are static (`nondiff_argnums`)."""
    spec = OPS[mutant.op]
    n = len(spec.params)
    if spec.kind == "layer":
        flat = [tuple(a for a in ex if not isinstance(a, dict)) + tuple(ex[-1].values())
                for ex in _examples(spec)[:examples]]
        runs = []
        for group in example_groups(flat):
            first = group[0]
            diff = [i < n and isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating)
                    for i, a in enumerate(first)]
            arrays = tuple(i for i, a in enumerate(first) if isinstance(a, np.ndarray) and not diff[i])
            statics = tuple(i for i, a in enumerate(first) if not isinstance(a, np.ndarray))
            runs.append((manual_vjp(spec.jax_forward, mutant.fn, nondiff_argnums=statics, no_grad_argnums=arrays),
                         group))
        return runs, (spec.np_forward, spec.np_backward)
    obj = (mutant.wiring or loss_vjp)(mutant.fn)
    flat = [tuple(a for a in ex if not isinstance(a, dict)) + tuple(np.asarray(v, np.float64) for v in
                                                                    (ex[-1].values() if isinstance(ex[-1], dict)
                                                                     else ()))
            for ex in _examples(spec)[:examples]]
    return [(obj, group) for group in example_groups(flat)], spec.np_forward


def example_groups(examples):
    """`examples` split into runs of one call signature, in order: one check takes examples
    of one number and kind of arguments, and an op's edge geometries may differ there
    (attention without a mask, then with one)."""
    groups = {}
    for ex in examples:
        groups.setdefault(tuple(type(a).__name__ for a in ex), []).append(ex)
    return list(groups.values())


def check_mutant_public(mutant, cases=24, reference=True, examples=None, kind="pair", **kwargs):
    """The mutant through the public API as a user's code — a cs231n pair (`kind` "pair",
    through check_layer) or a jax.custom_vjp object (`kind` "custom_vjp", through check) —
    stopping at the first failing case; `examples` (a count) keeps the op's first edge
    geometries. Bad input counts as caught only when it is the rule's own fault (a `bwd`
    returning a bare array), never the harness's."""
    status = "pass"
    try:
        if kind == "pair":
            args = mutant_layer(mutant)
            runs = [(args.forward, group) for group in example_groups(args.examples[:examples])]
        else:
            runs, ref = mutant_custom_vjp(mutant, examples)
        for fn, group in runs:
            if kind == "pair":
                report = check_layer(fn, args.backward, group, cases=cases, fail_fast=True,
                                     reference=args.reference if reference else None, name=mutant.name, **kwargs)
            else:
                report = run_check(fn, examples=group, cases=cases, fail_fast=True,
                                   reference=ref if reference else None, name=mutant.name, **kwargs)
            failing = [r for r in report.rows.values() if r.status == "fail"]
            if failing:
                w = failing[0].worst
                return ApiResult(mutant.name, True, "fail", f"{failing[0].check}: {w.where()} rel error {w.err:.2g}"
                                 + (f"; {w.note}" if w.note else ""))
            status = max(status, report.status, key=STATUSES.index)
    except CheckInputError as exc:
        return ApiResult(mutant.name, exc.rule_fault, "bad input", str(exc))
    return ApiResult(mutant.name, False, status, "no pair failed")


def public_mutant_score(mutants=MUTANTS, kind="pair", **kwargs):
    """([ApiResult], "caught N/N through the public API (as ...)")."""
    results = [check_mutant_public(m, kind=kind, **kwargs) for m in mutants]
    return results, (f"mutants caught {sum(r.caught for r in results)}/{len(results)} through the public API "
                     f"(as {'cs231n pairs' if kind == 'pair' else 'jax.custom_vjp objects'})")


class CustomResult(NamedTuple):
    name: str
    row: str  # the row that must catch it
    caught_by: tuple  # the rows that failed on the mutant
    correct_status: str  # the correct rule's verdict (must not be "fail")
    caught: bool  # its row failed (and, for an `alone` mutant, no other row)


def custom_mutant_results(cases=24, **kwargs):
    """Each mutant of `mutants.custom` and its correct rule through `check`."""
    out = []
    for m in CUSTOM_MUTANTS:
        good = run_check(m.correct, *m.example, cases=cases, **kwargs)
        try:
            bad = run_check(m.mutant, *m.example, cases=cases, **kwargs)
            failing = tuple(k for k, r in bad.rows.items() if r.status == "fail")
        except CheckInputError as exc:
            failing = (f"bad input: {exc}",)
        hit = any(m.row in k for k in failing)
        out.append(CustomResult(m.name, m.row, failing, good.status,
                                hit and (not m.alone or len(failing) == 1)))
    return out
