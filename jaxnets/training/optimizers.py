"""Optimizers written by hand from cs231n's update rules, as optax `GradientTransformation`s,
and the registry training picks an optimizer from by name.

Source of the rules: cs231n assignment 2, `cs231n/optim.py` (2017 onward): `sgd_momentum`,
`rmsprop` and `adam`, whose update lines each docstring below quotes. They are checked against
`optax.sgd(momentum=...)`, `optax.rmsprop` and `optax.adam` (optax 0.2.x) in
`tests/test_optimizers.py`; every difference in definition between a cs231n rule and its optax
counterpart is stated in the hand-written function's docstring and pinned by a test there.

Common to the three:
- `learning_rate` is a positive number or an optax schedule (a callable of the step count).
  The step count is the number of updates applied before this one, `count` in the state,
  starting at 0: update t (0-based) uses `learning_rate(t)`, as `optax.sgd(schedule)` does
  (`optax.scale_by_schedule` calls the schedule with its count and then increments it). The
  count is kept (and incremented, saturating like optax's `safe_increment`) for a constant
  rate too, so the state's structure does not depend on whether a schedule is used.
- The state is a NamedTuple of arrays (an int32 scalar `count` and one accumulator per
  parameter, same shape and dtype), so it passes through `jax.jit`, donation, `lax.scan` and
  sharding, and checkpoints by key path (`opt_state.count`, `opt_state.velocity['W1']`, ...).
- The update returned is the change to add to the parameters with `optax.apply_updates`
  (`w + update`), e.g. cs231n's `next_w = w - lr * dw / (...)` is `update = -(lr * dw / (...))`.
- The rate and every hyperparameter are used in each parameter's own dtype (the rate cast with
  `jnp.asarray(rate, dtype)` as optax's `scale_by_schedule` does, hyperparameters as Python
  floats), so float32 parameters keep float32 state even with x64 enabled and a float64 or
  float32 schedule value.

The registry `OPTIMIZERS` maps names to `OptimizerSpec`s: "sgd" (`optax.sgd`, what training
has always used and the default), the three hand-written ones ("momentum", "rmsprop", "adam")
and optax's own ("optax-sgd-momentum", "optax-rmsprop", "optax-adam", with optax's own
definitions and defaults). `make(name, learning_rate, **hyper)` builds one.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "MomentumState", "RMSPropState", "AdamState", "sgd_momentum", "rmsprop", "adam",
    "OptimizerSpec", "OPTIMIZERS", "DEFAULT_OPTIMIZER", "make", "check_learning_rate",
    "check_hyperparameter", "HYPER_RANGES",
]


class MomentumState(NamedTuple):
    """State of `sgd_momentum`: updates applied so far and cs231n's `velocity` per parameter."""

    count: jax.Array  # int32 scalar
    velocity: Any


class RMSPropState(NamedTuple):
    """State of `rmsprop`: updates applied so far and cs231n's `cache` (the moving average of
    squared gradients) per parameter."""

    count: jax.Array  # int32 scalar
    cache: Any


class AdamState(NamedTuple):
    """State of `adam`: `count` = cs231n's `t` (updates applied so far) and the moving
    averages `m` (of gradients) and `v` (of squared gradients) per parameter."""

    count: jax.Array  # int32 scalar
    m: Any
    v: Any


# ---------------------------------------------------------------------------------------------
# argument checks (shared by the factories and `make`)


def check_learning_rate(learning_rate):
    """ValueError unless `learning_rate` is a positive finite number or a callable schedule.

    A schedule is not evaluated here: a warm-up schedule may legitimately start at 0.
    """
    if callable(learning_rate):
        return
    if (isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real)
            or not math.isfinite(learning_rate) or learning_rate <= 0):
        raise ValueError(
            f"learning_rate must be a positive finite number or an optax schedule, got {learning_rate!r}")


