"""`jaxnets gradcheck FILE.py[:NAME]`: a user's file, loaded and checked as it is.

FILE.py alone: everything `jaxnets.gradcheck.discover.find` lists in it, one summary row each,
then the reports of what failed. FILE.py:NAME: one thing, its whole report — NAME may be a
custom_vjp or custom_jvp object, a pair's stem (NAME_forward / NAME_backward), a backward
(`batchnorm_backward_alt`), a loss or any JAX function. Its example comes from `--example`
(one shape per positional argument), else NAME_example() in the file, else the project's
knowledge of cs231n's names.
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import os
import sys
import warnings

import numpy as np

from jaxnets.gradcheck import CheckInputError, check
from jaxnets.gradcheck.case import Example
from jaxnets.gradcheck.discover import Found, check_module, examples_for, find

DOMAIN_WORDS = {"real": "real", "positive": "positive", "nonnegative": "nonnegative", "unit": "unit"}


def load_module(path):
    """The module a user's file defines (CheckInputError naming the file when it cannot)."""
    if not os.path.isfile(path):
        raise CheckInputError(f"{path}: no such file")
    name = "jaxnets_gradcheck_" + "".join(ch if ch.isalnum() else "_" for ch in os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise CheckInputError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # so the file can import its neighbours
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise CheckInputError(f"{path}: importing it failed: {type(exc).__name__}: {msg}") from None
    finally:
        sys.path.remove(folder)
    return module


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


def check_file(args, log):
    """FILE.py: the summary table, then the reports of what failed; the exit status."""
    module = load_module(args.target)
    log(f"checking {args.target}:")
    with quiet_numpy():
        report = check_module(module, args.target, seed=args.seed, save_dir=args.save_dir,
                              rerun=f"jaxnets gradcheck {args.target}",
                              on_row=lambda r: log(f"  {r.name}: {r.status.upper()} ({r.seconds:.1f} s)"),
                              **options_of(args))
    print(report.table())
    for row in report.rows:
        if row.status in ("fail", "error") and row.report is not None:
            print()
            print(row.report.text())
    return report


def check_target(args, log):
    """FILE.py:NAME: its whole report (a Report)."""
    path, _, name = args.target.rpartition(":")
    module = load_module(path)
    item = resolve(module, path, name)
    reference = None
    rerun = f"jaxnets gradcheck {args.target}"
    if args.reference:
        ref_path, sep, ref_name = args.reference.rpartition(":")
        if not sep or not ref_path or not ref_name:
            raise CheckInputError(f"--reference: expected FILE.py:NAME, got {args.reference!r}")
        ref_item = resolve(load_module(ref_path), ref_path, ref_name)
        reference = (ref_item.fn, ref_item.backward) if ref_item.backward is not None else ref_item.fn
        rerun += f" --reference {args.reference}"
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
    if args.replay:
        rerun = None
    progress = (lambda done, total, secs: log(f"  case {done}/{total} ({secs:.0f} s)"))
    with quiet_numpy():
        return check(item.fn, examples=examples, backward=item.backward, reference=reference, name=item.name,
                     seed=args.seed, save_dir=args.save_dir, rerun=rerun, replay=args.replay, twin=twin,
                     progress=progress, **options_of(args))
