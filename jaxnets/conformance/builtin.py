"""The project's own ops and models as Subjects, for the equivalence suite.

- An op of `OPS`: the primal is its AUTODIFF function, the rule its hand-written pair (the
  "manual" mode), the wired object its CUSTOM_VJP function, the reference its NumPy float64
  twin. A mutant replaces the rule (`impl`: a backward, or a loss's `(value, grad)`
  function) and the wiring (`wiring`: a replacement for `ops.vjp.manual_vjp` / `loss_vjp`).
  Arguments: the differentiated arrays, then the static values (layers) or the targets
  (losses).
- A model: arguments (params, state, x, y, key), the params differentiated; its sources are
  the gradient modes of `jaxnets.grads` (each jitted once per subject) and the reference is
  the NumPy model (batch statistics turned into the new running state with the model's own
  momentum, dropout given the very draws the JAX modes take from `key`).
"""
from __future__ import annotations

import jax
import numpy as np

from jaxnets.grads import MODES, gradient
from jaxnets.models import MODELS
from jaxnets.ops.vjp import loss_vjp, manual_vjp
from jaxnets.gradcheck.oracles.sources import as_grad
from jaxnets.conformance.specs import OPS
from jaxnets.gradcheck.subject import Subject
from reference_numpy import models as npm


def _with_layout(fn, layout):
    """fn with a Layout appended to its static values (None: fn itself)."""
    if fn is None or layout is None:
        return fn
    return lambda *args: fn(*args, layout)


def op_subject(name, impl=None, wiring=None, layout=None):
    """The Subject of op `name` (a mutant's when impl / wiring are given); `layout`: the
    `jaxnets.ops.Layout` its JAX functions are given after their static values."""
    spec = OPS[name]
    n, n_out = len(spec.params), spec.n_out
    wrt = tuple(i for i, p in enumerate(spec.params) if p not in spec.no_grad)
    label = f"{name}" if impl is None and wiring is None else f"{name} (mutant)"

    def split(res):
        outs = res[:n_out]
        return (outs[0] if n_out == 1 else tuple(outs)), res[n_out]

    def douts(cot):
        return (cot,) if n_out == 1 else tuple(cot)

    if spec.kind == "layer":
        backward = impl or spec.jax_backward

        def rule(args, kwargs, cot):
            outs, cache = split(spec.jax_forward(*args, *(() if layout is None else (layout,))))
            return outs, backward(*douts(cot), cache)

        def np_rule(args, kwargs, cot):
            outs, cache = split(spec.np_forward(*args))
            return outs, spec.np_backward(*douts(cot), cache)

        if impl is None and wiring is None:
            wired = _with_layout(spec.custom_vjp, layout)
        else:
            no_grad = tuple(i for i, p in enumerate(spec.params) if p in spec.no_grad)

            def wired(*args):
                extra = {"n_out": n_out, "no_grad_argnums": no_grad} if n_out > 1 or no_grad else {}
                forward = _with_layout(spec.jax_forward, layout)
                return (wiring or manual_vjp)(forward, backward, nondiff_argnums=tuple(range(n, len(args))),
                                              **extra)(*args)
        primal, np_primal = _with_layout(spec.autodiff, layout), (lambda *a: split(spec.np_forward(*a))[0])
    else:
        pair = impl or spec.jax_forward

        def rule(args, kwargs, cot):
            value, grad = pair(*args)
            return value, (cot * grad,)

        def np_rule(args, kwargs, cot):
            value, grad = spec.np_forward(*args)
            return value, (cot * grad,)

        wired = spec.custom_vjp if impl is None and wiring is None else (wiring or loss_vjp)(pair)
        primal, np_primal = spec.autodiff, (lambda *a: spec.np_forward(*a)[0])
    reference = Subject(f"{name} (NumPy)", "pair", np_primal, np_rule, wrt=wrt, arg_names=spec.params,
                        copies=False, jax_primal=False, jax_rule=False)
    out_names = ("loss",) if spec.kind == "loss" else ("out",) if n_out == 1 else tuple(f"out{k}" for k in range(n_out))
    return Subject(label, "op", primal, rule, wired=wired, wrt=wrt, arg_names=spec.params, output_names=out_names,
                   reference=reference, rule_label="manual", copies=False, jax_primal=True, jax_rule=True)


# ----------------------------------------------------------------------------- models

def dropout_key(case_seed):
    """The key a case's dropout masks come from (any key: the same for every source)."""
    return jax.random.key(case_seed)


def noise(model, key, n):
    """{"noise": the draws of the model's dropout layers} for the NumPy twin, or {}."""
    return {"noise": [np.asarray(u) for u in model.noise(key, n)]} if model.stochastic else {}


def _mode_source(subject, model, mode):
    def source(ctx):
        fn = subject.jitted(("mode", mode), lambda: gradient(model, mode))
        (params, state, x, y, key), _ = ctx.bound.call_args(ctx.diff, ctx.arrays)
        value, grads, new_state = fn(params, state, x, y, key)
        return as_grad([value] + jax.tree_util.tree_leaves(new_state), jax.tree_util.tree_leaves(grads))

    return source


def model_subject(name, config, modes=None):
    """The Subject of model `name` with `config`, checked in `modes` (default: `jax_modes`)."""
    model = MODELS[name](**config)
    np_model = npm.MODELS[name](**config)
    momentum = config.get("momentum", 0.9)

    def np_rule(args, kwargs, cot):
        params, state, x, y, key = args
        out = np_model.loss_and_grads(params, x, np.asarray(y), **noise(model, key, x.shape[0]))
        # the twin gives batch statistics; the running average is the model's own momentum
        new_state = {k: momentum * np.asarray(state[k], np.float64) + (1 - momentum) * out[2][k] for k in state}
        return (out[0], new_state), (out[1],)

    def np_primal(params, state, x, y, key):
        """The loss (finite differences use it alone) and the state, passed through."""
        return np_model.loss(params, x, np.asarray(y), **noise(model, key, x.shape[0])), state

    reference = Subject(f"{name} (NumPy)", "model", np_primal, np_rule, wrt=(0,),
                        arg_names=("params", "state", "x", "y", "key"), copies=False, jax_primal=False, jax_rule=False)
    subject = Subject(name, "model", np_primal, None, wrt=(0,), arg_names=("params", "state", "x", "y", "key"),
                      reference=reference, rule_label="manual", copies=False, jax_primal=False, jax_rule=False)
    subject.sources = {mode: _mode_source(subject, model, mode) for mode in (modes or jax_modes(model))}
    subject.model = model
    return subject


def jax_modes(model):
    """The gradient modes a model is checked in: MODES, and "fast" where it has its own
    fast layout (otherwise "fast" is "manual" itself)."""
    return MODES + (("fast",) if model.fast_gradient is not None else ())
