"""Comparing a layer's gradient sources case by case, for `check_layer`.

`CaseChecker.run_case` takes one LayerCase through every pair of sources (`PAIRS`) and
records a `Finding` per pair: analytic pairs by relative error (entries far below the
gradient's scale compared at GRAD_SCALE_FLOOR of it), the reference strictly, the others
"kink-tolerant" — a disagreement is ambiguous, not a failure, when finite differences show
every probed disagreeing coordinate at a kink with both values between its one-sided slopes
(two conventions); the backward against finite differences coordinate by coordinate and
along the all-ones and a random direction (`finite_diff.probe` / `judge`).
`run_transforms` compares the backward eagerly, under jit and per example under vmap.
"""
from __future__ import annotations

import numpy as np

from jaxnets.verify.cases import domain
from jaxnets.verify.compare import compare_arrays
from jaxnets.verify.finite_diff import fd_coords, judge, probe, relative_error
from jaxnets.verify.oracles import Oracles
from jaxnets.verify.report import Finding, PairSummary
from jaxnets.verify.tolerances import FD_STEP, GRAD_SCALE_FLOOR, TOL_ANALYTIC_F64, TOL_FD_F64

#: failing coordinates of an analytic pair probed by finite differences for a kink
KINK_PROBES = 8

# (pair, first source, second source, how it is judged)
PAIRS = (
    ("backward: runs, finite", "backward", "-", "check"),
    ("backward ~ autodiff", "backward", "autodiff", "kink-tolerant"),
    ("custom_vjp ~ autodiff (in context)", "custom_vjp", "autodiff", "kink-tolerant"),
    ("backward ~ reference", "backward", "reference", "strict"),
    ("backward ~ reference autodiff", "backward", "reference_autodiff", "kink-tolerant"),
    ("forward ~ reference", "forward", "reference", "strict"),
    ("backward ~ finite differences", "backward", "fd", "fd"),
    ("backward: jit ~ eager", "jit", "eager", "strict"),
    ("backward: vmap ~ batch", "vmap", "batch", "strict"),
)


