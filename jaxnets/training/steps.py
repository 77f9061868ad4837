"""The one training-step implementation: many SGD steps in one jitted `lax.scan`.

`train()` (on one device or data-parallel over many) and the benchmark all run their steps
through `chunk_fn`. A chunk performs up to `chunk` steps; the carry (`TrainState`) holds the
parameters and optimiser state (donated, so updated in place), the previous ones (what a
divergence rolls back to), the step count and a status flag. Once a step's loss (or gradient)
is not finite, the rest of the chunk is skipped.

Minibatches are drawn WITH replacement, as 002 does (`np.random.choice(N, batch_size,
replace=True)`): step t uses `jax.random.randint(fold_in(key, t), (batch_size,), 0, N)`, so a
batch depends only on (seed, t) — a resumed run draws what an uninterrupted one would, and D
devices draw what one device draws. A chunk draws all its steps' indices in one vectorised
call before the loop (the same numbers, without a PRNG call inside every step). A model with
dropout draws step t's masks from `dropout_key(key, t)`, a function of (seed, t) too.

A model with batch norm carries state (running statistics): the carry holds it beside the
parameters, each step's gradient returns the updated state, and a divergence rolls it back
with the parameters.

Compiled chunks are cached by value (`jaxnets.programs`): the model, the step-defining fields
of the config (`StepConfig`), the sizes, the decoder, the evaluation, the batch sharding and
the layout are the key; a bounded number stay alive.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnets.grads import gradient
from jaxnets.programs import program_cache
from jaxnets.training.config import TrainConfig, make_optimizer

RUNNING, BAD_LOSS, BAD_GRADS = 0, 1, 2


class TrainState(NamedTuple):
    """The carry of a chunk of training steps."""

    params: Any
    opt_state: Any
    model_state: Any  # the model's running statistics ({} without batch norm)
    prev_params: Any  # params one update back: what divergence rolls back to
    prev_opt_state: Any
    prev_model_state: Any
    step: jax.Array  # int32, updates applied so far
    status: jax.Array  # int32: RUNNING, BAD_LOSS (non-finite loss) or BAD_GRADS (finite loss)


def initial_state(params, opt_state, model_state=None, step=0, put=None) -> TrainState:
    """A TrainState at `step` with its own copies of params, opt_state and model_state (the
    chunk donates its state). `put` places each array (default: a fresh copy on the default
    device, made without compiling anything)."""
    put = put or (lambda a: jax.device_put(a, may_alias=False))
    model_state = {} if model_state is None else model_state
    tree = (params, opt_state, model_state, params, opt_state, model_state, np.asarray(step, np.int32),
            np.asarray(RUNNING, np.int32))
    return TrainState(*jax.tree.map(put, tree))


def sample_batch_indices(key, step, n_train, batch_size):
    """Row indices of step `step`'s minibatch: `batch_size` draws from 0..n_train-1 WITH
    replacement (indices can repeat, as with 002's `np.random.choice(..., replace=True)`).
    The key is `fold_in(key, step)`, so the batch depends only on (key, step)."""
    return jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n_train)


def dropout_key(key, step):
    """The key step `step`'s dropout masks are drawn from: a function of (key, step) only,
    apart from the key its minibatch is drawn with."""
    return jax.random.fold_in(jax.random.fold_in(key, step), 1)


class StepConfig(NamedTuple):
    """The fields of a TrainConfig that define a step (not how many, nor the seed, which is
    an argument): a hashable value, part of a compiled chunk's key."""

    mode: str
    learning_rate: float
    decay: float
    batch_size: Any
    dtype: str
    optimizer: str
    optimizer_args: tuple  # sorted (name, value) pairs
    clip_norm: Any = None

    @classmethod
    def of(cls, config: TrainConfig):
        return cls(config.mode, config.learning_rate, config.decay, config.batch_size, config.dtype,
                   config.optimizer, tuple(sorted(config.optimizer_args.items())), config.clip_norm)

    def train_config(self):
        return TrainConfig(mode=self.mode, learning_rate=self.learning_rate, decay=self.decay, iterations=0,
                           batch_size=self.batch_size, dtype=self.dtype, optimizer=self.optimizer,
                           optimizer_args=dict(self.optimizer_args), clip_norm=self.clip_norm)


def optimizer_state(model, config: TrainConfig, n_train, params):
    """`make_optimizer(config, n_train).init(params)`, as one program compiled per (model,
    step config) and kept with its chunk (`jaxnets.programs`): run eagerly, the init would
    compile one small program per parameter shape, which JAX keeps for the process's life."""
    return _init_program(model, StepConfig.of(config), int(n_train))(params)


@program_cache
def _init_program(model, step: StepConfig, n_train):
    return jax.jit(make_optimizer(step.train_config(), n_train).init)


def chunk_fn(model, config: TrainConfig, n_train, chunk, decode=None, evaluate=None, batch_sharding=None,
             layout=None):
    """The jitted `(state, x, y, key, n_active, report) -> (state, losses[chunk], counts)`:
    steps `state.step`, `state.step + 1`, ... of `config` (its mode, optimiser and schedule,
    batch size), at most `n_active` of them; losses[i] is the loss before update i on its
    batch (NaN for skipped steps). x, y: all n_train rows (x as stored: `decode` maps it to
    model inputs inside the gradient, see `jaxnets.grads.gradient`); the state is donated.

    Reports happen on the device, between steps, without a round trip to the host: with
    `evaluate(params, model_state, data) -> int32 counts` and report = (every, total, data),
    counts[i] is evaluate's result after update i when the update count is a multiple of
    `every` or equals `total`, else -1s. Without evaluate, report is None and counts too.

    batch_sharding: None, or the sharding every step's batch is pinned to (data-parallel:
    the batch split along the mesh's "data" axis). layout: the ops' `Layout` (None: the
    default backend's). Every argument but `config` must be hashable: they key the compiled
    program (`jaxnets.programs`), so equal arguments get the program compiled before.
    """
    return _chunk_program(model, StepConfig.of(config), int(n_train), int(chunk), decode, evaluate, batch_sharding,
                          layout)


@program_cache
def _chunk_program(model, step: StepConfig, n_train, chunk, decode, evaluate, batch_sharding, layout):
    config = step.train_config()
    grad_fn = gradient(model, config.mode, decode, layout)
    optimizer = make_optimizer(config, n_train)
    batch_size = config.batch_size
    loss_dtype = jnp.dtype(config.dtype)

    def run(state, x, y, key, n_active, report=None):
        def counts_after(s):
            every, total, data = report
            due = (s.status == RUNNING) & ((s.step % every == 0) | (s.step == total))
            shape = jax.eval_shape(evaluate, s.params, s.model_state, data)
            return jax.lax.cond(due, lambda: evaluate(s.params, s.model_state, data),
                                lambda: jnp.full(shape.shape, -1, shape.dtype))

        def one_step(s, idx):
            if batch_size is None:
                xb, yb = x, y
            else:
                xb, yb = jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0)
            if batch_sharding is not None:  # each device computes its part of the global batch
                xb, yb = (jax.lax.with_sharding_constraint(a, batch_sharding) for a in (xb, yb))
            loss, grads, model_state = grad_fn(s.params, s.model_state, xb, yb, dropout_key(key, s.step))
            loss_ok = jnp.isfinite(loss)
            grads_ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
            ok = loss_ok & grads_ok
            updates, opt_state = optimizer.update(grads, s.opt_state, s.params)
            params = optax.apply_updates(s.params, updates)
            pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
            status = jnp.where(ok, RUNNING, jnp.where(loss_ok, BAD_GRADS, BAD_LOSS)).astype(jnp.int32)
            new = TrainState(
                pick(params, s.params), pick(opt_state, s.opt_state), pick(model_state, s.model_state),
                pick(s.params, s.prev_params), pick(s.opt_state, s.prev_opt_state),
                pick(s.model_state, s.prev_model_state), s.step + ok.astype(jnp.int32), status,
            )
            return new, (loss.astype(loss_dtype), None if report is None else counts_after(new))

        def skip(s, idx):
            nothing = None if report is None else jnp.full(count_shape.shape, -1, count_shape.dtype)
            return s, (jnp.full((), jnp.nan, loss_dtype), nothing)

        def body(s, inputs):
            i, idx = inputs
            return jax.lax.cond((i < n_active) & (s.status == RUNNING), one_step, skip, s, idx)

        count_shape = None if report is None else jax.eval_shape(evaluate, state.params, state.model_state, report[2])

        steps = jnp.arange(chunk)
        indices = None
        if batch_size is not None:
            # While running, step i of the chunk is update state.step + i.
            ts = state.step + steps
            indices = jax.vmap(lambda t: sample_batch_indices(key, t, x.shape[0], batch_size))(ts)
        state, (losses, counts) = jax.lax.scan(body, state, (steps, indices))
        return state, losses, counts

    return jax.jit(run, donate_argnums=(0,))
