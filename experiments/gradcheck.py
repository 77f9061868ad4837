"""Gradient checks: your own layer (FILE.py:NAME), or the equivalence report of the built-in ops.

    jaxnets gradcheck FILE.py:NAME [--reference FILE.py:NAME] [--cases 60] [--seed 0] [--json PATH]
                                   [--save-dir gradcheck-cases] [--replay CASE.npz] [--no-transforms]
    jaxnets gradcheck [--cases 200] [--float32-cases 50] [--model-cases 4] [--json PATH] [--no-mutants]
                      [--public-api] [--update-readme README.md]

Your layer: FILE.py defines NAME_forward(*arrays, **static) -> (out, cache) and
NAME_backward(dout, cache) -> one gradient per floating positional input (a bare array for
one; integer inputs such as labels and keyword values get none), in JAX or NumPy; or, for a
loss, only NAME_forward(scores, *targets) -> (loss, dscores). NAME_example() returns the
arrays of one valid call, optionally followed by a dict of keyword values held fixed (stride,
pad, float targets); NAME_examples() may return a list of such tuples instead (several
geometries). `jaxnets.verify.check_layer` compares the backward on --cases generated cases
(random values at several scales, exact zeros, ties, small integers, large magnitudes, batch
size 1 and N + 1, random / one-hot / all-ones upstream gradients) with jax.grad of the forward,
itself as a jax.custom_vjp differentiated in context, the --reference pair (NAME_forward /
NAME_backward in that file) and float64 finite differences; JAX code is also checked eagerly,
under jit and per example under vmap. The report gives each pair's verdict (pass, fail, or
ambiguous: at a kink finite differences are no oracle), the worst element, hints, and for a
failure the case saved under --save-dir with a command that re-runs just that case.
Exit status: 0 when nothing disagrees (ambiguous comparisons at kinks included), 1 when a
gradient disagrees, 2 for bad input (file or names missing, an example the forward rejects,
a backward returning the wrong number or shapes of gradients, NaN/inf), with one line.

For each op, `--cases` deterministic cases (geometries cycling through the op's pool, every
other pass with stress inputs: kinks, ties, saturation, huge scores) are checked by
`jaxnets.verify.compare_op` in float64, and `--float32-cases` of them in float32; each model
variant gets `--model-cases` cases (alternating stress) in both dtypes, in every gradient mode
(its fast layout included). The tables give the largest cs231n relative error seen per pair of
gradient sources; a cell over its tolerance is marked with "!". Then every mutant of
`jaxnets.verify.mutants` is run through the same checker (with --public-api, also through
check_layer, as if it were a user's layer). Exit status 0 when everything agrees, the correct
functions pass and every mutant is caught, 1 otherwise.
"""
import argparse
import importlib.util
import json
import os
import platform
import sys
import time

import jax
import numpy as np

from experiments import runs
from jaxnets import verify as eq
from jaxnets.verify import mutants as mut

JAX_SOURCES = ("manual", "autodiff", "custom_vjp", "fast")
ANALYTIC_COLUMNS = tuple(f"{m} vs numpy" for m in JAX_SOURCES)
JAX_PAIRS = tuple(f"{a} vs {b}" for i, a in enumerate(JAX_SOURCES) for b in JAX_SOURCES[i + 1:])
FD_COLUMNS = tuple(f"{m} vs fd" for m in JAX_SOURCES + ("numpy",))


def _merge(into, result):
    for pair, err in result.max_by_pair().items():
        into[pair] = max(into.get(pair, 0.0), err)


