"""Everything checkable in a module, found by its names, and checked in one go.

`find(module)` lists, in file order:
- every cs231n-style pair: a forward `X_forward[_S]` with each of its backwards
  `X_backward[_S']` — the same suffix (`conv_forward_naive` / `conv_backward_naive`), or any
  other backward of the stem paired with the stem's plain forward (`batchnorm_backward_alt`
  with `batchnorm_forward`); a row is named by its backward;
- every loss the project knows by name (`softmax_loss`, `svm_loss`,
  `temporal_softmax_loss`) or that comes with an example;
- every `jax.custom_vjp` / `jax.custom_jvp` defined in the module;
- every other function that has `NAME_example()` / `NAME_examples()`.
Each gets its examples from `NAME_example(s)()` in the module (NAME: the stem, the forward's
or the function's name), else from `known.KNOWN`, with the project's twin as reference where
it has one. `check_module` checks them all and returns a `ModuleReport`.
"""
from __future__ import annotations

import inspect
import re
import time
from dataclasses import dataclass, field

from jaxnets.gradcheck.adapters.custom import kind_of, unwrap
from jaxnets.gradcheck.api import run_check
from jaxnets.gradcheck.known import known_examples
from jaxnets.gradcheck.prepare import CheckInputError, first_line

_FORWARD = re.compile(r"^(?P<stem>.+?)_forward(?P<suffix>_\w+)?$")
_BACKWARD = re.compile(r"^(?P<stem>.+?)_backward(?P<suffix>_\w+)?$")
KNOWN_LOSSES = ("softmax_loss", "svm_loss", "temporal_softmax_loss")
KNOWN_SOURCE = "known cs231n geometry"


@dataclass
class Found:
    """One checkable thing in a module."""

    name: str  # the row: a backward's name, a loss's, a custom rule's
    kind: str  # "pair" | "loss" | "custom" | "function"
    fn: object  # the forward, the loss, the custom object or the function
    backward: object = None
    stem: str = ""  # where NAME_example() is looked for
    line: int = 0


def _line(fn):
    inner, _ = unwrap(fn)
    code = getattr(getattr(inner, "fun", inner), "__code__", None) or getattr(inner, "__code__", None)
    return code.co_firstlineno if code else 0


def _defined_here(fn, module):
    inner, _ = unwrap(fn)
    target = getattr(inner, "fun", inner)
    return getattr(target, "__module__", None) == module.__name__


def find(module):
    """[Found] in the order the module defines them."""
    names = {n: v for n, v in vars(module).items() if callable(v) and not n.startswith("_")}
    forwards = {n: _FORWARD.match(n) for n in names}
    forwards = {n: m for n, m in forwards.items() if m and inspect.isfunction(names[n])}
    found, paired = [], set()
    for n, fn in names.items():
        m = _BACKWARD.match(n)
        if not m or not inspect.isfunction(fn) or not _defined_here(fn, module):
            continue
        stem, suffix = m["stem"], m["suffix"] or ""
        same_stem = [f for f, fm in forwards.items() if fm["stem"] == stem]
        exact = [f for f in same_stem if (forwards[f]["suffix"] or "") == suffix]
        plain = [f for f in same_stem if not forwards[f]["suffix"]]
        forward = (exact or plain or (same_stem if len(same_stem) == 1 else []) or [None])[0]
        if forward is None:
            continue
        paired.add(forward)
        found.append(Found(n, "pair", names[forward], fn, stem, _line(fn)))
    for n, fn in names.items():
        if not _defined_here(fn, module) or n.endswith(("_example", "_examples")):
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
    exs, twin = known_examples(fwd_name if item.kind == "pair" else item.name, item.fn, seed, item.backward)
    if exs:
        return exs, twin, KNOWN_SOURCE
    return [], None, f"no example: give {item.stem}_example() in the file (or --example)"


@dataclass
class Row:
    name: str
    status: str  # "pass" | "ambiguous" | "domain" | "fail" | "error" | "skip"
    worst: float | None
    seconds: float
    note: str = ""
    report: object = None


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
        return 1 if self.status == "fail" else 2 if self.status == "error" else 0

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
    try:
        exs, twin, where = examples_for(module, item, seed)
    except CheckInputError as exc:
        return Row(item.name, "error", None, 0.0, str(exc))
    if not exs:
        return Row(item.name, "skip", None, 0.0, where)
    try:
        report = run_check(item.fn, examples=exs, backward=item.backward, reference=twin, seed=seed, name=item.name,
                       twin=twin is not None and where == KNOWN_SOURCE, **options)
    except NotImplementedError as exc:
        return Row(item.name, "skip", None, 0.0, f"not implemented ({exc})")
    except CheckInputError as exc:
        text = str(exc)
        if "NotImplementedError" in text or "not implemented" in text:
            return Row(item.name, "skip", None, 0.0, "not implemented yet: " + text)
        return Row(item.name, "fail" if exc.rule_fault else "error", None, 0.0, text)
    errs = [r.max_err for r in report.rows.values() if r.max_err is not None]
    worst = max(errs) if errs else None
    note = f"examples: {where}" + (", reference: the project's NumPy twin" if twin is not None else "")
    failing = [r for r in report.rows.values() if r.status == "fail"]
    if failing:
        w = failing[0].worst
        note = f"{failing[0].check}: {w.where()} {w.note}"[:160]
    return Row(item.name, report.status, worst, report.elapsed, note, report)
