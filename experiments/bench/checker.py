"""Workload G: the gradient checker's speed, beside `jax.test_util.check_grads(order=2)`.

Three small correct custom rules, each checked by default (`jaxnets.gradcheck.check(f, *args)`)
and by `check_grads(f, args, order=2, modes=["rev"])` (reverse mode: a custom_vjp has no
forward mode) — the tutorial's `sin(x) * y` on 3x4 (tests/realcode, JAX's docs), a softplus
on 3x4 and a layer norm on 4x6, both written here as a user would:

- cold: the first call in a fresh Python process (imports done before the clock starts), one
  process for each tool, so neither reuses the other's compiled programs;
- warm: the best of `rounds` further calls in one process, the two tools interleaved.

And one whole file: `jaxnets gradcheck tests/realcode/cs231n_style_layers.py` (a cs231n
layers.py as students write it; it has one planted bug, so the command exits 1), timed as a
command (imports included). Every measurement runs in a subprocess: the checker turns float64
on for itself, the benchmark runs in float32.

The targets (issue 26): a default check within 5x check_grads' warm time and 3x its cold
time, and the whole file in half the ~19 s a file took before.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

#: the letter `jaxnets bench --workloads` takes
LETTER = "G"
ROOT = Path(__file__).resolve().parents[2]
CS231N_FILE = "tests/realcode/cs231n_style_layers.py"
#: targets: check / check_grads warm and cold (worst rule), seconds for the whole file
WARM_RATIO, COLD_RATIO, FILE_SECONDS = 5.0, 3.0, 19.0 / 2
RULES = ("sin(x) * y 3x4", "softplus 3x4", "layer norm 4x6")


def _rule(name):
    """(the custom_vjp, its example arguments) for one of RULES."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    if name == RULES[0]:
        path = ROOT / "tests" / "realcode" / "tut_sin_times_y_custom_vjp.py"
        spec = importlib.util.spec_from_file_location("tut_sin_times_y", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.f, (rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))
    if name == RULES[1]:
        @jax.custom_vjp
        def softplus(x):
            return jnp.logaddexp(x, 0.0)

        def fwd(x):
            return softplus(x), x

        def bwd(x, g):
            return (g * jax.nn.sigmoid(x),)

        softplus.defvjp(fwd, bwd)
        return softplus, (rng.standard_normal((3, 4)),)

    @jax.custom_vjp
    def layer_norm(x, gamma, beta):
        mu = x.mean(axis=1, keepdims=True)
        xhat = (x - mu) / jnp.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
        return gamma * xhat + beta

    def ln_fwd(x, gamma, beta):
        mu = x.mean(axis=1, keepdims=True)
        inv = 1.0 / jnp.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
        xhat = (x - mu) * inv
        return gamma * xhat + beta, (xhat, inv, gamma)

    def ln_bwd(res, g):
        xhat, inv, gamma = res
        dxhat = g * gamma
        dx = inv * (dxhat - dxhat.mean(axis=1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=1, keepdims=True))
        return dx, (g * xhat).sum(axis=0), g.sum(axis=0)

    layer_norm.defvjp(ln_fwd, ln_bwd)
    return layer_norm, (rng.standard_normal((4, 6)), 1.0 + 0.1 * rng.standard_normal(6),
                        0.1 * rng.standard_normal(6))


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(name, tool, rounds):
    """In this process (fresh): the first call of `tool` ("check" or "check_grads") on rule
    `name`; for "check", then `rounds` warm calls of each tool, interleaved (best of each)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from jax.test_util import check_grads

    from jaxnets.gradcheck import check

    f, args = _rule(name)
    run_check = lambda: check(f, *args)
    run_cg = lambda: check_grads(f, args, order=2, modes=["rev"])
    if tool == "check_grads":
        return {"check_grads_cold": _timed(run_cg)[0]}
    cold, report = _timed(run_check)
    run_cg()  # its own first call (compilations) is the other process's measurement
    warm = {"check": [], "check_grads": []}
    for _ in range(rounds):
        warm["check"].append(_timed(run_check)[0])
        warm["check_grads"].append(_timed(run_cg)[0])
    return {"check_cold": cold, "ok": bool(report.ok), "check_warm": min(warm["check"]),
            "check_grads_warm": min(warm["check_grads"])}


def _subprocess(args, timeout=900):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - start, done


def _measure_in_subprocess(name, tool, rounds):
    _, done = _subprocess(["-m", "experiments.bench.checker", "--rule", name, "--tool", tool,
                           "--rounds", str(rounds)])
    if done.returncode != 0:
        raise RuntimeError(f"checker workload, {name} / {tool}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_checker(cfg):
    """Workload G's measurements: per rule, cold and warm times of both tools and their
    ratios; the whole cs231n file's time and exit code."""
    rounds = max(3, int(cfg.get("rounds", 7)))
    rules = {}
    for name in RULES:
        got = _measure_in_subprocess(name, "check", rounds)
        got.update(_measure_in_subprocess(name, "check_grads", rounds))
        got["warm_ratio"] = got["check_warm"] / got["check_grads_warm"]
        got["cold_ratio"] = got["check_cold"] / got["check_grads_cold"]
        rules[name] = got
        print(f"  {name}: check {got['check_cold']:.2f} s cold, {got['check_warm']:.3f} s warm; check_grads "
              f"{got['check_grads_cold']:.2f} s cold, {got['check_grads_warm']:.3f} s warm", flush=True)
    seconds, done = _subprocess(["-m", "experiments.cli", "gradcheck", CS231N_FILE])
    print(f"  jaxnets gradcheck {CS231N_FILE}: {seconds:.1f} s (exit {done.returncode})", flush=True)
    return {"rules": rules, "file": {"path": CS231N_FILE, "seconds": seconds, "exit": done.returncode}}


