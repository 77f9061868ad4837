"""Gradient checks: your own code (FILE.py or FILE.py:NAME), or the equivalence report of the
built-in ops and models.

    jaxnets gradcheck FILE.py                 every pair, loss and custom rule in the file: a summary
                                              table (a row per check, named by its backward), then
                                              the reports of what failed
    jaxnets gradcheck FILE.py:NAME [--example 4x5,4x5:positive] [--static KEY=VALUE] [--reference FILE.py:NAME]
                      [--rtol R] [--atol A] [--fd-rtol R] [--kinks 0,6] [--timeout S] [--cases N] [--seed S]
                      [--fast | --no-fast] [--no-transforms] [--no-second-order] [--json PATH]
                      [--save-dir DIR] [--replay CASE.npz]
    jaxnets gradcheck [--cases 200] [--float32-cases 50] [--model-cases 4] [--json PATH] [--no-mutants]
                      [--public-api] [--update-readme README.md]

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

For the built-in report: each op gets --cases deterministic cases (geometries cycling through
the op's pool, every other pass with stress inputs: kinks, ties, saturation, huge scores)
checked by `jaxnets.gradcheck.compare_op` in float64, and --float32-cases of them in float32; each
model variant --model-cases cases in both dtypes, in every gradient mode (its fast layout
included). The tables give the largest cs231n relative error per pair of gradient sources; a
cell over its tolerance is marked "!". Then every mutant of `jaxnets.conformance.mutants` runs
through the same checker (with --public-api, also through the public API, as a cs231n pair
and as a jax.custom_vjp, with the custom-rule mutants). Exit status 0 when everything agrees,
the correct functions pass and every mutant is caught, 1 otherwise.
"""
import argparse
import json
import os
import sys

from experiments import runs, suite_report, usercheck
from jaxnets.gradcheck import DEFAULT_CASES, CheckInputError
from jaxnets.gradcheck.report import jsonable

#: seconds a case may take on the command line before it counts as a runaway
DEFAULT_TIMEOUT = 60.0


def _writable(path, what):
    """CheckInputError unless `path` can be written (checked before any work is done)."""
    if os.path.isdir(path):
        raise CheckInputError(f"{what} {path}: is a folder, not a file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CheckInputError(f"{what} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise CheckInputError(f"{what} {path}: not writable")


def _user(args):
    """FILE.py or FILE.py:NAME; returns the exit status."""
    if args.json:
        _writable(args.json, "--json")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if ":" not in os.path.basename(args.target) and args.target.endswith(".py"):
        for flag in ("example", "reference", "replay", "static"):
            if getattr(args, flag):
                raise CheckInputError(f"--{flag} needs FILE.py:NAME (one thing to check), not a whole file")
        report = usercheck.check_file(args, log)
        data = {"file": args.target, "status": report.status,
                "rows": [{"check": r.name, "status": r.status, "worst": r.worst, "seconds": round(r.seconds, 2),
                          "note": r.note, "report": r.report.to_dict() if r.report is not None else None}
                         for r in report.rows]}
        status = report.exit_status
    else:
        if ":" not in args.target:
            raise CheckInputError(f"expected FILE.py or FILE.py:NAME, got {args.target!r}")
        report = usercheck.check_target(args, log)
        print(report.text())
        data = report.to_dict()
        status = 0 if report.ok else 1
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(jsonable(data), fh, indent=2)
        log(f"wrote {args.json}")
    return status


def main(argv=None):
    parser = argparse.ArgumentParser(prog="jaxnets gradcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", metavar="FILE.py[:NAME]",
                        help="check everything in FILE.py, or NAME in it; without it, report on the built-in ops "
                             "and models")
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
    parser.add_argument("--cases", type=int, default=None,
                        help=f"cases per check: for your code default {DEFAULT_CASES} (fast mode 8), "
                             "else float64 cases per op (default 200)")
    parser.add_argument("--float32-cases", type=int, default=50, help="float32 cases per op (default 50)")
    parser.add_argument("--model-cases", type=int, default=4, help="cases per model variant (default 4)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the generated cases (built-in report: the first case's seed; default 0)")
    parser.add_argument("--no-mutants", action="store_true", help="built-in report: skip the mutant score")
    parser.add_argument("--public-api", action="store_true",
                        help="built-in report: also check every mutant, and every correct op, through the public API")
    parser.add_argument("--api-seeds", type=int, default=5,
                        help="built-in report with --public-api: check every correct op at seeds 0..N-1 (default 5)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    parser.add_argument("--update-readme", metavar="PATH",
                        help="built-in report: write the tables and mutant score into PATH between the gradcheck "
                             "markers")
    args = parser.parse_args(argv)
    if args.target is not None:
        builtin_only = [f"--{n.replace('_', '-')}" for n in ("update_readme", "public_api", "no_mutants")
                        if getattr(args, n)]
        if builtin_only:
            parser.error(f"{', '.join(builtin_only)} apply to the built-in report, not to FILE.py[:NAME]")
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
        try:
            return _user(args)
        except CheckInputError as exc:
            print(f"jaxnets gradcheck: error: {exc}", file=sys.stderr)
            return 2
    for flag in ("reference", "replay", "example", "static", "kinks"):
        if getattr(args, flag):
            parser.error(f"--{flag} needs FILE.py:NAME")
    if args.cases is None:
        args.cases = 200
    if min(args.cases, args.float32_cases, args.model_cases) < 0:
        parser.error("case counts must be >= 0")
    try:
        for path, what in ((args.json, "--json"), (args.update_readme, "--update-readme")):
            if path:
                _writable(path, what)
    except CheckInputError as exc:
        print(f"jaxnets gradcheck: error: {exc}", file=sys.stderr)
        return 2

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    report = suite_report.run(args.cases, args.float32_cases, args.model_cases, args.seed, not args.no_mutants, log,
                              public_api=args.public_api, api_seeds=tuple(range(args.api_seeds)))
    print(suite_report.to_markdown(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(jsonable(report), fh, indent=2)
        log(f"wrote {args.json}")
    if args.update_readme:
        runs.replace_marked_block(args.update_readme, "gradcheck", suite_report.readme_block(report))
        if report.get("public_api"):
            runs.replace_marked_block(args.update_readme, "power", suite_report.power_block(report["public_api"]))
        log(f"wrote the tables into {args.update_readme}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
