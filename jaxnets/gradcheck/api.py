"""Check anyone's derivative rule: `check` (and `run_check`, the same with the checker's own hooks).

`check(f, *example_args, ...)` takes the code as it is written:

- a `jax.custom_vjp` or `jax.custom_jvp` object (or a function that wraps one: jax.jit, a
  jnp ufunc), or any JAX function (its JAX derivative is then checked, custom rules inside
  included);
- a cs231n pair: `check(forward, x, w, b, backward=backward)`, or `check_layer(forward,
  backward, example)` with the example as one tuple (a trailing dict of keyword values);
- a loss `forward(scores, *targets) -> (loss, dscores)`: `check(softmax_loss, scores, y)`.

From the example(s) it generates cases (`jaxnets.gradcheck.case.generate`), runs them through
the one engine with the table of checks for the subject (`checks.user_table`), adds hints
from the mutant catalogue to what failed, saves the worst failing case of each row as .npz
(`save_dir`) with the command that re-runs it, and returns a `Report`. Inputs above
`FAST_ABOVE` elements are checked in fast mode: fewer cases and random projections
<J v, u> by finite differences plus a few exact coordinates instead of a coordinate sweep.
"""
from __future__ import annotations

import os
import time

import jax
import numpy as np

from jaxnets.gradcheck import engine, hints as hint_rules, tree
from jaxnets.gradcheck.adapters.custom import custom_subject, kind_of, positional
from jaxnets.gradcheck.adapters.pair import PairError, as_numeric, pair_subject, split_example
from jaxnets.gradcheck.case import Example, domain, generate, load_case, save_case
from jaxnets.gradcheck.checks import user_table
from jaxnets.gradcheck.options import Options
from jaxnets.gradcheck.prepare import CheckInputError, prepare
from jaxnets.gradcheck.tolerances import GRAD_SCALE_FLOOR, TOL_ANALYTIC_F64, TOL_FD_F64, Tolerance, precise_jax

#: cases per check unless `cases=` says otherwise
DEFAULT_CASES = 60
#: differentiated elements above which a check runs in fast mode (unless `fast=` says)
FAST_ABOVE = 200_000
#: cases, coordinates per leaf and directions per leaf in fast mode
FAST_CASES, FAST_COORDS, FAST_DIRECTIONS = 8, 4, 3


def looks_like_loss(fn, example):
    """Whether fn(*example) returns (a scalar, an array shaped like the first argument): a
    loss with its own gradient, cs231n's `softmax_loss(x, y) -> (loss, dx)`."""
    if not example:
        return False
    try:
        ex = example[0]
        out = fn(*tree.fresh(ex.args), **tree.fresh(ex.kwargs))
    except Exception:
        return False
    return (isinstance(out, (tuple, list)) and len(out) == 2 and np.ndim(out[0]) == 0
            and np.shape(out[1]) == np.shape(ex.args[0]))


def subject_of(fn, backward=None, name=None, reference=None, examples=None):
    """The Subject for `fn` (see the module docstring), with its reference's."""
    try:
        if backward is not None:
            subject = pair_subject(fn, backward, name)
        elif kind_of(fn) != "function":
            subject = custom_subject(fn, name)
        elif looks_like_loss(fn, examples):
            subject = pair_subject(fn, None, name)
        else:
            subject = custom_subject(fn, name)
    except PairError as exc:
        raise CheckInputError(str(exc)) from None
    if reference is not None:
        subject.reference = reference_subject(reference, subject, examples)
    return subject


def reference_subject(reference, subject, examples=None):
    if isinstance(reference, (tuple, list)) and len(reference) == 2 and callable(reference[0]):
        ref = pair_subject(reference[0], reference[1], f"{subject.name} reference")
    elif callable(reference):
        ref = pair_subject(reference, None, f"{subject.name} reference") \
            if subject.kind == "loss" or looks_like_loss(reference, examples) \
            else subject_of(reference, name=f"{subject.name} reference")
    else:
        raise CheckInputError("reference must be a (forward, backward) pair, a loss function returning (loss, dloss), "
                              "or a custom_vjp / custom_jvp / JAX function")
    ref.wrt = subject.wrt
    return ref


