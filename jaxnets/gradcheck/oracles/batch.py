"""Cases of one call signature through one compiled, vmapped program per oracle.

The engine judges case by case, and each judge asks its case for a source (`CaseContext.get`)
or for finite differences (`fd.probe_values`). Called per case, every such request is one
dispatch of a compiled program — tens of them per case, each costing more than the small
rule it runs (on a loaded two-core machine, milliseconds of waiting for XLA's threads). Before
the judges run, `prefetch` computes what they will ask for on all cases of one signature at
once — the rule, autodiff of the primal, the finite differences of the primal at the
requests `judges.fd_check` makes — and leaves the results in each case's memo, where the
judges find them. What is prefetched is computed exactly as the per-case call would compute
it, by the same function vmapped over the cases; a request the prefetch did not foresee
(another salt, a kink probe, a rounding measurement) runs per case as before. Only JAX code
is batched (NumPy code runs eagerly, case by case); a batch that fails to trace or vmap
leaves the memo empty, so each case meets the failure on its own.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.gradcheck.finite_diff import PROBE_OFFSETS, output_bounds
from jaxnets.gradcheck.oracles import context, fd
from jaxnets.gradcheck.oracles.sources import as_grad

#: the salt of `judges.fd_check`'s requests (`ctx.rng(11)`): the prefetch makes the same ones
FD_CHECK_SALT = 11
#: the salt of `judges.in_context`'s maps and downstream weights (`ctx.rng(7)`)
CONTEXT_SALT = 7
#: finite-difference requests (of all the cases together) per call of the batched program
FD_BATCH = 1024


def prefetch(ctxs, sources=("rule", "autodiff"), fd_check=True, in_context=True):
    """Fill the memos of `ctxs` (CaseContexts) with `sources` and, with `fd_check`, the
    finite differences `judges.fd_check` will ask for, with `in_context` the in-context
    program's gradients and autodiff at the cotangent it saw; groups of one case are left
    alone (their own programs are the ones a rounding measurement reuses)."""
    groups = {}
    for ctx in ctxs:
        groups.setdefault((ctx.bound.key("batch"), ctx.dtype), []).append(ctx)
    for group in groups.values():
        if len(group) < 2:
            continue
        for name in sources:
            _source(group, name)
        if fd_check:
            _fd(group)
        if in_context:
            _context(group)


def _stack(leaves_per_case):
    return [np.stack([np.asarray(v) for v in leaves]) for leaves in zip(*leaves_per_case)]


def _source(group, name):
    ctx0 = group[0]
    s, b = ctx0.subject, ctx0.bound
    if name in s.sources or any(name in c._memo for c in group):
        return
    if name == "rule":
        if not s.jax_rule or s.rule is None:
            return
        program = s.jitted(b.key(("rule", "batch", ctx0.dtype)), lambda: jax.vmap(b.rule))
    elif name == "autodiff":
        if not s.jax_primal or s.jax_vjp is False or s.kind == "function":
            return
        program = autodiff_program(ctx0)
    else:
        return
    try:
        outs, grads = jax.device_get(program(_stack([c.diff for c in group]), _stack([c.arrays for c in group]),
                                             _stack([c.cot for c in group])))
    except Exception:  # each case then meets it on its own
        return
    for k, ctx in enumerate(group):
        ctx._memo[name] = as_grad([o[k] for o in outs], [g[k] for g in grads])


def autodiff_program(ctx):
    """jax.vjp of the primal, vmapped over cases (shared by every subject of the primal)."""
    s, b = ctx.subject, ctx.bound
    return s.jitted(b.key(("autodiff", "batch", ctx.dtype)),
                    lambda: jax.vmap(lambda d, a, c: b.vjp_of(s.primal, d, a, c)), shared=True)


def autodiff_at(group, cots):
    """Autodiff of the primal at one more cotangent per case, in one call; None if it fails."""
    ctx0 = group[0]
    try:
        outs, grads = jax.device_get(autodiff_program(ctx0)(
            _stack([c.diff64 for c in group]), _stack([c.arrays64 for c in group]), _stack(cots)))
    except Exception:
        return None
    return [as_grad([o[k] for o in outs], [g[k] for g in grads]) for k in range(len(group))]


def _context(group):
    ctx0 = group[0]
    s = ctx0.subject
    if s.wired is None or not s.jax_rule or not s.jax_primal or ctx0.dtype != np.float64:
        return
    draws = []
    for ctx in group:
        maps, r1, r2 = context.draw(ctx, ctx.rng(CONTEXT_SALT))
        draws.append((tuple(tuple(m[k] for m in maps) for k in range(3)), r1, r2))
    try:
        grads, cots = jax.device_get(context.batch_program(ctx0)(
            *(_stack([d[0][k] for d in draws]) for k in range(3)), _stack([c.diff64 for c in group]),
            _stack([c.arrays64 for c in group]), _stack([d[1] for d in draws]), _stack([d[2] for d in draws])))
    except Exception:  # each case then meets it on its own
        return
    cots = [[np.asarray(c[k], np.float64) for c in cots] for k in range(len(group))]
    autos = autodiff_at(group, cots)
    for k, (ctx, ((ts, perms, _), r1, r2)) in enumerate(zip(group, draws)):
        ctx._memo[context.memo_key(ts, perms, r1, r2)] = ([g[k] for g in grads], cots[k])
        if autos is not None:
            ctx._memo[autodiff_at_key(cots[k])] = autos[k]


def autodiff_at_key(cot):
    return ("autodiff_at",) + tuple(np.asarray(c, np.float64).tobytes() for c in cot)


def _fd(group):
    ctx0 = group[0]
    s, b = ctx0.subject, ctx0.bound
    if not s.jax_primal:
        return
    reqs = [fd.requests_for(c, c.rng(FD_CHECK_SALT), c.fd_coords, c.fd_directions) for c in group]
    flat = [(k, r) for k, rs in enumerate(reqs) for r in rs]
    if not flat:
        return
    weights = [np.concatenate([np.ravel(c) for c in ctx.cot64]) for ctx in group]
    n_in = sum(int(np.size(x)) for x in ctx0.diff64) + sum(int(np.size(a)) for a in ctx0.arrays64)
    size = int(max(1, min(FD_BATCH, fd.FD_CHUNK_ELEMENTS // max(1, len(PROBE_OFFSETS) * weights[0].size),
                          fd.FD_CHUNK_ELEMENTS // max(1, n_in))))
    outs_fn = fd.primal_outputs(b)
    program = s.jitted(b.key(("fd", "batch", size)), lambda: lambda *a: _fd_points(outs_fn, *a), shared=True)
    per_case = [[] for _ in group]
    try:
        for start in range(0, len(flat), size):
            part = flat[start:start + size]
            part = part + [part[-1]] * (size - len(part))
            bases = _stack([group[k].diff64 for k, _ in part])
            arrays = _stack([group[k].arrays64 for k, _ in part])
            moves = [np.zeros((size,) + x.shape) for x in ctx0.diff64]
            for n, (_, (i, j, direction, _h)) in enumerate(part):
                if direction is None:
                    moves[i].reshape(size, -1)[n, j] = 1.0  # (a view: moves[i][n] of a 0-d leaf is a copy)
                else:
                    moves[i][n] = direction
            steps = np.array([r[3] for _, r in part])
            outs, base = jax.device_get(program(bases, arrays, moves, steps))
            for n, (k, _) in enumerate(flat[start:start + size]):
                per_case[k].append((np.asarray(outs[n], np.float64), np.asarray(base[n], np.float64)))
    except Exception:  # a forward JAX traces but cannot vmap: each case probes on its own
        return
    for ctx, rs, got, w in zip(group, reqs, per_case, weights):
        if not rs:
            continue
        outs = np.stack([o for o, _ in got])
        values = outs @ w
        bounds = output_bounds(outs, w, np.array([r[3] for r in rs]))
        mag = max(float(np.sum(np.abs(got[0][1] * w))), float(np.max(np.abs(values))))
        ctx._memo[fd.memo_key(rs)] = (values, bounds, mag)


def _fd_points(outs_fn, bases, arrays, moves, steps):
    """Per request (each with its own case's point and other arrays): the flattened outputs
    at the PROBE_OFFSETS along its move, and at the point itself."""
    offsets = jnp.asarray(PROBE_OFFSETS)

    def one(base, arr, move, h):
        along = jax.vmap(lambda t: outs_fn(tuple(x + t * m for x, m in zip(base, move)), list(arr), ()))(offsets * h)
        return along, outs_fn(tuple(base), list(arr), ())

    return jax.vmap(one)(tuple(bases), tuple(arrays), tuple(moves), steps)
