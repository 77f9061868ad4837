"""Second order: the rule differentiated by JAX against finite differences of the rule.

For a cotangent u and random weights w, phi2(x) = <g(x), w> with g(x) = J(x)^T u the rule's
own gradient, computed through the user's wired object (`jax.vjp` of the custom_vjp, the
custom_jvp, or the wired pair). `jax.grad(phi2)` differentiates the rule itself — its fwd's
residuals and its bwd as JAX code — which is what a Hessian, a meta-gradient or
`jax.test_util.check_grads(order=2)` uses; central differences of phi2 need only first-order
values. A rule that is right to first order but whose own derivative is wrong (a
`stop_gradient` on a residual, a residual recomputed outside the trace) fails here alone:
this is the project's `gradgradcheck`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.gradcheck.oracles.sources import as_grad


def _first_order(b, fn):
    def g(diff, arrays, cot):
        return b.vjp_of(fn, list(diff), arrays, list(cot))[1]

    return g


def weights(ctx, rng):
    return [rng.standard_normal(x.shape) for x in ctx.diff64]


def jax_second(ctx, w):
    """jax.grad of phi2 at the case's point: gradient leaves (float64)."""
    s, b = ctx.subject, ctx.bound
    key = memo_key(w)
    if key in ctx.memo:  # computed with the other cases of its signature (`oracles.batch`)
        return ctx.memo[key]
    fn = s.jitted(b.key("second_order"), lambda: _phi2_grad(b, s.wired))
    grads = fn(tuple(ctx.diff64), ctx.arrays64, tuple(ctx.cot64), w)
    return as_grad([], list(grads)).grads


def _phi2_grad(b, wired):
    first = _first_order(b, wired)

    def phi2(diff, arrays, cot, w):
        return sum(jnp.sum(g * wi) for g, wi in zip(first(diff, arrays, cot), w))

    return jax.grad(phi2)


def memo_key(w):
    return ("second_order",) + tuple(np.asarray(x).tobytes() for x in w)


def batch_program(ctx):
    """jax.grad of phi2, vmapped over the cases of one signature."""
    s, b = ctx.subject, ctx.bound
    return s.jitted(b.key(("second_order", "batch")), lambda: jax.vmap(_phi2_grad(b, s.wired)))


def outs_fn(ctx):
    """The function whose outputs finite differences of phi2 weigh by w: the rule's gradient
    leaves, flattened (for `fd.probe_values`)."""
    first = _first_order(ctx.bound, ctx.subject.wired)
    return lambda diff, arrays, cot: jnp.concatenate([jnp.ravel(g) for g in first(diff, arrays, cot)])


def flat_weights(w):
    return np.concatenate([np.ravel(x) for x in w])
