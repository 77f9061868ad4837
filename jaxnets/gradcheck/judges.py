"""How a row of the check table judges its evidence on one case; each returns a `Finding`.

- `runs`: the rule runs and is finite where the forward is (a forward that is itself not
  finite makes the case a "domain" case: outside the layer's numerical range, not checked);
- `analytic`: two gradient sources leaf by leaf (outputs too), by relative error with a
  scale-aware floor (`Tolerance`); `how` = "strict" (the reference: it defines the
  convention at kinks), "kinks" (a disagreement is ambiguous when finite differences show
  every probed disagreeing coordinate at a kink with both values between its one-sided
  slopes) or "arbiter" (as "kinks", and where finite differences are smooth they decide: a
  rule that agrees with them while autodiff of the primal does not passes, with a note);
- `fd`: the rule against kink-aware finite differences of the primal, per coordinate and along
  directions, one-sided at the domain's boundary;
- `fd_smooth`: the suite's form — Richardson central differences of the reference forward on
  inputs known to be kink-free, compared strictly;
- `transform`, `dot`, `jvp_fd`, `jvp_autodiff`, `second_order`: the remaining oracles.

A failed comparison on a user layer is judged again with the gradient's measured rounding
(`rounding.py`) and, where it still fails, explained coordinate by coordinate by finite
differences (`kinks.py`; at a singular point or where several pieces meet, `pieces.py`).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from jaxnets.gradcheck import kinks, pieces, rounding
from jaxnets.gradcheck.compare import compare_arrays, cotangent_scale, gradient_scale
from jaxnets.gradcheck.finite_diff import judge as judge_probe, probe, relative_error
from jaxnets.gradcheck.oracles import context, fd, forward_mode, second_order
from jaxnets.gradcheck.report import STATUSES, Finding
from jaxnets.gradcheck.subject import RuleError
from jaxnets.gradcheck.tolerances import ROUNDING_CAP, ROUNDING_FACTOR, ROUNDING_ULPS

def line(exc):
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:240]}"


def _values(a, b, index):
    try:
        return float(np.asarray(a)[index]), float(np.asarray(b)[index])
    except (IndexError, TypeError, ValueError):
        return None, None


def compare_leaves(ctx, check, A, B, cot, rounding=None):
    """Comparisons of every output (`check.outputs`) and gradient leaf (`check.grads`) of A
    and B (Grad); `rounding` (per gradient leaf, `CaseContext.rounding`) widens each
    gradient leaf's absolute tolerance to ROUNDING_FACTOR times it."""
    tol = ctx.tol
    names = list(ctx.out_names) if check.outputs else []
    pairs = list(zip(A.outputs, B.outputs)) if check.outputs else []
    if check.grads:
        if len(A.grads) != len(B.grads):
            return [compare_arrays("*", check.a, np.zeros(len(A.grads)), check.b, np.zeros(len(B.grads)), tol.analytic)]
        names += list(ctx.names)
        pairs += list(zip(A.grads, B.grads))
    dscale = cotangent_scale(cot)
    atols = [tol.atol] * len(names)
    if rounding is not None:
        first = len(names) - len(rounding)
        atols[first:] = [max(tol.atol or 0.0, ROUNDING_FACTOR * r) or None for r in rounding]
    comps = []
    for n, (a, b), atol in zip(names, pairs, atols):
        comps.append(compare_arrays(n, check.a, a, check.b, b, tol.analytic, scale_floor=tol.floor,
                                    scale=None if tol.floor is None else gradient_scale(a, b, dscale), atol=atol))
    return comps


