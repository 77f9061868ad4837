"""Training: optax SGD, full-batch or with-replacement minibatches, many steps per jit.

The documents train in two ways, and both are here behind one `train` function:

- full-batch gradient descent (000, 001, 003): every step uses all training rows;
- minibatch SGD (002): each step draws `batch_size` row indices WITH replacement
  (`np.random.choice(N, batch_size, replace=True)` in the document), here
  `jax.random.randint(fold_in(key, step), ...)` on the device. The key of step t depends only
  on (seed, t), so a run resumed from a checkpoint draws the same batches as one that never
  stopped.

The update is `optax.sgd`; 002's per-epoch decay (`learning_rate *= learning_rate_decay` once
every `max(N / batch_size, 1)` steps) is an optax schedule, see `learning_rate_schedule`.
Gradients come from `jaxnets.grads.value_and_grad(model, mode)`, so the same loop trains with
the hand-written backward ("manual"), `jax.grad` ("autodiff") or the custom_vjp layers.

Steps run in chunks: one jitted `lax.scan` performs up to `chunk` steps (params and optimiser
state donated), then the host records accuracies, prints progress and maybe checkpoints. The
scan carries a status flag; once a step's loss (or gradient) is not finite the remaining
steps of the chunk are skipped and training stops (see `train` for what is kept).

Divergence is reported, not raised: `TrainResult.diverged` is None or a message (always
printed to stderr), and the result holds the last good parameters (see `train`).

Reports: accuracies on the WHOLE training set and the validation set at update counts 0,
report_every, 2*report_every, ... and at the last step (report_every defaults to one epoch
for minibatch runs). 001/003's "accuracy at iteration i" is the same quantity (taken before
update i, i.e. after i updates). 002 measures one update later (after update `it`) and its
train accuracy is that of the current minibatch only (200 rows: a noisy number); here the
train accuracy is always the whole training set's, a deliberate change that costs one
forward pass over the training rows per report.

Checkpoints (`jaxnets.checkpoint`): `<path>.npz` with the parameter and optimiser-state
leaves named by key path, `<path>.json` with the step, model name/config, training config
and histories. The minibatch key is a function of `seed` alone, so nothing else is needed to
resume bit for bit.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnets import checkpoint as ckpt
from jaxnets import fused
from jaxnets.grads import MODES, value_and_grad

TRAIN_MODES = MODES + ("fast",)
MAX_CHUNK = 200  # steps fused in one jit call at most (bounds the wait between progress updates)
FULL_BATCH_REPORT_EVERY = 10  # report interval when none is given and there are no epochs (001's)
ACCURACY_BATCH = 2000  # rows per forward pass in `accuracy`

__all__ = [
    "TRAIN_MODES", "TrainConfig", "TrainResult", "train", "accuracy", "iterations_per_epoch",
    "learning_rate_schedule", "make_optimizer", "sample_batch_indices",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How to train (JSON-able via `to_dict` / `from_dict`; stored in checkpoints).

    mode: gradient mode, one of `TRAIN_MODES`: `jaxnets.grads.MODES`, or "fast" — the manual
        mode's hand-written gradient laid out for speed by `jaxnets.fused.fast_value_and_grad`
        (one pass over X for full-batch MLPs, the fused conv-ReLU-pool layer for stride-1
        ConvNets, else plain manual), equal to "manual" up to float rounding.
    learning_rate: SGD step size at step 0.
    decay: 002's `learning_rate_decay`, applied once per epoch; 1.0 = constant rate.
    iterations: total number of SGD steps (a resumed run continues up to this count).
    batch_size: rows per step, sampled with replacement; None = full batch (every row).
    report_every: steps between accuracy reports; None = one epoch for minibatch SGD
        (002), FULL_BATCH_REPORT_EVERY steps for full-batch runs.
    seed: seeds the minibatch sampling (the params are initialised by the caller).
    dtype: floating dtype of parameters and data during training.
    """

    mode: str = "manual"
    learning_rate: float
    decay: float = 1.0
    iterations: int
    batch_size: int | None = None
    report_every: int | None = None
    seed: int = 0
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(names)}")
        return cls(**d)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


