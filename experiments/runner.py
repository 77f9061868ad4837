"""Train one document experiment and write its run folder.

Every experiment script (`occupancy`, `digits`, `two_layer`, `convnet`) prepares its data as a
`Prepared` record, picks a model and a `TrainConfig` with the document's hyperparameters, and
calls `run_experiment`, which:

1. initialises the parameters from `seed` and trains with `jaxnets.training.train`;
2. with `compare_modes`, trains again from the same initial parameters with autodiff (or
   manual, when the run itself is autodiff), and records both accuracies and the largest
   parameter difference;
3. evaluates train, validation and test accuracy;
4. writes `metrics.json`, `params.npz` (and `state.npz` for a model with batch norm),
   `loss.png`, `accuracy.png`, `predictions.png` (a grid of test images titled with label and
   prediction, red when wrong), `misclassified.png` (test images the model gets wrong) and,
   for a model with convolution filters, `filters.png` into `<out>/<name>/`.
"""
from __future__ import annotations

import argparse
import time
from typing import NamedTuple, Optional

import jax
import numpy as np

from experiments import plots, runs
from jaxnets import training
from jaxnets.data import PixelTransform
from jaxnets.training import TRAIN_MODES, TrainConfig, accuracy, optimizers, sample_batch_indices, train, train_data_parallel


