"""The `jaxnets` command (the app's entry point; the library `jaxnets` has no CLI of its own).

    jaxnets reproduce [--fashion] [--out runs] [--update-readme docs/results.md]
    jaxnets train EXPERIMENT [options]     EXPERIMENT: occupancy, digits, two_layer, convnet, filters,
                                           deep_convnet, normalization, dropout, char_lm, row_lstm, transformer_lm,
                                           vanishing_gradients
    jaxnets predict RUN_DIR FILE [FILE...] an image (PNG/JPEG, 28x28 grey), IDX images or a Kaggle CSV
    jaxnets sample RUN_DIR [--prompt AB] [--temperature 0.8]   names drawn from a char_lm or transformer_lm run
    jaxnets gradcheck [FILE.py[:NAME]] [--example SPEC] [--reference FILE.py:NAME] [--json PATH]
                                           check your own rules: a file, or NAME in it (gradcheck --help)
    jaxnets bench [--quick] [--workloads ABCDES] [--update-readme docs/performance.md]

`train EXPERIMENT --help` lists an experiment's options (the document's values are the defaults).
Errors in the input (missing data, malformed files, bad options, an unusable output folder, a
platform JAX cannot start) end with a one-line message and exit status 2, not a traceback.
Ctrl-C (SIGINT) and SIGTERM end with one line and status 130 / 143; training saves its last
chunk as a checkpoint first (the line says how to resume) and no finished run is touched.
"""
import argparse
import importlib
import signal
import sys

from experiments.options import Parser
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
    "char_lm": "char_lm",
    "row_lstm": "row_lstm",
    "transformer_lm": "transformer_lm",
    "vanishing_gradients": "vanishing_gradients",
}
TOOLS = {
    "reproduce": "reproduce",
    "gradcheck": "gradcheck",
    "bench": "bench",
    "predict": "predict",
    "sample": "sample",
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


def _terminated(signum, frame):
    """SIGTERM ends the command like Ctrl-C does (training checkpoints its last chunk first)."""
    err = KeyboardInterrupt(f"interrupted by {signal.Signals(signum).name}")
    err.signum = signum
    raise err


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = Parser(prog="jaxnets", description=__doc__.split("\n\n")[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("command", choices=["train", *TOOLS], help="what to do")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own options")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    ns = parser.parse_args(argv[:1])
    rest = argv[1:]
    what = f"jaxnets {ns.command}" + (f" {rest[0]}" if ns.command == "train" and rest and rest[0] in EXPERIMENTS else "")
    handle_term = _main_thread() and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
    on_term = signal.signal(signal.SIGTERM, _terminated) if handle_term else None
    try:
        if ns.command == "train":
            if rest and rest[0] in ("-h", "--help"):
                print(_train_help())
                return 0
            if not rest or rest[0] not in EXPERIMENTS:
                parser.error(f"train needs an experiment: one of {', '.join(EXPERIMENTS)}")
            return _run(EXPERIMENTS[rest[0]], rest[1:])
        return _run(TOOLS[ns.command], rest)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, or training's Interrupted (it says what was saved)
        signum = getattr(e, "signum", signal.SIGINT)
        text = str(e) or f"interrupted by {signal.Signals(signum).name}; nothing was saved"
        print(f"{what}: {text}", file=sys.stderr)
        return 128 + signum
    except (DataError, ValueError, OSError) as e:  # OSError: files and folders; TimeoutError: coordinator unreachable
        print(f"{what}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if "Unable to initialize backend" not in str(e):
            raise
        print(f"{what}: error: JAX cannot start a platform $JAX_PLATFORMS names: {e}", file=sys.stderr)
        return 2
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


def _main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
