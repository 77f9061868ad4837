"""Gradient checks of your own code: every pair, loss and custom rule in FILE.py, or NAME in it.

    jaxnets gradcheck FILE.py                 every pair, loss and custom rule in the file: a summary
                                              table (a row per check, named by its backward), then
                                              the reports of what failed
    jaxnets gradcheck FILE.py:NAME [--example 4x5,4x5:positive] [--static KEY=VALUE] [--reference FILE.py:NAME]
                      [--rtol R] [--atol A] [--fd-rtol R] [--kinks 0,6] [--timeout S] [--cases N] [--seed S]
                      [--fast | --no-fast] [--no-transforms] [--no-second-order] [--json PATH]
                      [--save-dir DIR] [--replay CASE.npz]

NAME is what your file defines, unchanged: a `jax.custom_vjp` or `jax.custom_jvp` function
(its primal is the undecorated function, the rule its fwd/bwd or jvp, and the in-context check
differentiates your own object), a cs231n pair (NAME_forward / NAME_backward, or a backward by
its full name such as batchnorm_backward_alt; `*_naive` names and several outputs such as
lstm_step_forward's (next_h, next_c, cache) included), a loss returning (loss, dscores), or any
JAX function (its JAX derivative is checked). The example comes from --example (one shape per
positional argument — 4x5, 4 for 1-D, scalar — with a domain: real, positive, nonnegative,
unit, bool, intLO..HI; a number such as 0.5 or -1 is held fixed; --static KEY=VALUE adds
keyword values), else from NAME_example() or
NAME_examples() in the file, else — for cs231n's layer names of assignments 2 and 3 — from the
project, which then also compares your layer with its own NumPy twin where it has one.

From the example the checker generates --cases cases (random values at several scales, exact
zeros and your --kinks, ties, small integers, large magnitudes, the domain's boundary, batch
size 1 and N + 1, random / one-hot / all-ones upstream gradients) and compares your rule with
autodiff of the primal (finite differences decide where the two disagree at a smooth point),
your own object under jax.grad in context, the reference, float64 finite differences (one-sided
at kinks and at the domain's boundary), a custom_jvp's jvp rule in forward mode, the
dot-product identity <J v, u> = <v, J^T u>, the rule's own derivative (second order), and
under jit and vmap. Inputs above 200000 elements are checked in fast mode (random projections).
Tolerances: --rtol (default 1e-10, with a scale-aware floor), --atol, --fd-rtol (1e-6); the
report prints those used. Each row says PASS, FAIL, AMBIGUOUS (at a kink finite differences
are no oracle) or DOMAIN (the forward itself is not finite there), with the worst element,
hints from the mutant catalogue, and for a failure the case saved under --save-dir with the
command that re-runs just it (--replay). A progress line comes every few seconds; --timeout
(default 60 s) ends a case that runs away.

Exit status: 0 when nothing failed (ambiguous and domain results included), 1 when a gradient
disagrees, 2 for bad input (a missing file or name, an example the forward rejects, a bad
option), with one line and no traceback.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import shlex
import sys
import types
import warnings

import numpy as np

from jaxnets.gradcheck.api import DEFAULT_CASES, run_check
from jaxnets.gradcheck.case import Example
from jaxnets.gradcheck.discover import Found, RowReport, check_module, check_network, examples_for, find, subject_for
from jaxnets.gradcheck.load import load
from jaxnets.gradcheck.options import Options
from jaxnets.gradcheck.prepare import CheckInputError
from jaxnets.gradcheck.report import jsonable

#: seconds a case may take on the command line before it counts as a runaway
DEFAULT_TIMEOUT = 60.0
DOMAIN_WORDS = {"real": "real", "positive": "positive", "nonnegative": "nonnegative", "unit": "unit"}


def load_module(path):
    """The module a user's file (or folder) defines, loaded for its definitions only
    (`jaxnets.gradcheck.load`); CheckInputError naming the file when it cannot be."""
    if not os.path.exists(path):
        raise CheckInputError(f"{path}: no such file")
    return load(path)


def parse_example(spec, seed=0):
    """An Example from `--example 4x5,4:positive,3:int0..9,2x3:bool,0.5,scalar:unit`: per
    positional argument a shape (`AxB`, `4` for 1-D, `scalar`) with an optional domain (real,
    positive, nonnegative, unit, bool, intLO..HI), or a number held fixed (0.5, -1, 1e-3)."""
    rng = np.random.default_rng([seed, 99])
    args, domains = [], []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise CheckInputError(f"--example {spec!r}: an empty item")
        shape_text, _, dom = item.partition(":")
        if not dom and _is_number(shape_text):
            args.append(ast.literal_eval(shape_text))
            domains.append(None)
            continue
        try:
            shape = () if shape_text in ("scalar", "()") else tuple(int(d) for d in shape_text.lower().split("x"))
        except ValueError:
            raise CheckInputError(f"--example: {item!r} is not a shape like 4x5 (or scalar), with an optional "
                                  f":domain, nor a number") from None
        if any(d < 1 for d in shape):
            raise CheckInputError(f"--example: {item!r} has a size below 1")
        dom = dom or "real"
        if dom.startswith("int"):
            lo, _, hi = dom[3:].partition("..")
            try:
                lo, hi = int(lo), int(hi)
            except ValueError:
                raise CheckInputError(f"--example: {item!r}: integers are written int0..9 (both ends "
                                      f"included)") from None
            if hi < lo:
                raise CheckInputError(f"--example: {item!r}: the range int{lo}..{hi} is empty")
            args.append(rng.integers(lo, hi + 1, shape))
            domains.append(None)
        elif dom == "bool":
            args.append(rng.random(shape) < 0.7)
            domains.append(None)
        elif dom in DOMAIN_WORDS:
            x = {"real": lambda: rng.standard_normal(shape), "positive": lambda: rng.uniform(0.1, 3.0, shape),
                 "nonnegative": lambda: np.where(rng.random(shape) < 0.3, 0.0, rng.uniform(0.1, 3.0, shape)),
                 "unit": lambda: rng.uniform(0.05, 0.95, shape)}[dom]()
            args.append(x)
            domains.append(dom)
        else:
            raise CheckInputError(f"--example: unknown domain {dom!r} in {item!r} (real, positive, nonnegative, "
                                  f"unit, bool, intLO..HI)")
    return args, tuple(domains)


def _is_number(text):
    """A value held fixed: a number with a decimal point, an exponent or a sign (0.5, 1e-3,
    -2); a bare positive integer is a 1-D shape (4)."""
    if text.isdigit():
        return False
    try:
        return isinstance(ast.literal_eval(text), (int, float))
    except (ValueError, SyntaxError):
        return False


def parse_statics(items):
    """{key: value} from `--static stride=2 --static mode=train` (values as Python literals,
    else strings)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise CheckInputError(f"--static {item!r}: expected KEY=VALUE")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def resolve(module, path, name):
    """The Found for NAME in the module (CheckInputError listing what is there if none)."""
    items = find(module)
    for item in items:
        if name in (item.name, item.stem) or (item.kind == "pair" and name == getattr(item.fn, "__name__", "")):
            return item
    obj = getattr(module, name, None)
    if callable(obj):
        return Found(name, "function", obj, None, name)
    fwd, bwd = getattr(module, f"{name}_forward", None), getattr(module, f"{name}_backward", None)
    if callable(fwd):
        return Found(f"{name}_backward" if bwd else name, "pair" if bwd else "loss", fwd, bwd, name)
    listed = sorted({i.name for i in items})
    raise CheckInputError(f"{path}: nothing named {name!r} to check" + (f" (found: {', '.join(listed)})"
                                                                       if listed else ""))


