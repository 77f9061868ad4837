"""Forward mode: output tangents J v from a claimed JVP rule (a custom_jvp's) and from
`jax.jvp` of the primal, and the projections <J v, u> the dot-product identity
<J v, u> = <v, J^T u> compares with the reverse-mode rule."""
from __future__ import annotations

from functools import partial

import jax
import numpy as np


def _stacked(ctx, tangents):
    return [np.stack([t[i] for t in tangents]) for i in range(len(ctx.diff64))]


def tangents(ctx, role, directions):
    """Output tangent leaves (float64) for each direction (a list of tangent leaves), from the
    JVP rule (`role` "jvp_rule") or jax.jvp of the primal ("jvp_autodiff"), vmapped over the
    directions in one jitted call."""
    s, b = ctx.subject, ctx.bound
    if role == "jvp_rule":
        one = b.jvp_rule
    else:
        one = partial(b.jvp_of, s.primal)

    def build():
        return lambda diff, arrays, tans: jax.vmap(lambda t: one(diff, arrays, t)[1])(tans)

    fn = s.jitted(b.key(role), build, shared=role == "jvp_autodiff")
    out = jax.device_get(fn(ctx.diff64, ctx.arrays64, _stacked(ctx, directions)))
    return [[np.asarray(o[k], np.float64) for o in out] for k in range(len(directions))]


def unit_tangents(ctx, requests):
    """The tangent leaves of FD requests (i, flat or None, direction or None, h): zero but
    for the request's leaf, which holds e_flat or the direction."""
    out = []
    for i, flat, direction, _ in requests:
        t = [np.zeros(x.shape) for x in ctx.diff64]
        if direction is None:
            t[i].flat[flat] = 1.0
        else:
            t[i] = np.asarray(direction, np.float64)
        out.append(t)
    return out


def project(touts, cot):
    """<J v, u> and the sum of |terms| (its rounding scale)."""
    terms = [np.asarray(t) * c for t, c in zip(touts, cot)]
    return float(sum(np.sum(t) for t in terms)), float(sum(np.sum(np.abs(t)) for t in terms))
