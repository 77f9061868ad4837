"""The `Model` record every network is described by, and the helpers the models share."""
from typing import Callable, NamedTuple, Optional

import jax.numpy as jnp

from jaxnets.ops import l2_penalty


class Model(NamedTuple):
    """A network as plain functions over a params dict (a pytree), plus the facts callers
    need about it, so that nothing outside `jaxnets.models` switches on a model's name.

    init(key) -> params
    scores(params, x, layers=AUTODIFF, state=None) -> logits ((N, C); a binary model gives
        (N,)), in inference mode (batch norm with the running statistics in `state`)
    loss(params, x, y, layers=AUTODIFF[, key]) -> scalar mean loss (+ L2 penalty when
        reg > 0) in training mode; a model with state returns (loss, batch statistics)
    loss_and_grads(params, x, y[, key]) -> (loss, grads): the MANUAL mode, backward pairs in
        reverse; a model with state returns (loss, grads, batch statistics)
    predict(params, x, state=None) -> (N,) integer labels
    input_shape: the shape of one example (x is (N, *input_shape))
    num_classes: labels are integers 0..num_classes-1 (a binary model: 2)
    binary: one logit per example, targets are 0/1 floats (y is (N,) either way)
    conv_filters: the parameter holding the first convolution's filters (F, C, HH, WW), for
        pictures of them; None for models without one
    fast_gradient: `fast_gradient(decode)` -> `(params, x, y) -> (loss, grads)` equal to
        `loss_and_grads(params, decode(x), y)` up to float rounding, the same hand-written
        gradient laid out for speed (decode None: x is used as given); None when the model
        has no faster layout than `loss_and_grads`
    init_state: `init_state()` -> the state a model with batch norm carries (running means and
        variances, a dict of arrays); None for a model without state
    update_state: `update_state(state, batch statistics)` -> the new state (running averages),
        never mutating; None without state
    stochastic: the training loss takes `key=` (dropout masks); every mode draws the same
    noise: `noise(key, n)` -> the uniform draws the dropout layers take from `key` for a batch
        of n (what the NumPy twin is given); None for a model without dropout
    """

    name: str
    config: dict
    init: Callable
    scores: Callable
    loss: Callable
    loss_and_grads: Callable
    predict: Callable
    input_shape: tuple
    num_classes: int
    binary: bool = False
    conv_filters: Optional[str] = None
    fast_gradient: Optional[Callable] = None
    init_state: Optional[Callable] = None
    update_state: Optional[Callable] = None
    stochastic: bool = False
    noise: Optional[Callable] = None


#: name -> factory of every model (`register_model`); the name is also the Model's `name`.
MODELS = {}


def register_model(name):
    """Decorator: list the factory under `name` in MODELS (how checkpoints, `predict` and the
    verification suite find a model from its stored name and config)."""

    def register(factory):
        if name in MODELS:
            raise RuntimeError(f"model {name!r} is registered twice")
        MODELS[name] = factory
        return factory

    return register


def build_model(name, config):
    """The model `name` of MODELS from a stored (JSON) config, e.g. a run's or a checkpoint's."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    if not isinstance(config, dict):
        raise ValueError(f"model {name!r}: its config must be a dict of the factory's arguments, got {config!r}")
    config = dict(config)
    if isinstance(config.get("input_shape"), list):  # JSON stores the tuple as a list
        config["input_shape"] = tuple(config["input_shape"])
    try:
        return MODELS[name](**config)
    except TypeError as err:  # an argument the factory does not take (an edited or foreign config)
        raise ValueError(f"model {name!r}: config {config} does not fit its factory ({err})") from None


def argmax_predict(scores_fn):
    """predict(params, x) = argmax of the scores (002's `predict`, applied to the hidden
    activations — the document's version fed X to the second layer, an erratum)."""

    def predict(params, x, state=None):
        return jnp.argmax(scores_fn(params, x), axis=1)

    return predict


def add_l2_penalty(value, grads, params, reg, names=("W1", "W2")):
    """002's weight decay in a manual gradient: `value + sum 0.5*reg*|W|^2` and `dW + reg*W`
    for each weight matrix in `names` (the `l2_penalty` pair); unchanged when reg is 0."""
    if not reg:
        return value, grads
    grads = dict(grads)
    for name in names:
        q, dq = l2_penalty(params[name], reg)
        value, grads[name] = value + q, grads[name] + dq
    return value, grads


def decoded(decode, x, dtype):
    """`decode(x)` (stored inputs, e.g. uint8 pixels, to model inputs), or x cast to `dtype`
    when there is nothing to decode."""
    return decode(x) if decode is not None else x.astype(dtype)