def as_examples(fn, example, examples=None, domains=()):
    """[Example] from one example (a tuple of arguments, optionally with a trailing dict of
    keyword values) or a list of them (several geometries)."""
    if example is None and not examples:
        raise CheckInputError("no example given: pass the arguments of one valid call")
    raw = list(examples) if examples else [example]
    out = []
    for i, ex in enumerate(raw):
        if isinstance(ex, Example):
            out.append(Example(ex.args, dict(ex.kwargs), i, ex.domains or tuple(domains)))
            continue
        if not isinstance(ex, (tuple, list)):
            ex = (ex,)
        if not ex:
            raise CheckInputError(f"example {i} has no arguments")
        args, kwargs = split_example(fn, ex)
        try:
            args = tuple(as_numeric(a, f"example {i}, argument {k}") for k, a in enumerate(args))
        except PairError as exc:
            raise CheckInputError(str(exc)) from None
        out.append(Example(args, kwargs, i, tuple(domains)))
    kinds = {tuple(type(a).__name__ for a in e.args) for e in out}
    if len(kinds) > 1:
        raise CheckInputError("examples differ in their number or kinds of arguments")
    return out


def _custom_args(subject, examples):
    """Examples of a custom rule with keyword values bound to positions, and Python floats
    in differentiated positions made 0-d arrays (JAX differentiates them)."""
    out = []
    for ex in examples:
        try:
            args, kwargs = positional(subject.primal, ex.args, ex.kwargs)
        except Exception as exc:
            raise CheckInputError(str(exc)) from None
        wrt = subject.wrt_for(args)
        args = tuple(jax.tree_util.tree_map(_float_leaf, a) if k in wrt else a for k, a in enumerate(args))
        out.append(Example(args, kwargs, ex.index, ex.domains))
    return out


def _float_leaf(v):
    return np.asarray(v, np.float64) if isinstance(v, float) else v


def _domains(example):
    """Per positional argument: the stated domain, else the one its first float leaf
    suggests."""
    out = []
    for k, a in enumerate(example.args):
        stated = example.domains[k] if k < len(example.domains) else None
        floats = [x for x in tree.flat_outputs(a)[0] if tree.is_float_array(x)]
        out.append(stated or (domain(floats[0]) if floats else None))
    return tuple(out)


def check(fn, *example, backward=None, examples=None, kwargs=None, domains=(), reference=None, name=None,
          options=None, **settings):
    """Check a derivative rule; returns a `Report` (`.ok`, `.status`, `.text()`, `.to_json()`).

    fn: a `jax.custom_vjp` or `jax.custom_jvp` object (or a function wrapping one), a
        cs231n-style forward with its `backward=` (`forward(...) -> (out, cache)`,
        `backward(dout, cache) -> grads`), a loss `fn(scores, *targets) -> (loss, dscores)`,
        or any JAX function (its JAX derivative is checked).
    example: the positional arguments of one valid call (`kwargs`: its keyword values); or
        `examples=[(args...), ...]` for several geometries. Only their shapes, dtypes and
        domains are used: the checker draws its own values.
    domains: per positional argument, "real", "positive", "nonnegative", "unit" or None
        (inferred).
    reference: a trusted implementation (a (forward, backward) pair, a loss or a JAX
        function) that the rule must match, its convention at kinks included.
    name: what the report calls the rule (default: its function's name).
    options: an `Options` (how many cases, which seed, tolerances, ...); any of its fields
        may also be given as a keyword here: `check(f, x, cases=10, seed=1)`.

    Bad input (no example, an example the forward rejects, an unknown option) raises
    `CheckInputError` (a ValueError) with one line.
    """
    opts = Options.of(options, settings)
    return run_check(fn, *example, backward=backward, examples=examples, kwargs=kwargs, domains=domains,
                     reference=reference, name=name, **opts.as_kwargs())


