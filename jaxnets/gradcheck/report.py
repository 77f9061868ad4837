"""What a check found, in one report type for every subject: a person's text, JSON, the
suite's tables.

A `Finding` is one row of the check table on one case: pass, fail, ambiguous (finite
differences at a kink, or two sources following different conventions there) or domain (the
forward itself is not finite on the case: outside the layer's numerical range, not a
gradient verdict), with the worst element and a note. A `RowSummary` collects a row's
findings, hints and the saved failing case; a `Report` is the whole check: which oracles ran
(and why others did not), every row, the conventions seen at kinks, the tolerances used.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

#: statuses in rising order of severity ("domain" counts as passing)
STATUSES = ("pass", "domain", "ambiguous", "fail")


@dataclass
class Finding:
    """One row of the check table on one case."""

    check: str
    case: int
    status: str
    param: str = ""
    err: float = 0.0
    index: tuple = ()
    a: float | None = None  # the first source's value at `index`
    b: float | None = None  # the second source's value
    note: str = ""
    conventions: tuple = ()  # at kinks: ("left", "right", "mean", "between") per coordinate

    @property
    def ok(self):
        return self.status != "fail"

    def where(self):
        idx = f"[{', '.join(map(str, self.index))}]" if self.index else ""
        return f"{self.param}{idx}"

    def __str__(self):
        text = f"{self.check}: {self.where()} rel error {self.err:.3e}" if self.param else self.check
        return f"{text} ({self.status})" + (f"; {self.note}" if self.note else "")


def _fmt(v):
    return "-" if v is None else f"{v:.10g}"


#: ambiguous cases listed by name under each row's conventions at kinks
AMBIGUOUS_SHOWN = 4


@dataclass
class RowSummary:
    """Every finding of one row of the table, and what to do about its failures."""

    check: str
    a: str
    b: str
    findings: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    saved: str | None = None
    rerun: str | None = None
    plain: frozenset = frozenset()  # cases of plain values (normal values, random upstream, no resizing)

    @property
    def status(self):
        if not self.findings:
            return "skipped"
        return max((f.status for f in self.findings), key=STATUSES.index)

    def count(self, status):
        return sum(f.status == status for f in self.findings)

    @property
    def worst(self):
        """The failing finding to show: on a plain case when one fails (a mistake is plainest
        at normal values with a random upstream gradient, not at 1e6 or with a one-hot
        upstream), the largest error among those; else the largest error overall."""
        fails = [f for f in self.findings if f.status == "fail"]
        pool = [f for f in fails if f.case in self.plain] or fails or self.findings
        return max(pool, key=lambda f: (f.err if math.isfinite(f.err) else math.inf), default=None)

    @property
    def max_err(self):
        """The largest error of a decided comparison (an ambiguous one at a kink, or a
        domain case, has no error to speak of)."""
        errs = [f.err for f in self.findings if f.status in ("pass", "fail")]
        return max(errs) if errs else None

    def line(self, label_of, width=40):
        w = self.worst
        head = (f"  {self.check:<{width}} {self.status.upper():<9} {len(self.findings):>5} {self.count('pass'):>5} "
                f"{self.count('ambiguous'):>5} {self.count('fail'):>5}")
        if w is None or not w.err:
            return head + ("  0.0e+00" if w is not None else "")
        return head + f"  {w.err:.1e}  {w.where()} {label_of(w.case)}"

    def to_dict(self):
        w = self.worst
        return {
            "check": self.check, "status": self.status, "cases": len(self.findings),
            "pass": self.count("pass"), "ambiguous": self.count("ambiguous"), "fail": self.count("fail"),
            "domain": self.count("domain"),
            "worst": None if w is None else {
                "case": w.case, "param": w.param, "index": list(w.index), "rel_error": w.err,
                "a": w.a, "b": w.b, "status": w.status, "note": w.note},
            "hints": self.hints, "saved_case": self.saved, "rerun": self.rerun,
        }


@dataclass
class Report:
    """The result of a check: `.ok` is False exactly when some row failed."""

    name: str
    kind: str
    oracles: dict  # source -> what it is, or "not run: why"
    rows: dict  # check -> RowSummary
    cases: list  # Case
    notes: dict
    settings: dict
    elapsed: float = 0.0

    def __post_init__(self):
        plain = frozenset(c.index for c in self.cases if c.tags.get("values") == "normal"
                          and c.tags.get("upstream") == "random" and not c.tags.get("leading"))
        for row in self.rows.values():
            row.plain = plain

    @property
    def status(self):
        statuses = [r.status for r in self.rows.values() if r.status != "skipped"]
        return max(statuses, key=STATUSES.index) if statuses else "fail"

    @property
    def ok(self):
        return self.status != "fail"

    @property
    def findings(self):
        return [f for r in self.rows.values() for f in r.findings]

    @property
    def failures(self):
        return [f for f in self.findings if f.status == "fail"]

    def max_by_check(self):
        """{check: largest error} over every finding (the suite's table cells)."""
        return {name: r.max_err for name, r in self.rows.items() if r.max_err is not None}

    def conventions(self):
        """Counter of (check, convention) at kink coordinates where a source was ambiguous."""
        return Counter((f.check, c) for f in self.findings for c in f.conventions)

    def label(self, index):
        case = next((c for c in self.cases if c.index == index), None)
        return case.label if case is not None else f"case {index}"

    def summary(self, limit=12):
        """A short text of the failures (the suite's assertion messages)."""
        bad = self.failures
        head = f"{self.name} [{self.settings.get('dtype', 'float64')}]: "
        if not bad:
            return head + f"all {len(self.findings)} findings pass"
        lines = [head + f"{len(bad)} of {len(self.findings)} findings FAILED"]
        lines += [f"  {self.label(f.case)}: {f}" for f in sorted(bad, key=lambda f: -f.err)[:limit]]
        if len(bad) > limit:
            lines.append(f"  ... and {len(bad) - limit} more")
        return "\n".join(lines)

    def text(self):
        s = self.settings
        tol = s.get("tolerances", {})
        lines = [f"check {self.name} ({self.kind}): {self.status.upper()} — {len(self.cases)} cases from "
                 f"{s.get('examples', 1)} example(s), seed {s.get('seed', 0)}, float64, {self.elapsed:.2f} s"]
        if tol:
            lines.append("tolerances: " + ", ".join(f"{k} {v:g}" for k, v in tol.items() if v is not None))
        lines.append("oracles:")
        lines += [f"  {name:<19} {what}" for name, what in self.oracles.items()]
        not_run = {}
        for key, note in self.notes.items():
            if key.startswith("not run: "):
                not_run.setdefault(note, []).append(key[len("not run: "):])
            elif key not in self.oracles:
                lines.append(f"note: {key}: {note}")
        lines += [f"not run: {', '.join(rows)}: {why}" for why, rows in not_run.items()]
        width = max([34] + [len(r) for r in self.rows])
        lines.append(f"  {'check':<{width}} {'status':<9} {'cases':>5} {'pass':>5} {'ambig':>5} {'fail':>5}"
                     f"  worst rel err, where")
        lines += [r.line(self.label, width) for r in self.rows.values()]
        lines += self._convention_lines()
        domain = [f for f in self.findings if f.status == "domain"]
        if domain:
            kinds = sorted({str(self._case(f.case).tags.get("values", "?")) for f in domain if self._case(f.case)})
            lines.append(f"domain: {len({f.case for f in domain})} case(s) outside the forward's smooth domain "
                         f"({', '.join(kinds)} values): not checked there — {domain[0].note}")
        saved = {}
        for r in self.rows.values():
            overruled = [f for f in r.findings if f.status == "pass" and f.note.startswith("autodiff of your primal")]
            if overruled:
                f = overruled[0]
                lines.append(f"NOTE {r.check}: {self.label(f.case)}: {f.note}")
            if r.status != "fail":
                continue
            w = r.worst
            lines.append(f"FAIL {r.check}: {self.label(w.case)}: {w.where()}: {r.a} {_fmt(w.a)}, {r.b} {_fmt(w.b)}, "
                         f"rel error {w.err:.3g}" + (f"; {w.note}" if w.note else ""))
            lines += [f"  hint: {h}" for h in r.hints]
            if r.saved:
                saved.setdefault(r.saved, r.rerun)
        for path, rerun in saved.items():
            lines.append(f"saved {path}" + (f"; re-run just that case: {rerun}" if rerun else ""))
        verdict = {"pass": "every check passes", "domain": "every check passes inside the forward's smooth domain",
                   "ambiguous": "no gradient disagrees; some comparisons at kinks are ambiguous (see above)",
                   "fail": "a gradient disagrees"}[self.status]
        lines.append(f"result: {self.status.upper()}: {verdict}")
        return "\n".join(lines)

    __str__ = text

    def _case(self, index):
        return next((c for c in self.cases if c.index == index), None)

    def _convention_lines(self):
        conv = self.conventions()
        if not conv:
            return []
        by_row = {}
        words = {"left": "the left derivative", "right": "the right derivative", "mean": "the mean of the two",
                 "between": "in between (several kinks at once)",
                 "piece": "the derivative of one adjacent piece (several pieces meet)"}
        for (row, name), n in sorted(conv.items(), key=lambda item: -item[1]):
            if "/" in name:  # two sources' conventions: "first/second"
                sources = [w.split(" (")[0] for w in row.split(" ~ ")]
                name = ", ".join(f"{src} {words.get(c, c)}" for src, c in zip(sources, name.split("/")))
            by_row.setdefault(row, []).append(f"{words.get(name, name)} at {n}")
        lines = ["at kinks (finite differences are no oracle there; the values lie between the one-sided slopes):"]
        for row, items in by_row.items():
            lines.append(f"  {row}: {', '.join(items)} coordinate(s)")
            cases = sorted({f.case for f in self.rows[row].findings if f.status == "ambiguous"}) \
                if row in self.rows else []
            if cases:
                shown = "; ".join(self.label(c) for c in cases[:AMBIGUOUS_SHOWN])
                more = f"; and {len(cases) - AMBIGUOUS_SHOWN} more" if len(cases) > AMBIGUOUS_SHOWN else ""
                lines.append(f"    ambiguous on {len(cases)} case(s): {shown}{more}")
        return lines

    def to_dict(self):
        return {
            "name": self.name, "kind": self.kind, "status": self.status, "ok": self.ok,
            "elapsed_s": round(self.elapsed, 2), "settings": self.settings, "oracles": self.oracles,
            "notes": self.notes, "checks": {k: r.to_dict() for k, r in self.rows.items()},
            "conventions_at_kinks": [{"check": row, "convention": c, "count": n}
                                     for (row, c), n in sorted(self.conventions().items())],
            "cases": [{"index": c.index, **{k: v for k, v in c.tags.items() if k != "seed"}} for c in self.cases],
        }

    def to_json(self, path=None):
        text = json.dumps(jsonable(self.to_dict()), indent=2)
        if path:
            with open(path, "w") as fh:
                fh.write(text + "\n")
        return text


def jsonable(v):
    """Anything a report may hold, as JSON: inf/NaN as strings, arrays as lists (or their
    shape when large), tuples as lists, other objects as their repr — never an exception."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (np.ndarray, np.generic)) or hasattr(v, "__array__"):
        a = np.asarray(v)
        if a.size <= 64 and a.dtype.kind in "biuf":
            return jsonable(a.tolist())
        return f"array{a.shape} {a.dtype}"
    return repr(v)