class TrainResult(NamedTuple):
    """What `train` returns.

    params: the final parameters (the last good ones if training diverged).
    history: JSON-able dict of lists —
        "loss": loss of every step (before its update, on its batch), len == steps_done;
        "report_step": number of updates applied when each report was taken
            (0, report_every, 2*report_every, ..., and the last step);
        "train_acc", "val_acc": accuracy on the WHOLE training / validation set at those
            steps ("val_acc" is empty without validation data);
        "lr": the learning rate the next update (number report_step) uses, per report.
    steps_done: number of updates applied to reach `params`.
    diverged: None, or a message saying where the loss (or gradient) became non-finite.
    wall_time_s: seconds spent in `train` (compilation included).
    opt_state: the optax state that goes with `params` (last, so the record reads as above).
    """

    params: dict
    history: dict
    steps_done: int
    diverged: str | None
    wall_time_s: float
    opt_state: Any


# ---------------------------------------------------------------------------------------------
# Optimiser and schedule


def iterations_per_epoch(n_train, batch_size):
    """002's `max(num_train / batch_size, 1)` as a whole number of steps (1 for full batch).

    When batch_size does not divide N the document's float epoch (`it % 3.33 == 0`) is true
    only at step 0; here the epoch is rounded down instead, `max(N // batch_size, 1)`.
    """
    if batch_size is None:
        return 1
    return max(int(n_train) // int(batch_size), 1)


def learning_rate_schedule(learning_rate, decay, iters_per_epoch):
    """002's learning rate as an optax schedule: the rate used by step t (0-based) is

        learning_rate * decay ** ceil(t / iters_per_epoch).

    002 multiplies the rate by `decay` right after every step `it` with
    `it % iterations_per_epoch == 0` — including step 0 — so step 0 uses the initial rate,
    steps 1..E use rate*decay, steps E+1..2E use rate*decay**2, and so on. That is a constant
    for step 0 joined to `optax.exponential_decay(learning_rate * decay, E, decay,
    staircase=True)` from step 1. (A bare `exponential_decay(learning_rate, E, decay,
    staircase=True)` would lag one decay behind the document.) decay == 1 returns the constant
    rate itself.
    """
    if decay == 1.0:
        return learning_rate
    return optax.join_schedules(
        [
            optax.constant_schedule(learning_rate),
            optax.exponential_decay(
                learning_rate * decay, transition_steps=iters_per_epoch, decay_rate=decay,
                staircase=True,
            ),
        ],
        boundaries=[1],
    )


def make_optimizer(config: TrainConfig, n_train: int) -> optax.GradientTransformation:
    """Plain SGD (`optax.sgd`) with 002's per-epoch decay schedule."""
    ipe = iterations_per_epoch(n_train, config.batch_size)
    return optax.sgd(learning_rate_schedule(config.learning_rate, config.decay, ipe))


def sample_batch_indices(key, step, n_train, batch_size):
    """Row indices of step `step`'s minibatch: `batch_size` draws from 0..n_train-1 WITH
    replacement (indices can repeat, as with 002's `np.random.choice(..., replace=True)`).
    The key is `fold_in(key, step)`, so the batch depends only on (key, step)."""
    return jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n_train)


# ---------------------------------------------------------------------------------------------
# Accuracy


def _count_correct_impl(predict, params, x, y, batch):
    """Number of rows where predict == y, `batch` rows per forward pass (static shapes)."""
    n = x.shape[0]
    full = n // batch

    def correct(xb, yb):
        return jnp.sum(predict(params, xb) == yb, dtype=jnp.int32)

    total = jnp.zeros((), jnp.int32)
    if full:
        xs = x[: full * batch].reshape((full, batch) + x.shape[1:])
        ys = y[: full * batch].reshape((full, batch))
        total = total + jnp.sum(jax.lax.map(lambda a: correct(*a), (xs, ys)))
    if n > full * batch:
        total = total + correct(x[full * batch:], y[full * batch:])
    return total


