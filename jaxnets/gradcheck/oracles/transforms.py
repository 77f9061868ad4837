"""The rule under JAX's transformations: eagerly (op by op, no jit) against jitted, and per
example under `vmap` against the batch — a rule that branches on traced values, or mixes rows
where it should not, differs between them."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnets.gradcheck.oracles.sources import as_grad


def eager(ctx):
    """The rule without jit, on JAX arrays."""
    diff = [jnp.asarray(d) for d in ctx.diff]
    arrays = [jnp.asarray(a) for a in ctx.arrays]
    return as_grad(*ctx.bound.rule(diff, arrays, [jnp.asarray(c) for c in ctx.cot]))


def per_example(ctx, batched):
    """The rule per example under jax.vmap (one-row batches), gradients of leaves without the
    batch axis summed over the examples: (output rows, gradients) like the batched call."""
    s, b = ctx.subject, ctx.bound
    sp = b.sp
    d_rows = tuple(a in batched for a in sp.diff_args)
    a_rows = tuple(a in batched for a in sp.array_args)

    def build():
        def run(diff, arrays, cot):
            def one(d_row, a_row, c_row):
                it_d, it_a = iter(d_row), iter(a_row)
                dd = [next(it_d)[None] if m else x for x, m in zip(diff, d_rows)]
                aa = [next(it_a)[None] if m else x for x, m in zip(arrays, a_rows)]
                outs, grads = b.rule(dd, aa, [c[None] for c in c_row])
                return [o[0] for o in outs], grads

            d_b = [x for x, m in zip(diff, d_rows) if m]
            a_b = [x for x, m in zip(arrays, a_rows) if m]
            outs, grads = jax.vmap(one)(d_b, a_b, list(cot))
            return outs, [g[:, 0] if m else g.sum(axis=0) for g, m in zip(grads, d_rows)]

        return run

    fn = s.jitted(b.key(("vmap", tuple(sorted(batched)))), build)
    return as_grad(*fn(ctx.diff, ctx.arrays, ctx.cot))