class CaseChecker:
    """Runs the comparisons of every case and collects Findings per pair."""

    def __init__(self, layer, ref, examples, seed, fail_fast=False):
        self.layer, self.ref, self.examples, self.seed, self.fail_fast = layer, ref, examples, seed, fail_fast
        self.findings = []
        self.ran = set()
        self.kept = {}  # case index -> (case, sources) of failing cases, for hints and saving
        self._domains = [domain(examples[0].arrays[k]) for k in layer.wrt]
        self.fd_samples = {}  # case index -> {input: (analytic values, finite differences)}

    def oracles(self, layer, static):
        """The pair's oracles for a case's keyword values (their jitted functions are cached
        by `jaxnets.verify.oracles`, so this is cheap)."""
        return Oracles(layer, static)

    def add(self, finding):
        self.findings.append(finding)

    # ------------------------------------------------------------------ one case

    def run_case(self, case):
        layer = self.layer
        self.ran.add(case.index)
        own = self.oracles(layer, case.static)
        sources = own.direct(case)
        if self.ref is not None:
            ref = self.oracles(self.ref, case.static).direct(case)
            sources["reference"], sources["reference_autodiff"] = ref["backward"], ref.get("autodiff")
        back = sources["backward"]
        if isinstance(back, Exception):
            self.add(Finding(PAIRS[0][0], case.index, "fail", note=f"your pair raised: {_line(back)}"))
            self.kept[case.index] = (case, sources)
            return
        out, grads = back
        bad = [(n, g) for n, g in (("out", out),) + tuple(zip(self.names(), grads)) if not np.all(np.isfinite(g))]
        if bad:
            n, g = bad[0]
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(g))[0]) if g.ndim else ()
            self.add(Finding(PAIRS[0][0], case.index, "fail", n, float("inf"), idx,
                             note=f"NaN/inf in {n} for finite inputs ({case.values} values): overflow?"))
            self.kept[case.index] = (case, sources)
            return
        self.add(Finding(PAIRS[0][0], case.index, "pass"))
        for pair, a, b, how in PAIRS[1:6]:
            if a == "custom_vjp" or b not in sources or sources[b] is None:
                continue
            self._analytic(pair, case, sources, a, b, how, case.dout)
        if self.fail_fast and any(f.status == "fail" and f.case == case.index for f in self.findings):
            self.kept[case.index] = (case, sources)
            return
        rng = np.random.default_rng([self.seed, case.index, 7])
        ctx, r = own.context(case, rng)
        if ctx is not None:
            dout = r[0] + r[1] * out
            ctx_sources = {"custom_vjp": _with_out(ctx, out), "autodiff": own.autodiff(case.arrays, dout)}
            self._analytic(PAIRS[2][0], case, ctx_sources, "custom_vjp", "autodiff", "kink-tolerant", dout)
        self._fd(case, grads, rng)
        if any(f.status == "fail" and f.case == case.index for f in self.findings):
            self.kept[case.index] = (case, sources)

    def names(self):
        return tuple(self.layer.param_name(i) for i in range(len(self.layer.wrt)))

    def _analytic(self, pair, case, sources, a, b, how, dout):
        ra, rb = sources["backward" if a == "forward" else a], sources[b]
        for r, who in ((ra, a), (rb, b)):
            if isinstance(r, Exception):
                self.add(Finding(pair, case.index, "fail", note=f"{who} raised: {_line(r)}"))
                return
        if a == "forward":
            c = compare_arrays("out", a, ra[0], b, rb[0], TOL_ANALYTIC_F64, scale_floor=GRAD_SCALE_FLOOR)
            self.add(Finding(pair, case.index, "pass" if c.ok else "fail", "out", c.err, c.index,
                             *_values(ra[0], rb[0], c.index), note="" if c.ok else c.detail))
            return
        comps = [compare_arrays(n, a, ga, b, gb, TOL_ANALYTIC_F64, scale_floor=GRAD_SCALE_FLOOR,
                                scale=_scale(ga, gb, dout))
                 for n, ga, gb in zip(self.names(), ra[1], rb[1])]
        worst = max(comps, key=lambda c: c.err)
        i = self.names().index(worst.param)
        finding = Finding(pair, case.index, "pass" if worst.ok else "fail", worst.param, worst.err, worst.index,
                          *_values(ra[1][i], rb[1][i], worst.index))
        if not worst.ok and how == "kink-tolerant" and np.isfinite(worst.err):
            self._at_kinks(finding, case, ra[1], rb[1], dout)
        elif not worst.ok:
            finding.note = worst.detail
        self.add(finding)

    def _at_kinks(self, finding, case, ga, gb, dout):
        """Ambiguous when every probed disagreeing coordinate is a kink (or too close to one
        for the steps) and both sources lie between its one-sided slopes."""
        bad = []
        for i, (a, b) in enumerate(zip(ga, gb)):
            floor = GRAD_SCALE_FLOOR * _scale(a, b, dout)
            err = np.abs(a - b) / np.maximum(max(1e-8, floor), np.abs(a) + np.abs(b))
            flat = np.flatnonzero(err > TOL_ANALYTIC_F64)
            bad += [(float(err.flat[j]), i, int(j)) for j in flat]
        bad.sort(reverse=True)
        requests = [(i, j, None, self._step(case, i, j)) for _, i, j in bad[:KINK_PROBES]]
        values, bounds, mag = self.oracles(self.layer, case.static).fd_values(case, dout, requests)
        mag += max(self._input_terms(case, ga), self._input_terms(case, gb))
        conventions = []
        for (i, j, _, h), vals, bnd in zip(requests, values, bounds):
            pr = probe(vals, h, mag, bnd)
            va, ca = judge(pr, float(ga[i].flat[j]))
            vb, cb = judge(pr, float(gb[i].flat[j]))
            if pr.kind == "smooth" or "fail" in (va, vb):
                where = f"{self.names()[i]}{[int(v) for v in np.unravel_index(j, ga[i].shape)]}"
                finding.note = (f"finite differences are smooth at {where}, where they disagree too: not a "
                                f"convention at a kink" if pr.kind == "smooth"
                                else f"at {where}, a kink, a value lies outside the one-sided slopes {_fmt2(pr)}: "
                                     f"no convention")
                return
            conventions.append(f"{ca or '?'}/{cb or '?'}")
        finding.status = "ambiguous"
        finding.conventions = tuple(conventions)
        finding.note = (f"differs only at {len(bad)} kink coordinate(s), both between the one-sided slopes "
                        f"({', '.join(sorted(set(conventions)))} = {finding.pair.split(' ~ ')[0]}/"
                        f"{finding.pair.split(' ~ ')[1].split(' (')[0]})")

    # ------------------------------------------------------------------ finite differences

    def _step(self, case, i, flat=None, direction=None):
        x = case.arrays[self.layer.wrt[i]]
        rms = float(np.sqrt(np.mean(x * x))) if x.size else 1.0
        h = FD_STEP * min(1.0, max(rms, 1e-3))
        dom = self._domains[i]
        if dom in ("unit", "positive"):  # stay inside the domain (log, sqrt of the input)
            dist = x if dom == "positive" else np.minimum(x, 1.0 - x)
            if flat is not None:
                h = min(h, 0.5 * float(dist.flat[flat]))
            else:
                with np.errstate(divide="ignore"):
                    h = min(h, 0.5 * float(np.min(dist / np.abs(direction))))
        return h

    def _input_terms(self, case, grads):
        """sum |x * g| over the inputs: the size of phi's change when each input is rounded,
        which a step of h cannot resolve below eps * this / h (outputs that are exactly 0 at
        the base point leave max |phi| no measure of it)."""
        return float(sum(np.sum(np.abs(case.arrays[k] * g)) for k, g in zip(self.layer.wrt, grads)))

    def _fd(self, case, grads, rng):
        layer = self.layer
        requests = []
        for i, k in enumerate(layer.wrt):
            shape = case.arrays[k].shape
            coords = np.ravel_multi_index(fd_coords(shape, rng), shape) if shape else np.array([0])
            requests += [(i, int(j), None, self._step(case, i, int(j))) for j in coords]
            for d in (np.ones(shape), rng.standard_normal(shape)):
                requests.append((i, None, d, self._step(case, i, direction=d)))
        # an input on its domain's edge (a probability of exactly 0) has no room for a step
        requests = [r for r in requests if r[3] > 1e-12]
        values, bounds, mag = self.oracles(layer, case.static).fd_values(case, case.dout, requests)
        mag += self._input_terms(case, grads)
        worst, conventions, statuses = None, [], []
        samples = {}  # input -> [(analytic, estimate)] at smooth coordinates, for hints
        for (i, flat, d, h), vals, bnd in zip(requests, values, bounds):
            g = grads[i]
            analytic = float(g.flat[flat]) if d is None else float(np.sum(g * d))
            pr = probe(vals, h, mag, bnd)
            status, conv = judge(pr, analytic)
            if d is None and pr.kind == "smooth":
                samples.setdefault(i, []).append((analytic, pr.estimate))
            statuses.append(status)
            if conv and d is None:  # a convention is a coordinate's; a direction mixes several
                conventions.append(conv)
            # the worst decided comparison (a failure first); an ambiguous one only when none is decided
            rank = ({"fail": 2, "pass": 1}.get(status, 0), relative_error(analytic, pr.estimate, TOL_FD_F64, pr.noise))
            if worst is None or rank > worst[0]:
                where = (tuple(int(v) for v in np.unravel_index(flat, g.shape)) if d is None
                         else ("ones" if np.all(d == 1) else "random direction",))
                worst = (rank, status, i, where, analytic, pr)
        status = "fail" if "fail" in statuses else ("ambiguous" if "ambiguous" in statuses else "pass")
        (decided, err), st, i, where, analytic, pr = worst
        note = "" if pr.kind == "smooth" else f"finite differences {pr.kind} there: one-sided {_fmt2(pr)}"
        if where and isinstance(where[0], str):
            note = f"directional derivative along {where[0]}" + (f"; {note}" if note else "")
            where = ()
        self.add(Finding("backward ~ finite differences", case.index, status, self.names()[i],
                         err if decided else 0.0, where, analytic, pr.estimate, note, tuple(conventions)))
        self.fd_samples[case.index] = {i: np.asarray(v).T for i, v in samples.items()}

    # ------------------------------------------------------------------ jit, eager, vmap

    def run_transforms(self, case_list):
        layer = self.layer
        firsts = {}
        for c in case_list:
            if c.leading is None and c.values == "normal":
                firsts.setdefault(c.example, c)
        for case in firsts.values():
            own = self.oracles(layer, case.static)
            jitted = own.direct(case)["backward"]
            if isinstance(jitted, Exception):
                continue
            self._transform("backward: jit ~ eager", case, "jit", jitted, "eager", own.eager(case))
            if layer.rows_independent:
                self._transform("backward: vmap ~ batch", case, "vmap", own.per_example(case), "batch", jitted)

    def _transform(self, pair, case, a, ra, b, rb):
        self.ran.add(case.index)
        self._analytic(pair, case, {a: ra, b: rb}, a, b, "strict", case.dout)

    # ------------------------------------------------------------------ summaries

    def summaries(self):
        out = {}
        for pair, a, b, _ in PAIRS:
            found = [f for f in self.findings if f.pair == pair]
            if found:
                out[pair] = PairSummary(pair, a, b, found)
        return out


def _scale(a, b, dout):
    """The size rounding in a gradient is measured against: its largest entry, or the
    upstream gradient's (a saturated tanh's gradient is all rounding of 1 - out**2)."""
    sizes = [float(np.max(np.abs(v))) for v in (a, b, dout) if np.size(v)]
    return max(sizes) if sizes else 0.0


def _values(a, b, index):
    try:
        return float(np.asarray(a)[index]), float(np.asarray(b)[index])
    except (IndexError, TypeError, ValueError):
        return None, None


def _with_out(r, out):
    return r if isinstance(r, Exception) else (out, r)


def _line(exc):
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _fmt2(pr):
    return f"[{pr.lo:.6g}, {pr.hi:.6g}] (left {pr.left:.6g}, right {pr.right:.6g})"
