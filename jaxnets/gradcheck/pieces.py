"""Where a rule's value lies outside a coordinate's one-sided slopes, or far beyond smooth
finite differences, two things other than a mistake can be true, and finite differences near
the point tell them apart:

- the function is singular there (a singular matrix, repeated eigenvalues, a pole): one-sided
  difference quotients blow up as the step shrinks (`singular`), or the derivative spikes on a
  scale no step resolves (`spike`): the input is outside its smooth domain ("domain");
- several pieces meet there (ties in a sort, a projection, a max over tied entries): the value
  is the derivative of one adjacent piece that moving one coordinate alone never enters
  (`adjacent_piece`, probed from nearby off-kink points; `describe_piece` says which).
"""
from __future__ import annotations

import math

import numpy as np

from jaxnets.gradcheck.finite_diff import probe, relative_error
from jaxnets.gradcheck.oracles import fd
from jaxnets.gradcheck.oracles import sources as src


def position(ctx, i, j):
    return f"{ctx.names[i]}{[int(v) for v in np.unravel_index(j, ctx.diff64[i].shape)]}"


#: one-sided difference quotients that grow by at least this factor at each halving of the
#: step (h, h/2, h/4), on one side and with one sign, come from a pole, a jump or a logarithm:
#: the derivative does not exist there. A kink's one-sided slopes are constant, and a slope
#: that changes linearly with the step (curvature) grows by less than 1.5 while keeping its sign.
SINGULAR_GROWTH = 1.5
#: directions probed for the pieces adjacent to a kink: two ramps (ties broken by index, both
#: ways: a stable sort's order and its reverse) and random ones
PIECE_DIRECTIONS = 24
#: the off-kink points x + t * D, t = PIECE_SHIFT * the probe's step (and t / 2, to extrapolate
#: a piece's derivative back to t = 0); their probes step t / PIECE_STEP_RATIO, inside the piece
PIECE_SHIFT = 0.1
PIECE_STEP_RATIO = 16.0


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


def piece_directions(ctx, rng, n=PIECE_DIRECTIONS):
    """[(label, D)]: per-leaf directions into the pieces adjacent to the point; coordinates on
    their domain's boundary stay put."""
    out = []
    for k in range(n):
        if k < 2:
            ramp = [tie_ranks(x) for x in ctx.diff64]
            out.append(("ties broken by index" + (" (a stable sort's order)" if k == 0 else ", reversed"),
                        [r if k == 0 else -r for r in ramp]))
        else:
            out.append(("reached along a seeded random direction", [rng.standard_normal(x.shape) for x in ctx.diff64]))
    for i, j in fd.boundary_coords(ctx, None):
        for _, d in out:
            d[i].flat[j] = 0.0
    return out


def tie_ranks(x):
    """Each entry's rank among the entries of x equal to it, by index (0 where untied)."""
    flat = x.ravel()
    order = np.lexsort((np.arange(flat.size), flat))
    ranks = np.zeros(flat.size)
    for k in range(1, flat.size):
        if flat[order[k]] == flat[order[k - 1]]:
            ranks[order[k]] = ranks[order[k - 1]] + 1
    return ranks.reshape(x.shape)


def adjacent_piece(ctx, reqs, values, weights=None):
    """A piece adjacent to the point whose derivative gives every one of `values` (one per
    request (leaf, flat index or None, direction or None, h) at a kink), or None.

    At a point where several pieces meet (ties in a sort, a projection, a max over several
    tied entries), a rule may follow a piece that moving one coordinate alone never enters
    (the middle of three tied entries keeps its middle place): its value is then outside that
    coordinate's one-sided slopes yet a valid derivative. Each direction D of
    `piece_directions` reaches a piece at x + t D; its derivative there, by finite differences
    with steps small enough to stay inside it, extrapolated from t and t / 2 back to x, is
    that piece's derivative at the kink. Returns (label, D, estimates) of the first piece that
    matches every value within tol.fd."""
    rng = ctx.rng(29)
    scale = [max(float(np.sqrt(np.mean(x * x))) if x.size else 1.0, 1e-3) for x in ctx.diff64]
    for label, D in piece_directions(ctx, rng):
        ests = []
        for t in (PIECE_SHIFT, PIECE_SHIFT / 2):
            moved = [x + t * fd.FD_STEP * min(1.0, s) * d for x, s, d in zip(ctx.diff64, scale, D)]
            at = _At(ctx, moved)
            sub = [(i, j, d, h * t / PIECE_STEP_RATIO) for i, j, d, h in reqs]
            vals, bnds, mag = fd.probe_values(at, sub, weights=weights)
            probes = [probe(v, q[3], mag, b) for v, q, b in zip(vals, sub, bnds)]
            if any(p.kind != "smooth" for p in probes):
                break
            ests.append(probes)
        if len(ests) < 2:
            continue
        matched = []
        for value, p1, p2 in zip(values, ests[0], ests[1]):
            est = 2 * p2.estimate - p1.estimate
            noise = 3 * (p1.noise + p2.noise)
            if relative_error(value, est, ctx.tol.fd, noise) > ctx.tol.fd:
                break
            matched.append(est)
        else:
            return label, D, matched
    return None


def describe_piece(ctx, label, D, coords):
    """Which piece: for the tied entries of each disagreeing coordinate (exactly equal values
    in its leaf), their order along D; else how it was reached."""
    parts = []
    for i, j in coords[:2]:
        x = ctx.diff64[i].ravel()
        group = np.flatnonzero(x == x[j])
        if len(group) < 2:
            continue
        order = sorted(group[:6], key=lambda g: D[i].flat[g])
        parts.append(" < ".join(position(ctx, i, int(g)) for g in order))
    return (f"the piece where {'; '.join(parts)} ({label})" if parts else f"the piece {label}")
