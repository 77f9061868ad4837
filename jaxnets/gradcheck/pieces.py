"""Where a rule's value lies outside a coordinate's one-sided slopes, or far beyond smooth
finite differences, the function may be singular there (a singular matrix, repeated
eigenvalues, a pole): one-sided difference quotients blow up as the step shrinks
(`singular`), or the derivative spikes on a scale no step resolves (`spike`). The input is
then outside the function's smooth domain ("domain"), and no derivative is wrong there.
"""
from __future__ import annotations

import math

import numpy as np

from jaxnets.gradcheck.finite_diff import probe
from jaxnets.gradcheck.oracles import fd
from jaxnets.gradcheck.oracles import sources as src


def position(ctx, i, j):
    return f"{ctx.names[i]}{[int(v) for v in np.unravel_index(j, ctx.diff64[i].shape)]}"


#: one-sided difference quotients that grow by at least this factor at each halving of the
#: step (h, h/2, h/4), on one side and with one sign, come from a pole, a jump or a logarithm:
#: the derivative does not exist there. A kink's one-sided slopes are constant, and a slope
#: that changes linearly with the step (curvature) grows by less than 1.5 while keeping its sign.
SINGULAR_GROWTH = 1.5
def singular(values, h, noise):
    """Why the function has no derivative at the probe's point (its 7 values at
    PROBE_OFFSETS * h), or None: values beside a finite point that are not finite, or one-sided
    difference quotients that grow by SINGULAR_GROWTH at each halving of the step."""
    f0, p1, m1, p2, m2, p4, m4 = (float(v) for v in values)
    if not math.isfinite(f0):
        return None
    if not all(math.isfinite(v) for v in (p1, m1, p2, m2, p4, m4)):
        return "it is not finite beside the point: finite differences are infinite or NaN"
    for side, q in (("right", ((p1 - f0) / h, (p2 - f0) / (h / 2), (p4 - f0) / (h / 4))),
                    ("left", ((f0 - m1) / h, (f0 - m2) / (h / 2), (f0 - m4) / (h / 4)))):
        a, b, c = q
        if a * b > 0 and b * c > 0 and abs(c) >= SINGULAR_GROWTH * abs(b) and abs(b) >= SINGULAR_GROWTH * abs(a) \
                and abs(c) - abs(b) > 10 * noise:
            return (f"its {side} difference quotients grow as the step shrinks ({a:.3g}, {b:.3g}, {c:.3g} at steps "
                    f"{h:.2g}, {h / 2:.2g}, {h / 4:.2g}): a pole or a jump")
    return None


def singular_at(ctx, i, j):
    """`singular` along coordinate j of leaf i, probed two-sided (None where the probe is
    smooth or there is no room for a step)."""
    h = fd.step(ctx.diff64[i], ctx.domains[i], flat=j)
    if h <= 1e-12:
        return None
    values, bounds, mag = fd.probe_values(ctx, [(i, j, None, h)])
    pr = probe(values[0], h, mag, bounds[0])
    return None if pr.kind == "smooth" else singular(values[0], h, pr.noise)


def domain_note(where, why):
    return (f"the function is singular at {where} ({why}): its derivative does not exist there, as at a singular "
            f"matrix or repeated eigenvalues; the input is outside its smooth domain")


#: a move of the inputs, relative to each leaf's size, far below the finite-difference step
#: (FD_STEP): a rule whose value there changes by more than half under it varies on a scale no
#: finite difference resolves
UNSTABLE_MOVE = 1e-6
#: ... when that value is at least this many times every slope finite differences show on
#: the case (a spike of the derivative narrower than the step: nearly repeated eigenvalues)
SPIKE_RATIO = 100.0


def spike(ctx, reqs, values, estimates, slope):
    """Why finite differences cannot resolve the rule's `values` along `reqs` ((leaf, flat
    index or None, direction or None, h)) where they are smooth and give `estimates`, or
    None: each value is SPIKE_RATIO times `slope` (the largest slope finite differences show
    on the case, along any request) or more and moves by more than half when the inputs move
    by UNSTABLE_MOVE of their size. A wrong factor keeps its value under such a move; a
    derivative of 1e13 beside finite differences of 1e3 (eigenvectors whose eigenvalues are
    1e-13 apart) does not; a wrong value at a kink is no larger than the slopes around it."""
    if not reqs or any(not abs(v) >= SPIKE_RATIO * slope for v in values):
        return None
    rng = ctx.rng(31)
    for sign in (1.0, -1.0):
        moved = [x + sign * UNSTABLE_MOVE * max(float(np.sqrt(np.mean(x * x))) if x.size else 1.0, 1e-3)
                 * rng.standard_normal(x.shape) for x in ctx.diff64]
        try:
            g = src.rule(_At(ctx, moved)).grads
        except Exception:  # a rule that cannot run there says nothing about resolution
            return None
        now = [float(g[i].flat[j]) if d is None else float(np.sum(g[i] * d)) for i, j, d, _ in reqs]
        if all(not abs(w - v) <= 0.5 * abs(v) for v, w in zip(values, now)):
            i, j, d, _ = reqs[0]
            where = position(ctx, i, j) if d is None else f"{ctx.names[i]} along a direction"
            return (f"the rule's {values[0]:.4g} at {where}, beside finite differences of {estimates[0]:.4g}, "
                    f"moves to {now[0]:.4g} when the inputs move by {UNSTABLE_MOVE:g} of their size: the derivative "
                    f"varies on a scale far below the finite-difference step")
    return None


class _At:
    """The case's context with its differentiated leaves moved (an off-kink point)."""

    def __init__(self, ctx, diff64):
        self._ctx, self.diff64 = ctx, diff64
        self.diff = [x.astype(ctx.dtype) for x in diff64]

    def __getattr__(self, name):
        return getattr(self._ctx, name)