@contextlib.contextmanager
def quiet_numpy():
    """The user's own NumPy warnings (overflow at the generated large values) are not the
    report's: the report says where the forward is not finite."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def options_of(args):
    kinks = (0.0,) + tuple(float(k) for k in args.kinks.split(",")) if args.kinks else (0.0,)
    return dict(cases=args.cases, rtol=args.rtol, atol=args.atol, fd_rtol=args.fd_rtol, kinks=kinks,
                transforms=not args.no_transforms, second_order=not args.no_second_order, fast=args.fast,
                timeout=args.timeout or None)


def sidecar_path(path):
    """Where the examples of FILE.py may live without editing it: FILE_examples.py beside it."""
    root, ext = os.path.splitext(path)
    return f"{root}_examples{ext}"


def with_examples(module, path):
    """The module as discovery reads it, with FILE_examples.py beside it read as if it were
    appended to FILE.py: its NAME_example() / NAME_examples() functions see the file's names
    (a Point class of the file, say) and the file itself is never edited."""
    sidecar = sidecar_path(path)
    if not os.path.isfile(sidecar):
        return module
    merged = types.ModuleType(module.__name__)
    merged.__dict__.update(vars(module))
    folder = os.path.dirname(os.path.abspath(sidecar))
    sys.path.insert(0, folder)
    try:
        with open(sidecar) as fh:
            exec(compile(fh.read(), sidecar, "exec"), merged.__dict__)
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise CheckInputError(f"{sidecar}: running it failed: {type(exc).__name__}: {msg}") from None
    finally:
        sys.path.remove(folder)
    return merged


def check_path(path, options, rerun=None, on_row=None, log=None):
    """Everything checkable in the file or folder at `path` (a ModuleReport), with `options`
    (an `Options`); examples also from FILE_examples.py beside it."""
    module = with_examples(load_module(path), path)
    for note in getattr(module, "gradcheck_notes", ()):
        if log:
            log(f"  note: {note}")
    settings = options.as_kwargs()
    settings.pop("replay")  # a file's rows are generated cases, never one saved case
    with quiet_numpy():
        return check_module(module, path, rerun=rerun, on_row=on_row, **settings)


def check_file(args, log, prog="jaxnets gradcheck"):
    """FILE.py: the summary table, then the reports of what failed; the exit status."""
    log(f"checking {args.target}:")
    report = check_path(args.target, Options(seed=args.seed, save_dir=args.save_dir, **options_of(args)),
                        rerun=f"{prog} {args.target}",
                        on_row=lambda r: log(f"  {r.name}: {r.status.upper()} ({r.seconds:.1f} s)"), log=log)
    print(report.table())
    for row in report.rows:
        if row.status in ("fail", "error") and row.report is not None:
            print()
            print(row.report.text())
    return report


def check_target(args, log, prog="jaxnets gradcheck"):
    """FILE.py:NAME: its whole report (a Report)."""
    path, _, name = args.target.rpartition(":")
    module = with_examples(load_module(path), path)
    item = resolve(module, path, name)
    reference = None
    rerun = f"{prog} {args.target}"
    if args.reference:
        ref_path, sep, ref_name = args.reference.rpartition(":")
        if not sep or not ref_path or not ref_name:
            raise CheckInputError(f"--reference: expected FILE.py:NAME, got {args.reference!r}")
        ref_item = resolve(load_module(ref_path), ref_path, ref_name)
        reference = (ref_item.fn, ref_item.backward) if ref_item.backward is not None else ref_item.fn
        rerun += f" --reference {shlex.quote(args.reference)}"
    # a saved case re-runs with the same example and keyword values (its shapes bind the rule)
    rerun += f" --example {shlex.quote(args.example)}" if args.example else ""
    rerun += "".join(f" --static {shlex.quote(item)}" for item in args.static or ())
    if item.kind == "network" and not args.example:
        with quiet_numpy():
            row = check_network(module, item, seed=args.seed, save_dir=args.save_dir, rerun=rerun,
                                replay=args.replay, **options_of(args))
        if row.report is None:
            return RowReport(row)
        return row.report
    statics = parse_statics(args.static)
    twin = False
    if args.example:
        example_args, domains = parse_example(args.example, args.seed)
        examples = [Example(tuple(example_args), statics, 0, domains)]
    else:
        found, twin_ref, where = examples_for(module, item, args.seed)
        if not found:
            raise CheckInputError(f"{path}: {where}")
        examples = found
        if statics:
            examples = [tuple(e) + (statics,) if isinstance(e, tuple) else e for e in examples]
        if reference is None and twin_ref is not None:
            reference, twin = twin_ref, True
    subject = subject_for(item, reference)
    progress = (lambda done, total, secs: log(f"  case {done}/{total} ({secs:.0f} s)"))
    with quiet_numpy():
        return run_check(item.fn, examples=examples, backward=item.backward, reference=reference, name=item.name,
                         seed=args.seed, save_dir=args.save_dir, rerun=rerun, replay=args.replay, twin=twin,
                         progress=progress, subject=subject, **options_of(args))


def writable(path, what):
    """CheckInputError unless `path` can be written (checked before any work is done)."""
    if os.path.isdir(path):
        raise CheckInputError(f"{what} {path}: is a folder, not a file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CheckInputError(f"{what} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise CheckInputError(f"{what} {path}: not writable")


def run(args, prog="jaxnets gradcheck"):
    """FILE.py or FILE.py:NAME; returns the exit status."""
    if args.json:
        writable(args.json, "--json")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if ":" not in os.path.basename(args.target) and (args.target.endswith(".py") or os.path.isdir(args.target)):
        for flag in ("example", "reference", "replay", "static"):
            if getattr(args, flag):
                raise CheckInputError(f"--{flag} needs FILE.py:NAME (one thing to check), not a whole file")
        report = check_file(args, log, prog)
        data = {"file": args.target, "status": report.status,
                "rows": [{"check": r.name, "status": r.status, "worst": r.worst, "seconds": round(r.seconds, 2),
                          "note": r.note, "report": r.report.to_dict() if r.report is not None else None}
                         for r in report.rows]}
        status = report.exit_status
        if report.nothing_judged():
            print(f"{prog}: {report.nothing_judged()}", file=sys.stderr)
    else:
        if ":" not in args.target:
            raise CheckInputError(f"expected FILE.py or FILE.py:NAME (or a folder), got {args.target!r}")
        report = check_target(args, log, prog)
        print(report.text())
        data = report.to_dict()
        status = 0 if report.ok else 1
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(jsonable(data), fh, indent=2)
        log(f"wrote {args.json}")
    return status


def add_arguments(parser):
    """The options of a check of your own code (shared with `jaxnets gradcheck`)."""
    parser.add_argument("--example", metavar="SPEC",
                        help="with FILE.py:NAME: one shape per positional argument, e.g. 4x5,4x5:positive,3:int0..9 "
                             "(domains: real, positive, nonnegative, unit, bool, intLO..HI; a number is held fixed)")
    parser.add_argument("--static", action="append", metavar="KEY=VALUE",
                        help="with FILE.py:NAME: a keyword value of the call (repeatable), e.g. --static stride=2")
    parser.add_argument("--reference", metavar="FILE.py:NAME",
                        help="with FILE.py:NAME: a trusted implementation (a pair, a loss or a JAX function) the rule "
                             "must match, its convention at kinks included")
    parser.add_argument("--rtol", type=float, default=None,
                        help="relative tolerance between analytic sources (default 1e-10, with a scale-aware floor)")
    parser.add_argument("--atol", type=float, default=None,
                        help="absolute differences up to this always pass (default: none)")
    parser.add_argument("--fd-rtol", type=float, default=None,
                        help="relative tolerance against finite differences (default 1e-6)")
    parser.add_argument("--kinks", metavar="V,V", help="input values where the rule has kinks besides 0, e.g. 0,6 "
                                                      "for relu6 (planted into the generated cases)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds one case may take (default {DEFAULT_TIMEOUT:g}; 0: no limit)")
    parser.add_argument("--fast", action="store_true", default=None,
                        help="random projections instead of coordinate sweeps (default: above 200000 elements)")
    parser.add_argument("--no-fast", dest="fast", action="store_false", help="never fast mode")
    parser.add_argument("--no-second-order", action="store_true", help="skip the second-order check")
    parser.add_argument("--save-dir", default="gradcheck-cases", metavar="DIR",
                        help="where a failing check's worst case is saved as .npz (default gradcheck-cases; nothing "
                             "is written when every check passes)")
    parser.add_argument("--replay", metavar="CASE.npz", help="with FILE.py:NAME: check only this saved case")
    parser.add_argument("--no-transforms", action="store_true",
                        help="skip the jit / eager / vmap comparison of the rule")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated cases (default 0)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")


def validate(parser, args):
    """parser.error for option values out of range (before anything is loaded)."""
    if args.cases is not None and args.cases < 1:
        parser.error("--cases must be >= 1")
    for flag in ("rtol", "atol", "fd_rtol", "timeout"):
        value = getattr(args, flag)
        if value is not None and (value < 0 or (flag != "timeout" and flag != "atol" and value == 0)):
            parser.error(f"--{flag.replace('_', '-')} must be {'>= 0' if flag in ('timeout', 'atol') else '> 0'}, "
                         f"got {value:g}")
    try:
        if args.kinks:
            [float(k) for k in args.kinks.split(",")]
    except ValueError:
        parser.error(f"--kinks: expected numbers separated by commas, got {args.kinks!r}")


def main(argv=None, prog="python -m jaxnets.gradcheck"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.replace("jaxnets gradcheck", prog),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", metavar="FILE.py[:NAME]", help="check everything in FILE.py, or NAME in it")
    parser.add_argument("--cases", type=int, default=None,
                        help=f"cases per check (default {DEFAULT_CASES}; fast mode 8)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    validate(parser, args)
    try:
        return run(args, prog)
    except CheckInputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