_count_correct = jax.jit(_count_correct_impl, static_argnums=(0, 4))


def accuracy(model, params, x, y, batch=ACCURACY_BATCH):
    """Fraction of rows of x whose `model.predict` equals y, `batch` rows per forward
    pass inside one jit (so 60000 images fit); x (N, ...), y (N,)."""
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.ndim < 1 or y.shape != (x.shape[0],):
        raise ValueError(f"accuracy: labels must have shape ({x.shape[0] if x.ndim else '?'},), got {y.shape}")
    if x.shape[0] == 0:
        raise ValueError("accuracy: empty data")
    if batch < 1:
        raise ValueError(f"accuracy: batch must be >= 1, got {batch}")
    n_correct = _count_correct(model.predict, params, x, y, min(int(batch), x.shape[0]))
    return int(n_correct) / x.shape[0]


# ---------------------------------------------------------------------------------------------
# Input checks


def _check_config(config):
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.mode not in TRAIN_MODES:
        raise ValueError(f"unknown gradient mode {config.mode!r}; choose one of {', '.join(TRAIN_MODES)}")
    if not (isinstance(config.learning_rate, (int, float)) and math.isfinite(config.learning_rate)
            and config.learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive finite number, got {config.learning_rate!r}")
    if not (isinstance(config.decay, (int, float)) and 0 < config.decay <= 1):
        raise ValueError(f"decay must be in (0, 1], got {config.decay!r}")
    for name in ("iterations", "batch_size", "report_every", "seed"):
        value = getattr(config, name)
        if name in ("batch_size", "report_every") and value is None:
            continue
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        low = 0 if name in ("iterations", "seed") else 1
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if config.dtype not in ("float32", "float64", "bfloat16", "float16"):
        raise ValueError(f"dtype must be a floating dtype name, got {config.dtype!r}")
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("dtype float64 needs jax_enable_x64")


def _is_finite(a):
    if isinstance(a, np.ndarray):
        return bool(np.isfinite(a).all())
    return bool(jnp.isfinite(a).all())


def _prepare_data(model, params, data, dtype):
    """Check the arrays and move them to the device: x as `dtype`, y as int32 labels
    (softmax models) or `dtype` 0/1 targets (binary models, whose scores are (N,))."""
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 4):
        raise ValueError("data must be (x_train, y_train) or (x_train, y_train, x_val, y_val)")
    pairs = [("train", data[0], data[1])]
    if len(data) == 4 and not (data[2] is None and data[3] is None):
        pairs.append(("validation", data[2], data[3]))

    out = []
    feature_shape = None
    for name, x, y in pairs:
        if x is None or y is None:
            raise ValueError(f"{name} data: x and y must both be given")
        x = x if hasattr(x, "dtype") else np.asarray(x)
        y = y if hasattr(y, "dtype") else np.asarray(y)
        x_dtype = np.dtype(x.dtype)
        if x.ndim < 2:
            raise ValueError(f"{name} x must be (N, features...) with N rows, got shape {tuple(x.shape)}")
        if not np.issubdtype(x_dtype, np.floating):
            raise ValueError(f"{name} x must be a floating array (preprocessed), got dtype {x_dtype}")
        n = x.shape[0]
        if n == 0:
            raise ValueError(f"{name} x has no rows")
        if tuple(y.shape) != (n,):
            raise ValueError(f"{name} y must have shape ({n},) to match x {tuple(x.shape)}, got {tuple(y.shape)}")
        if feature_shape is None:
            feature_shape = tuple(x.shape[1:])
        elif tuple(x.shape[1:]) != feature_shape:
            raise ValueError(f"{name} x rows have shape {tuple(x.shape[1:])}, train rows {feature_shape}")
        if not _is_finite(x):
            raise ValueError(f"{name} x contains NaN or inf")
        if np.issubdtype(np.dtype(y.dtype), np.floating) and not _is_finite(y):
            raise ValueError(f"{name} y contains NaN or inf")
        out.append([x, y])

    try:
        probe = jax.ShapeDtypeStruct((1,) + feature_shape, jnp.dtype(dtype))
        scores = jax.eval_shape(model.scores, params, probe)
    except Exception as err:  # shape errors surface as TypeError/ValueError from jnp
        raise ValueError(
            f"data rows of shape {feature_shape} do not fit model {model.name!r} "
            f"(config {model.config}): {err}"
        ) from err

    for (name, _, _), pair in zip(pairs, out, strict=True):
        y = np.asarray(pair[1])
        if scores.ndim == 1:  # binary model: 0/1 targets
            if not np.all((y == 0) | (y == 1)):
                raise ValueError(f"{name} y must hold 0/1 targets for binary model {model.name!r}")
            y_dev = jnp.asarray(y, dtype)
        else:
            classes = scores.shape[1]
            if not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"{name} y must hold integer class labels, got dtype {y.dtype}")
            if y.min() < 0 or y.max() >= classes:
                raise ValueError(
                    f"{name} y has labels in [{y.min()}, {y.max()}], model {model.name!r} expects 0..{classes - 1}"
                )
            y_dev = jnp.asarray(y, jnp.int32)
        pair[0] = jnp.asarray(pair[0], dtype)
        pair[1] = y_dev
    x_tr, y_tr = out[0]
    x_val, y_val = out[1] if len(out) > 1 else (None, None)
    return x_tr, y_tr, x_val, y_val


