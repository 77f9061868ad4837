"""The rule in context: the user's own differentiable object (a custom_vjp or custom_jvp, or a
pair wired into a custom_vjp) differentiated by `jax.grad` inside a composition.

Each differentiated leaf is reached through its own exact map — a permutation and signed
powers of two, so kinks and ties stay exactly where the case put them — and every output
feeds a random downstream function sum(r1 * out + r2 * out**2 / 2), whose cotangent
r1 + r2 * out is neither random noise nor 1. `jax.grad` of the whole, mapped back through
the input maps, is what the rule produced in context; `jax.vjp` of the primal under the same
cotangent (the composition's own chain rule) is what it must equal. A rule that only works
when called directly — one that ignores its incoming cotangent, passes residuals through a
Python variable instead of its residuals, or breaks under jit in a larger program — fails
here.
"""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp

from jaxnets.verify.oracles.sources import as_grad


def draw(ctx, rng):
    """The maps and downstream weights of one case: ((t, perm, scale) per leaf, r1, r2)."""
    maps = []
    for x in ctx.diff64:
        perm = rng.permutation(x.size)
        scale = rng.choice([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], x.size)
        t = np.empty(x.size)
        t[perm] = x.ravel() / scale
        maps.append((t, perm, scale))
    shapes = [np.shape(c) for c in ctx.cot64]
    r1 = [rng.standard_normal(s) for s in shapes]
    r2 = [0.5 * rng.standard_normal(s) for s in shapes]
    return maps, r1, r2


def _composition(b, fn):
    def g(ts, perms, scales, like, arrays, r1, r2):
        diff = [(s * t[p]).reshape(x.shape) for t, p, s, x in zip(ts, perms, scales, like)]
        outs = b.outputs(diff, arrays, fn)
        return sum(jnp.sum(a * o + 0.5 * c * o * o) for o, a, c in zip(outs, r1, r2))

    def grads(ts, perms, scales, like, arrays, r1, r2):
        dts = jax.grad(g)(ts, perms, scales, like, arrays, r1, r2)
        return [(dt[p] / s).reshape(x.shape) for dt, p, s, x in zip(dts, perms, scales, like)]

    return grads


def in_context(ctx, rng):
    """(Grad of the wired object in context, the cotangent it saw): the gradient leaves
    mapped back, and r1 + r2 * out per output leaf."""
    s, b = ctx.subject, ctx.bound
    maps, r1, r2 = draw(ctx, rng)
    ts, perms, scales = (tuple(m[k] for m in maps) for k in range(3))
    fn = s.jitted(b.key("context"), lambda: _composition(b, s.wired))
    grads = fn(ts, perms, scales, tuple(ctx.diff64), ctx.arrays64, r1, r2)
    outs = ctx.get("rule").outputs
    cot = [a + c * np.asarray(o, np.float64) for a, c, o in zip(r1, r2, outs)]
    return as_grad(outs, grads), cot
