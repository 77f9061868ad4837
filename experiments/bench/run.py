"""`jaxnets bench`: time the workloads, measure the machine's limits, write the verdicts.

Matmuls run at float32 precision (`jax_default_matmul_precision = "float32"`; on CPU that is
plain float32). Results: a table on stdout and `runs/benchmark/benchmark.json`; `run(...)`
returns the same dict. If OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set (they slow NumPy on
some processors), `main` re-runs itself once without them and says so; `run` records whatever
the environment holds.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from experiments.bench import checker, harness, report
from experiments.bench.layers import layer_rows
from experiments.bench.sequence import sequence_rows
from experiments.bench.steps import step_rows
from experiments.bench.workloads import ALL, M_DIGITS, WORKLOADS, run_workload

DEFAULT_OUT = Path("runs") / "benchmark"
#: the workloads that are rows of layers or steps rather than a `Workload`: (cfg, torch) -> rows
ROW_WORKLOADS = {"E": layer_rows, "S": sequence_rows, "T": step_rows}

CONFIGS = {
    "default": {"rounds": 7, "numpy_repeats": 5, "naive_repeats": 3, "naive_images_c": 2,
                "numpy_steps_b": 100, "jit_steps_a": 5, "jit_steps_b": 100, "loop_steps_a": 20,
                "loop_steps_b": 500, "loop_steps_c": 100, "inner": 20},
    "quick": {"rounds": 3, "numpy_repeats": 2, "naive_repeats": 1, "naive_images_c": 1,
              "numpy_steps_b": 20, "jit_steps_a": 2, "jit_steps_b": 20, "loop_steps_a": 5,
              "loop_steps_b": 100, "loop_steps_c": 20, "inner": 5},
}


def _jax_setup(precision="float32"):
    import jax

    jax.config.update("jax_default_matmul_precision", precision)
    if jax.config.jax_enable_x64:
        raise RuntimeError("the benchmark runs in float32: jax_enable_x64 must be off")


def run(quick=False, out=DEFAULT_OUT, torch=True, workloads=tuple(ALL)):
    """Run the benchmark; returns the result dict (also written to `out/benchmark.json`
    unless out is None)."""
    _jax_setup("float32")
    cfg = CONFIGS["quick" if quick else "default"]
    start = time.perf_counter()
    th, torch_note = harness.torch_module() if torch else (None, "skipped (--no-torch)")
    if th is not None:
        th.manual_seed(0)
    result = {"config": {"quick": quick, **cfg}, "machine": harness.machine(), "torch": torch_note}
    m = result["machine"]
    print(f"jaxnets benchmark ({'quick' if quick else 'default'}): {m['cpu']}, {m['cores']} cores, "
          f"jax {m['jax']} ({m['backend']}), matmul precision float32; PyTorch: {torch_note}", flush=True)
    print("machine limits ...", flush=True)
    result["limits"] = harness.measure_limits(M_DIGITS, quick)
    result["rows"], result["work"] = [], {}
    for w in workloads:
        print(f"workload {w} ...", flush=True)
        if w == checker.LETTER:
            result["checker"] = checker.run_checker(cfg)
            continue
        if w in ROW_WORKLOADS:
            result["rows"] += ROW_WORKLOADS[w](cfg, th)
            continue
        rows, meta = run_workload(WORKLOADS[w](cfg), cfg, th)
        result["rows"] += rows
        if meta is not None:
            result["work"][w] = meta
    result["summary"] = report.summarise(result)
    result["wall_time_s"] = time.perf_counter() - start
    table = report.format_table(result)
    result["table_markdown"] = table
    print()
    print(table)
    print(f"\n(total {result['wall_time_s']:.0f} s; load average at start {m.get('load_average')})")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "benchmark.json").write_text(json.dumps(result, indent=1, default=float))
        print(f"wrote {out / 'benchmark.json'}")
    return result


def _parser():
    p = argparse.ArgumentParser(prog="jaxnets bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: fewer repeats and steps, the same sizes (153 s on a busy 2-core "
                        "machine, all workloads)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for benchmark.json (default runs/benchmark)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows even if torch is installed")
    p.add_argument("--workloads", default=ALL,
                   help=f"which workloads to run, e.g. AC (default {ALL}; E = the normalisation and "
                        "dropout layers, S = the LSTM, GRU and causal multi-head attention, T = whole training "
                        "steps of the sequence models, G = the gradient checker)")
    p.add_argument("--update-readme", metavar="PATH",
                   help="write the tables into PATH between the benchmark markers")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help=f"do not re-run without {' / '.join(harness.OPENBLAS_VARS)} when they are set")
    return p


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    workloads = tuple(args.workloads.upper())
    unknown = sorted(set(workloads) - set(ALL))
    if unknown or not workloads:
        parser.error(f"--workloads takes letters of {ALL}, got {args.workloads!r}")
    bad = [k for k in harness.OPENBLAS_VARS if k in os.environ]
    if bad and not args.keep_openblas_env and os.environ.get(harness.REEXEC_FLAG) != "1":
        print(f"note: {', '.join(bad)} set in the environment (slows NumPy on some CPUs); re-running "
              f"this benchmark without them (--keep-openblas-env to keep them)", flush=True)
        env = {k: v for k, v in os.environ.items() if k not in harness.OPENBLAS_VARS}
        env[harness.REEXEC_FLAG] = "1"
        argv = sys.argv[1:] if argv is None else list(argv)
        os.execve(sys.executable, [sys.executable, "-m", "experiments.bench", *argv], env)
    result = run(quick=args.quick, out=args.out, torch=not args.no_torch, workloads=workloads)
    if args.update_readme:
        m = result["machine"]
        cpu = f"{m['cpu']} ({m['cpu_id']})" if m.get("cpu_id") else m["cpu"]
        note = (f"Generated by `jaxnets bench --update-readme {args.update_readme}` on "
                f"{time.strftime('%Y-%m-%d %H:%M %Z')}: {cpu}, {m['cores']} cores, jax {m['jax']} "
                f"({m['backend']}); PyTorch: {result['torch']}; load average at start "
                f"{m.get('load_average')}; {result['wall_time_s']:.0f} s.")
        moved = write_readme_tables(args.update_readme, m["cpu"], f"{note}\n\n{result['table_markdown']}")
        print(f"wrote the tables into {args.update_readme}"
              + (" (the previous machine's table kept below them)" if moved else ""))
    return 0


PREVIOUS = "benchmark-previous"
_TABLE_CPU = re.compile(r"Generated by [^\n]*? on \d{4}-\d\d-\d\d \d\d:\d\d \S+: (.+?)(?: \([^)]*\))?, \d+ cores")


def write_readme_tables(path, cpu, block):
    """Write `block` between the README's benchmark markers. When the table there came from
    another CPU (its "Generated by" line names another model), it is kept: moved between the
    `benchmark-previous` markers (added after the benchmark block when missing), so the README
    shows both machines. Returns whether a table was moved."""
    from experiments import runs

    text = Path(path).read_text()
    start, end = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
    moved = False
    if start in text and end in text:
        current = text.split(start, 1)[1].split(end, 1)[0].strip()
        found = _TABLE_CPU.search(current)
        if found and found.group(1) != cpu:
            if f"<!-- {PREVIOUS}:start -->" not in text:
                text = text.replace(end, f"{end}\n\n<!-- {PREVIOUS}:start -->\n<!-- {PREVIOUS}:end -->", 1)
                Path(path).write_text(text)
            runs.replace_marked_block(path, PREVIOUS, f"The previous machine's table ({found.group(1)}), kept when "
                                      f"`jaxnets bench` ran on another CPU:\n\n{current}")
            moved = True
    runs.replace_marked_block(path, "benchmark", block)
    return moved
