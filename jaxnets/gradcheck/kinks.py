"""Explaining a disagreement between two gradient sources by finite differences at the
coordinates where they disagree: at a kink (both values between its one-sided slopes: two
conventions, "ambiguous"; a value outside them may still be one adjacent piece's derivative,
or the point singular: `pieces.py`), on the domain's boundary (one-sided differences decide
where they converge), or where finite differences are smooth (they decide; with `arbiter`, a
rule that agrees with them while autodiff of the primal does not passes, with a note).
`requests_beyond_slopes` judges again the finite-difference rows' failed requests.
"""
from __future__ import annotations

import math

import numpy as np

from jaxnets.gradcheck.compare import cotangent_scale, gradient_scale
from jaxnets.gradcheck import pieces
from jaxnets.gradcheck.finite_diff import judge as judge_probe, probe, relative_error
from jaxnets.gradcheck.oracles import fd
from jaxnets.gradcheck.pieces import position
from jaxnets.gradcheck.tolerances import ROUNDING_FACTOR

#: failing coordinates of an analytic pair probed by finite differences for a kink
KINK_PROBES = 8


def bad_coords(ctx, ga, gb, cot, rounding=None):
    tol, bad = ctx.tol, []
    dscale = cotangent_scale(cot)
    for i, (a, b) in enumerate(zip(ga, gb)):
        atol = max(tol.atol or 0.0, ROUNDING_FACTOR * rounding[i] if rounding else 0.0)
        floor = max(1e-8, (tol.floor or 0.0) * gradient_scale(a, b, dscale), atol / tol.analytic)
        err = np.abs(a - b) / np.maximum(floor, np.abs(a) + np.abs(b))
        bad += [(float(err.flat[j]), i, int(j)) for j in np.flatnonzero(~(err <= tol.analytic))]
    bad.sort(reverse=True)
    return bad


def finding_first(ctx, finding, bad):
    """The disagreeing coordinates with the finding's own first, so the evidence a report
    prints is about the entry it names."""
    names = list(ctx.names)
    if finding.param not in names or not finding.index:
        return bad
    i = names.index(finding.param)
    try:
        j = int(np.ravel_multi_index(tuple(finding.index), ctx.diff64[i].shape))
    except ValueError:
        return bad
    return sorted(bad, key=lambda t: (t[1], t[2]) != (i, j))


def explain(ctx, finding, ga, gb, cot, arbiter=False, rounding=None):
    """Explain a disagreement by finite differences at the disagreeing coordinates.

    At a kink (or too close to one for the steps) both values must lie between the
    one-sided slopes: the finding is ambiguous (two conventions). On the domain's boundary
    (0 for a positive input) one-sided differences into the domain decide when they converge,
    and otherwise the rule's finite value is a convention they cannot confirm (ambiguous).
    With `arbiter`, where finite differences decide and agree with the first source (the
    rule) but not the second (autodiff of the primal), the finding passes with a note."""
    bad = finding_first(ctx, finding, bad_coords(ctx, ga, gb, cot, rounding))[:KINK_PROBES]
    cot64 = [np.asarray(c, np.float64) for c in cot]
    verdicts = []  # (kind: "kink" | "piece" | "domain" | "overruled" | "fail", note, convention)
    two_sided, outside = [], []
    for _, i, j in bad:
        h = fd.step(ctx.diff64[i], ctx.domains[i], flat=j)
        if h > 1e-12:
            two_sided.append((i, j, None, h))
        else:
            verdicts.append(at_boundary(ctx, i, j, float(ga[i].flat[j]), float(gb[i].flat[j]), cot64, arbiter))
    if two_sided:
        values, bounds, mag = fd.probe_values(ctx, two_sided, weights=cot64)
        mag += max(ctx.input_terms(finite(ga)), ctx.input_terms(finite(gb)))
        for (i, j, _, h), vals, bnd in zip(two_sided, values, bounds):
            pr = probe(vals, h, mag, bnd)
            a, b = float(ga[i].flat[j]), float(gb[i].flat[j])
            va, ca = judge_probe(pr, a, ctx.tol.fd)
            vb, cb = judge_probe(pr, b, ctx.tol.fd)
            where = position(ctx, i, j)
            if pr.kind == "smooth":
                if arbiter and va == "pass" and vb == "fail":
                    verdicts.append(("overruled", (where, pr.estimate, a, b), None))
                elif arbiter and va == "fail" and vb == "pass":
                    verdicts.append(("fail", f"finite differences at {where} ({pr.estimate:.10g}) agree with "
                                             f"autodiff, not with your rule", None))
                else:
                    verdicts.append(("fail", f"finite differences are smooth at {where}, where they disagree too: "
                                             f"not a convention at a kink", None))
            elif "fail" in (va, vb):
                outside.append((i, j, h, vals, pr, a, b, va, vb))
            else:
                verdicts.append(("kink", "", f"{ca or '?'}/{cb or '?'}"))
        verdicts += beyond_slopes(ctx, outside, cot64)
    settle(finding, verdicts, len(bad_coords(ctx, ga, gb, cot, rounding)))