def _summarise(label, results64, results32, tol64, tol_fd, tol32):
    worst64, worst32 = {}, {}
    for r in results64:
        _merge(worst64, r)
    for r in results32:
        _merge(worst32, r)
    failures = [r.report(3) for r in results64 + results32 if not r.ok]
    return {
        "name": label,
        "cases": len(results64),
        "stress_cases": sum(" stress" in r.label for r in results64),
        "fd_cases": sum(r.fd for r in results64),
        "float32_cases": len(results32),
        "max_rel_error": {p: worst64.get(p) for p in ANALYTIC_COLUMNS + JAX_PAIRS + FD_COLUMNS},
        "max_rel_error_float32": max(worst32.values()) if worst32 else None,
        "tolerances": {"analytic": tol64, "fd": tol_fd, "float32": tol32},
        "ok": not failures,
        "failures": failures[:5],
    }


def check_ops(n_cases, n_f32, seed=0, log=print):
    rows = []
    for name in eq.OP_NAMES:
        t = time.perf_counter()
        cases = eq.op_cases(name, n_cases, seed=seed)
        r64 = [eq.compare_op(c) for c in cases]
        f32 = [c for c in cases if eq.float32_meaningful(c)][:n_f32]
        r32 = [eq.compare_op(c, dtype=np.float32) for c in f32]
        rows.append(_summarise(name, r64, r32, eq.TOL_ANALYTIC_F64, eq.TOL_FD_F64, eq.TOL_ANALYTIC_F32))
        log(f"  {name}: {len(r64)} + {len(r32)} float32 cases, {time.perf_counter() - t:.1f}s")
    return rows


def check_models(n_per_variant, seed=0, log=print):
    rows = []
    for name, variants in eq.MODEL_VARIANTS.items():
        for variant in variants:
            t = time.perf_counter()
            cases = [eq.make_model_case(name, variant, seed + i, stress=i % 2 == 1) for i in range(n_per_variant)]
            r64 = [eq.compare_model(c) for c in cases]
            r32 = [eq.compare_model(c, dtype=np.float32) for c in cases]
            rows.append(_summarise(f"{name}/{variant}", r64, r32, eq.TOL_ANALYTIC_F64, eq.TOL_FD_F64,
                                   eq.TOL_ANALYTIC_F32_MODELS))
            log(f"  {name}/{variant}: {len(r64)} cases, {time.perf_counter() - t:.1f}s")
    return rows


def check_mutants():
    baseline = mut.baseline_results()
    baseline_failures = [r.report(3) for results in baseline.values() for r in results if not r.ok]
    results = mut.run_mutants()
    by_name = {m.name: m for m in mut.MUTANTS}
    return {
        "score": mut.score(results),
        "caught": sum(r.caught for r in results),
        "total": len(results),
        "baseline_cases": sum(len(v) for v in baseline.values()),
        "baseline_ok": not baseline_failures,
        "baseline_failures": baseline_failures[:5],
        "results": [
            {"name": r.name, "op": by_name[r.name].op, "erratum": by_name[r.name].erratum,
             "description": by_name[r.name].description, "caught": r.caught, "detail": r.detail}
            for r in results
        ],
    }


def check_public_api(log=print):
    """Every correct op and every mutant through check_layer (`jaxnets.verify.builtin_layers`)."""
    from jaxnets.verify import builtin_layers as bl

    ops_rows = []
    for name in eq.OP_NAMES:
        args = bl.op_layer(name)
        r = eq.check_layer(args.forward, args.backward, args.examples, reference=args.reference, name=name)
        ops_rows.append({"op": name, "status": r.status, "failures": [p.pair for p in r.pairs.values()
                                                                      if p.status == "fail"]})
        log(f"  {name}: {r.status} ({r.elapsed:.1f}s)")
    results, score = bl.public_mutant_score()
    log(f"  {score}")
    return {"score": score, "caught": sum(r.caught for r in results), "total": len(results),
            "ops": ops_rows, "results": [r._asdict() for r in results]}


