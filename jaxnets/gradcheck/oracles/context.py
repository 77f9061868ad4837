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

from jaxnets.gradcheck.oracles.sources import as_grad, has_while_loop, max_finite


def draw(ctx, rng):
    """The maps and downstream weights of one case: ((t, [perm, its inverse], scale) per
    leaf, r1, r2)."""
    maps = []
    for x in ctx.diff64:
        perm = rng.permutation(x.size)
        scale = rng.choice([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], x.size)
        t = np.empty(x.size)
        t[perm] = x.ravel() / scale
        maps.append((t, np.stack([perm, np.argsort(perm)]), scale))  # with its inverse (`_permuted`)
    shapes = [np.shape(c) for c in ctx.cot64]
    r1 = [rng.standard_normal(s) for s in shapes]
    r2 = [0.5 * rng.standard_normal(s) for s in shapes]
    return maps, r1, r2


@jax.custom_vjp
def _permuted(t, pp):
    """t[p] for the permutation p = pp[0], differentiated by gathering with its inverse
    pp[1]: the same values as the scatter-add JAX makes of t[p]'s transpose (each entry is
    hit once), in a program XLA compiles in about half the time."""
    return t[pp[0]]


def _permuted_fwd(t, pp):
    return t[pp[0]], pp


def _permuted_bwd(pp, g):
    return g[pp[1]], None


_permuted.defvjp(_permuted_fwd, _permuted_bwd)


def _composition(b, fn):
    def g(ts, perms, scales, like, arrays, r1, r2):
        diff = [(s * _permuted(t, pp)).reshape(x.shape) for t, pp, s, x in zip(ts, perms, scales, like)]
        outs = b.outputs(diff, arrays, fn)
        return sum(jnp.sum(a * o + 0.5 * c * o * o) for o, a, c in zip(outs, r1, r2))

    def grads(ts, perms, scales, like, arrays, r1, r2):
        dts = jax.grad(g)(ts, perms, scales, like, arrays, r1, r2)
        # the cotangent the layer saw, from the outputs this program computed: where an output
        # is itself a cancellation (a layer norm of values ~1e3), another program's outputs
        # differ by more than ulps, and so would the cotangent r1 + r2 * out
        diff = [(s * t[pp[0]]).reshape(x.shape) for t, pp, s, x in zip(ts, perms, scales, like)]
        cot = [a + c * o for o, a, c in zip(b.outputs(diff, arrays, fn), r1, r2)]
        return [(dt[pp[0]] / s).reshape(x.shape) for dt, pp, s, x in zip(dts, perms, scales, like)], cot

    return grads


def _program(ctx):
    s, b = ctx.subject, ctx.bound
    return s.jitted(b.key("context"), lambda: _composition(b, s.wired))


def rounding(ctx, salt, ulps, cap_fraction):
    """Per leaf, the in-context program's own rounding on this case (its fusion differs from
    the rule's called alone): how far its gradient moves when the inputs are moved by up to
    `ulps` ulps (twice; moves above `cap_fraction` of the gradient's scale are jumps, left
    out) and, scaled by eps64 / eps32, when it runs in float32 (unless it has a while loop)."""
    maps, r1, r2 = draw(ctx, ctx.rng(salt))
    ts, perms, scales = (tuple(m[k] for m in maps) for k in range(3))
    fn, like = _program(ctx), tuple(ctx.diff64)
    base = [np.asarray(g, np.float64) for g in fn(ts, perms, scales, like, ctx.arrays64, r1, r2)[0]]
    cap = cap_fraction * max([float(np.max(np.abs(g))) for g in base if g.size] + [0.0])
    eps = np.finfo(np.float64).eps
    noise = [0.0] * len(base)

    def add(grads, factor, limit):
        for i, (g, g0) in enumerate(zip(grads, base)):
            noise[i] = max(noise[i], max_finite(factor * np.abs(np.asarray(g, np.float64) - g0), limit))

    for k in (1, 2):
        rng = ctx.rng(salt + 1000 * k)
        moved = tuple(t * (1 + ulps * eps * rng.uniform(-1, 1, t.shape)) for t in ts)
        add(fn(moved, perms, scales, like, ctx.arrays64, r1, r2)[0], 1.0, cap)
    f32 = lambda xs: tuple(np.asarray(x, np.float32) if np.issubdtype(np.asarray(x).dtype, np.floating) else x
                           for x in xs)
    args32 = (f32(ts), perms, f32(scales), f32(like), list(f32(ctx.arrays64)), list(f32(r1)), list(f32(r2)))
    composition = _composition(ctx.bound, ctx.subject.wired)
    if not has_while_loop(composition, *args32):
        fn32 = ctx.subject.jitted(ctx.bound.key(("context", "float32")), lambda: composition)
        add(fn32(*args32)[0], eps / np.finfo(np.float32).eps, np.inf)
    return noise


def in_context(ctx, rng):
    """(Grad of the wired object in context, the cotangent it saw): the gradient leaves
    mapped back, and r1 + r2 * out per output leaf, out as the same program computed it."""
    maps, r1, r2 = draw(ctx, rng)
    ts, perms, scales = (tuple(m[k] for m in maps) for k in range(3))
    key = memo_key(ts, perms, r1, r2)
    if key in ctx.memo:  # computed with the other cases of its signature (`oracles.batch`)
        grads, cot = ctx.memo[key]
    else:
        grads, cot = _program(ctx)(ts, perms, scales, tuple(ctx.diff64), ctx.arrays64, r1, r2)
    return as_grad(ctx.get("rule").outputs, grads), [np.asarray(c, np.float64) for c in cot]


def memo_key(ts, perms, r1, r2):
    return ("context",) + tuple(np.asarray(x).tobytes() for x in (*ts, *perms, *r1, *r2))


def batch_program(ctx):
    """The in-context program vmapped over the cases of one signature."""
    s, b = ctx.subject, ctx.bound
    return s.jitted(b.key(("context", "batch")), lambda: jax.vmap(_composition(b, s.wired)))