class Prepared(NamedTuple):
    """Model-ready arrays and how they were made.

    x_*: float arrays the model takes; y_*: int labels (0/1 for the binary net).
    show_test: the test inputs as images to display (uint8 (N, 28, 28)), or None.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: Optional[np.ndarray]
    y_val: Optional[np.ndarray]
    x_test: Optional[np.ndarray]
    y_test: Optional[np.ndarray]
    data: dict  # spec, source, sizes, preprocessing: goes into metrics.json
    show_test: Optional[np.ndarray] = None
    class_names: Optional[list] = None
    transform: Optional[PixelTransform] = None  # image preprocessing, saved as preprocess.npz for `predict`
    images: Optional[tuple] = None  # (train, validation) uint8 images the transform maps to x_train, x_val


def describe_sizes(p: Prepared) -> dict:
    size = lambda a: None if a is None else int(a.shape[0])
    return {"n_train": size(p.x_train), "n_val": size(p.x_val), "n_test": size(p.y_test)}


def _other_mode(mode):
    """The mode a --compare-modes run is checked against: autodiff for the hand-written ones."""
    return "manual" if mode == "autodiff" else "autodiff"


def max_param_difference(a, b):
    """Largest |a - b| over every parameter array, and which parameter holds it."""
    worst, where = 0.0, None
    for k in a:
        d = float(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64))))
        if d >= worst:
            worst, where = d, k
    return worst, where


def last_batch_accuracy(model, result, p: Prepared, config):
    """002's train accuracy: the accuracy on the minibatch of the last update, measured with
    the parameters after that update (the same rows `train` drew for that step)."""
    step = result.steps_done - 1
    idx = np.asarray(sample_batch_indices(jax.random.key(config.seed), step, p.x_train.shape[0], config.batch_size))
    return accuracy(model, result.params, p.x_train[idx], p.y_train[idx], state=result.model_state)


def _accuracies(model, result, p: Prepared):
    """Final accuracies: train and validation from the report `train` takes at its last step
    (always at `steps_done`), test measured here."""
    h = result.history
    if h["report_step"][-1] != result.steps_done:
        raise RuntimeError(f"last report at {h['report_step'][-1]}, training ended at {result.steps_done}")
    return {"train_acc": h["train_acc"][-1], "val_acc": h["val_acc"][-1] if h["val_acc"] else None,
            "test_acc": None if p.x_test is None else accuracy(model, result.params, p.x_test, p.y_test,
                                                                state=result.model_state)}


def run_experiment(name, title, model, prepared: Prepared, config: TrainConfig, *, seed=0,
                   out_root=None, compare_modes=False, progress=True, document=None, target=None,
                   tag=None, checkpoint_every=None, resume=None, data_parallel=False, log=print):
    """Train `model` on `prepared` per `config`; write and return the metrics (see module doc).

    document: the document's reported numbers ({"test_acc": 0.97, ...}) for the table.
    target: {"metric": "test_acc", "at_least": 0.97} or None.
    tag: appended to the run folder's name and the title (to keep variants apart).
    checkpoint_every: also write `<run folder>/checkpoint.{npz,json}` every so many updates
        (it is always written at the end when given).
    resume: a checkpoint stem to continue from (same model and hyperparameters; see
        `jaxnets.training.train`), e.g. the run folder's own `checkpoint`.
    data_parallel: train with `jaxnets.training.train_data_parallel` over every device of
        every process (after `start_distributed`); each process trains on its own rows, only
        process 0 writes the run folder and checkpoints.
    """
    t0 = time.perf_counter()
    if tag:
        name, title = f"{name}_{tag}", f"{title} [{tag}]"
    writer = jax.process_index() == 0
    if not writer:
        log = lambda *a: None  # noqa: E731 - process 0 speaks for the job
    run_dir = runs.make_run_dir(name, out_root) if writer else None
    if config.mode == "fast" and model.fast_gradient is None:
        # "fast" is manual itself for such a model: record the gradient that actually ran
        config = config.replace(mode="manual")
    log(f"== {title}: {model.name} {model.config} on {prepared.data.get('spec')} "
        f"({describe_sizes(prepared)}), {config.iterations} iterations, mode {config.mode}")
    params0 = model.init(jax.random.key(seed))
    data = (prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val)
    ckpt = run_dir / runs.CHECKPOINT_STEM if checkpoint_every and writer else None
    if compare_modes and resume:
        raise ValueError("--compare-modes trains both modes from the start; it does not go with --resume")
    decode = None
    t = prepared.transform
    if t is not None and t.exact_on_device:  # uint8 on the device, decoded inside each step
        data = (t.layout(prepared.images[0]), prepared.y_train, t.layout(prepared.images[1]), prepared.y_val)
        decode = t.decoder(np.dtype(config.dtype))
    fit_fn, rows = (train_data_parallel, training.local_shard(data)) if data_parallel else (train, data)

    def fit(cfg, primary=True):
        if not primary:  # the comparison run keeps no checkpoint
            return fit_fn(model, params0, rows, cfg, progress=progress, decode=decode)
        return fit_fn(model, params0, rows, cfg, progress=progress, checkpoint_path=ckpt,
                      checkpoint_every=checkpoint_every, resume=resume, decode=decode)

    result = fit(config)
    final = _accuracies(model, result, prepared)
    final["loss"] = result.history["loss"][-1] if result.history["loss"] else None
    if config.batch_size and result.steps_done:
        final["last_batch_train_acc"] = last_batch_accuracy(model, result, prepared, config)

    comparison = None
    if compare_modes:
        other = _other_mode(config.mode)
        log(f"   --compare-modes: training again with mode {other} from the same initial parameters")
        # Only its final accuracies are kept, so it reports once, at the end: reports are
        # evaluated inside the step loop without touching the steps (`report` is a traced
        # argument), so the parameters are those of a twin that reports as often as the run.
        twin = fit(config.replace(mode=other, report_every=config.iterations), primary=False)
        twin_final = _accuracies(model, twin, prepared)
        diff, where = max_param_difference(result.params, twin.params)
        comparison = {
            "modes": [config.mode, other],
            "max_abs_param_diff": diff,
            "param_with_max_diff": where,
            "max_abs_param": float(max(np.max(np.abs(np.asarray(v))) for v in result.params.values())),
            "final": {config.mode: final, other: twin_final},
            "same_test_acc": final["test_acc"] == twin_final["test_acc"],
            "wall_time_s": twin.wall_time_s,
        }
        log(f"   {config.mode} vs {other}: largest |param difference| {diff:.3g} (in {where}); "
            f"test accuracy {final['test_acc']} vs {twin_final['test_acc']}")

    metric = target["metric"] if target else None
    met = None if not target or final.get(metric) is None else final[metric] >= target["at_least"]
    metrics = {
        "experiment": title,
        "name": name,
        "model": model.name,
        "model_config": model.config,
        "grad_mode": config.mode,
        "train_config": config.to_dict(),
        "seed": seed,
        "data": {**prepared.data, **describe_sizes(prepared)},
        "history": result.history,
        "steps_done": result.steps_done,
        "diverged": result.diverged,
        "final": final,
        "document": document or {},
        "target": None if not target else {**target, "met": met},
        "compare_modes": comparison,
        "data_parallel": None if not data_parallel else {
            "devices": jax.device_count(), "processes": jax.process_count()},
        "train_time_s": result.wall_time_s,
        "wall_time_s": None,  # filled below, after the plots
    }
    if not writer:
        return metrics
    runs.save_params(run_dir, result.params, result.model_state)
    if prepared.transform is not None:
        np.savez(run_dir / "preprocess.npz", **prepared.transform.to_arrays())
    _plots(run_dir, title, model, result, prepared)
    metrics["wall_time_s"] = time.perf_counter() - t0
    runs.write_metrics(run_dir, metrics)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in final.items() if v is not None and k != "loss")
    log(f"   {shown}; {metrics['wall_time_s']:.1f} s -> {run_dir}")
    if result.diverged:
        log(f"   WARNING: {result.diverged}")
    return metrics


def _plots(run_dir, title, model, result, p: Prepared):
    h = result.history
    if h["loss"]:
        plots.loss_curve(run_dir / "loss.png", h["loss"], title=f"{title}: loss")
    curves = {"train": h["train_acc"], "validation": h["val_acc"]}
    plots.accuracy_curves(run_dir / "accuracy.png", np.asarray(h["report_step"]), curves,
                          title=f"{title}: accuracy", xlabel="updates")
    if p.show_test is not None and p.x_test is not None:
        pred = predictions(model, result, p.x_test)
        plots.image_grid(run_dir / "predictions.png", p.show_test[:16], p.y_test[:16], pred[:16],
                         class_names=p.class_names, title=f"{title}: test images")
        wrong = np.flatnonzero(pred != np.asarray(p.y_test))[:16]
        if wrong.size:
            plots.image_grid(run_dir / "misclassified.png", p.show_test[wrong], np.asarray(p.y_test)[wrong],
                             pred[wrong], class_names=p.class_names,
                             title=f"{title}: misclassified test images ({np.sum(pred != np.asarray(p.y_test))} "
                                   f"of {len(pred)})")
    if model.conv_filters:
        plots.conv_filters(run_dir / "filters.png", np.asarray(result.params[model.conv_filters]),
                           title=f"{title}: learned filters")


def predictions(model, result, x, batch=2000):
    """The model's predicted labels for every row of x (inference mode, the run's state)."""
    predict = jax.jit(model.predict)
    return np.concatenate([np.asarray(predict(result.params, x[i:i + batch], result.model_state))
                           for i in range(0, len(x), batch)])


def experiment_parser(name, doc):
    """The parser of `jaxnets train NAME`, described by the script's docstring."""
    return argparse.ArgumentParser(prog=f"jaxnets train {name}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


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
                    report_every=None, optimizer=optimizers.DEFAULT_OPTIMIZER):
    """The options every experiment script has, with the document's values as defaults."""
    parser.add_argument("--data", default=data, help=f"data source spec (default {data!r})")
    parser.add_argument("--mode", default="fast", choices=TRAIN_MODES,
                        help="gradient mode (default fast: the hand-written backward laid out for speed, "
                             "equal to manual at the equivalence suite's float64 tolerance, or manual itself "
                             "for a model without a fast layout; see README Performance)")
    parser.add_argument("--learning-rate", type=float, default=learning_rate, help=f"default {learning_rate}")
    parser.add_argument("--iterations", type=int, default=iterations, help=f"default {iterations}")
    parser.add_argument("--batch-size", type=int, default=batch_size,
                        help="minibatch size, sampled with replacement" + (f" (default {batch_size})" if batch_size else " (default: full batch)"))
    parser.add_argument("--decay", type=float, default=decay, help=f"learning-rate decay per epoch (default {decay})")
    opt = parser.add_argument_group("optimizer (jaxnets.training.optimizers; unset: the optimizer's own default)")
    opt.add_argument("--optimizer", default=optimizer, choices=list(optimizers.OPTIMIZERS),
                     help="; ".join(f"{k}: {v.summary}" for k, v in optimizers.OPTIMIZERS.items())
                     + f" (default {optimizer})")
    for name, what in (("momentum", "momentum's mu"), ("decay-rate", "RMSProp's moving-average decay"),
                       ("beta1", "Adam's first-moment decay"), ("beta2", "Adam's second-moment decay"),
                       ("eps", "RMSProp's and Adam's epsilon")):
        opt.add_argument(f"--{name}", type=float, default=None, help=what)
    parser.add_argument("--report-every", type=int, default=report_every, help="updates between accuracy reports")
    parser.add_argument("--seed", type=int, default=0, help="initialisation, split and minibatch seed (default 0)")
    parser.add_argument("--out", default=None, help="runs folder (default ./runs)")
    parser.add_argument("--compare-modes", action="store_true",
                        help="also train with autodiff (manual when --mode autodiff) from the same init and report the "
                             "largest parameter difference")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="write <run folder>/checkpoint.{npz,json} every N updates and at the end")
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT",
                        help="continue from a checkpoint stem, e.g. runs/<run>/checkpoint")
    dp = parser.add_argument_group("data-parallel training (README: Scaling out)")
    dp.add_argument("--data-parallel", action="store_true",
                    help="shard every batch over all devices (implied by the three options below)")
    dp.add_argument("--coordinator", metavar="HOST:PORT", help=f"process 0's address (${training.ENV_COORDINATOR})")
    dp.add_argument("--num-processes", type=int, help=f"processes in the job (${training.ENV_NUM_PROCESSES})")
    dp.add_argument("--process-id", type=int, help=f"this process, 0..N-1 (${training.ENV_PROCESS_ID})")
    dp.add_argument("--distributed-timeout", type=float, default=60.0,
                    help="seconds to wait for the coordinator and the other processes (default 60)")
    parser.add_argument("--tag", default=None, help="suffix for the run folder name and title")
    parser.add_argument("--target", type=float, default=None,
                        help="test accuracy to meet, recorded as met/missed in metrics.json")
    return parser