def analytic(ctx, check, A, B, cot, how="strict", own_rounding=None):
    """A Finding for two gradient sources (Grad or Exception) under cotangent `cot`;
    `own_rounding()`: per leaf, a source's own measured rounding where it is not the rule
    called alone (the rule in context), counted with `CaseContext.rounding`'s."""
    for r, who in ((A, check.a), (B, check.b)):
        if isinstance(r, Exception):
            return Finding(check.name, ctx.case.index, "fail", note=f"{who} raised: {line(r)}")
    comps = compare_leaves(ctx, check, A, B, cot)
    if not comps:
        return Finding(check.name, ctx.case.index, "pass")
    worst = max(comps, key=lambda c: c.err)
    measured = rounding.for_failure(ctx, check, worst, cot, own_rounding)
    if measured is not None:  # judged again with the gradient's measured rounding as atol
        comps = compare_leaves(ctx, check, A, B, cot, measured)
        worst = max(comps, key=lambda c: c.err)
    a, b = _leaf(ctx, A, worst.param, check.outputs), _leaf(ctx, B, worst.param, check.outputs)
    f = Finding(check.name, ctx.case.index, "pass" if worst.ok else "fail", worst.param, worst.err, worst.index,
                *_values(a, b, worst.index))
    if worst.ok:
        return f
    f.note = worst.detail
    if how != "strict" and worst.param in ctx.names and _rule_finite(A, ctx):
        kinks.explain(ctx, f, A.grads, B.grads, cot, arbiter=how == "arbiter", rounding=measured)
    return f


def _rule_finite(A, ctx):
    return len(A.grads) == len(ctx.names) and all(np.all(np.isfinite(g)) for g in A.grads)


def _leaf(ctx, R, name, outputs):
    if outputs and name in ctx.out_names:
        return R.outputs[list(ctx.out_names).index(name)]
    if name in ctx.names and len(R.grads) == len(ctx.names):
        return R.grads[list(ctx.names).index(name)]
    return None


# ----------------------------------------------------------------------------- the rows

def runs(ctx, check):
    r = ctx.get("rule")
    case = ctx.case.index
    if isinstance(r, Exception):
        ctx.skip = True
        hint = ctx.subject.notes.get("rule hint") if isinstance(r, RuleError) else None
        return Finding(check.name, case, "fail", note=f"your {ctx.subject.rule_label} raised: {line(r)}"
                       + (f" ({hint})" if hint else ""))
    bad_out = [(n, o) for n, o in zip(ctx.out_names, r.outputs) if not np.all(np.isfinite(o))]
    if bad_out:
        ctx.skip = True
        n, o = bad_out[0]
        return Finding(check.name, case, "domain", n, note=f"{n} is {_nonfinite(o)} for finite inputs: values outside "
                       f"the forward's numerical range, or a forward that overflows (exp without the max shift?)")
    for k, (n, g) in enumerate(zip(ctx.names, r.grads)):
        if not np.all(np.isfinite(g)):
            ctx.skip = True
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(g))[0]) if g.ndim else ()
            where = ctx.domain_note(n, idx)
            flat = int(np.ravel_multi_index(idx, g.shape)) if idx else 0
            why = None if where or g.shape != ctx.diff64[k].shape else pieces.singular_at(ctx, k, flat)
            if why:  # the function itself has no derivative there (eigenvectors at a repeated eigenvalue)
                note = pieces.domain_note(pieces.position(ctx, k, flat), why)
                return Finding(check.name, case, "domain", n, 0.0, idx, note=f"{_nonfinite(g)} in d{n}: {note}")
            return Finding(check.name, case, "fail", n, math.inf, idx,
                           note=f"{_nonfinite(g)} in d{n}{list(idx) if idx else ''} where the forward is finite"
                                + (f" ({where})" if where else f" ({ctx.case.tags.get('values', '?')} values)")
                                + ": the rule divides by zero or overflows there")
    return Finding(check.name, case, "pass")


def _nonfinite(a):
    a = np.asarray(a)
    return "NaN" if np.any(np.isnan(a)) else "inf"


def pair(how):
    def judge(ctx, check):
        return analytic(ctx, check, ctx.get(check.sources[0]), ctx.get(check.sources[1]), ctx.cot, how)

    return judge


def in_context(ctx, check):
    if isinstance(ctx.get("rule"), Exception):
        return None
    try:
        ctx_grad, cot = context.in_context(ctx, ctx.rng(7))
    except Exception as exc:
        return Finding(check.name, ctx.case.index, "fail", note=f"your {ctx.subject.rule_label} in context "
                       f"(under jax.grad, jitted, inside a larger function) raised: {line(exc)}")
    auto = ctx.autodiff_at(cot)
    # the salt of ctx.rng(7): the same maps and downstream weights
    own = lambda: context.rounding(ctx, 7, ROUNDING_ULPS, ROUNDING_CAP)
    return analytic(ctx, check, ctx_grad, auto, cot, "arbiter", own)


