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
from jaxnets.gradcheck.oracles import context, fd, second_order
from jaxnets.gradcheck.oracles.sources import as_grad

#: the salt of `judges.fd_check`'s requests (`ctx.rng(11)`): the prefetch makes the same ones
FD_CHECK_SALT = 11
#: the salt of `judges.in_context`'s maps and downstream weights (`ctx.rng(7)`)
CONTEXT_SALT = 7
#: the salt of `judges.second_order_check`'s weights and requests (`ctx.rng(23)`)
SECOND_ORDER_SALT = 23
#: finite-difference requests (of all the cases together) per call of the batched program
FD_BATCH = 1024


def prefetch(ctxs, sources=("rule", "autodiff"), fd_check=True, in_context=True, second=True):
    """Fill the memos of `ctxs` (CaseContexts) with `sources` and, with `fd_check`, the
    finite differences `judges.fd_check` will ask for, with `in_context` the in-context
    program's gradients and autodiff at the cotangent it saw, with `second` the second
    order row's two sides; groups of one case are left alone (their own programs are the
    ones a rounding measurement reuses)."""
    groups = {}
    for ctx in ctxs:
        groups.setdefault((ctx.bound.key("batch"), ctx.dtype), []).append(ctx)
    for group in groups.values():
        if len(group) < 2:
            continue
        _sources(group, sources)
        if fd_check:
            _fd(group)
        if in_context:
            _context(group)
        if second:
            _second_order(group)


def _stack(leaves_per_case):
    return [np.stack([np.asarray(v) for v in leaves]) for leaves in zip(*leaves_per_case)]


def _runnable(group, name):
    ctx0 = group[0]
    s = ctx0.subject
    if name in s.sources or any(name in c.memo for c in group):
        return False
    if name == "rule":
        return bool(s.jax_rule) and s.rule is not None
    if name == "autodiff":
        return bool(s.jax_primal) and s.jax_vjp is not False and s.kind != "function"
    return False


def _sources(group, names):
    """The rule and autodiff of the primal on every case of the group: one program computing
    both when both run (one compilation fewer per call signature), else the one that runs."""
    ctx0 = group[0]
    s, b = ctx0.subject, ctx0.bound
    names = [n for n in ("rule", "autodiff") if n in names and _runnable(group, n)]
    if names == ["rule", "autodiff"]:
        program = both_program(ctx0)
    elif names == ["rule"]:
        program = s.jitted(b.key(("rule", "batch", ctx0.dtype)), lambda: jax.vmap(lambda d, a, c: (b.rule(d, a, c),)))
    elif names == ["autodiff"]:
        program = s.jitted(b.key(("autodiff", "batch", ctx0.dtype)),
                           lambda: jax.vmap(lambda d, a, c: (b.vjp_of(s.primal, d, a, c),)), shared=True)
    else:
        return
    try:
        got = jax.device_get(program(_stack([c.diff for c in group]), _stack([c.arrays for c in group]),
                                     _stack([c.cot for c in group])))
    except Exception:  # each case then meets it on its own
        return
    for name, (outs, grads) in zip(names, got):
        for k, ctx in enumerate(group):
            ctx.memo[name] = as_grad([o[k] for o in outs], [g[k] for g in grads])


def both_program(ctx):
    """(the rule, jax.vjp of the primal), vmapped over cases."""
    s, b = ctx.subject, ctx.bound
    return s.jitted(b.key(("rule+autodiff", "batch", ctx.dtype)),
                    lambda: jax.vmap(lambda d, a, c: (b.rule(d, a, c), b.vjp_of(s.primal, d, a, c))))


def autodiff_at(group, cots):
    """Autodiff of the primal at one more cotangent per case, in one call (the program that
    computed the sources, the rule's half unused); None if it fails."""
    ctx0 = group[0]
    try:
        _, (outs, grads) = jax.device_get(both_program(ctx0)(
            _stack([c.diff64 for c in group]), _stack([c.arrays64 for c in group]), _stack(cots)))
    except Exception:
        return None
    return [as_grad([o[k] for o in outs], [g[k] for g in grads]) for k in range(len(group))]


def _context(group):
    ctx0 = group[0]
    s = ctx0.subject
    if s.wired is None or not s.jax_rule or not s.jax_primal or ctx0.dtype != np.float64 \
            or ctx0.case.tags.get("leading") is not None:  # (not judged there: `engine.run`)
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
        ctx.memo[context.memo_key(ts, perms, r1, r2)] = ([g[k] for g in grads], cots[k])
        if autos is not None:
            ctx.memo[autodiff_at_key(cots[k])] = autos[k]


def autodiff_at_key(cot):
    return ("autodiff_at",) + tuple(np.asarray(c, np.float64).tobytes() for c in cot)


def _fd(group):
    ctx0 = group[0]
    if not ctx0.subject.jax_primal:
        return
    reqs = [fd.requests_for(c, c.rng(FD_CHECK_SALT), c.fd_coords, c.fd_directions) for c in group]
    weights = [np.concatenate([np.ravel(c) for c in ctx.cot64]) for ctx in group]
    got = _fd_values(group, reqs, fd.primal_outputs(ctx0.bound), "primal", weights, [() for _ in group])
    for ctx, rs, values in zip(group, reqs, got or ()):
        if rs:
            ctx.memo[fd.memo_key(rs)] = values


