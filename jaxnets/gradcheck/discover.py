"""Everything checkable in a module, found by its names, and checked in one go.

`find(module)` lists, in file order:
- every pair: a forward `X_forward[_S]` with each of its backwards `X_backward[_S']` — the
  same suffix (`conv_forward_naive` / `conv_backward_naive`), or any other backward of the
  stem paired with the stem's plain forward (`batchnorm_backward_alt` with
  `batchnorm_forward`) — or, where a convention names its forwards so (deeplearning.ai's
  `relu` / `relu_backward`), the stem itself; a row is named by its backward;
- every whole-network backward a convention names (`L_model_backward`): a row saying what
  checking it needs;
- every loss the project knows by name (`softmax_loss`, `svm_loss`,
  `temporal_softmax_loss`) or that comes with an example;
- every `jax.custom_vjp` / `jax.custom_jvp` defined in the module;
- every other function that has `NAME_example()` / `NAME_examples()`.
Test helpers (`test_*`, `*_test`, `*_test_case`) get no row. Each gets its examples from
`NAME_example(s)()` in the module (NAME: the stem, the forward's or the function's name),
else from the conventions (`jaxnets.gradcheck.conventions`: a name two courses share is
resolved by the forward's signature), with the project's twin as reference where it has one.
`check_module` checks them all and returns a `ModuleReport`; a run that judged nothing exits
2 and says why (`ModuleReport.nothing_judged`).
"""
from __future__ import annotations

import copy
import inspect
import os
import re
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from jaxnets.gradcheck import conventions, networks
from jaxnets.gradcheck.conventions import binds
from jaxnets.gradcheck.adapters.custom import kind_of, unwrap
from jaxnets.gradcheck.adapters.pair import PairError, arg_names, backward_call, pair_subject, split_example
from jaxnets.gradcheck.api import reference_subject, run_check
from jaxnets.gradcheck.prepare import CheckInputError, first_line

_FORWARD = re.compile(r"^(?P<stem>.+?)_forward(?P<suffix>_\w+)?$")
_BACKWARD = re.compile(r"^(?P<stem>.+?)_backward(?P<suffix>_\w+)?$")
#: test helpers (the course's `linear_backward_test`, `*_test_case`, pytest's `test_*`): no row
_TEST = re.compile(r"(^tests?_)|(_tests?$)|(_test_?case$)|(_test_)")
KNOWN_LOSSES = tuple(dict.fromkeys(n for c in conventions.conventions() for n in c.losses))


@dataclass
class Found:
    """One checkable thing in a module."""

    name: str  # the row: a backward's name, a loss's, a custom rule's
    kind: str  # "pair" | "loss" | "custom" | "function" | "network"
    fn: object  # the forward, the loss, the custom object or the function
    backward: object = None
    stem: str = ""  # where NAME_example() is looked for
    line: int = 0
    resolved: object = None  # the convention's knowledge, once `examples_for` has found it


def _line(fn):
    inner, _ = unwrap(fn)
    code = getattr(getattr(inner, "fun", inner), "__code__", None) or getattr(inner, "__code__", None)
    return code.co_firstlineno if code else 0


def _defined_here(fn, module):
    """Defined by the module itself (not imported), and not in one of a folder's helper
    files (`load.is_helper`)."""
    inner, _ = unwrap(fn)
    target = getattr(inner, "fun", inner)
    code = getattr(target, "__code__", None)
    helpers = getattr(module, "gradcheck_helper_files", ())
    if code is not None and helpers and os.path.abspath(code.co_filename) in helpers:
        return False
    return getattr(target, "__module__", None) == module.__name__