def fd_check(ctx, check):
    """The rule against kink-aware finite differences of the primal."""
    r = ctx.get("rule")
    if isinstance(r, Exception):
        return None
    rng = ctx.rng(11)
    reqs = fd.requests_for(ctx, rng, ctx.fd_coords, ctx.fd_directions)
    grads = r.grads
    findings = []
    if reqs:
        values, bounds, mag = fd.probe_values(ctx, reqs)
        mag += ctx.input_terms(grads)
        analytic_values = [float(grads[i].flat[j]) if d is None else float(np.sum(grads[i] * d))
                           for i, j, d, _ in reqs]
        findings = _judge_requests(ctx, reqs, values, bounds, mag, analytic_values)
        allow = rounding.allowances(ctx, reqs, findings)
        if allow is not None:  # judged again, a difference within the rule's measured rounding agreeing
            findings = _judge_requests(ctx, reqs, values, bounds, mag, analytic_values, allow=allow)
        findings = kinks.requests_beyond_slopes(ctx, reqs, values, bounds, mag, analytic_values, findings)
    for i, j in fd.boundary_coords(ctx):
        r1, r2, mag = fd.one_sided(ctx, i, j)
        got = float(grads[i].flat[j])
        noise = 32 * np.finfo(np.float64).eps * mag / (fd.FD_STEP / 4)
        where = tuple(int(v) for v in np.unravel_index(j, grads[i].shape))
        if relative_error(r1, r2, ctx.tol.fd, noise) > ctx.tol.fd:  # not converging: no oracle there
            findings.append(("ambiguous", 0.0, i, where, got, r2, "one-sided differences at the domain's boundary "
                             "do not converge: the value there is a convention", None, False))
            continue
        err = relative_error(got, r2, ctx.tol.fd, noise)
        findings.append(("pass" if err <= ctx.tol.fd else "fail", err, i, where, got, r2,
                         "one-sided differences at the domain's boundary", None, True))
    return _fd_finding(ctx, check, findings)


def _judge_requests(ctx, reqs, values, bounds, mag, analytic_values, record=True, allow=None):
    out = []
    samples = {}
    for n, ((i, flat, d, h), vals, bnd, value) in enumerate(zip(reqs, values, bounds, analytic_values)):
        pr = probe(vals, h, mag, bnd)
        if allow is not None and pr.kind == "smooth":
            pr = dataclasses.replace(pr, noise=pr.noise + allow[n])
        status, conv = judge_probe(pr, value, ctx.tol.fd)
        if d is None and pr.kind == "smooth":
            samples.setdefault(i, []).append((value, pr.estimate))
        where = (tuple(int(v) for v in np.unravel_index(flat, ctx.diff64[i].shape)) if d is None
                 else ("ones" if np.all(d == 1) else "random direction",))
        note = "" if pr.kind == "smooth" else f"finite differences {pr.kind} there: one-sided {kinks.slopes(pr)}"
        out.append((status, relative_error(value, pr.estimate, ctx.tol.fd, pr.noise), i, where, value, pr.estimate,
                    note, conv if d is None else None, status != "ambiguous"))
    if record:
        ctx.fd_samples[ctx.case.index] = {i: np.asarray(v).T for i, v in samples.items()}
    return out


def _fd_finding(ctx, check, results):
    if not results:
        return None
    status = max((r[0] for r in results), key=STATUSES.index)
    worst = max(results, key=lambda r: ({"fail": 2, "pass": 1}.get(r[0], 0) if r[8] else 0, r[1]))
    if status != "fail":  # a singular point, or a piece named, says so
        worst = next((r for r in results if r[0] == "domain" or r[7] == "piece"), worst)
    st, err, i, where, value, est, note, _, decided = worst
    if where and isinstance(where[0], str):
        note = f"directional derivative along {where[0]}" + (f"; {note}" if note else "")
        where = ()
    return Finding(check.name, ctx.case.index, status, ctx.names[i], err if decided else 0.0, where, value, est, note,
                   tuple(r[7] for r in results if r[7]))


