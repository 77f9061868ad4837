"""Check your own backward pass: `check_layer` / `assert_layer`.

The project's five-way engine applied to any (forward, backward) pair written in JAX or NumPy
(conventions in `jaxnets.verify.layer`): on cases generated from an example
(`jaxnets.verify.cases`), the pair's backward is compared with

- `jax.grad` of its forward ("autodiff", JAX forwards),
- itself wired in as a `jax.custom_vjp` and differentiated by `jax.grad` in context (between
  exact maps of the inputs and a random downstream function), against `jax.vjp` of the
  forward under the cotangent it saw there ("custom_vjp ~ autodiff (in context)"),
- an optional reference pair (JAX or NumPy) and, for a JAX reference, `jax.grad` of it,
- Richardson-extrapolated central differences of the forward in float64, with one-sided
  differences telling kinks apart (`jaxnets.verify.finite_diff.probe`),

and, for JAX code, against itself eagerly, under jit, and per example under vmap when rows
are independent. Relative errors and tolerances are the project's (`tolerances`).

Verdicts: a pair passes, fails, or is ambiguous — at a kink, finite differences are no oracle
and the value must lie between the one-sided slopes; two analytic sources that differ only
at kinks, each between the slopes there, follow different conventions (ambiguous). The
reference is the exception: it defines the convention, so the backward must match it at
kinks too.
"""
from __future__ import annotations

import os
import time

import jax
import numpy as np

from jaxnets.verify import hints as hint_rules
from jaxnets.verify.cases import generate, load_case, save_case
from jaxnets.verify.layer import LayerInputError, as_examples, prepare_layer
from jaxnets.verify.layer_compare import CaseChecker
from jaxnets.verify.report import LayerReport
from jaxnets.verify.tolerances import TOL_ANALYTIC_F64, TOL_FD_F64, precise_jax

#: cases per check unless `cases=` says otherwise
DEFAULT_CASES = 60


def _reference_pair(reference):
    if reference is None:
        return None
    if callable(reference):
        return reference, None
    if isinstance(reference, (tuple, list)) and len(reference) == 2 and callable(reference[0]):
        return reference[0], reference[1]
    raise LayerInputError("reference must be a (forward, backward) pair, or a loss function returning (loss, dloss)")


def check_layer(forward, backward=None, example=None, *, reference=None, cases=DEFAULT_CASES, seed=0, name=None,
                kinks=(0.0,), leading_sizes=True, transforms=True, fail_fast=False, save_dir=None, rerun=None,
                replay=None):
    """Check a hand-written backward pass; returns a LayerReport (`.ok`, `.text()`, `.to_json()`).

    forward(*arrays, **static) -> (out, cache) and backward(dout, cache) -> one gradient per
    floating positional input (a bare array for one); or, with backward=None, a loss
    forward(scores, *targets) -> (loss, dscores). JAX or NumPy code.
    example: the arrays of one valid call, optionally followed by a dict of keyword values held
        fixed (static ints, float targets); or a list of such examples (several geometries).
    reference: an optional (forward, backward) pair, or loss function, to compare with; it
        defines the convention at kinks.
    cases: how many cases to generate (seeded by `seed`, reproducible); kinks: input values
        where the layer has kinks, planted into "zeros" cases besides 0.
    leading_sizes: also try batch size 1 and N + 1 where the forward accepts them.
    transforms: also check the backward eagerly, under jit and per example under vmap.
    fail_fast: stop at the first failing case (and skip that case's remaining checks).
    save_dir: write each failing pair's worst case there as .npz; rerun: the command prefix
        that re-runs a saved case (`jaxnets gradcheck` passes its own); replay: an .npz path
        written that way: check only that case.
    Bad input (an example the forward rejects, a backward returning the wrong number or shapes
    of gradients, NaN/inf) raises LayerInputError (a ValueError) with one line.
    """
    start = time.perf_counter()
    if not isinstance(cases, int) or cases < 1:
        raise LayerInputError(f"cases must be a positive integer, got {cases!r}")
    with precise_jax():
        examples = as_examples(example)
        layer = prepare_layer(forward, backward, examples, name, leading_sizes=leading_sizes)
        ref_pair = _reference_pair(reference)
        ref = None
        if ref_pair is not None:
            ref = prepare_layer(*ref_pair, examples, name=f"{layer.name} reference", who="reference forward")
            if ref.wrt != layer.wrt:
                raise LayerInputError(f"the reference differentiates inputs {ref.wrt}, the layer {layer.wrt}")
        if replay is not None:
            try:
                case_list = [load_case(replay)]
            except ValueError as exc:
                raise LayerInputError(str(exc)) from None
            if len(case_list[0].arrays) != len(examples[0].arrays):
                raise LayerInputError(f"{replay}: the case has {len(case_list[0].arrays)} inputs, the layer's "
                                      f"example {len(examples[0].arrays)}")
        else:
            case_list = generate(layer, examples, cases, seed, _out_shape(layer), kinks)
        checker = CaseChecker(layer, ref, examples, seed, fail_fast)
        for case in case_list:
            checker.run_case(case)
            if fail_fast and any(f.status == "fail" for f in checker.findings):
                break
        if transforms and replay is None and layer.jax_backward:
            checker.run_transforms(case_list)
        checked = [c for c in case_list if c.index in checker.ran]
        report = LayerReport(layer.name, _oracles(layer, ref), checker.summaries(), checked,
                             dict(layer.notes), {"examples": len(examples), "seed": seed, "cases": cases,
                                                 "tolerances": {"analytic": TOL_ANALYTIC_F64, "fd": TOL_FD_F64}})
        _explain(report, checker, layer, save_dir, rerun, replay)
    report.elapsed = time.perf_counter() - start
    return report


