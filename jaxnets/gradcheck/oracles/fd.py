"""Finite differences of a function of the differentiated leaves: the independent oracle.

`probe_values(ctx, requests, fn)` evaluates phi = sum over outputs of sum(out * cotangent) at
x + PROBE_OFFSETS * h along each request — (leaf, flat index or None, direction or None, h) —
and returns what `finite_diff.probe` needs to tell a smooth point from a kink: the values,
the output-by-output one-sided bounds, and a magnitude for the noise floor. JAX functions
are evaluated in one vmapped, jitted call per chunk of requests (one compilation per call
signature); NumPy functions point by point. `fn` defaults to the subject's primal; second
order passes the rule's own gradient as the function to difference.

`requests_for(ctx, rng, ...)` chooses them: up to FD_MAX_COORDS coordinates per leaf plus the
all-ones and a random direction, each with a step that stays inside the leaf's domain (a
coordinate on the boundary of a positive input gets one-sided steps: `one_sided`).
"""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp

from jaxnets.gradcheck.finite_diff import PROBE_OFFSETS, fd_coords, fd_layer, fd_scalar, output_bounds
from jaxnets.gradcheck.tolerances import FD_STEP

#: finite-difference requests per jitted call (padded), so one shape compiles once
FD_CHUNK = 32
#: output elements one vmapped call may hold (requests x PROBE_OFFSETS x output size), and
#: input elements its moves may (requests x differentiated elements): for a large layer the
#: chunk shrinks, so a call neither pads to 32 requests nor holds gigabytes
FD_CHUNK_ELEMENTS = 2_000_000
#: directions per leaf a finite-difference call takes (padded with zeros)
FD_DIRECTIONS = 3


def step(x, dom, flat=None, direction=None, rms=None):
    """The step h for a probe of leaf values x: FD_STEP scaled to the values' size (`rms`,
    computed when not given), and no further than half-way to the domain's edge (0 for
    positive inputs, 0 and 1 for probabilities); 0 when there is no room."""
    if rms is None:
        rms = float(np.sqrt(np.mean(x * x))) if x.size else 1.0
    h = FD_STEP * min(1.0, max(rms, 1e-3))
    if dom in ("unit", "positive", "nonnegative"):
        dist = x if dom != "unit" else np.minimum(x, 1.0 - x)
        if flat is not None:
            h = min(h, 0.5 * float(dist.flat[flat]))
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(direction != 0, dist / np.abs(direction), np.inf)
            h = min(h, 0.5 * float(np.min(ratio)))
    return h


def requests_for(ctx, rng, max_coords, directions=2, leaves=None):
    """Coordinate and direction requests for every differentiated leaf (or `leaves`). Kept
    in the case's memo under the generator's state, with the state it leaves: asked again
    (by a judge, after `oracles.batch` asked first) they are returned, and `rng` moved on, as
    if drawn anew."""
    memo = getattr(ctx, "memo", None)
    key = ("requests", repr(rng.bit_generator.state), max_coords, directions,
           None if leaves is None else tuple(sorted(leaves)))
    if memo is not None and key in memo:
        reqs, rng.bit_generator.state = memo[key]
        return list(reqs)
    reqs = []
    for i, x in enumerate(ctx.diff64):
        if leaves is not None and i not in leaves:
            continue
        shape, dom = x.shape, ctx.domains[i]
        rms = float(np.sqrt(np.mean(x * x))) if x.size else 1.0
        coords = np.ravel_multi_index(fd_coords(shape, rng, max_coords), shape) if shape else np.array([0])
        reqs += [(i, int(j), None, step(x, dom, flat=int(j), rms=rms)) for j in coords]
        dirs = [np.ones(shape), rng.standard_normal(shape), rng.standard_normal(shape)][:directions]
        reqs += [(i, None, d, step(x, dom, direction=d, rms=rms)) for d in dirs]
    # an input on its domain's edge (a probability of exactly 0) has no room for a step
    reqs = [r for r in reqs if r[3] > 1e-12]
    if memo is not None:
        memo[key] = (reqs, rng.bit_generator.state)
    return list(reqs)


def boundary_coords(ctx, max_coords=8):
    """(leaf, flat index) of entries sitting exactly on their domain's edge (0 for positive
    or non-negative inputs): one-sided differences are the only oracle there."""
    out = []
    for i, x in enumerate(ctx.diff64):
        if ctx.domains[i] in ("positive", "nonnegative", "unit"):
            flat = np.flatnonzero((x.ravel() == 0) | ((x.ravel() == 1) & (ctx.domains[i] == "unit")))
            out += [(i, int(j)) for j in (flat if max_coords is None else flat[:max_coords])]
    return out


