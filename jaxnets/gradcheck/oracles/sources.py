"""Gradient sources: each gives, for one case, the outputs and the gradient of
phi = sum(outputs * cotangent) with respect to every differentiated leaf.

- `rule`: the subject's claimed rule, called as the user's code would be (jitted when JAX
  can trace it; NumPy rules are given copies of everything, and a rule that writes into its
  upstream gradient or cache is noted, not failed);
- `autodiff`: `jax.vjp` of the primal (the undecorated function);
- `wired`: `jax.vjp` of the user's own object (the custom_vjp or custom_jvp itself, or the pair
  wired into a custom_vjp) at the case's cotangent;
- `reference`, `reference_autodiff`: the reference subject's rule and `jax.vjp` of its primal
  (the reference is float64 NumPy or JAX, on the same values);
- a subject's own named sources (a model's gradient modes) come from `Subject.sources`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import numpy as np

from jaxnets.gradcheck import tree


@dataclass
class Grad:
    """Outputs and gradients as float64 NumPy arrays (flat leaves), from one source."""

    outputs: list
    grads: list


def as_grad(outs, grads):
    outs, grads = jax.device_get((list(outs), list(grads)))
    return Grad([np.asarray(o, np.float64) for o in outs], [np.asarray(g, np.float64) for g in grads])


def rule(ctx):
    s, b = ctx.subject, ctx.bound
    if s.jax_rule:
        fn = s.jitted(b.key(("rule", ctx.dtype)), lambda: b.rule)
        return as_grad(*fn(ctx.diff, ctx.arrays, ctx.cot))
    cot = tree.fresh(ctx.cot)
    outs, grads = b.rule(ctx.diff, ctx.arrays, cot, copies=s.copies)
    moved = tree.changed(ctx.cot, cot)
    if moved:
        s.notes.setdefault("in place", f"your {s.rule_label} modified its upstream gradient in place "
                                        f"({', '.join(moved) or 'dout'}); it was given a copy, so the check is "
                                        f"unaffected — in a network, the caller's array would change")
    return as_grad(outs, grads)


def _vjp_source(ctx, fn, role):
    s, b = ctx.subject, ctx.bound
    jitted = s.jitted(b.key((role, ctx.dtype)), lambda: partial(b.vjp_of, fn), shared=role == "autodiff")
    return as_grad(*jitted(ctx.diff, ctx.arrays, ctx.cot))


def autodiff(ctx):
    return _vjp_source(ctx, ctx.subject.primal, "autodiff")


def wired(ctx):
    return _vjp_source(ctx, ctx.subject.wired, "wired")


def reference(ctx):
    r, b = ctx.subject.reference, ctx.ref_bound
    diff = ctx.ref_diff
    if r.jax_rule:
        fn = r.jitted(b.key("rule"), lambda: b.rule)
        return as_grad(*fn(diff, ctx.ref_arrays, ctx.cot64))
    outs, grads = b.rule(diff, ctx.ref_arrays, tree.fresh(ctx.cot64), copies=r.copies)
    return as_grad(outs, grads)


def reference_autodiff(ctx):
    r, b = ctx.subject.reference, ctx.ref_bound
    fn = r.jitted(b.key("autodiff"), lambda: partial(b.vjp_of, r.primal))
    return as_grad(*fn(ctx.ref_diff, ctx.ref_arrays, ctx.cot64))


def available(subject, name):
    """None when source `name` can run on `subject`, else why not (one line)."""
    if name in subject.sources:
        return None
    if name == "rule":
        return None if subject.rule is not None else "no rule"
    if name == "autodiff":
        ok = subject.jax_primal and subject.jax_vjp is not False
        return None if ok else subject.notes.get("autodiff", "the primal is not JAX-traceable")
    if name == "wired":
        return None if subject.wired is not None and subject.jax_rule else "needs a JAX-traceable rule"
    r = subject.reference
    if name == "reference":
        return None if r is not None else "no reference given"
    if name == "reference_autodiff":
        if r is None:
            return "no reference given"
        return None if r.jax_primal else "the reference's forward is not JAX-traceable"
    return f"unknown source {name!r}"


SOURCES = {"rule": rule, "autodiff": autodiff, "wired": wired, "reference": reference,
           "reference_autodiff": reference_autodiff}


def has_while_loop(fn, *args):
    """Whether fn traced on args has a while loop (at any depth); True if it cannot be traced.
    Such code is not rerun in float32 to measure rounding: a loop that iterates to a float64
    tolerance (a fixed-point backward) would never stop."""
    try:
        closed = jax.make_jaxpr(fn)(*args)
    except Exception:
        return True

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "while":
                return True
            for p in eqn.params.values():
                for sub in (p if isinstance(p, (tuple, list)) else (p,)):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns") and walk(inner):
                        return True
        return False

    return walk(closed.jaxpr)


def max_finite(a, cap=np.inf):
    """The largest finite entry of a at most `cap` (0.0 if none)."""
    a = np.asarray(a)
    a = a[np.isfinite(a) & (a <= cap)]
    return float(np.max(a)) if a.size else 0.0