def beyond_slopes(ctx, outside, cot64):
    """Verdicts for disagreeing coordinates at a kink where a value lies outside the one-sided
    slopes: "domain" where the function is singular there (`pieces.singular`); a kink where
    each source's values there are the derivative of one adjacent piece
    (`pieces.adjacent_piece`); otherwise a failure."""
    verdicts, rest = [], []
    for i, j, h, vals, pr, a, b, va, vb in outside:
        why = pieces.singular(vals, h, pr.noise)
        if why:
            verdicts.append(("domain", pieces.domain_note(position(ctx, i, j), why), None))
        else:
            rest.append((i, j, h, vals, pr, a, b, va, vb))
    if not rest:
        return verdicts
    reqs = [(i, j, None, h) for i, j, h, *_ in rest]
    conv = {}
    for side, k in (("your rule", 5), ("autodiff", 6)):
        if all(r[k + 2] != "fail" for r in rest):
            continue
        found = pieces.adjacent_piece(ctx, reqs, [r[k] for r in rest], cot64)
        if found is None:
            r = next(r for r in rest if r[k + 2] == "fail")
            return verdicts + [("fail", f"at {position(ctx, r[0], r[1])}, a kink, {side}'s value lies outside the "
                                        f"one-sided slopes {slopes(r[4])} and is the derivative of no adjacent piece "
                                        f"probed: no convention", None)]
        conv[side] = pieces.describe_piece(ctx, found[0], found[1], [(r[0], r[1]) for r in rest])
    note = "; ".join(f"{side} follows {piece}" for side, piece in conv.items())
    return verdicts + [("kink", "", "piece/piece") for _ in rest[:-1]] + [("piece", note, "piece/piece")]


def finite(grads):
    return [np.where(np.isfinite(g), g, 0.0) for g in grads]


def at_boundary(ctx, i, j, a, b, cot64, arbiter):
    """A verdict for a disagreement at a coordinate on its domain's boundary."""
    where = f"{position(ctx, i, j)} = {ctx.diff64[i].flat[j]:g}, the domain's boundary"
    r1, r2, mag = fd.one_sided(ctx, i, j, cot64)
    if not math.isfinite(a):
        return ("fail", f"your rule is {a} at {where}, where the forward is finite", None)
    noise = 32 * np.finfo(np.float64).eps * mag / (fd.FD_STEP / 4)
    if relative_error(r1, r2, ctx.tol.fd, noise) <= ctx.tol.fd:  # one-sided differences converge
        ok_a = relative_error(a, r2, ctx.tol.fd, noise) <= ctx.tol.fd
        ok_b = math.isfinite(b) and relative_error(b, r2, ctx.tol.fd, noise) <= ctx.tol.fd
        if ok_a and not ok_b and arbiter:
            return ("overruled", (where, r2, a, b), None)
        if ok_a and ok_b:
            return ("kink", "", "one-sided/one-sided")
        return ("fail", f"one-sided differences at {where} give {r2:.10g}", None)
    side = "autodiff is " + (f"{b}" if not math.isfinite(b) else f"{b:.10g}")
    return ("kink", f"at {where} one-sided differences do not converge ({r1:.6g}, {r2:.6g}); your rule's "
                    f"{a:.10g} is a convention there ({side})", "boundary/boundary")


def settle(finding, verdicts, n_bad):
    fails = [v for v in verdicts if v[0] == "fail"]
    if not verdicts or fails:
        if fails:
            finding.note = fails[0][1]
        return
    domain = [v for v in verdicts if v[0] == "domain"]
    if domain:  # a singular point: no derivative to compare
        finding.status, finding.note, finding.err = "domain", domain[0][1], 0.0
        return
    overruled = [v[1] for v in verdicts if v[0] == "overruled"]
    kinks = [v for v in verdicts if v[0] in ("kink", "piece")]
    if overruled:
        where, est, a, b = overruled[0]
        note = (f"autodiff of your primal is wrong here: at {where} finite differences give {est:.10g}, your rule "
                f"{a:.10g}, autodiff {b:.10g}; your rule agrees with finite differences"
                + (f" ({len(overruled)} coordinate(s))" if len(overruled) > 1 else ""))
        if not kinks:
            finding.status, finding.note = "pass", note
            finding.err = 0.0  # the rule agreed with finite differences within their tolerance
            return
    conventions = tuple(v[2] for v in kinks if v[2] and v[2] not in ("boundary/boundary", "one-sided/one-sided"))
    boundary_notes = [v[1] for v in kinks if v[1] and v[0] == "kink"]
    piece_notes = [v[1] for v in kinks if v[0] == "piece"]
    finding.status = "ambiguous"
    finding.conventions = conventions
    a, b = finding.check.split(" ~ ")[0], finding.check.split(" ~ ")[-1].split(" (")[0]
    finding.note = (boundary_notes[0] if boundary_notes else
                    f"differs at {n_bad} coordinate(s) where several pieces meet: {piece_notes[0]}, whose derivative "
                    f"lies outside a single coordinate's one-sided slopes" if piece_notes else
                    f"differs only at {n_bad} kink coordinate(s), both between the one-sided slopes "
                    f"({', '.join(sorted(set(conventions)))} = {a}/{b})")


