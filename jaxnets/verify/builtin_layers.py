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

from jaxnets.verify.layer import LayerInputError
from jaxnets.verify.layer_check import check_layer
from jaxnets.verify.mutants import MUTANTS
from jaxnets.verify.op_specs import OPS


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


def _positional(fn):
    """fn called with its keyword (static) values passed positionally, in order: the ops'
    convention, whatever their parameters are named (some forwards take *args)."""

    @functools.wraps(fn)
    def call(*arrays, **static):
        return fn(*arrays, *static.values())

    return call


def spec_layer(spec):
    """check_layer's arguments for an `OpSpec` (an entry of OPS)."""
    if spec.kind == "layer":
        return LayerArgs(_positional(spec.jax_forward), spec.jax_backward, _examples(spec),
                         (_positional(spec.np_forward), spec.np_backward))
    return LayerArgs(_positional(spec.jax_forward), None, _examples(spec), _positional(spec.np_forward))


def op_layer(name):
    """check_layer's arguments for the built-in op `name`."""
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
    return args._replace(forward=_positional(mutant.fn))


class ApiResult(NamedTuple):
    name: str
    caught: bool
    how: str  # "fail", "bad input", "ambiguous" or "pass"
    detail: str


def check_mutant_public(mutant, cases=24, reference=True, examples=None, **kwargs):
    """check_layer on the mutant as a user's layer, stopping at the first failing case;
    `examples` (a count) keeps only the op's first edge geometries."""
    args = mutant_layer(mutant)
    try:
        report = check_layer(args.forward, args.backward, args.examples[:examples], cases=cases, fail_fast=True,
                             reference=args.reference if reference else None, name=mutant.name, **kwargs)
    except LayerInputError as exc:
        return ApiResult(mutant.name, True, "bad input", str(exc))
    failing = [p for p in report.pairs.values() if p.status == "fail"]
    if failing:
        w = failing[0].worst
        return ApiResult(mutant.name, True, "fail", f"{failing[0].pair}: {w.where()} rel error {w.err:.2g}"
                         + (f"; {w.note}" if w.note else ""))
    return ApiResult(mutant.name, False, report.status, "no pair failed")


def public_mutant_score(mutants=MUTANTS, **kwargs):
    """([ApiResult], "caught N/N through check_layer")."""
    results = [check_mutant_public(m, **kwargs) for m in mutants]
    return results, f"mutants caught {sum(r.caught for r in results)}/{len(results)} through check_layer"