#: hyperparameter -> (low, low included, high, high included), the range `check_hyperparameter`
#: enforces. The decay rates and betas exclude 1 (the average would never move: a momentum of 1
#: never forgets, an Adam bias correction 1 - beta**t would be 0); eps must be positive since it
#: is what keeps the RMSProp/Adam denominators away from 0.
HYPER_RANGES = {
    "momentum": (0.0, True, 1.0, False),
    "decay_rate": (0.0, True, 1.0, False),
    "beta1": (0.0, True, 1.0, False),
    "beta2": (0.0, True, 1.0, False),
    "eps": (0.0, False, math.inf, False),
}


def check_hyperparameter(name, value):
    """`value` as a Python float, or ValueError naming `name` and its allowed range."""
    low, low_in, high, high_in = HYPER_RANGES[name]
    interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        value = float(value)
        ok = (value >= low if low_in else value > low) and (value <= high if high_in else value < high)
    if not ok:
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# the hand-written optimizers


def _rate_at(learning_rate, count):
    """The rate of the update after `count` updates (a schedule is called with the count)."""
    return learning_rate(count) if callable(learning_rate) else learning_rate


def _in_dtype(value, like):
    # Used in the leaf's own dtype: a float64 rate times a float32 leaf would otherwise promote
    # the state to float64 under x64 and break a scan carry / donation (optax casts the same way).
    return jnp.asarray(value, dtype=like.dtype)


def sgd_momentum(learning_rate, momentum=0.9) -> optax.GradientTransformation:
    """SGD with momentum, cs231n `optim.py` `sgd_momentum`:

        v = mu * v - learning_rate * dw        (v starts at 0; mu = momentum)
        w = w + v                              (the update returned is v)

    vs `optax.sgd(learning_rate, momentum=mu)`, a trace with the rate applied outside it:

        t = dw + mu * t;  w = w - learning_rate * t        (t starts at 0)

    With a constant rate lr the two are the same rule: by induction v = -lr * t (true at 0;
    if v_{k-1} = -lr * t_{k-1} then v_k = mu * v_{k-1} - lr * dw_k = -lr * (mu * t_{k-1} +
    dw_k) = -lr * t_k), so they agree to float rounding (the operations differ). With a rate
    that changes between steps they differ: cs231n folds each step's rate into the velocity,
    v_k = -sum_j mu^(k-j) * lr_j * dw_j, while optax multiplies the whole trace by the current
    rate, -lr_k * sum_j mu^(k-j) * dw_j. After two updates the difference is
    v_1 - (-lr_1 * t_1) = -mu * dw_0 * (lr_0 - lr_1). With 002's decaying schedule ours
    follows the cs231n rule (past gradients keep the larger rate they were taken with).

    momentum: mu in [0, 1); 0 is plain SGD.
    """
    check_learning_rate(learning_rate)
    mu = check_hyperparameter("momentum", momentum)

    def init(params):
        return MomentumState(count=jnp.zeros([], jnp.int32), velocity=optax.tree.zeros_like(params))

    def update(grads, state, params=None):
        del params
        lr = _rate_at(learning_rate, state.count)
        velocity = jax.tree.map(lambda v, dw: mu * v - _in_dtype(lr, dw) * dw, state.velocity, grads)
        return velocity, MomentumState(count=optax.safe_increment(state.count), velocity=velocity)

    return optax.GradientTransformation(init, update)


