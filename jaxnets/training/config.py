"""How to train: `TrainConfig`, the optimiser and 002's learning-rate schedule.

The update is `optax.sgd` unless another optimiser is named (`jaxnets.training.optimizers`:
cs231n's momentum, RMSProp and Adam written by hand, and optax's own) or given as any
`optax.GradientTransformation` (`optimizer=optax.adamw(1e-3)`, which carries its own rate
or schedule). The learning rate of a named optimiser is a number or an optax schedule; 002's
per-epoch decay (`learning_rate *= learning_rate_decay` once every `max(N / batch_size, 1)`
steps) is an optax schedule, see `learning_rate_schedule`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import numpy as np
import optax

from jaxnets.grads import TRAIN_MODES
from jaxnets.training import optimizers

#: steps fused in one jit call at most (bounds the wait between progress updates)
MAX_CHUNK = 200
#: report interval when none is given and there are no epochs (001's)
FULL_BATCH_REPORT_EVERY = 10


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How to train (JSON-able via `to_dict` / `from_dict`; stored in checkpoints).

    mode: gradient mode, one of `jaxnets.grads.TRAIN_MODES`: manual, autodiff, custom_vjp,
        or fast — the manual mode's hand-written gradient laid out for speed
        (`Model.fast_gradient`), equal to "manual" up to float rounding.
    learning_rate: the named optimiser's step size at step 0, or an optax schedule (a
        callable of the step count, e.g. `optax.cosine_decay_schedule(0.1, 1000)`); None
        when `optimizer` is an optax object (it carries its own).
    decay: 002's `learning_rate_decay`, applied once per epoch; 1.0 = constant rate (the
        only value allowed with a schedule or an optax object).
    iterations: total number of SGD steps (a resumed run continues up to this count).
    batch_size: rows per step, sampled with replacement; None = full batch (every row).
    report_every: steps between accuracy reports; None = one epoch for minibatch SGD
        (002), FULL_BATCH_REPORT_EVERY steps for full-batch runs.
    seed: seeds the minibatch sampling and dropout (the params are initialised by the caller).
    dtype: floating dtype of parameters and data during training.
    optimizer: a name of `optimizers.OPTIMIZERS` ("sgd", the default, is plain optax.sgd), or
        any `optax.GradientTransformation` (`optax.adam(1e-3)`, an `optax.chain(...)`).
    optimizer_args: a named optimiser's hyperparameters (momentum, decay_rate, eps, beta1,
        beta2), {} for its defaults; nothing for an optax object.
    clip_norm: None, or the largest global L2 norm of a step's gradient (all parameters
        together): a larger one is scaled down to it before the optimiser sees it
        (`optax.clip_by_global_norm`, the usual guard against an RNN's exploding gradients).
    """

    mode: str = "manual"
    learning_rate: float | Callable | None = None
    decay: float = 1.0
    iterations: int
    batch_size: int | None = None
    report_every: int | None = None
    seed: int = 0
    dtype: str = "float32"
    optimizer: str | optax.GradientTransformation = optimizers.DEFAULT_OPTIMIZER
    optimizer_args: dict = dataclasses.field(default_factory=dict)
    clip_norm: float | None = None

    @property
    def custom_optimizer(self) -> bool:
        """Whether `optimizer` is an optax object rather than a name."""
        return isinstance(self.optimizer, optax.GradientTransformation)

    def to_dict(self) -> dict:
        """The fields as JSON values; an optax object or a schedule, which JSON cannot hold,
        becomes a description ("optax GradientTransformation", "schedule <name>"), so such a
        config is recorded but cannot be rebuilt by `from_dict`."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["optimizer_args"] = dict(self.optimizer_args)
        if self.custom_optimizer:
            d["optimizer"] = "optax GradientTransformation"
        if callable(self.learning_rate):
            d["learning_rate"] = f"schedule {getattr(self.learning_rate, '__name__', type(self.learning_rate).__name__)}"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(names)}")
        return cls(**d)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def check(self) -> None:
        """ValueError naming the first field out of range."""
        if self.mode not in TRAIN_MODES:
            raise ValueError(f"unknown gradient mode {self.mode!r}; choose one of {', '.join(TRAIN_MODES)}")
        if self.custom_optimizer:
            for name, value, default in (("learning_rate", self.learning_rate, None), ("decay", self.decay, 1.0),
                                         ("optimizer_args", self.optimizer_args, {})):
                if value != default:
                    raise ValueError(f"{name}={value!r} with an optax optimizer: give the rate, schedule and "
                                     f"hyperparameters to the optax object itself and leave {name} out")
        elif self.learning_rate is None:
            raise ValueError(f"learning_rate is needed with the named optimizer {self.optimizer!r} "
                             "(or pass an optax GradientTransformation as optimizer=)")
        elif callable(self.learning_rate):
            if self.decay != 1.0:
                raise ValueError(f"decay={self.decay!r} with a learning-rate schedule: put the decay in the schedule")
        elif not (isinstance(self.learning_rate, (int, float)) and not isinstance(self.learning_rate, bool)
                  and math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive finite number or an optax schedule, "
                             f"got {self.learning_rate!r}")
        if not (isinstance(self.decay, (int, float)) and 0 < self.decay <= 1):
            raise ValueError(f"decay must be in (0, 1], got {self.decay!r}")
        for name in ("iterations", "batch_size", "report_every", "seed"):
            value = getattr(self, name)
            if name in ("batch_size", "report_every") and value is None:
                continue
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            low = 0 if name in ("iterations", "seed") else 1
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if self.dtype not in ("float32", "float64", "bfloat16", "float16"):
            raise ValueError(f"dtype must be a floating dtype name, got {self.dtype!r}")
        if self.dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError("dtype float64 needs jax_enable_x64")
        if not self.custom_optimizer:
            optimizers.make(self.optimizer, self.learning_rate, **self.optimizer_args)  # names the bad one
        if self.clip_norm is not None and not (isinstance(self.clip_norm, (int, float)) and not isinstance(
                self.clip_norm, bool) and math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise ValueError(f"clip_norm must be a positive finite number or None, got {self.clip_norm!r}")

    def report_interval(self, n_train: int) -> int:
        """`report_every`, or its default: one epoch (minibatch) or FULL_BATCH_REPORT_EVERY."""
        if self.report_every:
            return self.report_every
        return iterations_per_epoch(n_train, self.batch_size) if self.batch_size else FULL_BATCH_REPORT_EVERY


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
    if decay == 1.0 or callable(learning_rate):
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


def schedule_for(config: TrainConfig, n_train: int):
    """The learning-rate schedule (or constant) of `config` for n_train training rows."""
    return learning_rate_schedule(config.learning_rate, config.decay,
                                  iterations_per_epoch(n_train, config.batch_size))


def make_optimizer(config: TrainConfig, n_train: int) -> optax.GradientTransformation:
    """`config.optimizer` (plain `optax.sgd` by default) with 002's per-epoch decay schedule, or
    the optax object given, after `optax.clip_by_global_norm(config.clip_norm)` when clipping
    is asked for."""
    opt = config.optimizer if config.custom_optimizer else optimizers.make(config.optimizer, schedule_for(config, n_train), **config.optimizer_args)
    return opt if config.clip_norm is None else optax.chain(optax.clip_by_global_norm(config.clip_norm), opt)