def one_sided(ctx, i, j, weights=None):
    """Two estimates of the one-sided derivative of phi along coordinate j of leaf i, into
    the domain (right at 0, left at 1): Richardson of forward differences from the steps
    (h, h/2) and from (h/2, h/4), h = FD_STEP. They agree where the function is smooth on
    the domain's side; where it is not (a square root's infinite slope at 0) they do not, and
    finite differences cannot decide there. NumPy evaluation (a handful of points)."""
    x = ctx.diff64[i]
    sign = -1.0 if x.flat[j] == 1 else 1.0
    vals = []
    for t in (0.0, FD_STEP / 4, FD_STEP / 2, FD_STEP):
        moved = [d.copy() for d in ctx.diff64]
        moved[i].flat[j] += sign * t
        vals.append(_phi(ctx, moved, weights))
    f0, f4, f2, f1 = vals
    d1, d2, d4 = (f1 - f0) / FD_STEP, (f2 - f0) / (FD_STEP / 2), (f4 - f0) / (FD_STEP / 4)
    return sign * (2 * d2 - d1), sign * (2 * d4 - d2), max(abs(v) for v in vals)


def _phi(ctx, diff, weights=None):
    outs = ctx.bound.outputs(diff, ctx.arrays64)
    return float(sum(np.sum(np.asarray(o, np.float64) * c) for o, c in zip(outs, weights or ctx.cot64)))


def _flat_out(outs):
    # NumPy outputs stay NumPy: a jnp.concatenate per point was half of a NumPy LSTM step's check
    xp = jnp if any(isinstance(o, jax.Array) for o in outs) else np
    return xp.concatenate([xp.ravel(o) for o in outs]) if len(outs) > 1 else xp.ravel(outs[0])


def probe_values(ctx, requests, outs_fn=None, key=None, extra=(), weights=None):
    """((len, 7) phi values, (len, 5) output bounds, magnitude of phi) for the requests.

    phi = sum(outs_fn(diff, arrays, extra) * weights): by default the primal's flattened
    outputs and the case's cotangent (or `weights`, one per output leaf). A caller differencing another function (second order:
    the rule's gradient) passes it with `key`, the name its compiled program is kept under."""
    if outs_fn is None:
        if weights is None and memo_key(requests) in ctx.memo:  # prefetched with the case's batch
            return ctx.memo[memo_key(requests)]
        outs_fn, key = primal_outputs(ctx.bound), "primal"
        weights = np.concatenate([np.ravel(c) for c in (ctx.cot64 if weights is None else weights)])
        if not ctx.subject.jax_primal:
            return _probe_numpy(ctx, requests, outs_fn, extra, weights)
        try:
            return _probe_jax(ctx, requests, outs_fn, key, extra, weights)
        except Exception:  # a forward JAX traces but cannot vmap: evaluate it point by point
            return _probe_numpy(ctx, requests, outs_fn, extra, weights)
    memo = memo_key(requests, key, weights, extra)
    if memo in ctx.memo:  # prefetched with the case's batch
        return ctx.memo[memo]
    return _probe_jax(ctx, requests, outs_fn, key, extra, weights)


def primal_outputs(b):
    """The primal of Bound b as a function (diff, arrays, extra) -> its flattened outputs."""
    return lambda d, a, e: _flat_out(b.outputs(list(d), a))


def memo_key(requests, key="primal", weights=None, extra=()):
    """A hashable form of a list of requests of the function `key` (where a case's memo
    keeps their values): the primal's under the case's cotangent, or another function's
    (second order) with its `weights` and `extra` arguments."""
    reqs = tuple((i, j, None if d is None else np.asarray(d, np.float64).tobytes(), float(h))
                 for i, j, d, h in requests)
    if key == "primal" and weights is None:
        return ("fd", reqs)
    return ("fd", key, reqs, np.asarray(weights).tobytes(), tuple(np.asarray(e).tobytes() for e in extra))