def find(module):
    """[Found] in the order the module defines them."""
    names = {n: v for n, v in vars(module).items() if callable(v) and not n.startswith("_")}
    forwards = {n: _FORWARD.match(n) for n in names}
    forwards = {n: m for n, m in forwards.items() if m and inspect.isfunction(names[n])}
    found, paired = [], set()
    for n, fn in names.items():
        m = _BACKWARD.match(n)
        if not inspect.isfunction(fn) or not _defined_here(fn, module) or _TEST.search(n):
            continue
        if conventions.network_need(n) is not None:
            found.append(Found(n, "network", fn, fn, n, _line(fn)))
            continue
        if not m:
            continue
        stem, suffix = m["stem"], m["suffix"] or ""
        same_stem = [f for f, fm in forwards.items() if fm["stem"] == stem]
        exact = [f for f in same_stem if (forwards[f]["suffix"] or "") == suffix]
        plain = [f for f in same_stem if not forwards[f]["suffix"]]
        forward = (exact or plain or (same_stem if len(same_stem) == 1 else []) or [None])[0]
        if forward is None and not suffix:
            bare = [f for f in conventions.forward_names(stem) if inspect.isfunction(names.get(f))]
            forward = bare[0] if bare else None
        if forward is None:
            continue
        paired.add(forward)
        found.append(Found(n, "pair", names[forward], fn, stem, _line(fn)))
    for n, fn in names.items():
        if not _defined_here(fn, module) or n.endswith(("_example", "_examples")) or _TEST.search(n):
            continue
        if kind_of(fn) != "function":
            found.append(Found(n, "custom", fn, None, n, _line(fn)))
        elif n in KNOWN_LOSSES or (n not in paired and not _FORWARD.match(n) and not _BACKWARD.match(n)
                                   and _maker(module, n) is not None):
            found.append(Found(n, "loss" if n in KNOWN_LOSSES else "function", fn, None, n, _line(fn)))
        elif _FORWARD.match(n) and n not in paired and _maker(module, _FORWARD.match(n)["stem"]) is not None:
            found.append(Found(n, "loss", fn, None, _FORWARD.match(n)["stem"], _line(fn)))
    return sorted(found, key=lambda f: f.line)


def _maker(module, stem):
    for n in (f"{stem}_examples", f"{stem}_example"):
        fn = getattr(module, n, None)
        if callable(fn):
            return fn
    return None


def examples_for(module, item, seed=0):
    """(examples, reference, where they came from) for a Found: NAME_example(s)() in the
    module first, else the project's knowledge of the name; ([], None, why) without."""
    fwd_name = getattr(item.fn, "__name__", item.name)
    for stem in dict.fromkeys((item.stem, fwd_name, item.name)):
        maker = _maker(module, stem)
        if maker is not None:
            try:
                made = maker()
            except Exception as exc:
                raise CheckInputError(f"{maker.__name__}() raised {first_line(exc)}") from None
            return (made if isinstance(made, list) else [made]), None, f"{maker.__name__}()"
    resolved = conventions.resolve(fwd_name if item.kind == "pair" else item.name, item.fn, seed, item.backward)
    if resolved is not None:
        item.resolved = resolved
        return resolved.examples, resolved.twin, resolved.source
    case = getattr(module, f"{fwd_name}_test_case", None) if item.kind == "pair" else None
    if callable(case):
        # the course's own test case of the forward (testCases_v4's linear_forward_test_case):
        # its shapes only — the checker draws its own values from them
        try:
            made = case()
            if binds(item.fn, made if isinstance(made, tuple) else (made,)):
                return [made if isinstance(made, tuple) else (made,)], None, f"{case.__name__}()"
        except Exception:
            pass
    return [], None, f"no example: give {item.stem}_example() in the file (or --example)"


@dataclass
class Row:
    name: str
    status: str  # "pass" | "ambiguous" | "domain" | "fail" | "error" | "skip"
    worst: float | None
    seconds: float
    note: str = ""
    report: object = None


class RowReport:
    """One row as a whole report (FILE.py:NAME of a whole-network backward)."""

    def __init__(self, row):
        self.row = row

    @property
    def ok(self):
        return self.row.status not in ("fail", "error", "skip")

    def text(self):
        r = self.row
        worst = "" if r.worst is None else f", worst relative error {r.worst:.1e}"
        return f"check {r.name} (whole network): {r.status.upper()}{worst}, {r.seconds:.1f} s\n{r.note}"

    def to_dict(self):
        r = self.row
        return {"check": r.name, "status": r.status, "worst": r.worst, "seconds": r.seconds, "note": r.note}


