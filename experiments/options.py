"""Command-line parsing shared by every `jaxnets` command: errors in one line, and option types
that check their range, so a bad value is refused before anything runs with a message naming
the option and the value (`argument --seed: must be an integer >= 0, got '-1'`)."""
import argparse
import math


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit status 2), not the usage
    block followed by the error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def parser(prog, doc):
    """A `Parser` for `prog`, described by `doc` (a module docstring, kept as written)."""
    return Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def integer(low, high=None, high_text=None):
    """An argparse type: a whole number >= low (and < high, written `high_text` in messages)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value >= high):
            bound = f">= {low}" + (f" and < {high_text or high}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def number(low=None, high=None, *, low_open=False, high_open=False):
    """An argparse type: a finite float in the interval given ([low, high] unless open)."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            lo = "" if low is None else f"{'(' if low_open else '['}{low}"
            hi = "" if high is None else f"{high}{')' if high_open else ']'}"
            where = f"in {lo or '(-inf'}, {hi or 'inf)'}"
            raise argparse.ArgumentTypeError(f"must be a finite number {where}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


COUNT = integer(1)
SEED = integer(0, 2**63, "2**63")
STRENGTH = number(0)  # an L2 strength
POSITIVE = number(0, low_open=True)
FRACTION = number(0, 1)  # an accuracy
PROBABILITY = number(0, 1, high_open=True)  # a dropout rate


def add_overwrite(p):
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished run of the same name (it is replaced only when the new run finishes)")


def experiment_parser(name, doc):
    """The parser of `jaxnets train NAME`, described by the script's docstring."""
    return parser(f"jaxnets train {name}", doc)


def preselected(argv, flag, choices, default):
    """The value `flag` has in argv, read before the full parser exists (its defaults depend
    on it); parsed without -h, so `--help` still reaches the full parser and lists everything."""
    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument(flag, choices=choices, default=default)
    try:
        known, _ = pre.parse_known_args(argv)
    except argparse.ArgumentError:  # the full parser reports it, under the right name
        return default
    return getattr(known, flag.lstrip("-").replace("-", "_"))


def add_common_args(parser, *, data, learning_rate, iterations, batch_size=None, decay=1.0,
                    report_every=None, optimizer=None, clip_norm=None):
    """The options every experiment script has, with the document's values as defaults."""
    from jaxnets import training
    from jaxnets.training import TRAIN_MODES, optimizers

    optimizer = optimizer or optimizers.DEFAULT_OPTIMIZER
    parser.add_argument("--data", default=data, help=f"data source spec (default {data!r})")
    parser.add_argument("--mode", default="fast", choices=TRAIN_MODES,
                        help="gradient mode (default fast: the hand-written backward laid out for speed, "
                             "equal to manual at the equivalence suite's float64 tolerance, or manual itself "
                             "for a model without a fast layout and for data-parallel training; see the documentation's "
                             "Performance)")
    parser.add_argument("--learning-rate", type=POSITIVE, default=learning_rate, help=f"default {learning_rate}")
    parser.add_argument("--iterations", type=COUNT, default=iterations,
                        help=f"default {iterations}; updates in total, a resumed run's included")
    parser.add_argument("--batch-size", type=COUNT, default=batch_size,
                        help="minibatch size, sampled with replacement" + (f" (default {batch_size})" if batch_size else " (default: full batch)"))
    parser.add_argument("--decay", type=number(0, 1, low_open=True), default=decay,
                        help=f"learning-rate decay per epoch, in (0, 1] (default {decay})")
    opt = parser.add_argument_group("optimizer (jaxnets.training.optimizers; unset: the optimizer's own default)")
    opt.add_argument("--optimizer", default=optimizer, choices=list(optimizers.OPTIMIZERS),
                     help="; ".join(f"{k}: {v.summary}" for k, v in optimizers.OPTIMIZERS.items())
                     + f" (default {optimizer})")
    for name, what in (("momentum", "momentum's mu"), ("decay-rate", "RMSProp's moving-average decay"),
                       ("beta1", "Adam's first-moment decay"), ("beta2", "Adam's second-moment decay"),
                       ("eps", "RMSProp's and Adam's epsilon")):
        opt.add_argument(f"--{name}", type=number(), default=None, help=what)
    opt.add_argument("--clip-norm", type=POSITIVE, default=clip_norm,
                     help="scale each step's gradient down to this global L2 norm when it is larger "
                          "(optax.clip_by_global_norm)" + (f" (default {clip_norm})" if clip_norm else " (default: no clipping)"))
    parser.add_argument("--report-every", type=COUNT, default=report_every, help="updates between accuracy reports")
    parser.add_argument("--seed", type=SEED, default=0, help="initialisation, split and minibatch seed (default 0)")
    parser.add_argument("--out", default=None, help="runs folder (default ./runs)")
    add_overwrite(parser)
    parser.add_argument("--compare-modes", action="store_true",
                        help="also train with autodiff (manual when --mode autodiff) from the same init and report the "
                             "largest parameter difference")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    parser.add_argument("--checkpoint-every", type=COUNT, default=None,
                        help="write <run folder>/checkpoint.{npz,json} every N updates and keep it in the run folder "
                             "(Ctrl-C always saves the last chunk in <run folder>.partial/checkpoint)")
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT",
                        help="continue from a checkpoint stem, e.g. runs/<run>.partial/checkpoint")
    dp = parser.add_argument_group("data-parallel training (documentation: Scaling out)")
    dp.add_argument("--data-parallel", action="store_true",
                    help="shard every batch over all devices (implied by the three options below)")
    dp.add_argument("--coordinator", metavar="HOST:PORT", help=f"process 0's address (${training.ENV_COORDINATOR})")
    dp.add_argument("--num-processes", type=COUNT, help=f"processes in the job (${training.ENV_NUM_PROCESSES})")
    dp.add_argument("--process-id", type=integer(0), help=f"this process, 0..N-1 (${training.ENV_PROCESS_ID})")
    dp.add_argument("--distributed-timeout", type=POSITIVE, default=60.0,
                    help="seconds to wait for the coordinator and the other processes (default 60)")
    parser.add_argument("--tag", default=None, help="suffix for the run folder name and title")
    parser.add_argument("--target", type=FRACTION, default=None,
                        help="test accuracy to meet, in [0, 1], recorded as met/missed in metrics.json")
    return parser


def target_from_args(args, default=None):
    """`--target` as a test-accuracy target, else the experiment's own default (or None)."""
    return {"metric": "test_acc", "at_least": args.target} if args.target is not None else default


OPTIMIZER_ARGS = ("momentum", "decay_rate", "beta1", "beta2", "eps")


def config_from_args(args):
    """The TrainConfig the options ask for, checked (a ValueError names the bad setting)."""
    from jaxnets.training import TrainConfig

    given = {k: getattr(args, k) for k in OPTIMIZER_ARGS if getattr(args, k) is not None}
    config = TrainConfig(mode=args.mode, learning_rate=args.learning_rate, decay=args.decay,
                         iterations=args.iterations, batch_size=args.batch_size,
                         report_every=args.report_every, seed=args.seed, optimizer=args.optimizer,
                         optimizer_args=given, clip_norm=args.clip_norm)
    config.check()
    return config
