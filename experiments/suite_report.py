"""The equivalence report of the built-in ops and models (`jaxnets gradcheck` without a
target): the suite's tables, the mutant score, and the checker's power through its public API."""
import platform
import time

import jax
import numpy as np

from jaxnets import conformance as eq
from jaxnets.conformance import mutants as mut
from jaxnets.gradcheck.api import check_layer
from jaxnets.gradcheck.report import STATUSES

JAX_SOURCES = ("manual", "autodiff", "custom_vjp", "fast")
ANALYTIC_COLUMNS = tuple(f"{m} vs numpy" for m in JAX_SOURCES)
JAX_PAIRS = tuple(f"{a} vs {b}" for i, a in enumerate(JAX_SOURCES) for b in JAX_SOURCES[i + 1:])
FD_COLUMNS = tuple(f"{m} vs fd" for m in JAX_SOURCES + ("numpy",))


def _merge(into, result):
    for pair, err in result.max_by_check().items():
        into[pair] = max(into.get(pair, 0.0), err)


def _summarise(label, results64, results32, tol64, tol_fd, tol32):
    worst64, worst32 = {}, {}
    for r in results64:
        _merge(worst64, r)
    for r in results32:
        _merge(worst32, r)
    failures = [r.summary(3) for r in results64 + results32 if not r.ok]
    return {
        "name": label,
        "cases": len(results64),
        "stress_cases": sum(" stress" in r.name for r in results64),
        "fd_cases": sum(r.settings["fd"] for r in results64),
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
    baseline_failures = [r.summary(3) for results in baseline.values() for r in results if not r.ok]
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


def check_ops_public(names, seeds=(0,), log=print):
    """Each correct built-in op in `names` through `check_layer` as a user would call it (its
    examples grouped by call signature), at each seed: a row per op and seed."""
    from jaxnets.conformance import public_api as pa

    rows = []
    for name in names:
        args = pa.op_layer(name)
        for seed in seeds:
            reports = [check_layer(args.forward, args.backward, group, reference=args.reference, name=name,
                                   seed=seed) for group in pa.example_groups(args.examples)]
            status = max((r.status for r in reports), key=STATUSES.index)
            rows.append({"op": name, "seed": seed, "status": status,
                         "failures": sorted({k for r in reports for k, row in r.rows.items() if row.status == "fail"}),
                         "seconds": round(sum(r.elapsed for r in reports), 1)})
            log(f"  {name} seed {seed}: {status} ({rows[-1]['seconds']:.1f}s)"
                + (f" failing: {'; '.join(rows[-1]['failures'])}" if rows[-1]["failures"] else ""))
    return rows


def check_public_api(log=print, seeds=(0,)):
    """Every correct op (at `seeds`) and every mutant through the public API, as cs231n pairs
    and as jax.custom_vjp objects, and the custom-rule mutants (`jaxnets.conformance.public_api`)."""
    from jaxnets.conformance import public_api as pa

    ops_rows = check_ops_public(eq.OP_NAMES, seeds, log)
    kinds = {}
    for kind in ("pair", "custom_vjp"):
        results, score = pa.public_mutant_score(kind=kind)
        log(f"  {score}")
        kinds[kind] = {"score": score, "caught": sum(r.caught for r in results), "total": len(results),
                       "results": [r._asdict() for r in results]}
    custom = pa.custom_mutant_results()
    log(f"  custom-rule mutants caught {sum(r.caught for r in custom)}/{len(custom)}")
    caught = sum(k["caught"] for k in kinds.values()) + sum(r.caught for r in custom)
    total = sum(k["total"] for k in kinds.values()) + len(custom)
    return {"score": f"mutants caught {caught}/{total} through the public API", "caught": caught, "total": total,
            "ops": ops_rows, "kinds": kinds, "custom": [r._asdict() for r in custom]}


def run(n_cases=200, n_f32=50, n_models=4, seed=0, mutants=True, log=print, public_api=False, api_seeds=(0,)):
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
            api_report = check_public_api(log, api_seeds)
    ok = all(r["ok"] for r in ops_rows + model_rows) and (
        mutant_report is None or (mutant_report["baseline_ok"] and mutant_report["caught"] == mutant_report["total"])
    ) and (api_report is None or (api_report["caught"] == api_report["total"]
                                  and all(r["status"] != "fail" for r in api_report["ops"])
                                  and all(r["correct_status"] != "fail" for r in api_report["custom"])))
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
        lines += [f"### Through the public API: {api['score']}", "",
                  "Correct ops: " + ", ".join(f"`{r['op']}` (seed {r['seed']}) {r['status']}" for r in api["ops"])
                  + ".", ""]
        for kind in api["kinds"].values():
            lines += [f"{kind['score']}:", "", "| mutant | caught | how | detail |", "|---|---|---|---|"]
            lines += [f"| `{r['name']}` | {'yes' if r['caught'] else '**NO**'} | {r['how']} | "
                      f"{r['detail'][:140].replace('|', '/')} |" for r in kind["results"]]
            lines.append("")
        lines += ["| custom-rule mutant | the row that must catch it | rows that failed | correct rule | caught |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{r['name']}` | {r['row']} | {', '.join(r['caught_by'])} | {r['correct_status']} | "
                  f"{'yes' if r['caught'] else '**NO**'} |" for r in api["custom"]]
        lines.append("")
    lines.append(f"Wall time {report['wall_time_s']} s on {report['environment']['device']}, "
                 f"jax {report['environment']['jax']}. Overall: {'PASS' if report['ok'] else 'FAIL'}.")
    return "\n".join(lines)


def readme_block(report, path="docs/results.md"):
    """The ops and models tables and the mutant score, for the results page at `path`."""
    m = report["mutants"]
    lines = [f"Generated by `jaxnets gradcheck --update-readme {path}` on {time.strftime('%Y-%m-%d')}: "
             f"{report['settings']['cases']} float64 + {report['settings']['float32_cases']} float32 cases per op, "
             f"{report['settings']['model_cases_per_variant']} per model variant; {report['wall_time_s']} s; "
             f"overall {'PASS' if report['ok'] else 'FAIL'}"
             + (f"; **{m['score']}**" if m else "") + ".", ""]
    lines += _table(report["ops"], "Ops") + [""] + _table(report["models"], "Models")
    return "\n".join(lines)


def power_block(api, path="docs/results.md"):
    """The checker's power through its public API (`--public-api`), for the checker's page."""
    lines = [f"Generated by `jaxnets gradcheck --public-api --update-readme {path}` on {time.strftime('%Y-%m-%d')}: "
             f"**{api['score']}**.", ""]
    for kind in api["kinds"].values():
        how = {}
        for r in kind["results"]:
            how[r["how"]] = how.get(r["how"], 0) + 1
        lines.append(f"- {kind['score']}: " + ", ".join(f"{n} by {h}" for h, n in sorted(how.items())) + ".")
    lines.append("- the custom-rule mutants (`jaxnets/conformance/mutants/custom.py`), each by the row made for it: "
                 + "; ".join(f"`{r['name']}` by {', '.join(r['caught_by']) or 'none'}"
                             + ("" if r["caught"] else " (**missed**)") for r in api["custom"]) + ".")
    statuses = {}
    for r in api["ops"]:
        statuses.setdefault(r["status"], []).append(f"{r['op']}@{r['seed']}")
    seeds = sorted({r["seed"] for r in api["ops"]})
    lines.append(f"- every correct built-in op at seeds {', '.join(map(str, seeds))}: "
                 + "; ".join(f"{s.upper()} {len(v)}" for s, v in sorted(statuses.items()))
                 + (f" (failing: {', '.join(statuses['fail'])})" if "fail" in statuses else ", no false alarm") + ".")
    return "\n".join(lines)