def slopes(pr):
    return f"[{pr.lo:.6g}, {pr.hi:.6g}] (left {pr.left:.6g}, right {pr.right:.6g})"



def explain_tangents(ctx, finding, k, direction, ta, tb):
    """`_at_kinks` for output tangents along one direction of leaf k: each disagreeing
    output coordinate probed by finite differences of that output alone."""
    h = fd.step(ctx.diff64[k], ctx.domains[k], direction=direction)
    if h <= 1e-12:
        return
    verdicts = []
    for o, (a, b) in enumerate(zip(ta, tb)):
        err = np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))
        for j in np.flatnonzero(~(err <= ctx.tol.analytic))[:KINK_PROBES]:
            weights = [np.zeros(np.shape(c)) for c in ctx.cot64]
            weights[o].flat[j] = 1.0
            values, bounds, mag = fd.probe_values(ctx, [(k, None, direction, h)], weights=weights)
            pr = probe(values[0], h, mag + abs(float(a.flat[j])), bounds[0])
            va, ca = judge_probe(pr, float(a.flat[j]), ctx.tol.fd)
            vb, cb = judge_probe(pr, float(b.flat[j]), ctx.tol.fd)
            where = f"{ctx.out_names[o]}{[int(v) for v in np.unravel_index(j, np.shape(a))]}"
            if pr.kind == "smooth" and va == "pass" and vb != "pass":
                verdicts.append(("overruled", (where, pr.estimate, float(a.flat[j]), float(b.flat[j])), None))
            elif pr.kind == "smooth" or "fail" in (va, vb):
                verdicts.append(("fail", f"finite differences of {where} along the direction decide against "
                                         f"{'your rule' if va == 'fail' else 'both'}", None))
            else:
                verdicts.append(("kink", "", f"{ca or '?'}/{cb or '?'}"))
    settle(finding, verdicts, len(verdicts))


def requests_beyond_slopes(ctx, reqs, values, bounds, mag, analytic_values, results, first_order=True):
    """Failed requests judged again: "domain" where the function is singular at the point
    (`pieces.singular`: one-sided quotients that blow up along some request) or where smooth
    finite differences cannot resolve a spike of the derivative (`pieces.spike`); "ambiguous"
    where finite differences show a kink and one piece adjacent to the point gives every
    failed value (`pieces.adjacent_piece`). `first_order`: the requests difference the primal
    (not second order's function), so the rule and the pieces can be probed."""
    bad = [n for n, r in enumerate(results[:len(reqs)]) if r[0] == "fail"]
    if not bad:
        return results
    probes = [probe(v, q[3], mag, b) for q, v, b in zip(reqs, values, bounds)]
    singular = [(n, pieces.singular(values[n], reqs[n][3], p.noise)) for n, p in enumerate(probes)
                if p.kind != "smooth"]
    singular = [(n, why) for n, why in singular if why]
    results = list(results)
    if singular:  # the function has no derivative at this point, along any direction
        n0, why = singular[0]
        note = pieces.domain_note(where(ctx, reqs[n0]), why)
        for n in bad:
            results[n] = ("domain", 0.0, *results[n][2:6], note, None, False)
        return results
    smooth = [n for n in bad if probes[n].kind == "smooth"]
    if smooth and first_order:  # a value far beyond smooth finite differences that no small move keeps
        slope = max((abs(v) for p in probes for v in (p.estimate, p.left, p.right) if math.isfinite(v)), default=0.0)
        why = pieces.spike(ctx, [reqs[n] for n in smooth], [analytic_values[n] for n in smooth],
                           [probes[n].estimate for n in smooth], slope)
        if why:
            note = pieces.domain_note(where(ctx, reqs[smooth[0]]), why)
            for n in bad:
                results[n] = ("domain", 0.0, *results[n][2:6], note, None, False)
            return results
    rest = bad
    if smooth or not first_order:
        return results
    found = pieces.adjacent_piece(ctx, [reqs[n] for n in rest], [analytic_values[n] for n in rest])
    if found is None:
        return results
    label, D, ests = found
    piece = pieces.describe_piece(ctx, label, D, [(reqs[n][0], reqs[n][1]) for n in rest if reqs[n][1] is not None])
    for n, est in zip(rest, ests):
        results[n] = ("ambiguous", 0.0, *results[n][2:5], est, f"several pieces meet here: the value is the "
                      f"derivative of {piece} (outside one coordinate's one-sided slopes {slopes(probes[n])})",
                      "piece", False)
    return results


def where(ctx, req):
    i, flat, d, _ = req
    return position(ctx, i, flat) if d is None else f"{ctx.names[i]} along a direction"
