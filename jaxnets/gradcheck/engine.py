"""The one loop every check runs through: a subject, its cases, a table of checks -> a Report.

`run(subject, cases, table, options)` takes each case through every row of the table whose
oracles can run on the subject (`needs`, decided once; a row that cannot run is reported with
why), collecting one Finding per row and case. `CaseContext` is a case bound to the subject:
its leaves in the run's dtype and in float64, the output cotangent, and the gradient sources,
each computed once per case on first use (so a row that needs autodiff and another that needs
it too share one call).
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import jax
import numpy as np

from jaxnets.gradcheck import rounding, tree
from jaxnets.gradcheck.case import Case, domain
from jaxnets.gradcheck.oracles import batch, fd
from jaxnets.gradcheck.oracles import sources as src
from jaxnets.gradcheck.oracles import transforms
from jaxnets.gradcheck.report import Finding, Report, RowSummary
from jaxnets.gradcheck.tolerances import FD_MAX_COORDS, Tolerance


class CaseTimeout(Exception):
    """A case ran longer than `Options.timeout` seconds."""


@dataclass
class Options:
    tol: Tolerance = field(default_factory=Tolerance)
    seed: int = 0
    dtype: object = np.float64
    fail_fast: bool = False
    fd_coords: int = FD_MAX_COORDS
    fd_directions: int = 2
    second_order: bool = True
    second_order_coords: int = 6
    transforms: bool = True
    timeout: float | None = None
    progress: Callable | None = None  # progress(done, total, elapsed) every few seconds
    fd_salt: int = 1  # the suite's Richardson coordinates: rng([seed, fd_salt])
    fd_limit: int = FD_MAX_COORDS
    batched: tuple = ()  # positional arguments with the batch axis (vmap per example)
    rows_independent: bool = False


class CaseContext:
    """One case bound to the subject: leaves, cotangent, and memoised sources."""

    def __init__(self, subject, case, options, out_treedef):
        self.subject, self.case, self.options = subject, case, options
        self.tol = options.tol
        self.dtype = np.dtype(options.dtype)
        self.bound, diff, arrays = subject.bind(case.args, case.kwargs)
        self.bound.out_treedef = out_treedef
        self.names = self.bound.names
        self.diff64 = [np.asarray(d, np.float64) for d in diff]
        self.arrays64 = list(arrays)
        self.diff = [d.astype(self.dtype) for d in self.diff64]
        self.arrays = [_cast(a, self.dtype) for a in arrays]
        self.cot64 = [np.asarray(c, np.float64) for c in jax.tree_util.tree_leaves(case.cotangent)]
        self.cot = [c.astype(self.dtype) for c in self.cot64]
        self.out_names = output_names(subject, len(self.cot64))
        stated = case.tags.get("domains", ())
        self.domains = [stated[a] if a < len(stated) and stated[a] else domain(x)
                        for a, x in zip(self.bound.sp.diff_args, self.diff64)]
        self._refine_domains()
        if subject.reference is not None:
            r = subject.reference
            self.ref_bound, ref_diff, self.ref_arrays = r.bind(case.args, case.kwargs)
            self.ref_bound.out_treedef = out_treedef
            self.ref_diff = [np.asarray(d, np.float64) for d in ref_diff]
        self.fd_coords = options.fd_coords
        self.fd_directions = options.fd_directions
        self.second_order_coords = options.second_order_coords
        self.fd_samples = {}
        self.skip = False
        self.memo = {}  # what was computed for this case, by name or key (filled ahead by oracles.batch)

    def _refine_domains(self):
        """A domain inferred from an example (a bias that happened to be positive) is a guess:
        where the forward is still finite just beyond a leaf's boundary, the leaf is treated
        as real here, so its zeros get two-sided, kink-aware differences rather than one-sided
        ones against a boundary that is not there."""
        for i, (x, dom) in enumerate(zip(self.diff64, self.domains)):
            if dom not in ("positive", "nonnegative", "unit"):
                continue
            lower, upper = x == 0, (x == 1) & (dom == "unit")
            if not (lower.any() or upper.any()):
                continue
            moved = [d.copy() for d in self.diff64]
            moved[i] = np.where(lower, -1e-3, np.where(upper, 1 + 1e-3, x))
            try:
                outs = self.bound.outputs(moved, self.arrays64)
                beyond = all(np.all(np.isfinite(np.asarray(o, np.float64))) for o in outs)
            except Exception:
                beyond = False
            if beyond:
                self.domains[i] = "real"

    def get(self, name):
        """A source's Grad for this case (or the Exception it raised), computed once."""
        if name not in self.memo:
            self.memo[name] = _call(self._source(name))
        return self.memo[name]

    def _source(self, name):
        s = self.subject
        if name in s.sources:
            return lambda: s.sources[name](self)
        if name in ("jit", "batch"):
            return lambda: self.get("rule")
        if name == "eager":
            return lambda: transforms.eager(self)
        if name == "vmap":
            return lambda: transforms.per_example(self, self.options.batched)
        fn = src.SOURCES[name]
        return lambda: fn(self)

    def reference_finite(self):
        """Whether the reference computes finite outputs on this case."""
        r = self.get("reference") if self.subject.reference is not None else None
        return r is not None and not isinstance(r, Exception) and all(np.all(np.isfinite(o)) for o in r.outputs)

    def autodiff_at(self, cot):
        """jax.vjp of the primal at another cotangent (the in-context check's)."""
        s, b = self.subject, self.bound
        from functools import partial

        key = batch.autodiff_at_key(cot)
        if key in self.memo:  # computed with the other cases of its signature
            return self.memo[key]
        fn = s.jitted(b.key(("autodiff", self.dtype)), lambda: partial(b.vjp_of, s.primal), shared=True)
        return _call(lambda: src.as_grad(*fn(self.diff64, self.arrays64, [np.asarray(c) for c in cot])))

    def rounding(self, cot):
        """Per gradient leaf, the rounding a float64 computation of this gradient carries on
        this case, measured (`rounding.measure`), the largest of: (1) autodiff of the primal
        and the rule (JAX code without a while loop) rerun in float32, their distance from
        float64 times eps(float64) / eps(float32); (2) the rule and autodiff rerun in float64
        on inputs and cotangent moved by up to ROUNDING_ULPS ulps, their largest move (a
        residue of rounding changes at random with its inputs; a mistake does not), moves
        above ROUNDING_CAP of the gradient's scale left out (a tie or kink crossed). Where
        the gradient is itself a cancellation — a softmax row that sees one key has
        ds = p * (dp - p dp) = 0 exactly, and a fused multiply-add leaves eps * |dp|; a key
        bias, which no softmax sees, has a true gradient of 0 made of O(|ds| |q|) terms — this
        is far above ulps of the gradient, which is all the scale floor allows. None for runs
        not in float64 or when neither source runs. Computed only to explain a disagreement."""
        if self.dtype != np.float64:
            return None
        key = ("rounding", tuple(np.asarray(c).tobytes() for c in cot))
        if key not in self.memo:
            self.memo[key] = rounding.measure(self, [np.asarray(c, np.float64) for c in cot])
        return self.memo[key]

    def rng(self, salt):
        return np.random.default_rng([self.options.seed, self.case.index, salt])

    def input_terms(self, grads):
        """sum |x * g| over the leaves: the size of phi's change when each input is rounded,
        which a step of h cannot resolve below eps * this / h."""
        return float(sum(np.sum(np.abs(x * g)) for x, g in zip(self.diff64, grads) if np.shape(g) == x.shape))

    def richardson(self):
        if "richardson" not in self.memo:
            self.memo["richardson"] = fd.richardson_estimates(self, self.options.fd_salt, self.options.fd_limit)
        return self.memo["richardson"]

    def domain_note(self, name, index):
        i = list(self.names).index(name)
        x = self.diff64[i]
        if index and self.domains[i] in ("positive", "nonnegative", "unit") and x[index] in (0.0, 1.0):
            return f"at {name}{list(index)} = {x[index]:g}, the domain's boundary"
        return ""