def _fresh_params(params, dtype):
    """Own copies in the training dtype: the caller's arrays are never donated."""
    if not isinstance(params, dict) or not params:
        raise ValueError("params must be a non-empty dict of arrays")
    out = {}
    for name, value in params.items():
        if not np.issubdtype(np.dtype(value.dtype), np.floating):
            raise ValueError(f"param {name!r} has non-float dtype {value.dtype}")
        if not _is_finite(value):
            raise ValueError(f"param {name!r} contains NaN or inf")
        out[name] = jnp.array(value, dtype=dtype, copy=True)
    return out


def _copy_tree(tree):
    return jax.tree.map(lambda a: jnp.array(a, copy=True), tree)


# ---------------------------------------------------------------------------------------------
# The fused training chunk


class _State(NamedTuple):
    params: Any
    opt_state: Any
    prev_params: Any  # params one update back: what divergence rolls back to
    prev_opt_state: Any
    step: jax.Array  # int32, updates applied so far
    status: jax.Array  # int32: 0 running, 1 non-finite loss, 2 finite loss but non-finite grads


RUNNING, BAD_LOSS, BAD_GRADS = 0, 1, 2

_CHUNK_FNS: dict = {}
_CHUNK_CACHE_SIZE = 32


def _chunk_fn(model, config, n_train, chunk):
    """The jitted `(state, x, y, key, n_active) -> (state, losses[chunk])`, cached so that
    repeated runs with the same model object and hyperparameters compile once."""
    cache_key = (id(model), config.mode, config.learning_rate, config.decay, config.batch_size,
                 config.dtype, n_train, chunk)
    hit = _CHUNK_FNS.get(cache_key)
    if hit is not None and hit[0] is model:
        return hit[1]

    if config.mode == "fast":
        grad_fn = fused.fast_value_and_grad(model, full_batch=config.batch_size is None)
    else:
        grad_fn = value_and_grad(model, config.mode)
    optimizer = make_optimizer(config, n_train)
    batch_size = config.batch_size
    loss_dtype = jnp.dtype(config.dtype)

    def run(state, x, y, key, n_active):
        def one_step(s):
            if batch_size is None:
                xb, yb = x, y
            else:
                idx = sample_batch_indices(key, s.step, x.shape[0], batch_size)
                xb, yb = jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0)
            loss, grads = grad_fn(s.params, xb, yb)
            loss_ok = jnp.isfinite(loss)
            grads_ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
            ok = loss_ok & grads_ok
            updates, opt_state = optimizer.update(grads, s.opt_state, s.params)
            params = optax.apply_updates(s.params, updates)
            pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
            status = jnp.where(ok, RUNNING, jnp.where(loss_ok, BAD_GRADS, BAD_LOSS)).astype(jnp.int32)
            new = _State(
                pick(params, s.params), pick(opt_state, s.opt_state),
                pick(s.params, s.prev_params), pick(s.opt_state, s.prev_opt_state),
                s.step + ok.astype(jnp.int32), status,
            )
            return new, loss.astype(loss_dtype)

        def skip(s):
            return s, jnp.full((), jnp.nan, loss_dtype)

        def body(s, i):
            return jax.lax.cond((i < n_active) & (s.status == RUNNING), one_step, skip, s)

        return jax.lax.scan(body, state, jnp.arange(chunk))

    fn = jax.jit(run, donate_argnums=(0,))
    if len(_CHUNK_FNS) >= _CHUNK_CACHE_SIZE:
        _CHUNK_FNS.pop(next(iter(_CHUNK_FNS)))
    _CHUNK_FNS[cache_key] = (model, fn)
    return fn