def run(n_cases=200, n_f32=50, n_models=4, seed=0, mutants=True, log=print, public_api=False):
    """The whole report as a JSON-able dict (float64 and full-precision matmuls inside)."""
    start = time.perf_counter()
    with eq.precise_jax():
        log("ops:")
        ops_rows = check_ops(n_cases, n_f32, seed, log)
        log("models:")
        model_rows = check_models(n_models, seed, log)
        mutant_report = None
        if mutants:
            log("mutants:")
            mutant_report = check_mutants()
            log(f"  {mutant_report['score']}")
        api_report = None
        if public_api:
            log("public API (check_layer):")
            api_report = check_public_api(log)
    ok = all(r["ok"] for r in ops_rows + model_rows) and (
        mutant_report is None or (mutant_report["baseline_ok"] and mutant_report["caught"] == mutant_report["total"])
    ) and (api_report is None or (api_report["caught"] == api_report["total"]
                                  and all(r["status"] != "fail" for r in api_report["ops"])))
    return {
        "ok": ok,
        "tolerances": {
            "TOL_ANALYTIC_F64": eq.TOL_ANALYTIC_F64, "TOL_FD_F64": eq.TOL_FD_F64,
            "TOL_ANALYTIC_F32": eq.TOL_ANALYTIC_F32, "TOL_ANALYTIC_F32_MODELS": eq.TOL_ANALYTIC_F32_MODELS,
            "FD_STEP": eq.FD_STEP, "KINK_MARGIN": eq.KINK_MARGIN,
        },
        "settings": {"cases": n_cases, "float32_cases": n_f32, "model_cases_per_variant": n_models, "seed": seed},
        "ops": ops_rows,
        "models": model_rows,
        "mutants": mutant_report,
        "public_api": api_report,
        "wall_time_s": round(time.perf_counter() - start, 1),
        "environment": {"jax": jax.__version__, "numpy": np.__version__, "python": platform.python_version(),
                        "device": str(jax.devices()[0])},
    }


# ----------------------------------------------------------------------------- Markdown

def _cell(err, tol):
    if err is None:
        return "-"
    return f"{err:.1e}" + (" !" if not (err <= tol) else "")