def _second_order(group):
    """`judges.second_order_check`'s jax.grad of phi2 and finite differences of the rule's
    gradient, on the cases it judges (normal values, the examples' own sizes)."""
    ctx0 = group[0]
    s = ctx0.subject
    group = [c for c in group if c.case.tags.get("values", "normal") == "normal"]
    if len(group) < 2 or s.wired is None or not s.jax_rule or ctx0.dtype != np.float64 \
            or ctx0.case.tags.get("leading") is not None:
        return
    ws, reqs = [], []
    for ctx in group:
        rng = ctx.rng(SECOND_ORDER_SALT)
        ws.append(second_order.weights(ctx, rng))
        reqs.append(fd.requests_for(ctx, rng, ctx.second_order_coords, 2))
    try:
        grads = jax.device_get(second_order.batch_program(ctx0)(
            _stack([c.diff64 for c in group]), _stack([c.arrays64 for c in group]), _stack([c.cot64 for c in group]),
            _stack(ws)))
    except Exception:  # JAX cannot differentiate the rule: each case says so on its own
        return
    for k, (ctx, w) in enumerate(zip(group, ws)):
        ctx.memo[second_order.memo_key(w)] = [np.asarray(g[k], np.float64) for g in grads]
    flat_w = [second_order.flat_weights(w) for w in ws]
    extras = [tuple(c.cot64) for c in group]
    got = _fd_values(group, reqs, second_order.outs_fn(ctx0), "second_order_fd", flat_w, extras)
    for ctx, rs, values, w, extra in zip(group, reqs, got or (), flat_w, extras):
        if rs:
            ctx.memo[fd.memo_key(rs, "second_order_fd", w, extra)] = values


def _fd_values(group, reqs, outs_fn, key, weights, extras):
    """Per case, what `fd.probe_values` returns for its requests (values, bounds, magnitude),
    all cases' requests in as few calls as the sizes allow; None when the batch fails."""
    ctx0 = group[0]
    s, b = ctx0.subject, ctx0.bound
    flat = [(k, r) for k, rs in enumerate(reqs) for r in rs]
    if not flat:
        return None
    n_in = sum(int(np.size(x)) for x in ctx0.diff64) + sum(int(np.size(a)) for a in ctx0.arrays64)
    size = int(max(1, min(FD_BATCH, fd.FD_CHUNK_ELEMENTS // max(1, len(PROBE_OFFSETS) * weights[0].size),
                          fd.FD_CHUNK_ELEMENTS // max(1, n_in))))
    program = s.jitted(b.key(("fd", "batch", key, size)), lambda: lambda *a: _fd_points(outs_fn, *a),
                       shared=key == "primal")
    per_case = [[] for _ in group]
    try:
        for start in range(0, len(flat), size):
            part = flat[start:start + size]
            part = part + [part[-1]] * (size - len(part))
            bases = _stack([group[k].diff64 for k, _ in part])
            arrays = _stack([group[k].arrays64 for k, _ in part])
            extra = _stack([extras[k] for k, _ in part])
            moves = [np.zeros((size,) + x.shape) for x in ctx0.diff64]
            for n, (_, (i, j, direction, _h)) in enumerate(part):
                if direction is None:
                    moves[i].reshape(size, -1)[n, j] = 1.0  # (a view: moves[i][n] of a 0-d leaf is a copy)
                else:
                    moves[i][n] = direction
            steps = np.array([r[3] for _, r in part])
            outs, base = jax.device_get(program(bases, arrays, extra, moves, steps))
            for n, (k, _) in enumerate(flat[start:start + size]):
                per_case[k].append((np.asarray(outs[n], np.float64), np.asarray(base[n], np.float64)))
    except Exception:  # a function JAX traces but cannot vmap: each case probes on its own
        return None
    out = []
    for rs, got, w in zip(reqs, per_case, weights):
        if not rs:
            out.append(None)
            continue
        outs = np.stack([o for o, _ in got])
        values = outs @ w
        bounds = output_bounds(outs, w, np.array([r[3] for r in rs]))
        out.append((values, bounds, max(float(np.sum(np.abs(got[0][1] * w))), float(np.max(np.abs(values))))))
    return out


def _fd_points(outs_fn, bases, arrays, extras, moves, steps):
    """Per request (each with its own case's point, other arrays and extra arguments): the
    flattened outputs at the PROBE_OFFSETS along its move, and at the point itself."""
    offsets = jnp.asarray(PROBE_OFFSETS)

    def one(base, arr, extra, move, h):
        f = lambda d: outs_fn(tuple(d), list(arr), tuple(extra))
        along = jax.vmap(lambda t: f([x + t * m for x, m in zip(base, move)]))(offsets * h)
        return along, f(base)

    return jax.vmap(one)(tuple(bases), tuple(arrays), tuple(extras), tuple(moves), steps)