def _cast(a, dtype):
    if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating):
        return a.astype(dtype)
    return a


def _call(fn):
    try:
        return fn()
    except Exception as exc:  # a broken implementation is a failed check, not a crash
        return exc


def output_names(subject, n):
    names = tuple(subject.output_names)
    if len(names) == n:
        return names
    return ("out",) if n == 1 else tuple(f"out[{k}]" for k in range(n))


def available(subject, check, options):
    """None when the row can run on the subject, else why not."""
    for need in check.needs:
        why = _need(subject, need, options)
        if why:
            return why
    return None


def _need(s, need, options):
    if need in ("rule", "autodiff", "reference", "reference_autodiff"):
        if need == "autodiff" and s.kind == "function":
            return "a plain JAX function: its rule is JAX's own derivative of it"
        return src.available(s, need)
    if need == "wired":
        return None if s.wired is not None and s.jax_rule else s.notes.get("custom_vjp", "needs a JAX-traceable rule")
    if need == "jvp_rule":
        return None if s.jvp_rule is not None else "no jvp rule (forward mode is checked for custom_jvp functions)"
    if need == "autodiff_jvp":
        return None if s.jax_primal and s.rule is not None else "needs a JAX-traceable primal"
    if need == "second_order":
        return None if options.second_order else "off (second_order=False)"
    if need == "transforms":
        if not options.transforms:
            return "off (transforms=False)"
        return None if s.jax_rule else s.notes.get("transforms", "needs a JAX-traceable rule")
    if need == "vmap":
        if not options.transforms or not s.jax_rule:
            return "needs the transforms"
        return None if options.rows_independent and options.batched else s.notes.get(
            "vmap", "rows are not independent (a row's output depends on other rows, or N = 1)")
    return f"unknown need {need!r}"