def _table(rows, title):
    head = ["", "cases", "stress", "FD", "manual~np", "autodiff~np", "custom_vjp~np", "fast~np", "JAX~JAX",
            "manual~FD", "autodiff~FD", "custom_vjp~FD", "fast~FD", "np~FD", "f32 cases", "f32 max", "ok"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        m, tol = r["max_rel_error"], r["tolerances"]
        jax_pairs = [m[p] for p in JAX_PAIRS if m[p] is not None]
        cells = [f"`{r['name']}`", str(r["cases"]), str(r["stress_cases"]), str(r["fd_cases"])]
        cells += [_cell(m[p], tol["analytic"]) for p in ANALYTIC_COLUMNS]
        cells.append(_cell(max(jax_pairs) if jax_pairs else None, tol["analytic"]))
        cells += [_cell(m[p], tol["fd"]) for p in FD_COLUMNS]
        cells += [str(r["float32_cases"]), _cell(r["max_rel_error_float32"], tol["float32"]),
                  "yes" if r["ok"] else "**NO**"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def to_markdown(report):
    t = report["tolerances"]
    lines = [
        "## Gradient equivalence",
        "",
        "Largest cs231n relative error max(|a-b| / max(1e-8, |a|+|b|)) per pair of gradient sources "
        "(`np` = reference_numpy float64, `FD` = Richardson-extrapolated central differences of the "
        f"NumPy forward, steps {t['FD_STEP']:g} and {t['FD_STEP'] / 2:g}, on kink-free cases only). "
        f"Tolerances: analytic {t['TOL_ANALYTIC_F64']:g}, vs FD {t['TOL_FD_F64']:g}, float32 "
        f"{t['TOL_ANALYTIC_F32']:g} (ops) / {t['TOL_ANALYTIC_F32_MODELS']:g} (models); `!` marks a value "
        "over its tolerance.",
        "",
    ]
    lines += _table(report["ops"], "Ops") + [""]
    lines += _table(report["models"], "Models") + [""]
    failures = [f for r in report["ops"] + report["models"] for f in r["failures"]]
    if failures:
        lines += ["### Failures", "", "```", *failures, "```", ""]
    m = report["mutants"]
    if m:
        lines += [f"### Mutants: {m['score']}", "",
                  f"Correct functions on the same {m['baseline_cases']} cases: "
                  f"{'all pass' if m['baseline_ok'] else '**FAIL**'}.", "",
                  "| mutant | op | erratum | what is wrong | caught | first failing comparison |",
                  "|---|---|---|---|---|---|"]
        for r in m["results"]:
            detail = r["detail"].replace("|", "\\|")
            detail = detail if len(detail) <= 140 else detail[:137] + "..."
            lines.append(f"| `{r['name']}` | {r['op']} | {'yes' if r['erratum'] else ''} | {r['description']} | "
                         f"{'yes' if r['caught'] else '**NO**'} | {detail} |")
        lines.append("")
        if m["baseline_failures"]:
            lines += ["```", *m["baseline_failures"], "```", ""]
    api = report.get("public_api")
    if api:
        lines += [f"### Through check_layer: {api['score']}", "",
                  "Correct ops: " + ", ".join(f"`{r['op']}` {r['status']}" for r in api["ops"]) + ".", "",
                  "| mutant | caught | how | detail |", "|---|---|---|---|"]
        lines += [f"| `{r['name']}` | {'yes' if r['caught'] else '**NO**'} | {r['how']} | "
                  f"{r['detail'][:140].replace('|', '/')} |" for r in api["results"]]
        lines.append("")
    lines.append(f"Wall time {report['wall_time_s']} s on {report['environment']['device']}, "
                 f"jax {report['environment']['jax']}. Overall: {'PASS' if report['ok'] else 'FAIL'}.")
    return "\n".join(lines)


def readme_block(report):
    """The ops and models tables and the mutant score, for the README."""
    m = report["mutants"]
    lines = [f"Generated by `jaxnets gradcheck --update-readme README.md` on {time.strftime('%Y-%m-%d')}: "
             f"{report['settings']['cases']} float64 + {report['settings']['float32_cases']} float32 cases per op, "
             f"{report['settings']['model_cases_per_variant']} per model variant; {report['wall_time_s']} s; "
             f"overall {'PASS' if report['ok'] else 'FAIL'}"
             + (f"; **{m['score']}**" if m else "") + ".", ""]
    lines += _table(report["ops"], "Ops") + [""] + _table(report["models"], "Models")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- your own layer

def _load_module(path):
    if not os.path.isfile(path):
        raise eq.LayerInputError(f"{path}: no such file")
    name = "jaxnets_gradcheck_" + "".join(ch if ch.isalnum() else "_" for ch in os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise eq.LayerInputError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # so the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise eq.LayerInputError(f"{path}: importing it failed: {type(exc).__name__}: {msg}") from None
    finally:
        sys.path.remove(folder)
    return module


def load_layer(target, need_example=True):
    """(forward, backward or None, examples) named by FILE.py:NAME (LayerInputError if not)."""
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise eq.LayerInputError(f"expected FILE.py:NAME, got {target!r}")
    module = _load_module(path)
    forward = getattr(module, f"{name}_forward", None)
    if not callable(forward):
        found = sorted(n.removesuffix("_forward") for n in vars(module) if n.endswith("_forward"))
        raise eq.LayerInputError(f"{path}: no function {name}_forward" + (f" (found: {', '.join(found)})" if found
                                                                           else ""))
    backward = getattr(module, f"{name}_backward", None)
    if not need_example:
        return forward, backward, None
    maker = getattr(module, f"{name}_examples", None) or getattr(module, f"{name}_example", None)
    if not callable(maker):
        raise eq.LayerInputError(f"{path}: no function {name}_example() returning the arrays of one valid call")
    try:
        examples = maker()
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise eq.LayerInputError(f"{path}: {maker.__name__}() raised {type(exc).__name__}: {msg}") from None
    return forward, backward, examples


def check_target(args):
    """Check FILE.py:NAME; returns the exit status (0 pass, 1 disagreement, 2 bad input)."""
    forward, backward, examples = load_layer(args.target)
    reference = None
    rerun = f"jaxnets gradcheck {args.target}"
    if args.reference:
        ref_forward, ref_backward, _ = load_layer(args.reference, need_example=False)
        reference = ref_forward if ref_backward is None else (ref_forward, ref_backward)
        rerun += f" --reference {args.reference}"
    report = eq.check_layer(forward, backward, examples, reference=reference, name=args.target.rpartition(":")[2],
                            cases=args.cases if args.cases is not None else eq.DEFAULT_CASES, seed=args.seed,
                            transforms=not args.no_transforms, save_dir=args.save_dir, rerun=rerun,
                            replay=args.replay)
    print(report.text())
    if args.json:
        report.to_json(args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0 if report.ok else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="jaxnets gradcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", metavar="FILE.py:NAME",
                        help="check NAME_forward / NAME_backward in FILE.py on cases generated from NAME_example(); "
                             "without it, report on the built-in ops and models")
    parser.add_argument("--reference", metavar="FILE.py:NAME",
                        help="with FILE.py:NAME: a reference pair (NAME_forward / NAME_backward, or a loss "
                             "NAME_forward alone) the backward must match, its convention at kinks included")
    parser.add_argument("--save-dir", default="gradcheck-cases", metavar="DIR",
                        help="with FILE.py:NAME: where a failing pair's worst case is saved as .npz "
                             "(default gradcheck-cases; nothing is written when every check passes)")
    parser.add_argument("--replay", metavar="CASE.npz", help="with FILE.py:NAME: check only this saved case")
    parser.add_argument("--no-transforms", action="store_true",
                        help="with FILE.py:NAME: skip the eager / jit / vmap comparison of the backward")
    parser.add_argument("--cases", type=int, default=None,
                        help=f"cases per check: with FILE.py:NAME default {eq.DEFAULT_CASES}, "
                             "else float64 cases per op (default 200)")
    parser.add_argument("--float32-cases", type=int, default=50, help="float32 cases per op (default 50)")
    parser.add_argument("--model-cases", type=int, default=4, help="cases per model variant (default 4)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the generated cases (built-in report: the first case's seed; default 0)")
    parser.add_argument("--no-mutants", action="store_true", help="skip the mutant score")
    parser.add_argument("--public-api", action="store_true",
                        help="also check every mutant, and every correct op, through check_layer")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    parser.add_argument("--update-readme", metavar="PATH",
                        help="write the tables and mutant score into PATH between the gradcheck markers")
    args = parser.parse_args(argv)
    if args.target is not None:
        builtin_only = [f"--{n.replace('_', '-')}" for n in ("update_readme", "public_api", "no_mutants")
                        if getattr(args, n)]
        if builtin_only:
            parser.error(f"{', '.join(builtin_only)} apply to the built-in report, not to FILE.py:NAME")
        if args.cases is not None and args.cases < 1:
            parser.error("--cases must be >= 1")
        try:
            return check_target(args)
        except eq.LayerInputError as exc:
            print(f"jaxnets gradcheck: error: {exc}", file=sys.stderr)
            return 2
    for flag in ("reference", "replay"):
        if getattr(args, flag):
            parser.error(f"--{flag} needs FILE.py:NAME")
    if args.cases is None:
        args.cases = 200
    if min(args.cases, args.float32_cases, args.model_cases) < 0:
        parser.error("case counts must be >= 0")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    report = run(args.cases, args.float32_cases, args.model_cases, args.seed, not args.no_mutants, log,
                 public_api=args.public_api)
    print(to_markdown(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2, default=float)
        log(f"wrote {args.json}")
    if args.update_readme:
        runs.replace_marked_block(args.update_readme, "gradcheck", readme_block(report))
        log(f"wrote the tables into {args.update_readme}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