def fd_smooth(ctx, check):
    """The suite's finite differences: Richardson central differences of the reference's
    NumPy forward on seeded coordinates of a kink-free case, every source within tol.fd."""
    if not ctx.case.fd:
        return None
    src = ctx.get(check.sources[0])
    if isinstance(src, Exception):
        return None
    est = ctx.richardson()
    # an op with gradients that are exactly 0 in exact arithmetic (`OpSpec.scale_floor`)
    # compares every entry at least at that fraction of the case's gradient scale
    scale = max([float(np.max(np.abs(g))) for g in src.grads if np.size(g)] + [0.0]) if ctx.tol.floor else None
    comps = []
    for i, (coords, e) in enumerate(est):
        g = src.grads[i] if i < len(src.grads) else None
        if g is None:
            continue
        sub = g[coords] if g.shape == ctx.diff64[i].shape else g
        comps.append(compare_arrays(ctx.names[i], check.a, sub, "fd", e, ctx.tol.fd, coords,
                                    scale_floor=ctx.tol.floor, scale=scale))
    worst = max(comps, key=lambda c: c.err)
    return Finding(check.name, ctx.case.index, "pass" if worst.ok else "fail", worst.param, worst.err, worst.index,
                   note="" if worst.ok else worst.detail)


def transform(ctx, check):
    a, b = check.sources
    A, B = ctx.get(a), ctx.get(b)
    if A is None or B is None:
        return None
    return analytic(ctx, check, A, B, ctx.cot, "strict")


def dot(ctx, check):
    """<J v, u> from forward mode against <v, J^T u> from the reverse rule, for a random v;
    where they disagree, finite differences along v decide (per leaf, then summed)."""
    r = ctx.get("rule")
    if isinstance(r, Exception) or ctx.case.tags.get("leading") is not None:
        return None  # (at the examples' own sizes: each other size would compile forward mode again)
    rng = ctx.rng(13)
    v = [rng.standard_normal(x.shape) for x in ctx.diff64]
    # the rule's terms along the whole direction: the scale rounding is measured against
    scale = float(sum(np.sum(np.abs(g * x)) for g, x in zip(r.grads, v)))
    for i, j in fd.boundary_coords(ctx, None):  # central differences cannot move these
        v[i].flat[j] = 0.0
    if not any(np.any(x) for x in v):
        return None
    try:
        touts = forward_mode.tangents(ctx, check.sources[0], [v])[0]
    except Exception as exc:
        if check.sources[0] == "jvp_rule":
            return Finding(check.name, ctx.case.index, "fail", note=f"{check.a} raised: {line(exc)}")
        # forward mode of the primal is JAX's limitation (through a custom_vjp), not the rule's
        ctx.subject.notes.setdefault(f"not run: {check.name}", f"forward mode of your primal fails ({line(exc)})")
        return None
    fwd, fwd_terms = forward_mode.project(touts, ctx.cot64)
    terms = [g * x for g, x in zip(r.grads, v)]
    rev, rev_terms = float(sum(np.sum(t) for t in terms)), float(sum(np.sum(np.abs(t)) for t in terms))
    floor = max((ctx.tol.floor or 0.0) * max(fwd_terms, rev_terms, scale, rounding.scale_terms(ctx, r.grads, v)),
                (ctx.tol.atol or 0.0) / ctx.tol.analytic)
    err = abs(fwd - rev) / max(1e-8, abs(fwd) + abs(rev), floor) if math.isfinite(fwd - rev) else math.inf
    if err > ctx.tol.analytic and math.isfinite(err):  # judged again with the rule's measured rounding
        floor = max(floor, rounding.along(ctx, v) / ctx.tol.analytic)
        err = abs(fwd - rev) / max(1e-8, abs(fwd) + abs(rev), floor)
    ok = err <= ctx.tol.analytic
    f = Finding(check.name, ctx.case.index, "pass" if ok else "fail", "<J v, u>", err, (), fwd, rev,
                "" if ok else "forward and reverse derivatives disagree along a random direction")
    if not ok and math.isfinite(rev):
        _dot_by_fd(ctx, f, v, fwd, rev)
    return f