def rmsprop(learning_rate, decay_rate=0.99, eps=1e-8) -> optax.GradientTransformation:
    """RMSProp, cs231n `optim.py` `rmsprop`:

        cache = decay_rate * cache + (1 - decay_rate) * dw**2        (cache starts at 0)
        w = w - learning_rate * dw / (sqrt(cache) + eps)

    vs `optax.rmsprop(learning_rate, decay, eps, initial_scale, eps_in_sqrt, centered,
    momentum, bias_correction)` (`optax.scale_by_rms`, then the rate):
    - the accumulator has the same convention: `decay` multiplies the old average and
      (1 - decay) the new squared gradient; but optax's default decay is 0.9, cs231n's 0.99;
    - eps: cs231n adds it outside the square root, sqrt(cache) + eps; optax's default
      `eps_in_sqrt=True` adds it inside, 1 / sqrt(cache + eps) (`eps_in_sqrt=False` gives
      cs231n's, and PyTorch's, placement);
    - the initial accumulator: cs231n starts the cache at 0, as optax's default
      `initial_scale=0.0` does (TF1 starts it at 1);
    - no bias correction in either by default (optax's `bias_correction=False`), no centring
      (`centered=False`), no momentum (`momentum=None`).
    So the two coincide, to float rounding, for `optax.rmsprop(learning_rate,
    decay=decay_rate, eps=eps, eps_in_sqrt=False)` with the other defaults; the rate sits
    outside the accumulator in both, so they coincide for a schedule too.

    decay_rate in [0, 1) (named as in cs231n; `decay` is TrainConfig's learning-rate decay);
    eps > 0.
    """
    check_learning_rate(learning_rate)
    decay_rate = check_hyperparameter("decay_rate", decay_rate)
    eps = check_hyperparameter("eps", eps)

    def init(params):
        return RMSPropState(count=jnp.zeros([], jnp.int32), cache=optax.tree.zeros_like(params))

    def update(grads, state, params=None):
        del params
        lr = _rate_at(learning_rate, state.count)
        cache = jax.tree.map(lambda c, dw: decay_rate * c + (1 - decay_rate) * dw**2, state.cache, grads)
        updates = jax.tree.map(lambda c, dw: -(_in_dtype(lr, dw) * dw / (jnp.sqrt(c) + eps)), cache, grads)
        return updates, RMSPropState(count=optax.safe_increment(state.count), cache=cache)

    return optax.GradientTransformation(init, update)


def adam(learning_rate, beta1=0.9, beta2=0.999, eps=1e-8) -> optax.GradientTransformation:
    """Adam, cs231n `optim.py` `adam` (the 2017+ version, which increments t first):

        t = t + 1                                              (t starts at 0, so 1 here)
        m = beta1 * m + (1 - beta1) * dw;      mt = m / (1 - beta1**t)
        v = beta2 * v + (1 - beta2) * dw**2;   vt = v / (1 - beta2**t)
        w = w - learning_rate * mt / (sqrt(vt) + eps)

    vs `optax.adam(learning_rate, b1, b2, eps, eps_root=0.0)` (`optax.scale_by_adam`, then
    the rate): the same rule. Both bias-correct both moments with the incremented count (the
    first update uses t = 1), both start m and v at 0, both add eps outside the square root
    (optax's `eps_root`, added inside, is 0 by default; a non-zero one is a different rule),
    and the rate multiplies the result from outside. They coincide to float rounding for
    `optax.adam(learning_rate, b1=beta1, b2=beta2, eps=eps)`, with a schedule too: the k-th
    update (k = 0, 1, ...) uses learning_rate(k) and bias corrections with t = k + 1 in both.
    What remains different is how the state is laid out (optax keeps two counters, one in
    `scale_by_adam` and, with a schedule, one in `scale_by_schedule`; ours one) and the order
    of the final multiplication and division (rounding only).

    The bias corrections 1 - beta**t are computed from the int32 count as optax does (in the
    default float dtype, float64 under x64) and then cast to the parameter's dtype.

    beta1, beta2 in [0, 1); eps > 0.
    """
    check_learning_rate(learning_rate)
    beta1 = check_hyperparameter("beta1", beta1)
    beta2 = check_hyperparameter("beta2", beta2)
    eps = check_hyperparameter("eps", eps)

    def init(params):
        return AdamState(count=jnp.zeros([], jnp.int32), m=optax.tree.zeros_like(params),
                         v=optax.tree.zeros_like(params))

    def update(grads, state, params=None):
        del params
        lr = _rate_at(learning_rate, state.count)
        t = optax.safe_increment(state.count)
        correction1 = 1 - beta1**t
        correction2 = 1 - beta2**t
        m = jax.tree.map(lambda m, dw: beta1 * m + (1 - beta1) * dw, state.m, grads)
        v = jax.tree.map(lambda v, dw: beta2 * v + (1 - beta2) * dw**2, state.v, grads)

        def step(m, v, dw):
            mt = m / correction1.astype(m.dtype)
            vt = v / correction2.astype(v.dtype)
            return -(_in_dtype(lr, dw) * mt / (jnp.sqrt(vt) + eps))

        return jax.tree.map(step, m, v, grads), AdamState(count=t, m=m, v=v)

    return optax.GradientTransformation(init, update)