def assert_layer(forward, backward=None, example=None, **kwargs):
    """check_layer, raising AssertionError with the report when a gradient disagrees (for a
    user's own pytest suite); returns the report otherwise."""
    report = check_layer(forward, backward, example, **kwargs)
    if not report.ok:
        raise AssertionError(report.text())
    return report


def _out_shape(layer):
    def shape(arrays, static):
        if layer.jax_forward:
            return jax.eval_shape(lambda *a: layer.forward(*a, **static)[0], *arrays).shape
        return np.shape(layer.forward(*arrays, **static)[0])
    return shape


def _oracles(layer, ref):
    out = {"backward": ("the loss's own dloss, times the upstream cotangent" if layer.form == "loss"
                        else "your backward" + (" (jitted)" if layer.jax_backward else " (NumPy, eager)"))}
    out["autodiff"] = ("jax.vjp of your forward" if layer.jax_forward else f"not run: {layer.notes.get('autodiff')}")
    out["custom_vjp"] = ("your backward as a jax.custom_vjp, under jax.grad in context" if layer.jax_backward
                         else f"not run: {layer.notes.get('custom_vjp')}")
    if ref is None:
        out["reference"] = "not run: no reference given"
    else:
        out["reference"] = "your reference's backward" + (" (JAX)" if ref.jax_backward else " (NumPy)")
        out["reference_autodiff"] = ("jax.vjp of the reference's forward" if ref.jax_forward
                                     else f"not run: {ref.notes.get('autodiff')}")
    out["fd"] = ("central differences of your forward in float64, Richardson-extrapolated; one-sided at kinks")
    return out


def _explain(report, checker, layer, save_dir, rerun, replay=None):
    """Hints for each failing pair, its worst case saved as .npz (a replayed case is its own
    file already), and the command to re-run it."""
    by_index = {c.index: c for c in report.cases}
    for p in report.pairs.values():
        if p.status != "fail":
            continue
        w = p.worst
        case = by_index.get(w.case)
        p.hints = hint_rules.case_hints([(by_index[f.case], f.status) for f in p.findings if f.case in by_index],
                                        lambda c: c.describe())
        if case is not None and w.case in checker.kept:
            p.hints = _value_hints(p, w, case, checker) + p.hints
        if replay is not None:
            path = p.saved = replay
        elif save_dir and case is not None:
            os.makedirs(save_dir, exist_ok=True)
            path = os.path.join(save_dir, f"{_safe(layer.name)}-case{case.index}.npz")
            save_case(path, case, layer.name)
            p.saved = path
        else:
            continue
        p.rerun = (f"{rerun} --replay {path}" if rerun
                   else f"check_layer(forward, backward, example, replay={path!r})")


def _value_hints(p, w, case, checker):
    """Hints from the worst failing case's gradient against the pair's oracle (finite
    differences: the coordinates where they were smooth)."""
    case, sources = checker.kept[w.case]
    names = checker.names()
    if p.a != "backward" or w.param not in names or isinstance(sources.get("backward"), Exception):
        return []
    i = names.index(w.param)
    if p.b == "fd":
        sample = checker.fd_samples.get(w.case, {}).get(i)
        if sample is None:
            return []
        got, want, inputs, full = sample[0], sample[1], {}, False
    elif isinstance(sources.get(p.b), tuple):
        got, want = sources["backward"][1][i], sources[p.b][1][i]
        inputs, full = {checker.layer.input_names[k]: x for k, x in enumerate(case.arrays)}, True
    else:
        return []
    layer = checker.layer
    sizes = {}
    if case.arrays[0].ndim:
        sizes["N (batch)"] = case.arrays[0].shape[0]
    for k, x in enumerate(case.arrays):
        for ax, n in enumerate(x.shape[1:], start=1):
            sizes.setdefault(f"{layer.input_names[k]}.shape[{ax}]", n)
    out = sources["backward"][0]
    for ax, n in enumerate(np.shape(out)[1:], start=1):
        sizes.setdefault(f"out.shape[{ax}]", n)
    sizes.update({k: v for k, v in case.static.items() if isinstance(v, int) and not isinstance(v, bool)})
    return hint_rules.value_hints(got, want, sizes, inputs, full)


def _safe(name):
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