def target_from_args(args, default=None):
    """`--target` as a test-accuracy target, else the experiment's own default (or None)."""
    return {"metric": "test_acc", "at_least": args.target} if args.target is not None else default


OPTIMIZER_ARGS = ("momentum", "decay_rate", "beta1", "beta2", "eps")


def config_from_args(args):
    given = {k: getattr(args, k) for k in OPTIMIZER_ARGS if getattr(args, k) is not None}
    return TrainConfig(mode=args.mode, learning_rate=args.learning_rate, decay=args.decay,
                       iterations=args.iterations, batch_size=args.batch_size,
                       report_every=args.report_every, seed=args.seed, optimizer=args.optimizer,
                       optimizer_args=given)


def start_distributed(args):
    """Join the multi-process job the flags or environment describe (before any other JAX
    call); True when training is data-parallel."""
    joined = training.initialize_distributed(args.coordinator, args.num_processes, args.process_id,
                                             timeout_s=args.distributed_timeout)
    return joined or args.data_parallel


def run_kwargs(args):
    """run_experiment's keyword arguments from the common options; joins a multi-process job
    first when one is configured (see `start_distributed`)."""
    return {"data_parallel": start_distributed(args), "seed": args.seed, "out_root": args.out,
            "compare_modes": args.compare_modes, "progress": not args.no_progress, "tag": args.tag,
            "checkpoint_every": args.checkpoint_every, "resume": args.resume}