def run_check(fn, *example, backward=None, examples=None, kwargs=None, reference=None, cases=None, seed=0,
              name=None, kinks=(0.0,), rtol=None, atol=None, fd_rtol=None, domains=(), leading_sizes=True,
              transforms=True, second_order=True, fast=None, fail_fast=False, save_dir=None, rerun=None, replay=None,
              timeout=None, progress=None, subject=None, twin=False, rows=None):
    """`check` with the checker's own hooks (for its command line, discovery and the
    conformance suite): every `Options` field as a keyword, and
    fail_fast: stop at the first failing case; rerun: the command that re-runs a saved case;
    progress(done, total, seconds): called as cases finish; subject: a prepared `Subject`;
    twin: the reference is the project's twin of a known name, not the user's: it does not
    define the convention at kinks; rows: keep only the rows of the table whose names contain
    one of these strings (to see what one check catches on its own).
    """
    start = time.perf_counter()
    if cases is not None and (not isinstance(cases, int) or cases < 1):
        raise CheckInputError(f"cases must be a positive integer, got {cases!r}")
    with precise_jax():
        exs = as_examples(fn, (tuple(example) + ((kwargs,) if kwargs else ())) if example else None, examples,
                          domains)
        subject = subject or subject_of(fn, backward, name, reference, exs)
        if subject.reference is not None and twin:
            subject.reference.convention = False
        if subject.kind in ("custom_vjp", "custom_jvp", "function"):
            exs = _custom_args(subject, exs)
        with engine.time_limit(timeout):
            facts = prepare(subject, exs, try_sizes=leading_sizes)
            if subject.reference is not None:
                prepare(subject.reference, exs, try_sizes=False)
        size = sum(int(np.size(x)) for x in tree.split(exs[0].args, exs[0].kwargs,
                                                             subject.wrt_for(exs[0].args))[1])
        fast = size > FAST_ABOVE if fast is None else fast
        n_cases = cases or (FAST_CASES if fast else DEFAULT_CASES)
        doms = [_domains(e) for e in exs]
        of = engine.out_treedef_of(subject)
        if replay is not None:
            try:
                case_list = [load_case(replay, subject.name)]
            except ValueError as exc:
                raise CheckInputError(str(exc)) from None
            _fits(subject, case_list[0], exs[0], replay)
        else:
            case_list = generate(exs, n_cases, seed, wrt_of=subject.wrt_for,
                                 out_shapes=engine.output_shapes_of(subject),
                                 batched=facts["batched"], leading_sizes=() if fast else facts["leading_sizes"],
                                 kinks=kinks, scalar_out=facts["scalar_out"])
            case_list = [_with_domains(c, doms[c.tags["example"]]) for c in case_list]
        tol = Tolerance(rtol or TOL_ANALYTIC_F64, fd_rtol or TOL_FD_F64, GRAD_SCALE_FLOOR, atol)
        options = engine.Options(tol=tol, seed=seed, fail_fast=fail_fast, second_order=second_order,
                                 transforms=transforms and replay is None, timeout=timeout, progress=progress,
                                 fd_coords=FAST_COORDS if fast else engine.FD_MAX_COORDS,
                                 fd_directions=FAST_DIRECTIONS if fast else 2,
                                 second_order_coords=2 if fast else 6, batched=facts["batched"],
                                 rows_independent=facts["rows_independent"] and not fast)
        table = user_table(subject)
        if rows is not None:
            table = tuple(c for c in table if any(r in c.name for r in rows))
        report, kept = engine.run(subject, case_list, table, options, of, oracles=describe(subject, fast),
                                  settings={"examples": len(exs), "cases": n_cases, "fast": fast,
                                            "differentiated elements": size})
        explain(report, kept, subject, save_dir, rerun, replay)
    report.elapsed = time.perf_counter() - start
    return report


def _with_domains(case, doms):
    from dataclasses import replace

    return replace(case, tags={**case.tags, "domains": doms})


def _fits(subject, case, ex, path):
    if len(case.args) != len(ex.args):
        raise CheckInputError(f"{path}: the case has {len(case.args)} arguments, {subject.name}'s example "
                              f"{len(ex.args)}")
    try:
        subject.bind(case.args, case.kwargs)
    except Exception as exc:
        raise CheckInputError(f"{path}: the case does not fit {subject.name} ({exc})") from None


def check_layer(forward, backward=None, example=None, **options):
    """`run_check` in the pair convention: `forward` with its `backward`, or a loss
    `forward(scores, *targets) -> (loss, dscores)` alone; `example` is one tuple of arguments
    (a trailing dict of keyword values), or a list of them. (The conformance suite's way in;
    a user writes `check(forward, *args, backward=backward)`.)"""
    examples = example if isinstance(example, list) and example and isinstance(example[0], (tuple, Example)) \
        else [example] if example is not None else None
    name, reference = options.pop("name", None), options.pop("reference", None)
    with precise_jax():
        try:
            subject = pair_subject(forward, backward, name)
        except PairError as exc:
            raise CheckInputError(str(exc)) from None
        if reference is not None:
            subject.reference = reference_subject(reference, subject)
    return run_check(forward, examples=examples, subject=subject, **options)


