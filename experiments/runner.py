"""Train one document experiment and write its run folder.

Every experiment script (`occupancy`, `digits`, `two_layer`, `convnet`, `deep_convnet`)
parses its options (`experiments.options`), checks them with `start` before reading any data
(training settings, output location, resume checkpoint, platform), prepares its data as a
`Prepared` record, picks a model with the document's hyperparameters, and calls
`run_experiment`, which:

1. initialises the parameters from `seed` and trains with `jaxnets.training.train`;
2. with `compare_modes`, trains again from the same initial parameters with autodiff (or
   manual, when the run itself is autodiff), and records both accuracies and the largest
   parameter difference;
3. evaluates train, validation and test accuracy;
4. writes `metrics.json`, `params.npz` (and `state.npz` for a model with batch norm),
   `loss.png`, `accuracy.png`, `predictions.png` (a grid of test images titled with label and
   prediction, red when wrong), `misclassified.png` (test images the model gets wrong) and,
   for a model with convolution filters, `filters.png` into `<out>/<name>.partial/`, and moves
   that folder to `<out>/<name>/` when everything is written (`runs.RunFolder`).
"""
from __future__ import annotations

import json
import os
import signal
import time
from typing import NamedTuple, Optional

import jax
import numpy as np

from experiments import plots, runs
from experiments.options import config_from_args
from jaxnets import training
from jaxnets.data import PixelTransform
from jaxnets.training import (Interrupted, TrainConfig, accuracy, sample_batch_indices, train,
                              train_data_parallel)
from jaxnets.training.checkpoint import check_resumable, checkpoint_files, load_checkpoint