def _probe_jax(ctx, requests, outs_fn, key, extra, weights):
    s, b = ctx.subject, ctx.bound
    diff = ctx.diff64
    for i in range(len(diff)):
        if sum(1 for r in requests if r[0] == i and r[2] is not None) > FD_DIRECTIONS:
            raise ValueError(f"at most {FD_DIRECTIONS} directions per leaf")
    n_in = sum(int(np.size(x)) for x in diff)
    chunk_size = int(max(1, min(FD_CHUNK, FD_CHUNK_ELEMENTS // max(1, len(PROBE_OFFSETS) * int(np.size(weights))),
                                FD_CHUNK_ELEMENTS // max(1, n_in))))
    chunk_fn = s.jitted(b.key(("fd", key, chunk_size)), lambda: lambda *a: _fd_chunk(outs_fn, *a),
                        shared=key == "primal")
    values, bounds, mags = [], [], []
    for start in range(0, len(requests), chunk_size):
        reqs = requests[start:start + chunk_size]
        pad = chunk_size - len(reqs)
        reqs = reqs + [reqs[-1]] * pad
        moves = [np.zeros((chunk_size,) + x.shape) for x in diff]
        for r, (i, flat, direction, _) in enumerate(reqs):
            if direction is None:
                moves[i].reshape(chunk_size, -1)[r, flat] = 1.0  # (a view: moves[i][r] of a 0-d leaf is a copy)
            else:
                moves[i][r] = direction
        steps = np.array([r[3] for r in reqs])
        outs, base = jax.device_get(chunk_fn(tuple(diff), ctx.arrays64, extra, tuple(moves), steps))
        outs = np.asarray(outs, np.float64)[: chunk_size - pad]
        values.append(outs @ weights)
        bounds.append(output_bounds(outs, weights, steps[: chunk_size - pad]))
        mags.append(max(float(np.sum(np.abs(np.asarray(base, np.float64) * weights))), float(np.max(np.abs(values[-1])))))
    return np.concatenate(values), np.concatenate(bounds), max(mags)


def _fd_chunk(outs_fn, diff, arrays, extra, moves, steps):
    """The flattened outputs along a chunk of requests at the PROBE_OFFSETS, all vmapped
    (chunk, offsets, outputs), and at the point itself: request r moves every leaf i by
    t * moves[i][r] (a unit vector or a direction of its own leaf, zero for the others). Only
    the function is traced: phi and the one-sided bounds are NumPy's (`output_bounds`),
    which keeps the program one XLA compiles fastest (a fifth of the time with them in it)."""
    offsets = jnp.asarray(PROBE_OFFSETS)

    def one(move, h):
        return jax.vmap(lambda t: outs_fn(tuple(x + t * m for x, m in zip(diff, move)), arrays, extra))(offsets * h)

    return jax.vmap(one)(moves, steps), outs_fn(diff, arrays, extra)


def _probe_numpy(ctx, requests, outs_fn, extra, weights):
    def out(diff):
        return np.asarray(outs_fn(diff, ctx.arrays64, extra), np.float64)

    base = [d.copy() for d in ctx.diff64]
    at_base = out(base)
    mag = float(np.sum(np.abs(at_base * weights)))
    values = np.empty((len(requests), len(PROBE_OFFSETS)))
    bounds = np.empty((len(requests), 5))
    for r, (i, flat, direction, h) in enumerate(requests):
        outs = []
        for off in PROBE_OFFSETS:
            if off == 0:  # the point itself, evaluated once for all requests
                outs.append(at_base)
                continue
            moved = [d.copy() for d in base]
            if direction is None:
                moved[i].flat[flat] += off * h
            else:
                moved[i] = moved[i] + off * h * direction
            outs.append(out(moved))
        outs = np.stack(outs)
        values[r] = outs @ weights
        bounds[r] = output_bounds(outs, weights, h)
    return values, bounds, max(mag, float(np.max(np.abs(values))) if values.size else 0.0)


def richardson_estimates(ctx, salt, limit):
    """[(coords, estimate)] per leaf: the suite's Richardson differences of the reference's
    NumPy forward (a layer: of sum(out * dout); a scalar output: of cotangent * loss)."""
    ref = ctx.subject.reference
    rng = np.random.default_rng([ctx.case.tags["seed"], salt])
    b = ctx.ref_bound
    out = []
    scalar = np.ndim(ctx.cot64[0]) == 0  # a loss (a model's loss comes first, its state after)
    for k, x in enumerate(ctx.ref_diff):
        coords = fd_coords(x.shape, rng, limit)

        several = len(ctx.cot64) > 1 and not scalar

        def forward(*diff, k=k):
            outs = b.outputs(list(diff), ctx.ref_arrays, ref.primal)
            # several outputs (an LSTM step's next_h, next_c): phi sums over all of them
            return np.concatenate([np.ravel(o) for o in outs]) if several else outs[0]

        if scalar:
            cot = float(ctx.cot64[0])
            est = fd_scalar(lambda v, k=k: cot * forward(*[v if i == k else d for i, d in enumerate(ctx.ref_diff)]),
                            [x], 0, coords)
        else:
            dout = np.concatenate([np.ravel(c) for c in ctx.cot64]) if several else ctx.cot64[0]
            est = fd_layer(forward, list(ctx.ref_diff), k, dout, coords)
        out.append((coords, est))
    return out
