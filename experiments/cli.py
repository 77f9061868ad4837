"""The `jaxnets` command (the app's entry point; the library `jaxnets` has no CLI of its own).

    jaxnets reproduce [--fashion] [--out runs] [--update-readme README.md]
    jaxnets train EXPERIMENT [options]     EXPERIMENT: occupancy, digits, two_layer, convnet, filters,
                                           deep_convnet, normalization, dropout
    jaxnets predict RUN_DIR FILE [FILE...] an image (PNG/JPEG, 28x28 grey), IDX images or a Kaggle CSV
    jaxnets gradcheck [FILE.py[:NAME]] [--example SPEC] [--reference FILE.py:NAME] [--json PATH]
                                           check your own rules: a file, or NAME in it (gradcheck --help)
    jaxnets bench [--quick] [--workloads ABCDE] [--update-readme README.md]

`train EXPERIMENT --help` lists an experiment's options (the document's values are the defaults).
Errors in the input (missing data, malformed files, bad options) end with a one-line message and
exit status 2, not a traceback.
"""
import argparse
import importlib
import sys

from jaxnets.data import DataError

EXPERIMENTS = {
    "occupancy": "occupancy",
    "digits": "digits",
    "two_layer": "two_layer",
    "convnet": "convnet",
    "filters": "filters",
    "deep_convnet": "deep_convnet",
    "normalization": "normalization",
    "dropout": "dropout",
}
TOOLS = {
    "reproduce": "reproduce",
    "gradcheck": "gradcheck",
    "bench": "bench",
    "predict": "predict",
}


def _run(module, argv):
    """Run `experiments.<module>.main(argv)`; imported only when asked for (JAX starts slowly)."""
    result = importlib.import_module(f"experiments.{module}").main(argv)
    return result if isinstance(result, int) else 0


def _train_help():
    """`jaxnets train --help`: every experiment with the first line of its docstring."""
    lines = ["usage: jaxnets train EXPERIMENT [options]   (jaxnets train EXPERIMENT --help: its options)", "",
             "experiments:"]
    for name, module in EXPERIMENTS.items():
        doc = importlib.import_module(f"experiments.{module}").__doc__ or ""
        first = " ".join(doc.strip().split("\n\n")[0].split())
        lines.append(f"  {name:14s} {first}")
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="jaxnets", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("command", choices=["train", *TOOLS], help="what to do")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own options")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    ns = parser.parse_args(argv[:1])
    rest = argv[1:]
    try:
        if ns.command == "train":
            if rest and rest[0] in ("-h", "--help"):
                print(_train_help())
                return 0
            if not rest or rest[0] not in EXPERIMENTS:
                parser.error(f"train needs an experiment: one of {', '.join(EXPERIMENTS)}")
            return _run(EXPERIMENTS[rest[0]], rest[1:])
        return _run(TOOLS[ns.command], rest)
    except (DataError, ValueError, FileNotFoundError, TimeoutError) as e:  # TimeoutError: coordinator unreachable
        print(f"jaxnets {ns.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