def describe(subject, fast):
    """What each oracle is for this subject, or why it did not run."""
    s = subject
    rule = {"pair": "your backward", "loss": "the loss's own dscores, times the upstream cotangent",
            "custom_vjp": "your fwd then bwd, called as jax.grad calls them",
            "custom_jvp": "JAX's transposition of your jvp rule (jax.vjp of your function)",
            "function": "JAX's derivative of your function (jax.vjp)"}.get(s.kind, s.rule_label)
    out = {s.rule_label: rule + (" (jitted)" if s.jax_rule else " (NumPy, eager)")}
    out["autodiff"] = ("jax.vjp of your primal (the undecorated function)" if s.kind in ("custom_vjp", "custom_jvp")
                       else "jax.vjp of your forward") if s.jax_primal and s.kind != "function" else \
        f"not run: {s.notes.get('autodiff', 'a plain function: nothing else to differentiate')}"
    out["in context"] = ("your own object under jax.grad inside a composition" if s.jax_rule and s.wired
                         else f"not run: {s.notes.get('custom_vjp', 'needs a JAX-traceable rule')}")
    if s.jvp_rule is not None:
        out["jvp rule"] = "your jvp rule, against finite differences and jax.jvp of your primal"
    if s.reference is None:
        out["reference"] = "not run: no reference given"
    else:
        r = s.reference
        out["reference"] = "the reference's rule" + (" (JAX)" if r.jax_rule else " (NumPy)")
    out["fd"] = ("random projections <J v, u> by central differences, plus a few exact coordinates (fast mode)"
                 if fast else "central differences of your primal in float64, Richardson-extrapolated; one-sided "
                              "at kinks and at the domain's boundary")
    return out


def explain(report, kept, subject, save_dir, rerun, replay=None):
    """Hints for each failing row, its worst case saved as .npz (a replayed case is its own
    file already), and the command to re-run it."""
    by_index = {c.index: c for c in report.cases}
    for row in report.rows.values():
        if row.status != "fail":
            continue
        w = row.worst
        case = by_index.get(w.case)
        row.hints = hint_rules.case_hints([(by_index[f.case], f.status) for f in row.findings if f.case in by_index],
                                          lambda c: c.describe())
        if case is not None and w.case in kept:
            row.hints = _value_hints(row, w, kept[w.case]) + row.hints
        if replay is not None:
            path = row.saved = replay
        elif save_dir and case is not None:
            try:
                os.makedirs(save_dir, exist_ok=True)
                path = os.path.join(save_dir, f"{_safe(subject.name)}-case{case.index}.npz")
                save_case(path, case, subject.name)
            except (OSError, ValueError, TypeError) as exc:
                report.notes.setdefault("saving", f"could not save the failing case: {exc}")
                continue
            row.saved = path
        else:
            continue
        row.rerun = f"{rerun} --replay {path}" if rerun else f"check(..., replay={path!r})"


def _value_hints(row, w, ctx):
    """Hints from the worst failing case's gradient against the row's oracle."""
    names = list(ctx.names)
    if w.param not in names:
        return []
    i = names.index(w.param)
    rule = ctx.get("rule")
    if isinstance(rule, Exception):
        return []
    if row.b == "fd":
        sample = ctx.fd_samples.get(w.case, {}).get(i)
        if sample is None:
            return []
        got, want, inputs, full = sample[0], sample[1], {}, False
    else:
        other = {"autodiff": "autodiff", "reference": "reference", "reference autodiff": "reference_autodiff"}
        src = other.get(row.b)
        if src is None or row.a != ctx.subject.rule_label:
            return []
        b = ctx.get(src)
        if isinstance(b, Exception):
            return []
        got, want = rule.grads[i], b.grads[i]
        inputs, full = {n: x for n, x in zip(names, ctx.diff64)}, True
    sizes = {}
    first = ctx.diff64[0] if ctx.diff64 else None
    if first is not None and first.ndim:
        sizes["N (batch)"] = first.shape[0]
    for n, x in zip(names, ctx.diff64):
        for ax, size in enumerate(x.shape[1:], start=1):
            sizes.setdefault(f"{n}.shape[{ax}]", size)
    for n, o in zip(ctx.out_names, rule.outputs):
        for ax, size in enumerate(np.shape(o)[1:], start=1):
            sizes.setdefault(f"{n}.shape[{ax}]", size)
    for k, v in list(ctx.case.kwargs.items()) + [(f"arg{k}", a) for k, a in enumerate(ctx.case.args)]:
        if isinstance(v, int) and not isinstance(v, bool):
            sizes.setdefault(k, v)
        elif isinstance(v, dict):
            sizes.update({kk: vv for kk, vv in v.items() if isinstance(vv, int) and not isinstance(vv, bool)})
    return hint_rules.value_hints(got, want, sizes, inputs, full)


def _safe(name):
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