class Prepared(NamedTuple):
    """Model-ready arrays and how they were made.

    x_*: float arrays the model takes (a language model: int token ids); y_*: int labels (0/1
    for the binary net; a language model: a target per step, -1 for none).
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


class Launch(NamedTuple):
    """A run as its options describe it, checked by `start` before any data is read."""

    config: TrainConfig
    folder: Optional[runs.RunFolder]  # None on a process that does not write (data-parallel, id > 0)
    seed: int = 0
    compare_modes: bool = False
    progress: bool = True
    checkpoint_every: Optional[int] = None
    resume: Optional[str] = None
    data_parallel: bool = False
    tag: Optional[str] = None


def start(args, name):
    """Check everything the options of `jaxnets train` say before any data is read or any file
    written: the training settings, --compare-modes with --resume, the output location (the run
    folder `<--out>/<name>[_<--tag>]`, see `runs.RunFolder`); join the multi-process job the
    options or environment describe (JAX's first call); then the JAX platform and the --resume
    checkpoint (readable, not past --iterations). Returns the `Launch` for `run_experiment`."""
    config = config_from_args(args)
    if args.compare_modes and args.resume:
        raise ValueError("--compare-modes trains both modes from the start; it does not go with --resume")
    folder = runs.RunFolder(f"{name}_{args.tag}" if args.tag else name, args.out, overwrite=args.overwrite,
                            resume=args.resume)
    data_parallel = start_distributed(args)  # before any other JAX call, reading a checkpoint included
    check_platform()
    if args.resume:
        step = load_checkpoint(args.resume).step
        if step > config.iterations:
            raise ValueError(f"--resume {args.resume} is at step {step}, past --iterations {config.iterations} "
                             "(iterations count every update, the checkpoint's included): it would go backwards")
    if data_parallel and config.mode == "fast":  # the fast layouts are written for one device
        config = config.replace(mode="manual")
    return Launch(config, folder if jax.process_index() == 0 else None, args.seed, args.compare_modes,
                  not args.no_progress, args.checkpoint_every, args.resume, data_parallel, args.tag)


def check_platform():
    """ValueError (one line) when JAX cannot start the platform `$JAX_PLATFORMS` asks for."""
    try:
        jax.devices()
    except RuntimeError as err:
        raise ValueError(f"JAX cannot start a platform $JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')!r} "
                         f"names: {err}") from None


def start_distributed(args):
    """Join the multi-process job the flags or environment describe (before any other JAX
    call); True when training is data-parallel."""
    joined = training.initialize_distributed(args.coordinator, args.num_processes, args.process_id,
                                             timeout_s=args.distributed_timeout)
    return joined or args.data_parallel


def run_experiment(title, model, prepared: Prepared, launch: Launch, *, document=None, target=None, log=print,
                   extra=None):
    """Train `model` on `prepared` as `launch` says; write and return the metrics (see module doc).

    document: the document's reported numbers ({"test_acc": 0.97, ...}) for the table.
    target: {"metric": "test_acc", "at_least": 0.97} or None.
    extra: None, or `extra(model, result, run_dir) -> dict` of further final metrics (e.g. a
        language model's loss per character), merged into metrics["final"]; it may write
        files into run_dir (None on a process that does not write).
    The run is written into `launch.folder` (aside, then moved into place when it finishes);
    training always checkpoints there, so Ctrl-C or SIGTERM leaves a checkpoint of the last
    chunk to --resume from (kept in the finished folder only with --checkpoint-every). With
    `launch.data_parallel` training uses `jaxnets.training.train_data_parallel` over every
    device of every process; only process 0 writes.
    """
    t0 = time.perf_counter()
    config, folder = launch.config, launch.folder
    if launch.tag:
        title = f"{title} [{launch.tag}]"
    if folder is None:
        log = lambda *a: None  # noqa: E731 - process 0 speaks for the job
    if config.mode == "fast" and model.fast_gradient is None:
        # "fast" is manual itself for such a model: record the gradient that actually ran
        config = config.replace(mode="manual")
    if launch.resume:  # before anything is written
        check_resumable(load_checkpoint(launch.resume), model, config, source=launch.resume)
    log(f"== {title}: {model.name} {model.config} on {prepared.data.get('spec')} "
        f"({describe_sizes(prepared)}), {config.iterations} iterations, mode {config.mode}")
    params0 = model.init(jax.random.key(launch.seed))
    if jax.config.jax_enable_x64:
        log(f"   JAX_ENABLE_X64 is on: the initial parameters are drawn in float64 and rounded to {config.dtype}, "
            "so they differ from a run without it")
    data = (prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val)
    decode = None
    t = prepared.transform
    if t is not None and t.exact_on_device:  # uint8 on the device, decoded inside each step
        data = (t.layout(prepared.images[0]), prepared.y_train, t.layout(prepared.images[1]), prepared.y_val)
        decode = t.decoder(np.dtype(config.dtype))
    fit_fn, rows = (train_data_parallel, training.local_shard(data)) if launch.data_parallel else (train, data)
    phase = "training"
    try:
        run_dir = folder.open() if folder else None

        def fit(cfg, primary=True):
            if not primary:  # the comparison run keeps no checkpoint
                return fit_fn(model, params0, rows, cfg, progress=launch.progress, decode=decode)
            return fit_fn(model, params0, rows, cfg, progress=launch.progress,
                          checkpoint_path=folder.checkpoint if folder else None,
                          checkpoint_every=launch.checkpoint_every, resume=launch.resume, decode=decode)

        result = fit(config)
        phase = "the --compare-modes run"
        metrics = _metrics(title, model, prepared, config, launch, result, params0, document, target, fit, log)
        phase = "writing the run folder"
        if extra is not None:
            metrics["final"].update(extra(model, result, run_dir))
        if folder is None:
            return metrics
        runs.save_params(run_dir, result.params, result.model_state)
        if prepared.transform is not None:
            np.savez(run_dir / "preprocess.npz", **prepared.transform.to_arrays())
        _plots(run_dir, title, model, result, prepared)
        metrics["wall_time_s"] = time.perf_counter() - t0
        runs.write_metrics(run_dir, metrics)
        final = folder.finish(keep_checkpoint=launch.checkpoint_every is not None)
    except KeyboardInterrupt as err:
        raise _interrupted(err, folder, config.iterations, phase) from None
    except BaseException:
        if folder is not None:
            folder.discard()
        raise
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics["final"].items() if v is not None and k != "loss")
    log(f"   {shown}; {metrics['wall_time_s']:.1f} s -> {final}")
    if result.diverged:
        log(f"   WARNING: {result.diverged}")
    return metrics


def _interrupted(err, folder, total, phase):
    """The one-line account of a Ctrl-C / SIGTERM: where it stopped, what was saved, how to go on."""
    signum = getattr(err, "signum", signal.SIGINT)
    if folder is None:
        return Interrupted(signum, message=f"interrupted by {signal.Signals(signum).name}")
    folder.discard()
    json_path = checkpoint_files(folder.checkpoint)[1]
    saved = json_path.is_file()
    step = json.loads(json_path.read_text()).get("step") if saved else None
    text = f"interrupted by {signal.Signals(signum).name}"
    text += f" during {phase}" if phase != "training" else ""
    text += f" at step {step} of {total}" if step is not None else ""
    if saved:
        text += f"; checkpoint saved: continue with --resume {folder.checkpoint}"
        text += " (without --compare-modes)" if phase == "the --compare-modes run" else ""
    else:
        text += "; nothing was saved"
    if runs.has_files(folder.final):
        text += f"; {folder.final} is untouched"
    return Interrupted(signum, step, total, folder.checkpoint if saved else None, message=text)


def _metrics(title, model, prepared, config, launch, result, params0, document, target, fit, log):
    """Final accuracies, the --compare-modes twin (trained here) and everything metrics.json holds."""
    final = _accuracies(model, result, prepared)
    final["loss"] = result.history["loss"][-1] if result.history["loss"] else None
    if config.batch_size and result.steps_done:
        final["last_batch_train_acc"] = last_batch_accuracy(model, result, prepared, config)

    comparison = None
    if launch.compare_modes:
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
    return {
        "experiment": title,
        "name": launch.folder.final.name if launch.folder else None,
        "model": model.name,
        "model_config": model.config,
        "grad_mode": config.mode,
        "train_config": config.to_dict(),
        # what the run really computed in: the trained parameters' dtype, and the dtype the
        # initial parameters were drawn in (float64 when JAX_ENABLE_X64 is on)
        "dtype": {"params": str(next(iter(result.params.values())).dtype),
                  "initial_draws": str(next(iter(params0.values())).dtype),
                  "jax_enable_x64": bool(jax.config.jax_enable_x64)},
        "seed": launch.seed,
        "data": {**prepared.data, **describe_sizes(prepared)},
        "history": result.history,
        "steps_done": result.steps_done,
        "diverged": result.diverged,
        "final": final,
        "document": document or {},
        "target": None if not target else {**target, "met": met},
        "compare_modes": comparison,
        "data_parallel": None if not launch.data_parallel else {
            "devices": jax.device_count(), "processes": jax.process_count()},
        "train_time_s": result.wall_time_s,
        "wall_time_s": None,  # filled in after the plots
    }


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


