"""The checks every model factory and every reader of stored parameters share.

- `count`, `counts`, `strength`, `image_shape`: a factory's sizes and strengths, checked
  before anything is built; a bad one is a ValueError naming the factory, the argument and
  the value (a zero-unit hidden layer or a negative L2 strength is refused, not trained).
- `check_arrays_fit`: stored parameters or state (a checkpoint, a run folder's params.npz)
  against the names and shapes the model's config gives, so another model's file is refused
  with one line instead of failing inside a compiled step (or predicting nonsense).
"""
import math
import numbers

import jax
import numpy as np


def count(where, name, value, low=1):
    """`value` as an int >= low (an integer type: 2.5 or True are refused, not rounded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{where}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def counts(where, name, values, low=1, allow_empty=False):
    """A tuple of `count`s; empty only when `allow_empty`."""
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{where}: {name} must be a sequence of integers >= {low}, got {values!r}") from None
    if not values and not allow_empty:
        raise ValueError(f"{where}: {name} must hold at least one integer >= {low}, got {values!r}")
    return tuple(count(where, f"{name}[{i}]", v, low) for i, v in enumerate(values))


def strength(where, name, value, positive=False, optional=False):
    """`value` as a finite float >= 0 (> 0 when `positive`); None passes when `optional`."""
    if value is None and optional:
        return None
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
          and (value > 0 if positive else value >= 0))
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{where}: {name} must be a finite number {bound}{' or None' if optional else ''}, "
                         f"got {value!r}")
    return value


def image_shape(where, value):
    """(C, H, W) of positive integers."""
    try:
        dims = tuple(value)
    except TypeError:
        dims = ()
    if len(dims) != 3:
        raise ValueError(f"{where}: input_shape must be (channels, height, width), got {value!r}")
    return tuple(count(where, f"input_shape[{i}]", d) for i, d in enumerate(dims))


def expected_arrays(model):
    """{name: shape} of the model's parameters and of its state ({} without state), from its
    config alone (nothing is computed)."""
    params = jax.eval_shape(model.init, jax.random.key(0))
    state = jax.eval_shape(model.init_state) if model.init_state is not None else {}
    return ({k: tuple(v.shape) for k, v in params.items()}, {k: tuple(v.shape) for k, v in state.items()})


def check_arrays_fit(model, arrays, expected, what, source):
    """ValueError unless `arrays` (name -> array) has exactly the names and shapes of
    `expected` (name -> shape) and floating values; `what` ("parameters", "state") and
    `source` (a file) name them in the message."""
    desc = f"{model.name} {dict(model.config)}"
    if sorted(arrays) != sorted(expected):
        raise ValueError(f"{source}: {what} {sorted(arrays)} do not belong to model {desc}, which has "
                         f"{sorted(expected)}")
    for name, shape in expected.items():
        got = np.shape(arrays[name])
        if tuple(got) != shape:
            raise ValueError(f"{source}: {what} {name!r} has shape {tuple(got)}, model {desc} needs {shape}")
        if not np.issubdtype(np.asarray(arrays[name]).dtype, np.floating):
            raise ValueError(f"{source}: {what} {name!r} has dtype {np.asarray(arrays[name]).dtype}, not floating")