@dataclass
class ModuleReport:
    path: str
    rows: list = field(default_factory=list)

    @property
    def status(self):
        statuses = {r.status for r in self.rows}
        for s in ("fail", "error", "ambiguous", "domain", "pass"):
            if s in statuses:
                return s
        return "skip"

    @property
    def exit_status(self):
        if self.nothing_judged():
            return 2
        return 1 if self.status == "fail" else 2 if self.status == "error" else 0

    def nothing_judged(self):
        """None when some row was judged; else one line saying why nothing was."""
        if any(r.status in ("pass", "ambiguous", "domain", "fail") for r in self.rows):
            return None
        if not self.rows:
            return (f"nothing judged in {self.path}: no backward pass found (looked for X_forward / X_backward pairs "
                    f"and relu / relu_backward style ones, losses, jax.custom_vjp / custom_jvp rules, and functions "
                    f"with NAME_example())")
        why = {}
        for r in self.rows:
            why.setdefault(r.note.split(":")[0] if r.status == "skip" else r.status, []).append(r.name)
        return f"nothing judged in {self.path}: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in why.items())

    def table(self):
        width = max([12] + [len(r.name) for r in self.rows])
        lines = [f"{'check':<{width}}  {'verdict':<9} {'worst err':>9} {'time':>7}  note",
                 f"{'-' * width}  {'-' * 9} {'-' * 9} {'-' * 7}  ----"]
        for r in self.rows:
            worst = "-" if r.worst is None else f"{r.worst:.1e}"
            lines.append(f"{r.name:<{width}}  {r.status.upper():<9} {worst:>9} {r.seconds:>6.1f}s  {r.note}")
        counts = {s: sum(r.status == s for r in self.rows) for s in ("pass", "ambiguous", "domain", "fail", "error",
                                                                      "skip")}
        lines.append(f"{len(self.rows)} checked in {self.path}: " + ", ".join(f"{n} {s}" for s, n in counts.items()
                                                                                if n))
        return "\n".join(lines)


def check_module(module, path="", seed=0, on_row=None, rerun=None, **options):
    """Check everything `find` lists in `module`; `on_row(row)` is called as each finishes.
    `rerun`: the command that checks the file; a failing row's re-run command names its item
    (`rerun:NAME`), since a saved case re-runs one thing only."""
    report = ModuleReport(path or getattr(module, "__file__", module.__name__))
    for item in find(module):
        start = time.perf_counter()
        row = check_found(module, item, seed=seed, rerun=f"{rerun}:{item.name}" if rerun else None, **options)
        row.seconds = time.perf_counter() - start
        report.rows.append(row)
        if on_row:
            on_row(row)
    return report


def check_found(module, item, seed=0, **options):
    """The row of one Found; a row that failed on a name an unimportable module should have
    defined says which import failed (the loader records them)."""
    row = judge_found(module, item, seed, **options)
    failed = getattr(module, "gradcheck_failed_imports", None)
    if row.status in ("error", "fail") and "NameError" in row.note and failed:
        missing = re.search(r"name '(\w+)' is not defined", row.note)
        why = failed.get(missing[1] if missing else "", failed.get("*"))
        if why:
            row.note += f"; {why}"
    return row


