"""The rounding a float64 gradient carries, measured on a case (`CaseContext.rounding`), and
the allowances judges.py and kinks.py draw from it when a comparison of a user layer fails;
ARCHITECTURE.md ("Rounding, measured rather than assumed") says why each measurement is there.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from jaxnets.gradcheck import tree
from jaxnets.gradcheck.oracles import sources as src
from jaxnets.gradcheck.tolerances import ROUNDING_CAP, ROUNDING_FACTOR, ROUNDING_ULPS


def measure(ctx, cot):
    """`CaseContext.rounding`'s measurement (its docstring says what and why)."""
    s, b = ctx.subject, ctx.bound

    f32 = np.dtype(np.float32)
    to32 = lambda xs: [np.asarray(x, f32) if np.issubdtype(np.asarray(x).dtype, np.floating) else x for x in xs]
    ratio = np.finfo(np.float64).eps / np.finfo(np.float32).eps

    def autodiff(dtype):
        return s.jitted(b.key(("autodiff", dtype)), lambda: partial(b.vjp_of, s.primal), shared=True)

    def rule(dtype):
        if s.jax_rule:
            return s.jitted(b.key(("rule", dtype)), lambda: b.rule)
        return lambda d, a, c: b.rule(d, a, tree.fresh(c), copies=s.copies)

    # the rule is rerun in float32 only when it is JAX code without a while loop: a rule
    # that iterates to a float64 tolerance (a fixed-point backward) would never stop
    rule32 = rule(f32) if s.jax_rule and not src.has_while_loop(b.rule, to32(ctx.diff64), to32(ctx.arrays64), to32(cot)) else None
    runs = [(autodiff(np.dtype(np.float64)), autodiff(f32)), (rule(np.dtype(np.float64)), rule32)]
    grads = lambda fn, d, a, c: _call(lambda: src.as_grad(*fn(d, a, c)).grads)
    noise = None
    for run64, run32 in runs:
        base = grads(run64, ctx.diff64, ctx.arrays64, cot)
        if isinstance(base, Exception) or len(base) != len(ctx.names):
            continue
        cap = ROUNDING_CAP * max([src.max_finite(np.abs(g)) for g in base] + [src.max_finite(np.abs(c)) for c in cot])
        others = [] if run32 is None else [(grads(run32, to32(ctx.diff64), to32(ctx.arrays64), to32(cot)), ratio)]
        for salt in (101, 102):
            rng = ctx.rng(salt)
            move = lambda xs: [x * (1 + ROUNDING_ULPS * np.finfo(np.float64).eps * rng.uniform(-1, 1, np.shape(x)))
                               for x in xs]
            others.append((grads(run64, move(ctx.diff64), ctx.arrays64, move(cot)), 1.0))
        # a gradient is linear in its cotangent: g(u + w) - g(w) differs from g(u) by rounding
        # alone, the cancelling terms' included (a saturated softmax's, whose inputs ulp moves
        # leave saturated)
        rng = ctx.rng(103)
        w = [rng.standard_normal(np.shape(c)) * max(src.max_finite(np.abs(c)), 1e-300) for c in cot]
        both, alone = (grads(run64, ctx.diff64, ctx.arrays64, [c + x for c, x in zip(cot, w)]),
                       grads(run64, ctx.diff64, ctx.arrays64, w))
        if not isinstance(both, Exception) and not isinstance(alone, Exception) and len(both) == len(alone):
            others.append(([a - b for a, b in zip(both, alone)], 1.0))
        for g, factor in others:
            if isinstance(g, Exception) or len(g) != len(base):
                continue
            # a float32 rerun's jumps are scaled down with it (ratio * O(scale)); an ulp move's are not
            moved = [src.max_finite(factor * np.abs(a - a0), cap if factor == 1.0 else np.inf) for a, a0 in zip(g, base)]
            noise = moved if noise is None else [max(m, n) for m, n in zip(moved, noise)]
    return noise


def for_failure(ctx, check, worst, cot, own_rounding=None):
    """The measured rounding of the gradient (per leaf) when it may explain a failed
    comparison of gradient leaves: user layers only (scale-aware tolerances, `tol.floor`),
    so the suite's verdicts keep cs231n's plain relative error."""
    if worst.ok or ctx.tol.floor is None or not check.grads or worst.param not in ctx.names:
        return None
    rounding = ctx.rounding(cot)
    if own_rounding is not None:
        try:
            own = own_rounding()
        except Exception:  # a measurement that cannot run adds nothing
            own = None
        if own is not None and len(own) == len(ctx.names):
            rounding = own if rounding is None else [max(a, b) for a, b in zip(rounding, own)]
    return rounding if rounding is not None and len(rounding) == len(ctx.names) else None


def allowances(ctx, reqs, findings):
    """Per finite-difference request, ROUNDING_FACTOR times the rule's measured rounding
    along it (`CaseContext.rounding`), when a request failed on a user layer; else None."""
    if ctx.tol.floor is None or not any(f[0] == "fail" for f in findings):
        return None
    rounding = ctx.rounding(ctx.cot64)
    if rounding is None or len(rounding) != len(ctx.names):
        return None
    return [ROUNDING_FACTOR * rounding[i] * (1.0 if d is None else float(np.sum(np.abs(d)))) for i, _, d, _ in reqs]


def along(ctx, v):
    """ROUNDING_FACTOR times the rule's measured rounding along the direction v (a list of
    per-leaf arrays); 0 where it is not measured (the suite's checks, float32 runs)."""
    rounding = ctx.rounding(ctx.cot64) if ctx.tol.floor is not None else None
    if rounding is None or len(rounding) != len(v):
        return 0.0
    return ROUNDING_FACTOR * float(sum(r * np.sum(np.abs(x)) for r, x in zip(rounding, v)))


def scale_terms(ctx, grads, weights):
    """sum |weights| times the gradient's scale (its largest entry or the cotangent's, as
    `compare.gradient_scale`): the size of <grads, weights> that the analytic rows' scale floor
    (`tol.floor`) compares at, so the dot-product and second-order rows judge a projection
    with the same floor as the gradient entries it sums. A saturated softmax's gradient is
    rounding of terms of the cotangent's size (its true value ~0): 1.3e-17 from forward mode
    against 7.5e-18 from the reverse rule is a relative error of 5.7e-10 without it."""
    scale = max([src.max_finite(np.abs(g)) for g in grads if np.size(g)]
                + [src.max_finite(np.abs(c)) for c in ctx.cot64 if np.size(c)] + [0.0])
    return scale * float(sum(np.sum(np.abs(w)) for w in weights))


def floor_allowances(ctx, reqs):
    """Per finite-difference request (leaf, flat index or None, direction or None, h), the
    analytic rows' floor as an absolute allowance: tol.analytic times tol.floor times
    `scale_terms` along the request; None where there is no floor (the suite's checks). The
    JVP rule's 1 - 1 / (1 + exp(x)) at x ~ -36 is 2.5e-16 of rounding beside 0."""
    if ctx.tol.floor is None:
        return None
    rule = ctx.get("rule")
    grads = [] if isinstance(rule, Exception) else rule.grads
    return [ctx.tol.analytic * ctx.tol.floor * scale_terms(ctx, grads, [np.ones(1) if d is None else d])
            for _, _, d, _ in reqs]


def _call(fn):
    try:
        return fn()
    except Exception as exc:  # a source that cannot run measures nothing
        return exc