# ---------------------------------------------------------------------------------------------
# Progress bar


class _Progress:
    """One status line on stderr, rewritten in place on a terminal; otherwise a line at
    most every `interval` seconds (and the last one)."""

    def __init__(self, total, enabled, stream=None, interval=5.0):
        self.total, self.enabled = total, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval
        self.start = time.perf_counter()
        self.last_print = -math.inf
        self.line = ""
        self.line_printed = True

    def update(self, step, loss, train_acc=None, val_acc=None, final=False):
        if not self.enabled:
            return
        width = 24
        filled = int(width * step / self.total) if self.total else width
        parts = [f"[{'#' * filled}{'.' * (width - filled)}] step {step}/{self.total}"]
        if loss is not None:
            parts.append(f"loss {loss:.6g}")
        if train_acc is not None:
            parts.append(f"train {train_acc:.4f}")
        if val_acc is not None:
            parts.append(f"val {val_acc:.4f}")
        parts.append(f"{time.perf_counter() - self.start:.1f}s")
        self.line = "  ".join(parts)
        self.line_printed = False
        now = time.perf_counter()
        if self.tty:
            self.stream.write("\r" + self.line + "\x1b[K")
            self.stream.flush()
        elif final or now - self.last_print >= self.interval:
            self.stream.write(self.line + "\n")
            self.stream.flush()
            self.last_print = now
            self.line_printed = True

    def close(self):
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\n")
        elif self.line and not self.line_printed:
            self.stream.write(self.line + "\n")
        self.stream.flush()


# ---------------------------------------------------------------------------------------------
# The loop


def _check_resume(checkpoint, model, config, n_train):
    if checkpoint.model_name != model.name or checkpoint.model_config != ckpt.jsonable(model.config):
        raise ValueError(
            f"checkpoint is for model {checkpoint.model_name!r} {checkpoint.model_config}, "
            f"not {model.name!r} {ckpt.jsonable(model.config)}"
        )
    saved = checkpoint.train_config
    for field in ("mode", "learning_rate", "decay", "batch_size", "seed", "dtype"):
        if saved.get(field) != getattr(config, field):
            raise ValueError(
                f"cannot resume: checkpoint has {field}={saved.get(field)!r}, config has "
                f"{getattr(config, field)!r} (a resumed run must repeat the same steps)"
            )
    if checkpoint.extra.get("n_train") != n_train:
        raise ValueError(
            f"cannot resume: checkpoint was trained on {checkpoint.extra.get('n_train')} rows, data has {n_train}"
        )


def _host(a):
    """A (replicated) device array's value on the host, also for arrays spanning processes."""
    return np.asarray(a.addressable_data(0))