def judge_found(module, item, seed=0, **options):
    if item.kind == "network":
        return check_network(module, item, seed, **options)
    try:
        exs, twin, where = examples_for(module, item, seed)
    except CheckInputError as exc:
        return Row(item.name, "error", None, 0.0, str(exc))
    if not exs:
        return Row(item.name, "skip", None, 0.0, where)
    unfit = probe(item, exs[0])
    if unfit is not None:
        return unfit
    try:
        subject = subject_for(item, twin)
        report = run_check(item.fn, examples=exs, backward=item.backward, reference=twin, seed=seed, name=item.name,
                           twin=twin is not None and where.startswith("known "), subject=subject, **options)
    except NotImplementedError as exc:
        return Row(item.name, "skip", None, 0.0, f"not implemented ({exc})")
    except PairError as exc:
        return Row(item.name, "error", None, 0.0, str(exc))
    except CheckInputError as exc:
        text = str(exc)
        if "NotImplementedError" in text or "not implemented" in text:
            return Row(item.name, "skip", None, 0.0, "not implemented yet: " + text)
        return Row(item.name, "fail" if exc.rule_fault else "error", None, 0.0, text)
    errs = [r.max_err for r in report.rows.values() if r.max_err is not None]
    worst = max(errs) if errs else None
    note = f"examples: {where}" + (", reference: the project's NumPy twin" if twin is not None else "")
    option = item.resolved.known.option if item.resolved is not None else None
    if option is not None:
        values = sorted({e[option] for e in exs if isinstance(e, tuple) and len(e) > option})
        note += f"; {arg_names(item.fn)[option]}: {', '.join(values)}"
    if "convention" in report.notes:
        note += "; " + report.notes["convention"]
    failing = [r for r in report.rows.values() if r.status == "fail"]
    known = item.resolved.known if item.resolved is not None else None
    if failing and known is not None and known.ties and only_at_ties(report):
        return Row(item.name, "ambiguous", None, report.elapsed, f"{note}; every case agrees but those with tied "
                                                                  f"inputs, where {known.ties}", report)
    if failing:
        w = failing[0].worst
        note = f"{failing[0].check}: {w.where()} {w.note}"[:160]
    return Row(item.name, report.status, worst, report.elapsed, note, report)


def check_network(module, item, seed=0, **options):
    """A whole-network backward against finite differences of the user's own forward and
    cost (`jaxnets.gradcheck.networks`); a row naming the pieces that are missing."""
    conv, (fwd_name, cost_name) = conventions.network_need(item.name)
    forward, cost = getattr(module, fwd_name, None), getattr(module, cost_name, None) if cost_name else None
    if callable(forward) and "theta" in _names(forward) and _names(forward) == _names(item.backward):
        cost_name = None  # the gradient-checking assignment's J(theta) = theta * x: the forward is the cost
    missing = [n for n, f in ((fwd_name, forward), (cost_name, cost)) if n and not callable(f)]
    if missing:
        return Row(item.name, "skip", None, 0.0, f"a whole-network backward ({conv}): checking it needs "
                                                 f"{' and '.join(missing)}, not found")
    fwd_params = _names(forward)
    if "theta" in fwd_params and fwd_params == _names(item.backward):
        # the gradient-checking assignment's one-parameter J(theta) = theta * x: an ordinary check
        subject = networks.scalar_subject(item.name, forward, item.backward, "theta")
        exs = [tuple(np.asarray(v, np.float64) for v in (2.0, 4.0))[:len(fwd_params)]]
        try:
            report = run_check(subject.primal, examples=exs, subject=subject, seed=seed, name=item.name, **options)
        except CheckInputError as exc:
            return Row(item.name, "fail" if exc.rule_fault else "error", None, 0.0, str(exc))
        errs = [r.max_err for r in report.rows.values() if r.max_err is not None]
        return Row(item.name, report.status, max(errs) if errs else None, report.elapsed,
                   f"d{fwd_params[-1]} against {fwd_name}", report)
    else:
        subject = networks.network_subject(item.name, item.backward, forward, cost)
        exs, exc = networks.examples(subject, seed)
        if not exs:
            return Row(item.name, "error", None, 0.0, f"{item.name} with {fwd_name} ran on none of the networks "
                                                       f"tried: {first_line(exc, 120)}{_where(exc)}")
    start = time.perf_counter()
    try:
        status, worst, text = networks.judge(subject, exs, seed)
    except Exception as exc:
        return Row(item.name, "fail", None, 0.0, f"{item.name} raised {first_line(exc, 120)}{_where(exc)}")
    where = f"through the file's own {fwd_name}" + (f" and {cost_name}" if cost_name else "")
    return Row(item.name, status, worst, time.perf_counter() - start, f"{text}; {where}")