# ---------------------------------------------------------------------------------------------
# the registry


class OptimizerSpec(NamedTuple):
    """One registry entry: `build(learning_rate, **hyper)` -> GradientTransformation, the
    hyperparameters it takes with their defaults, and a one-line description."""

    build: Callable
    hyper: dict
    summary: str


def _optax_sgd(learning_rate):
    return optax.sgd(learning_rate)


def _optax_sgd_momentum(learning_rate, momentum):
    return optax.sgd(learning_rate, momentum=momentum)


def _optax_rmsprop(learning_rate, decay_rate, eps):
    return optax.rmsprop(learning_rate, decay=decay_rate, eps=eps)


def _optax_adam(learning_rate, beta1, beta2, eps):
    return optax.adam(learning_rate, b1=beta1, b2=beta2, eps=eps)


#: name -> OptimizerSpec. Hyperparameters have the same names everywhere (cs231n's), so one
#: command-line option serves the hand-written optimizer and its optax counterpart; the optax
#: entries keep optax's own defaults (optax.rmsprop: decay 0.9, eps inside the square root).
OPTIMIZERS = {
    "sgd": OptimizerSpec(_optax_sgd, {}, "optax.sgd: w -= lr * dw (the default)"),
    "momentum": OptimizerSpec(sgd_momentum, {"momentum": 0.9},
                              "cs231n sgd_momentum, by hand: v = mu v - lr dw; w += v"),
    "rmsprop": OptimizerSpec(rmsprop, {"decay_rate": 0.99, "eps": 1e-8},
                             "cs231n rmsprop, by hand: eps outside the square root"),
    "adam": OptimizerSpec(adam, {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                          "cs231n adam, by hand: bias-corrected, t from 1"),
    "optax-sgd-momentum": OptimizerSpec(_optax_sgd_momentum, {"momentum": 0.9},
                                        "optax.sgd(momentum=...): t = dw + mu t; w -= lr t"),
    "optax-rmsprop": OptimizerSpec(_optax_rmsprop, {"decay_rate": 0.9, "eps": 1e-8},
                                   "optax.rmsprop: eps inside the square root"),
    "optax-adam": OptimizerSpec(_optax_adam, {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                                "optax.adam"),
}

#: what training uses when no optimizer is named
DEFAULT_OPTIMIZER = "sgd"


def make(name, learning_rate, **hyper) -> optax.GradientTransformation:
    """The optimizer `name` of OPTIMIZERS with `learning_rate` (number or optax schedule) and
    hyperparameters `hyper` (a value None means "not given": the entry's default is used).

    ValueError for an unknown name (naming the known ones), a hyperparameter the optimizer
    does not take (naming the ones it takes), or a value out of range.
    """
    spec = OPTIMIZERS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}, "
                         "or any optax GradientTransformation (e.g. optax.adam(1e-3))")
    given = {k: v for k, v in hyper.items() if v is not None}
    unknown = sorted(set(given) - set(spec.hyper))
    if unknown:
        takes = ", ".join(spec.hyper) or "no hyperparameters"
        raise ValueError(f"optimizer {name!r} does not take {', '.join(unknown)}; it takes {takes}")
    try:
        check_learning_rate(learning_rate)
        values = {k: check_hyperparameter(k, given.get(k, default)) for k, default in spec.hyper.items()}
    except ValueError as e:
        raise ValueError(f"optimizer {name!r}: {e}") from None
    return spec.build(learning_rate, **values)