def _reporter(history, schedule, bar, total, train_accuracy, val_accuracy=None):
    """`report(at_step, params)`: record the accuracies (`train_accuracy(params)`, and
    `val_accuracy(params)` unless None) and the learning rate at `at_step` in `history`, and
    update the progress bar."""

    def report(at_step, params):
        train_acc = train_accuracy(params)
        val_acc = val_accuracy(params) if val_accuracy is not None else None
        history["report_step"].append(at_step)
        history["train_acc"].append(train_acc)
        if val_acc is not None:
            history["val_acc"].append(val_acc)
        history["lr"].append(float(schedule(at_step)) if callable(schedule) else float(schedule))
        last_loss = history["loss"][-1] if history["loss"] else None
        bar.update(at_step, last_loss, train_acc, val_acc, final=at_step >= total)

    return report


def _run_chunks(run_chunk, state, inputs, step, total, report_every, chunk, history, report, bar,
                checkpoint_every=None, save=None):
    """The host loop of `train` (and `parallel.train_data_parallel`): run fused chunks of
    steps up to `total`, stopping at every report and checkpoint step; record the losses,
    report, checkpoint. Returns (state, step, status, loss of the failed step or None)."""
    status, bad_loss = RUNNING, None
    while step < total and status == RUNNING:
        stop = min(total, (step // report_every + 1) * report_every, step + chunk)
        if checkpoint_every:
            stop = min(stop, (step // checkpoint_every + 1) * checkpoint_every)
        state, losses = run_chunk(state, *inputs, np.int32(stop - step))
        new_step, status = int(_host(state.step)), int(_host(state.status))
        losses = _host(losses)
        history["loss"].extend(float(v) for v in losses[: new_step - step])
        if status != RUNNING:
            bad_loss = float(losses[new_step - step])
        step = new_step
        if status == RUNNING:
            if step % report_every == 0 or step == total:
                report(step, state.params)
            else:
                bar.update(step, history["loss"][-1] if history["loss"] else None)
            if checkpoint_every and step % checkpoint_every == 0 and step < total:
                save(state.params, state.opt_state, step)
    return state, step, status, bad_loss


def _drop_reports_after(history, at_step):
    """Remove the reports taken after update `at_step` (a rolled-back step's)."""
    while history["report_step"] and history["report_step"][-1] > at_step:
        for name in ("report_step", "train_acc", "lr", "val_acc"):
            if len(history[name]) == len(history["report_step"]):
                history[name].pop()


def _roll_back(state, status, step, run_start, bad_loss, history, config):
    """After a non-finite step: the parameters to keep, their step and the message (see
    `train`). `step` is the failed step; history's losses and reports past the kept step go."""
    failed = step
    params, opt_state = state.params, state.opt_state
    if status == BAD_LOSS and step > run_start:
        params, opt_state = state.prev_params, state.prev_opt_state
        step -= 1
        good_loss = history["loss"][step]  # loss of the kept params, measured at `step`
        del history["loss"][step:]
        kept = f"returning the parameters after {step} updates (their loss was {good_loss:.6g})"
    elif status == BAD_LOSS:
        kept = f"the starting parameters (after {step} updates) already give a non-finite loss; returning them"
    else:
        kept = f"returning the parameters after {step} updates (their loss {bad_loss:.6g} is finite)"
    what = "loss" if status == BAD_LOSS else "gradient"
    message = (
        f"training diverged: non-finite {what} at step {failed} "
        f"(loss {bad_loss}) with mode={config.mode!r}, learning_rate={config.learning_rate}; {kept}"
    )
    _drop_reports_after(history, step)
    return params, opt_state, step, message


def train(model, params, data, config: TrainConfig, *, progress=True, checkpoint_path=None,
          checkpoint_every=None, resume=None) -> TrainResult:
    """Train `model` from `params` with SGD; see the module docstring.

    data: (x_train, y_train, x_val, y_val) or (x_train, y_train) (validation may be None),
        NumPy or JAX arrays, already preprocessed (floating x); checked up front, bad input
        raises ValueError.
    params: initial parameters (copied, never modified or donated); ignored (may be None)
        with `resume`.
    progress: print a status line (step/total, loss, accuracies) to stderr as chunks finish.
    checkpoint_path: checkpoint stem (see `jaxnets.checkpoint`): written at the end (also
        after a divergence) and every `checkpoint_every` steps if given.
    resume: a checkpoint stem; training continues from its step, parameters, optimiser state
        and history up to `config.iterations` steps in total, drawing the same minibatches an
        uninterrupted run would. Model and the step-defining fields of `config` (all but
        iterations and report_every) must match the checkpoint's.

    Divergence: when a step's loss is NaN/inf, training stops (no exception) and the result
    carries `diverged` (a message, also printed to stderr) and the last good parameters —
    those before the update that produced the non-finite loss, whose own loss was finite —
    with `steps_done` counting the updates that led to them and `history["loss"]` cut to
    those steps. If the loss is finite but a gradient is not, the current parameters are the
    last good ones (the bad update is not applied). If the starting parameters of this call
    already give a non-finite loss, they are returned unchanged.
    """
    start_time = time.perf_counter()
    _check_config(config)
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be a positive integer or None, got {checkpoint_every!r}")
    dtype = jnp.dtype(config.dtype)

    checkpoint = None
    if resume is not None:
        checkpoint = ckpt.load_checkpoint(resume)
        params = checkpoint.params
    if params is None:
        raise ValueError("params is None and there is nothing to resume from")
    params = _fresh_params(params, dtype)
    x_tr, y_tr, x_val, y_val = _prepare_data(model, params, data, dtype)
    n_train = int(x_tr.shape[0])

    optimizer = make_optimizer(config, n_train)
    ipe = iterations_per_epoch(n_train, config.batch_size)
    schedule = learning_rate_schedule(config.learning_rate, config.decay, ipe)
    report_every = config.report_every or (ipe if config.batch_size else FULL_BATCH_REPORT_EVERY)
    chunk = min(report_every, MAX_CHUNK)
    key = jax.random.key(config.seed)

    if checkpoint is not None:
        _check_resume(checkpoint, model, config, n_train)
        opt_state = ckpt.restore_opt_state(checkpoint, optimizer.init(params))
        step = checkpoint.step
        history = {k: list(v) for k, v in checkpoint.history.items()}
    else:
        opt_state = optimizer.init(params)
        step = 0
        history = {"loss": [], "report_step": [], "train_acc": [], "val_acc": [], "lr": []}
    run_start = step
    total = config.iterations

    bar = _Progress(total, progress)

    report = _reporter(history, schedule, bar, total, lambda p: accuracy(model, p, x_tr, y_tr),
                       None if x_val is None else lambda p: accuracy(model, p, x_val, y_val))

    def save(params, opt_state, at_step, diverged=None):
        if checkpoint_path is None:
            return
        ckpt.save_checkpoint(
            checkpoint_path, params=params, opt_state=opt_state, step=at_step,
            model_name=model.name, model_config=model.config, train_config=config.to_dict(),
            history=history, extra={"n_train": n_train, "diverged": diverged},
        )

    # A checkpoint may hold reports past its step (taken after a later-rolled-back step).
    _drop_reports_after(history, step)
    if not history["report_step"] or history["report_step"][-1] != step:
        report(step, params)

    state = _State(params, opt_state, _copy_tree(params), _copy_tree(opt_state),
                   jnp.asarray(step, jnp.int32), jnp.asarray(RUNNING, jnp.int32))
    run_chunk = _chunk_fn(model, config, n_train, chunk) if step < total else None
    state, step, status, bad_loss = _run_chunks(
        run_chunk, state, (x_tr, y_tr, key), step, total, report_every, chunk, history, report, bar,
        checkpoint_every, save)

    params, opt_state = state.params, state.opt_state
    diverged = None
    if status != RUNNING:
        params, opt_state, step, diverged = _roll_back(state, status, step, run_start, bad_loss, history, config)
        if not history["report_step"] or history["report_step"][-1] != step:
            report(step, params)
    bar.close()
    if diverged:
        print(diverged, file=sys.stderr, flush=True)
    save(params, opt_state, step, diverged)
    return TrainResult(params, history, step, diverged, time.perf_counter() - start_time, opt_state)