def _dot_by_fd(ctx, f, v, fwd, rev):
    """Finite differences of phi along v, leaf by leaf: smooth everywhere and agreeing with
    the reverse rule (not the forward mode) -> pass with a note; any kink -> ambiguous."""
    reqs = [(i, None, d, fd.step(ctx.diff64[i], ctx.domains[i], direction=d)) for i, d in enumerate(v)]
    if any(q[3] <= 1e-12 for q in reqs):
        return
    values, bounds, mag = fd.probe_values(ctx, reqs)
    probes = [probe(vals, q[3], mag + ctx.input_terms(ctx.get("rule").grads), bnd)
              for q, vals, bnd in zip(reqs, values, bounds)]
    if any(p.kind != "smooth" for p in probes):
        why = [pieces.singular(vals, q[3], p.noise) for q, vals, p in zip(reqs, values, probes) if p.kind != "smooth"]
        if any(why):
            f.status, f.err = "domain", 0.0
            f.note = pieces.domain_note("a random direction", next(w for w in why if w))
            return
        lo, hi = sum(p.lo - p.slack for p in probes), sum(p.hi + p.slack for p in probes)
        if lo <= rev <= hi:
            f.status, f.note = "ambiguous", "differs along a direction that crosses a kink; your rule's value lies " \
                                             "between the one-sided slopes"
        return
    est, noise = sum(p.estimate for p in probes), sum(p.noise for p in probes)
    ok_rev = relative_error(rev, est, ctx.tol.fd, noise) <= ctx.tol.fd
    ok_fwd = math.isfinite(fwd) and relative_error(fwd, est, ctx.tol.fd, noise) <= ctx.tol.fd
    if ok_rev and not ok_fwd:
        f.status, f.err = "pass", relative_error(rev, est, ctx.tol.fd, noise)
        f.note = (f"autodiff of your primal is wrong here: forward mode gives {fwd:.10g}, finite differences "
                  f"{est:.10g}, your rule {rev:.10g}; your rule agrees with finite differences")


def jvp_fd(ctx, check):
    """The JVP rule's projections <J v, u> against kink-aware finite differences along v."""
    rng = ctx.rng(17)
    reqs = fd.requests_for(ctx, rng, ctx.fd_coords, ctx.fd_directions)
    if not reqs:
        return None
    try:
        touts = forward_mode.tangents(ctx, "jvp_rule", forward_mode.unit_tangents(ctx, reqs))
    except Exception as exc:
        return Finding(check.name, ctx.case.index, "fail", note=f"the jvp rule raised: {line(exc)}")
    values, bounds, mag = fd.probe_values(ctx, reqs)
    proj = [forward_mode.project(t, ctx.cot64) for t in touts]
    mag += max(p[1] for p in proj)
    analytic_values = [p[0] for p in proj]
    results = _judge_requests(ctx, reqs, values, bounds, mag, analytic_values, False,
                              allow=rounding.floor_allowances(ctx, reqs))
    return _fd_finding(ctx, check, kinks.requests_beyond_slopes(ctx, reqs, values, bounds, mag, analytic_values,
                                                                 results))