def _names(fn):
    try:
        return [p.name for p in inspect.signature(fn).parameters.values()]
    except (TypeError, ValueError):
        return []


def only_at_ties(report):
    """Whether every failing comparison of a report is on a case whose inputs hold tied
    values (a value repeated: the "ties", "integers" and "zeros" draws; never N(0, 1) ones)."""
    tied = {c.index: any(np.unique(a).size < a.size for a in _float_leaves(c.args)) for c in report.cases}
    fails = [f for r in report.rows.values() for f in r.findings if f.status == "fail"]
    return bool(fails) and all(tied.get(f.case, False) for f in fails)


def _float_leaves(args):
    out = []
    for a in args:
        for v in (a.values() if isinstance(a, dict) else [a]):
            if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating):
                out.append(v)
    return out


def subject_for(item, reference=None):
    """The Subject of a pair as its convention declares it (the gradients it returns as a
    batch mean), with its reference; None for anything else (`check` builds it)."""
    if item.kind != "pair":
        return None
    known = item.resolved.known if item.resolved is not None else None
    subject = pair_subject(item.fn, item.backward, item.name, batch_mean=known.batch_mean if known else (),
                           batch_mean_names=known.batch_mean_names if known else ())
    if reference is not None:
        subject.reference = reference_subject(reference, subject)
    return subject


def probe(item, example):
    """A Row when the pair cannot be judged on its first example: a function not filled in
    yet (`pass`, None gradients) is SKIP "not implemented"; one that raises gets a row naming
    its exception and the line of the user's code it came from. None when it runs."""
    if item.kind != "pair":
        return None
    args, kwargs = split_example(item.fn, copy.deepcopy(example) if isinstance(example, tuple) else tuple(example))
    fwd, bwd = _name(item.fn), _name(item.backward)
    try:
        result = item.fn(*args, **kwargs)
    except NotImplementedError as exc:
        return Row(item.name, "skip", None, 0.0, f"not implemented: {fwd} raises {first_line(exc, 80)}")
    except Exception as exc:
        return Row(item.name, "error", None, 0.0, f"{fwd} raised {first_line(exc, 120)}{_where(exc)}")
    if result is None or (isinstance(result, (tuple, list)) and all(r is None for r in result)):
        return Row(item.name, "skip", None, 0.0, f"not implemented: {fwd} returns None")
    try:
        n_out, extras = backward_call(item.fn, item.backward, args, kwargs)
        outs = result[:n_out]
        grads = item.backward(*[np.ones(np.shape(o)) for o in outs], result[-1], **extras)
    except PairError as exc:
        return Row(item.name, "error", None, 0.0, str(exc))
    except NotImplementedError as exc:
        return Row(item.name, "skip", None, 0.0, f"not implemented: {bwd} raises {first_line(exc, 80)}")
    except Exception as exc:
        return Row(item.name, "fail", None, 0.0, f"{bwd} raised {first_line(exc, 120)}{_where(exc)}")
    values = list(grads.values()) if isinstance(grads, dict) else list(grads) if isinstance(grads, (tuple, list)) \
        else [grads]
    if grads is None or any(g is None for g in values):
        return Row(item.name, "skip", None, 0.0, f"not implemented: {bwd} returns None"
                   + (" for some gradients" if grads is not None else ""))
    return None


def _name(fn):
    return getattr(fn, "__name__", "the function")


def _where(exc):
    """` (at file.py:LINE)`: the deepest frame of the user's own code in the traceback."""
    user = [f for f in traceback.extract_tb(exc.__traceback__)
            if os.sep + "site-packages" + os.sep not in f.filename and os.sep + "jaxnets" + os.sep not in f.filename
            and not f.filename.startswith("<")]
    return f" (at {os.path.basename(user[-1].filename)}:{user[-1].lineno})" if user else ""
