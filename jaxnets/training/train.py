"""`train`: optax SGD, full-batch or with-replacement minibatches, many steps per jit, on one
device or data-parallel over many (`train_data_parallel`).

The documents train in two ways, and both are here behind one function:

- full-batch gradient descent (000, 001, 003): every step uses all training rows;
- minibatch SGD (002): each step draws `batch_size` row indices WITH replacement (see
  `jaxnets.training.steps`).

Gradients come from `jaxnets.grads.value_and_grad(model, mode)`, so the same loop trains with
the hand-written backward ("manual"), `jax.grad` ("autodiff"), the custom_vjp layers, or the
hand-written backward in its fast layout ("fast").

Steps run in chunks (`steps.chunk_fn`): one jitted `lax.scan` performs up to `chunk` steps,
then the host records accuracies, prints progress and maybe checkpoints (`loop.run_chunks`).
Divergence is reported, not raised: `TrainResult.diverged` is None or a message (always
printed to stderr), and the result holds the last good parameters (see `train`).

Checkpoints (`jaxnets.training.checkpoint`): `<path>.npz` with the parameter and
optimiser-state leaves named by key path, `<path>.json` with the step, model name/config,
training config and histories. The minibatch key is a function of `seed` alone, so nothing
else is needed to resume bit for bit.

One device and many differ only in where arrays are placed (`placement`): the same chunk, the
same host loop, the same reports and rollback.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.data import check_arrays
from jaxnets.programs import program_cache
from jaxnets.training import checkpoint as ckpt
from jaxnets.training.config import MAX_CHUNK, TrainConfig, schedule_for
from jaxnets.training.distributed import data_mesh
from jaxnets.training.interrupt import Interrupted, stop_requests
from jaxnets.training.loop import drop_reports_after, new_history, reporter, roll_back, run_chunks
from jaxnets.training.placement import DataParallel, SingleDevice
from jaxnets.training.progress import Progress
from jaxnets.training.steps import RUNNING, chunk_fn, optimizer_state

__all__ = ["TrainResult", "train", "train_data_parallel"]


class TrainResult(NamedTuple):
    """What `train` returns.

    params: the final parameters (the last good ones if training diverged).
    history: JSON-able dict of lists —
        "loss": loss of every step (before its update, on its batch), len == steps_done;
        "report_step": number of updates applied when each report was taken
            (0, report_every, 2*report_every, ..., and the last step);
        "train_acc", "val_acc": accuracy on the WHOLE training / validation set at those
            steps ("val_acc" is empty without validation data);
        "lr": the learning rate the next update (number report_step) uses, per report
            (None when the optimiser is an optax object, which keeps its rate to itself).
    steps_done: number of updates applied to reach `params`.
    diverged: None, or a message saying where the loss (or gradient) became non-finite.
    wall_time_s: seconds spent in `train` (compilation included).
    opt_state: the optax state that goes with `params` (last, so the record reads as above).
    model_state: the model's state that goes with `params` (batch norm's running statistics,
        what inference uses); {} for a model without state.
    """

    params: dict
    history: dict
    steps_done: int
    diverged: str | None
    wall_time_s: float
    opt_state: Any
    model_state: dict = {}


def _fresh_params(params, dtype):
    """Own copies in the training dtype: the caller's arrays are never donated. Checked and
    cast on the host (NumPy), then placed: no per-shape program is compiled for it."""
    if not isinstance(params, dict) or not params:
        raise ValueError("params must be a non-empty dict of arrays")
    out = {}
    for name, value in params.items():
        if not np.issubdtype(np.dtype(value.dtype), np.floating):
            raise ValueError(f"param {name!r} has non-float dtype {value.dtype}")
        host = np.asarray(value)
        if not np.isfinite(host).all():
            raise ValueError(f"param {name!r} contains NaN or inf")
        out[name] = jax.device_put(host.astype(dtype))
    return out


def _prepared_sets(model, data, dtype, allow_empty_validation, pixels=False):
    """[(x, y) train, (x, y) validation or None], checked by `data.check_arrays` against the
    model's input shape and labels, as NumPy/JAX arrays in the training dtype (labels: int32,
    or `dtype` 0/1 targets for a binary model; stored uint8 pixels stay uint8).
    `allow_empty_validation`: a process of a data-parallel job may hold no validation rows."""
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 4):
        raise ValueError("data must be (x_train, y_train) or (x_train, y_train, x_val, y_val)")
    sets = [("train", data[0], data[1])]
    if len(data) == 4 and not (data[2] is None and data[3] is None):
        sets.append(("validation", data[2], data[3]))
    out = []
    for name, x, y in sets:
        if x is None or y is None:
            raise ValueError(f"{name} data: x and y must both be given")
        x_dtype = np.uint8 if pixels else (np.int32 if model.token_inputs else dtype)
        if name == "validation" and allow_empty_validation and len(x) == 0:
            out.append((np.zeros((0,) + model.input_shape, x_dtype), np.zeros((0,) + model.label_shape, np.int32)))
            continue
        check_arrays(x, y, feature_shape=model.input_shape, num_classes=model.num_classes,
                     binary=model.binary, name=name, pixels=pixels, tokens=model.token_inputs,
                     label_shape=model.label_shape)
        y_dtype = dtype if model.binary else jnp.int32
        cast = jnp.asarray if not isinstance(x, np.ndarray) else np.asarray
        out.append((cast(x, x_dtype), cast(y, y_dtype)))
    return out[0], (out[1] if len(out) > 1 else None)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """`(params, model_state, data) -> int32 [correct on train(, correct on validation)]` for
    the chunk's on-device reports; data = (x_train, y_train[, x_val, y_val]). A hashable value
    (its counter, `placement.Counter`): it keys the compiled chunk."""

    count: Any

    def __call__(self, params, model_state, data):
        sets = [data[i:i + 2] for i in range(0, len(data), 2)]
        return jnp.stack([self.count(params, model_state, x, y) for x, y in sets])


@program_cache
def _jitted(evaluate):
    def counts(params, model_state, data):
        return evaluate(params, model_state, data)

    return jax.jit(counts)


@jax.jit
def _scored(y):
    return jnp.sum(y >= 0)


def scored_labels(y):
    """How many labels of (placed, maybe sharded) y are targets (>= 0; padding is -1)."""
    return int(np.asarray(_scored(y).addressable_data(0)))


def _host_counts(evaluate, params, model_state, data):
    return np.asarray(_jitted(evaluate)(params, model_state, data).addressable_data(0))


def _restored_model_state(checkpoint, fresh):
    """The checkpoint's model state, checked against a fresh `init_state()` (same names,
    shapes and dtypes)."""
    saved = checkpoint.model_state
    if sorted(saved) != sorted(fresh):
        raise ValueError(f"checkpoint holds model state {sorted(saved)}, the model has {sorted(fresh)}")
    for k, v in fresh.items():
        if saved[k].shape != v.shape:
            raise ValueError(f"model state {k!r}: checkpoint {saved[k].shape}, model {v.shape}")
    return {k: jnp.asarray(saved[k], fresh[k].dtype) for k in fresh}


def train(model, params, data, config: TrainConfig, *, progress=True, checkpoint_path=None,
          checkpoint_every=None, resume=None, mesh=None, decode=None) -> TrainResult:
    """Train `model` from `params` with SGD; see the module docstring.

    data: (x_train, y_train, x_val, y_val) or (x_train, y_train) (validation may be None),
        NumPy or JAX arrays, already preprocessed (floating x); checked up front, bad input
        raises ValueError. Data-parallel (`mesh` given): THIS process's rows (see
        `train_data_parallel`).
    params: initial parameters (copied, never modified or donated); ignored (may be None)
        with `resume`. A model with state (batch norm) starts from `model.init_state()`.
    progress: print a status line (step/total, loss, accuracies) to stderr as chunks finish.
    checkpoint_path: checkpoint stem (see `jaxnets.training.checkpoint`): written at the end
        (also after a divergence) and every `checkpoint_every` steps if given.
    resume: a checkpoint stem; training continues from its step, parameters, optimiser state
        and history up to `config.iterations` steps in total, drawing the same minibatches an
        uninterrupted run would. Model and the step-defining fields of `config` (all but
        iterations and report_every) must match the checkpoint's.
    mesh: None (one device), or a 1-D "data" mesh to train data-parallel over its devices.
    decode: None, or a function from stored pixels to model inputs (e.g.
        `jaxnets.data.PixelTransform.decoder(dtype)`): then every x of `data` holds uint8
        pixels in the model's layout, which stay uint8 on the device (4x less memory and
        memory traffic) and are decoded inside every step and every accuracy count. Compiled
        steps are cached per decode value (`PixelTransform.decoder` gives equal decoders for
        equal transforms; any other function is its own key).

    Ctrl-C or SIGTERM (in the main thread): training stops after the current chunk, the
    checkpoint is written at that step (when `checkpoint_path` is given) and
    `jaxnets.training.Interrupted` (a KeyboardInterrupt) is raised; resuming from that
    checkpoint ends where an uninterrupted run would. A second Ctrl-C stops at once.

    Divergence: when a step's loss is NaN/inf, training stops (no exception) and the result
    carries `diverged` (a message, also printed to stderr) and the last good parameters —
    those before the update that produced the non-finite loss, whose own loss was finite —
    with `steps_done` counting the updates that led to them and `history["loss"]` cut to
    those steps. If the loss is finite but a gradient is not, the current parameters are the
    last good ones (the bad update is not applied). If the starting parameters of this call
    already give a non-finite loss, they are returned unchanged.
    """
    start_time = time.perf_counter()
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.check()
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be a positive integer or None, got {checkpoint_every!r}")
    place = SingleDevice() if mesh is None else DataParallel(mesh)
    if mesh is not None and config.mode == "fast":
        raise ValueError("mode 'fast' (Model.fast_gradient) is for one device; data-parallel training "
                         "takes manual, autodiff or custom_vjp")
    dtype = jnp.dtype(config.dtype)

    checkpoint = None
    if resume is not None:
        checkpoint = ckpt.load_checkpoint(resume)
        params = checkpoint.params
    if params is None:
        raise ValueError("params is None and there is nothing to resume from")
    params = _fresh_params(params, dtype)
    (x_tr, y_tr), val = _prepared_sets(model, data, dtype, allow_empty_validation=mesh is not None,
                                       pixels=decode is not None)
    n_train, n_val = place.global_sizes(model, config, params, int(x_tr.shape[0]),
                                        0 if val is None else int(val[0].shape[0]), model.input_shape)
    if val is not None and n_val == 0:
        raise ValueError("validation x has no rows")
    place.check_divisible(config, n_train)
    x_tr, y_tr = place.rows(x_tr, y_tr, n_train, 0)
    if val is not None:
        x_val, y_val = place.rows(*val, n_val, -1)  # padding rows: label -1, never predicted

    schedule = schedule_for(config, n_train)
    report_every = config.report_interval(n_train)
    total = config.iterations

    model_state = {k: jax.device_put(np.asarray(v).astype(dtype)) for k, v in model.init_state().items()}
    if checkpoint is not None:
        ckpt.check_resumable(checkpoint, model, config, n_train, source=resume)
        opt_state = ckpt.restore_opt_state(checkpoint, optimizer_state(model, config, n_train, params))
        model_state = _restored_model_state(checkpoint, model_state)
        step = checkpoint.step
        history = {k: list(v) for k, v in checkpoint.history.items()}
    else:
        opt_state = optimizer_state(model, config, n_train, params)
        step = 0
        history = new_history()
    run_start = step

    bar = Progress(total, progress and place.writer)
    evaluate = Evaluation(place.counter(model, decode))
    eval_data = (x_tr, y_tr) + ((x_val, y_val) if val is not None else ())
    # accuracies are per label: per row, or per target of a model with a target per step
    sizes = (n_train, n_val) if not model.label_shape else tuple(
        scored_labels(y) for y in ((y_tr, y_val) if val is not None else (y_tr,)))
    record = reporter(history, schedule, bar, total, sizes)

    def report(at_step, params, model_state):  # on the host: at the start and after a rollback
        record(at_step, _host_counts(evaluate, params, model_state, eval_data))

    def save(params, opt_state, model_state, at_step, diverged=None):
        if checkpoint_path is None or not place.writer:
            return
        ckpt.save_checkpoint(
            checkpoint_path, params=place.local(params), opt_state=place.local(opt_state),
            model_state=place.local(model_state), step=at_step, model_name=model.name,
            model_config=model.config, train_config=config.to_dict(), history=history,
            extra={"n_train": n_train, "diverged": diverged, "devices": place.devices},
        )

    # Ctrl-C / SIGTERM from here on: finish the chunk, save it, raise Interrupted (interrupt.py)
    with stop_requests() as stop:
        state = place.state(params, opt_state, model_state, step)
        # A checkpoint may hold reports past its step (taken after a later-rolled-back step).
        drop_reports_after(history, step)
        # A fresh run reports at step 0; a resumed one only where an uninterrupted run would
        # (the loop's report steps and the last), so their histories are the same.
        if not history["report_step"] or (step >= total and history["report_step"][-1] != step):
            report(step, state.params, state.model_state)

        run_chunk = (chunk_fn(model, config, n_train, MAX_CHUNK, decode=decode, evaluate=evaluate,
                              batch_sharding=place.batch_sharding) if step < total else None)
        state, step, status, bad_loss = run_chunks(
            run_chunk, state, (x_tr, y_tr, place.key(config.seed)), step, total, (report_every, total, eval_data),
            MAX_CHUNK, record, bar, history, checkpoint_every, save, stop)

        params, opt_state, model_state = state.params, state.opt_state, state.model_state
        diverged = None
        if status != RUNNING:
            params, opt_state, model_state, step, diverged = roll_back(state, status, step, run_start, bad_loss,
                                                                       history, config)
            if not history["report_step"] or history["report_step"][-1] != step:
                report(step, params, model_state)
        bar.close()
        if diverged and place.writer:
            print(diverged, file=sys.stderr, flush=True)
        save(params, opt_state, model_state, step, diverged)
    if stop.signum is not None:
        saved = checkpoint_path if checkpoint_path is not None and place.writer else None
        raise Interrupted(stop.signum, step, total, saved)
    params, opt_state, model_state = place.local(params), place.local(opt_state), place.local(model_state)
    return TrainResult(params, history, step, diverged, time.perf_counter() - start_time, opt_state, model_state)


def train_data_parallel(model, params, data, config: TrainConfig, *, mesh=None, **kwargs) -> TrainResult:
    """`train` data-parallel over the devices of `mesh` (default `data_mesh()`: every device of
    every process); same arguments and result.

    data: THIS process's rows, (x_train, y_train[, x_val, y_val]) — in a single process the
        whole set; with several processes, rows `process_rows(n)` of each global array
        (`local_shard(full_data)` cuts them). params: identical on every process (checked).
    The global batch (batch_size, or all N rows for full-batch training) and the N training
    rows must divide evenly across the D devices: ValueError otherwise. Every process must
    call this with the same model, config and params. Only process 0 prints and writes
    checkpoints; a checkpoint stem given to `resume` must be readable by every process. The
    result's params / opt_state are ordinary arrays on this process's default device
    (identical on every process).
    """
    return train(model, params, data, config, mesh=data_mesh() if mesh is None else mesh, **kwargs)
