"""Gradient checks: your own code (FILE.py or FILE.py:NAME, the checker of
`jaxnets.gradcheck`, also `python -m jaxnets.gradcheck`), or the equivalence report of the
built-in ops and models (`jaxnets.conformance`).

    jaxnets gradcheck [--cases 200] [--float32-cases 50] [--model-cases 4] [--json PATH] [--no-mutants]
                      [--public-api] [--update-readme docs/results.md]

For the built-in report: each op gets --cases deterministic cases (geometries cycling through
the op's pool, every other pass with stress inputs: kinks, ties, saturation, huge scores)
checked by `jaxnets.conformance.compare_op` in float64, and --float32-cases of them in float32; each
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

from experiments import runs, suite_report
from jaxnets.gradcheck import cli
from jaxnets.gradcheck.prepare import CheckInputError
from jaxnets.gradcheck.report import jsonable

BUILTIN_ONLY = ("update_readme", "public_api", "no_mutants")


def power_page(path):
    """Where --public-api's power block goes: the checker's page beside the results page."""
    return os.path.join(os.path.dirname(path), "checker.md")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="jaxnets gradcheck", description=cli.__doc__ + "\n" + __doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", metavar="FILE.py[:NAME]",
                        help="check everything in FILE.py, or NAME in it; without it, report on the built-in ops "
                             "and models")
    parser.add_argument("--cases", type=int, default=None,
                        help=f"cases per check: for your code default {cli.DEFAULT_CASES} (fast mode 8), "
                             "else float64 cases per op (default 200)")
    cli.add_arguments(parser)
    parser.add_argument("--float32-cases", type=int, default=50, help="built-in report: float32 cases per op "
                                                                      "(default 50)")
    parser.add_argument("--model-cases", type=int, default=4,
                        help="built-in report: cases per model variant (default 4)")
    parser.add_argument("--no-mutants", action="store_true", help="built-in report: skip the mutant score")
    parser.add_argument("--public-api", action="store_true",
                        help="built-in report: also check every mutant, and every correct op, through the public API")
    parser.add_argument("--api-seeds", type=int, default=5,
                        help="built-in report with --public-api: check every correct op at seeds 0..N-1 (default 5)")
    parser.add_argument("--update-readme", metavar="PATH",
                        help="built-in report: write the tables and mutant score into PATH (docs/results.md) "
                             "between the gradcheck markers; with --public-api, the power block into checker.md "
                             "beside it")
    args = parser.parse_args(argv)
    if args.target is not None:
        builtin_only = [f"--{n.replace('_', '-')}" for n in BUILTIN_ONLY if getattr(args, n)]
        if builtin_only:
            parser.error(f"{', '.join(builtin_only)} apply to the built-in report, not to FILE.py[:NAME]")
        cli.validate(parser, args)
        try:
            return cli.run(args)
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
                cli.writable(path, what)
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
        runs.replace_marked_block(args.update_readme, "gradcheck", suite_report.readme_block(report, args.update_readme))
        if report.get("public_api"):
            page = power_page(args.update_readme)
            runs.replace_marked_block(page, "power", suite_report.power_block(report["public_api"], args.update_readme))
            log(f"wrote the power through the public API into {page}")
        log(f"wrote the tables into {args.update_readme}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
