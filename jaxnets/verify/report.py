"""What `check_layer` found, per pair of gradient sources, in a form a person can act on.

A `Finding` is one pair compared on one case: pass, fail, or ambiguous (finite differences at
a kink, or two sources following different conventions there), with the worst element.
A `PairSummary` collects a pair's findings, its hints and the saved failing case; a
`LayerReport` is the whole check: which oracles ran (and why others did not), every pair, the
conventions seen at kinks, and its text and JSON forms.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

STATUSES = ("pass", "ambiguous", "fail")


@dataclass
class Finding:
    """One pair of gradient sources compared on one case."""

    pair: str
    case: int
    status: str
    param: str = ""
    err: float = 0.0
    index: tuple = ()
    a: float | None = None  # the first source's value at `index`
    b: float | None = None  # the second source's value
    note: str = ""
    conventions: tuple = ()  # at kinks: ("left", "right", "mean", "between") per coordinate

    def where(self):
        idx = f"[{', '.join(map(str, self.index))}]" if self.index else ""
        return f"{self.param}{idx}"


def _fmt(v):
    return "-" if v is None else f"{v:.10g}"


@dataclass
class PairSummary:
    """Every finding of one pair, and what to do about its failures."""

    pair: str
    a: str
    b: str
    findings: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    saved: str | None = None
    rerun: str | None = None

    @property
    def status(self):
        if not self.findings:
            return "skipped"
        return max((f.status for f in self.findings), key=STATUSES.index)

    def count(self, status):
        return sum(f.status == status for f in self.findings)

    @property
    def worst(self):
        """The failing finding with the largest error (else the largest error overall)."""
        pool = [f for f in self.findings if f.status == "fail"] or self.findings
        return max(pool, key=lambda f: (f.err if math.isfinite(f.err) else math.inf), default=None)

    def line(self, label_of):
        w = self.worst
        head = (f"  {self.pair:<34} {self.status.upper():<9} {len(self.findings):>5} {self.count('pass'):>5} "
                f"{self.count('ambiguous'):>5} {self.count('fail'):>5}")
        if w is None:
            return head
        if not w.err:
            return head + f"  {w.err:.1e}"
        return head + f"  {w.err:.1e}  {w.where()} {label_of(w.case)}"

    def to_dict(self):
        w = self.worst
        return {
            "pair": self.pair, "status": self.status, "cases": len(self.findings),
            "pass": self.count("pass"), "ambiguous": self.count("ambiguous"), "fail": self.count("fail"),
            "worst": None if w is None else {
                "case": w.case, "param": w.param, "index": list(w.index), "rel_error": w.err,
                self.a: w.a, self.b: w.b, "status": w.status, "note": w.note},
            "hints": self.hints, "saved_case": self.saved, "rerun": self.rerun,
        }


@dataclass
class LayerReport:
    """The result of check_layer: `.ok` is False exactly when some pair failed."""

    name: str
    oracles: dict  # source -> what it is, or "not run: why"
    pairs: dict  # pair -> PairSummary
    cases: list  # LayerCase
    notes: dict
    settings: dict
    elapsed: float = 0.0

    @property
    def status(self):
        statuses = [p.status for p in self.pairs.values() if p.status != "skipped"]
        return max(statuses, key=STATUSES.index) if statuses else "fail"

    @property
    def ok(self):
        return self.status != "fail"

    def conventions(self):
        """Counter of (pair, convention) at kink coordinates where a source was ambiguous."""
        return Counter((f.pair, c) for p in self.pairs.values() for f in p.findings for c in f.conventions)

    def _label(self, index):
        case = next((c for c in self.cases if c.index == index), None)
        return case.label if case is not None else f"case {index}"

    def text(self):
        s = self.settings
        lines = [f"check_layer {self.name}: {self.status.upper()} — {len(self.cases)} cases from "
                 f"{s['examples']} example(s), seed {s['seed']}, float64, {self.elapsed:.2f} s"]
        lines.append("oracles:")
        lines += [f"  {name:<19} {what}" for name, what in self.oracles.items()]
        for key, note in self.notes.items():
            if key not in self.oracles:  # an oracle that did not run already says why above
                lines.append(f"note: {key}: {note}")
        lines.append(f"  {'pair':<34} {'status':<9} {'cases':>5} {'pass':>5} {'ambig':>5} {'fail':>5}"
                     f"  worst rel err, where")
        lines += [p.line(self._label) for p in self.pairs.values()]
        conv = self.conventions()
        if conv:
            by_pair = {}
            words = {"left": "the left derivative", "right": "the right derivative",
                     "mean": "the mean of the two", "between": "in between (several kinks at once)"}
            for (pair, name), n in sorted(conv.items(), key=lambda item: -item[1]):
                if "/" in name:  # two sources' conventions: "first/second"
                    sources = [w.split(" (")[0] for w in pair.split(" ~ ")]
                    name = ", ".join(f"{src} {words.get(c, c)}" for src, c in zip(sources, name.split("/")))
                by_pair.setdefault(pair, []).append(f"{words.get(name, name)} at {n}")
            lines.append("at kinks (finite differences are no oracle there; the values lie between the one-sided "
                         "slopes):")
            lines += [f"  {pair}: {', '.join(items)} coordinate(s)" for pair, items in by_pair.items()]
        saved = {}
        for p in self.pairs.values():
            if p.status != "fail":
                continue
            w = p.worst
            lines.append(f"FAIL {p.pair}: {self._label(w.case)}: {w.where()}: {p.a} {_fmt(w.a)}, {p.b} {_fmt(w.b)}, "
                         f"rel error {w.err:.3g}" + (f"; {w.note}" if w.note else ""))
            lines += [f"  hint: {h}" for h in p.hints]
            if p.saved:
                saved.setdefault(p.saved, p.rerun)
        for path, rerun in saved.items():
            lines.append(f"saved {path}" + (f"; re-run just that case: {rerun}" if rerun else ""))
        verdict = {"pass": "every check passes",
                   "ambiguous": "no gradient disagrees; some comparisons at kinks are ambiguous (see above)",
                   "fail": "a gradient disagrees"}[self.status]
        lines.append(f"result: {self.status.upper()}: {verdict}")
        return "\n".join(lines)

    __str__ = text

    def to_dict(self):
        return {
            "name": self.name, "status": self.status, "ok": self.ok, "elapsed_s": round(self.elapsed, 2),
            "settings": self.settings, "oracles": self.oracles, "notes": self.notes,
            "pairs": {k: p.to_dict() for k, p in self.pairs.items()},
            "conventions_at_kinks": [{"pair": pair, "convention": c, "count": n}
                                     for (pair, c), n in sorted(self.conventions().items())],
            "cases": [{"index": c.index, "example": c.example, "values": c.values, "upstream": c.upstream,
                       "leading": c.leading} for c in self.cases],
        }

    def to_json(self, path=None):
        text = json.dumps(_finite(self.to_dict()), indent=2, default=_json_default)
        if path:
            with open(path, "w") as fh:
                fh.write(text + "\n")
        return text


def _finite(v):
    """JSON has no inf or NaN: they become the strings "inf", "-inf", "nan"."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _json_default(v):
    try:
        return _finite(float(v))
    except (TypeError, ValueError):
        return str(v)