@contextlib.contextmanager
def time_limit(seconds):
    """Raise CaseTimeout in the block after `seconds` (main thread only; a pure-Python loop
    is interrupted, a call stuck inside C code only when it returns)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise CaseTimeout(f"timed out after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


#: transforms are checked on the first case of each example with normal values and its own
#: leading size (one compilation more per example)
def _transform_cases(cases):
    firsts = {}
    for c in cases:
        if c.tags.get("leading") is None and c.tags.get("values", "normal") == "normal":
            firsts.setdefault(c.tags.get("example", 0), c.index)
    return set(firsts.values())


def run(subject, cases, table, options, out_treedef, oracles=None, settings=None, name=None):
    """Every case through every runnable row; returns a Report (`kept`: the contexts of
    failing cases, for hints and saving)."""
    start = time.perf_counter()
    rows = {c.name: RowSummary(c.name, c.a, c.b) for c in table}
    notes = dict(subject.notes)
    active = []
    for check in table:
        why = available(subject, check, options)
        if why:
            notes.setdefault(f"not run: {check.name}", why)
        else:
            active.append(check)
    transform_cases = _transform_cases(cases)
    kept, last_progress, done = {}, start, []
    contexts = _batched_contexts(subject, cases, options, out_treedef, active)
    for case in cases:
        ctx = None
        try:
            with time_limit(options.timeout):
                ctx = contexts.pop(case.index, None) or CaseContext(subject, case, options, out_treedef(case))
                for check in active:
                    if check.sources[:1] in (("jit",), ("vmap",)) and case.index not in transform_cases:
                        continue
                    if "wired" in check.needs and case.tags.get("leading") is not None:
                        continue  # in context at the examples' own sizes: each other size compiles it again
                    if ctx.skip:  # a domain case: only a reference that is finite there can say more
                        if check.name != "forward ~ reference" or not ctx.reference_finite():
                            continue
                        if not subject.reference.convention:  # the project's twin: a numerical limit
                            rows[check.name].findings.append(Finding(
                                check.name, case.index, "domain", note="the forward is not finite here where the "
                                "project's twin is: numerically unstable at these values"))
                            continue
                    finding = check.judge(ctx, check)
                    if finding is not None:
                        rows[check.name].findings.append(finding)
        except CaseTimeout as exc:
            first = table[0].name
            rows[first].findings.append(Finding(first, case.index, "fail", note=f"{exc} (--timeout): an endless "
                                                "loop, or a case far slower than the others"))
        done.append(case)
        failed = any(f.case == case.index and f.status == "fail" for r in rows.values() for f in r.findings)
        if failed and ctx is not None:
            kept[case.index] = ctx
        now = time.perf_counter()
        if options.progress and now - last_progress > 3.0:
            options.progress(len(done), len(cases), now - start)
            last_progress = now
        if failed and options.fail_fast:
            break
    rows = {k: r for k, r in rows.items() if r.findings}
    report = Report(name or subject.name, subject.kind, oracles or {}, rows, done, notes,
                    {"dtype": np.dtype(options.dtype).name, "seed": options.seed,
                     "tolerances": options.tol.describe(), **(settings or {})})
    report.elapsed = time.perf_counter() - start
    return report, kept


#: input elements of all cases together above which cases are not batched (`_batched_contexts`
#: holds every case's leaves, their copies and computed sources at once; a case alone, only its own)
BATCH_ELEMENTS = 4_000_000


def _batched_contexts(subject, cases, options, out_treedef, active):
    """{case index: CaseContext} with what the rows will ask for computed for all cases of
    one call signature at once (`oracles.batch`); {} where nothing is batched (NumPy code, a
    time limit per case, a run that stops at its first failure)."""
    if not (subject.jax_rule or subject.jax_primal) or options.timeout or options.fail_fast or not cases:
        return {}
    per_case = sum(int(np.size(x)) for x in jax.tree_util.tree_leaves((cases[0].args, cases[0].kwargs))
                   if tree.is_array(x))
    if per_case * len(cases) > BATCH_ELEMENTS:  # every case's arrays, sources and memo alive at once
        return {}
    sources = {s for c in active for s in c.sources} | {"rule"}
    contexts = {c.index: CaseContext(subject, c, options, out_treedef(c)) for c in cases}
    judges = {getattr(c.judge, "__name__", "") for c in active}
    batch.prefetch(list(contexts.values()), [s for s in ("rule", "autodiff") if s in sources],
                   fd_check="fd_check" in judges, in_context="in_context" in judges,
                   second="second_order_check" in judges)
    return contexts


def out_treedef_of(subject):
    """A function case -> the treedef of the subject's outputs there (cached by signature)."""
    memo = {}

    def of(case):
        bound, diff, arrays = subject.bind(case.args, case.kwargs)
        key = bound.sp.key
        if key not in memo:
            memo[key] = tree.flat_outputs(outputs_shape(subject, case))[1]
        return memo[key]

    return of


def output_shapes_of(subject):
    """A function (args, kwargs) -> the shapes of the primal's output leaves there, for
    `case.generate`'s cotangents: traced once per call signature when JAX can trace the
    primal (a trace per case was a third of a warm check of a small rule), else called."""
    memo = {}

    def shapes(args, kwargs):
        key = None
        if subject.jax_primal:
            bound = subject.bind(args, kwargs)[0]
            key = (bound.sp.key, bound.shapes)
            if key in memo:
                return memo[key]
        out = [np.shape(x) for x in tree.flat_outputs(outputs_shape(subject, Case(0, args, kwargs, None)))[0]]
        if key is not None:
            memo[key] = out
        return out

    return shapes


def outputs_shape(subject, case):
    """The primal's outputs at a case (abstractly when JAX can trace it)."""
    bound, diff, arrays = subject.bind(case.args, case.kwargs)
    if subject.jax_primal:
        return jax.eval_shape(lambda d, a: subject.primal(*bound.call_args(d, a)[0], **bound.call_args(d, a)[1]),
                              diff, arrays)
    return subject.primal(*tree.fresh(case.args), **tree.fresh(case.kwargs))
