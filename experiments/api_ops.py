"""`python -m experiments.api_ops [OP ...] [--seeds N] [--json PATH]`: correct built-in ops through
the public API (`check_layer`, every example geometry, default cases) at seeds 0..N-1 — the op
part of `jaxnets gradcheck --public-api`, without the suite and the mutant catalogue, for
re-checking a few ops after a change to the judgement. Exit 1 if any op-seed fails."""
import argparse
import json
import sys

from experiments import suite_report
from jaxnets import conformance as eq


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.api_ops", description=__doc__.split("\n\n")[0])
    parser.add_argument("ops", nargs="*", help=f"op names (default: all {len(eq.OP_NAMES)})")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    unknown = [n for n in args.ops if n not in eq.OP_NAMES]
    if unknown:
        parser.error(f"unknown op(s) {', '.join(unknown)}; known: {', '.join(eq.OP_NAMES)}")
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    with eq.precise_jax():
        rows = suite_report.check_ops_public(args.ops or eq.OP_NAMES, tuple(range(args.seeds)),
                                             lambda m: print(m, flush=True))
    counts = {s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})}
    print("op-seeds: " + ", ".join(f"{s.upper()} {n}" for s, n in counts.items()))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 1 if counts.get("fail") else 0


if __name__ == "__main__":
    sys.exit(main())