def verdicts(checker):
    """The workload's targets as the report's verdicts ([] when it did not run)."""
    if not checker:
        return []
    out = []
    for key, goal, what in (("warm_ratio", WARM_RATIO, "warm"), ("cold_ratio", COLD_RATIO, "cold")):
        worst = max(checker["rules"], key=lambda n: checker["rules"][n][key])
        ratio = checker["rules"][worst][key]
        out.append({"target": f"G: default check / check_grads(order=2), {what} (worst rule)", "goal": f"<= {goal:g}x",
                    "measured": ratio, "unit": "x", "met": ratio <= goal, "missed_by": None if ratio <= goal
                    else ratio / goal, "best": worst})
    f = checker["file"]
    out.append({"target": "G: jaxnets gradcheck on a cs231n layers.py", "goal": f"<= {FILE_SECONDS:g} s",
                "measured": f["seconds"], "unit": " s", "met": f["seconds"] <= FILE_SECONDS,
                "missed_by": None if f["seconds"] <= FILE_SECONDS else f["seconds"] / FILE_SECONDS,
                "best": f"{f['path']} (exit {f['exit']})"})
    return out


def table_lines(checker):
    """Markdown lines for the workload ([] when it did not run)."""
    if not checker:
        return []
    lines = ["", "G: the gradient checker beside jax.test_util.check_grads(order=2) (seconds; cold: first call "
             "in a fresh process, warm: best of several)", "",
             "| rule | check cold | check_grads cold | cold ratio | check warm | check_grads warm | warm ratio |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in checker["rules"].items():
        lines.append(f"| {name} | {r['check_cold']:.2f} | {r['check_grads_cold']:.2f} | {r['cold_ratio']:.1f}x | "
                     f"{r['check_warm']:.3f} | {r['check_grads_warm']:.3f} | {r['warm_ratio']:.1f}x |")
    f = checker["file"]
    lines.append(f"\n`jaxnets gradcheck {f['path']}`: {f['seconds']:.1f} s (exit {f['exit']}).")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description="one measurement of workload G (run by `jaxnets bench`)")
    p.add_argument("--rule", choices=RULES, required=True)
    p.add_argument("--tool", choices=("check", "check_grads"), required=True)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.rule, args.tool, args.rounds)))


if __name__ == "__main__":
    main()