def jvp_autodiff(ctx, check):
    """The JVP rule's output tangents against jax.jvp of the primal along a random direction
    in each leaf; where they disagree, finite differences of the disagreeing outputs along
    that direction decide (kinks: ambiguous; smooth: the side they agree with wins)."""
    rng = ctx.rng(19)
    on_edge = fd.boundary_coords(ctx, None)
    boundary = on_edge[:4]
    dirs = []
    for k, x in enumerate(ctx.diff64):
        t = [np.zeros(y.shape) for y in ctx.diff64]
        t[k] = rng.standard_normal(x.shape)
        for i, j in on_edge:  # no central difference moves a coordinate on the boundary: one-sided below
            if i == k:
                t[k].flat[j] = 0.0
        dirs.append(t)
    for i, j in boundary:
        t = [np.zeros(y.shape) for y in ctx.diff64]
        t[i].flat[j] = 1.0
        dirs.append(t)
    try:
        rule = forward_mode.tangents(ctx, "jvp_rule", dirs)
    except Exception as exc:
        return Finding(check.name, ctx.case.index, "fail", note=f"the jvp rule raised: {line(exc)}")
    auto = forward_mode.tangents(ctx, "jvp_autodiff", dirs)
    findings = []
    n_leaves = len(ctx.diff64)
    for (i, j), a, b in zip(boundary, rule[n_leaves:], auto[n_leaves:]):
        pa, pb = forward_mode.project(a, ctx.cot64)[0], forward_mode.project(b, ctx.cot64)[0]
        if math.isfinite(pb) and relative_error(pa, pb, ctx.tol.analytic) <= ctx.tol.analytic:
            continue
        f = Finding(check.name, ctx.case.index, "fail", f"d<out, u>/d{kinks.position(ctx, i, j)}", math.inf, (), pa, pb)
        kinks.settle(f, [kinks.at_boundary(ctx, i, j, pa, pb, ctx.cot64, True)], 1)
        findings.append(f)
    for k, (a, b) in enumerate(zip(rule[:n_leaves], auto[:n_leaves])):
        comps = [compare_arrays(n, check.a, x, check.b, y, ctx.tol.analytic, scale_floor=ctx.tol.floor,
                                scale=None if ctx.tol.floor is None else gradient_scale(x, y, dirs[k][k]),
                                atol=ctx.tol.atol)
                 for n, x, y in zip(ctx.out_names, a, b)]
        worst = max(comps, key=lambda c: c.err)
        o = list(ctx.out_names).index(worst.param)
        f = Finding(check.name, ctx.case.index, "pass" if worst.ok else "fail", f"d{worst.param}/d{ctx.names[k]}",
                    worst.err, worst.index, *_values(a[o], b[o], worst.index))
        if not worst.ok:
            f.note = worst.detail
            if all(np.all(np.isfinite(x)) for x in a):
                kinks.explain_tangents(ctx, f, k, dirs[k][k], a, b)
        findings.append(f)
    rank = {"fail": 2, "ambiguous": 1}
    return max(findings, key=lambda f: (rank.get(f.status, 0), f.err if math.isfinite(f.err) else math.inf))


def second_order_check(ctx, check):
    """JAX's derivative of the rule against finite differences of the rule (phi2 =
    <J(x)^T u, w>), on a few coordinates and directions of a case with normal values."""
    if ctx.case.tags.get("values", "normal") != "normal" or ctx.case.tags.get("leading") is not None \
            or isinstance(ctx.get("rule"), Exception):
        return None
    rng = ctx.rng(23)
    w = second_order.weights(ctx, rng)
    try:
        grads = second_order.jax_second(ctx, w)
    except Exception as exc:  # JAX's limitation (reverse mode through a while_loop), not a wrong rule
        ctx.subject.notes.setdefault(f"not run: {check.name}", f"JAX cannot differentiate your rule ({line(exc)})")
        return None
    reqs = fd.requests_for(ctx, rng, ctx.second_order_coords, 2)
    if not reqs:
        return None
    values, bounds, mag = fd.probe_values(ctx, reqs, outs_fn=second_order.outs_fn(ctx), key="second_order_fd",
                                          extra=tuple(ctx.cot64), weights=second_order.flat_weights(w))
    mag += ctx.input_terms(grads)
    if ctx.tol.floor is not None:  # phi2 sums the rule's gradient, whose rounding is of the cotangent's size
        mag += rounding.scale_terms(ctx, ctx.get("rule").grads, w)
    analytic_values = [float(grads[i].flat[j]) if d is None else float(np.sum(grads[i] * d)) for i, j, d, _ in reqs]
    results = _judge_requests(ctx, reqs, values, bounds, mag, analytic_values, False)
    results = kinks.requests_beyond_slopes(ctx, reqs, values, bounds, mag, analytic_values, results, False)
    return _fd_finding(ctx, check, results)


