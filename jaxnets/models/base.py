"""The `Model` record every network is described by."""
from typing import Callable, NamedTuple

import jax.numpy as jnp

from jaxnets.ops import l2_penalty


class Model(NamedTuple):
    """A network as plain functions over a params dict (a pytree).

    init(key) -> params
    scores(params, x, layers=AUTODIFF) -> logits ((N, C); the binary net gives (N,))
    loss(params, x, y, layers=AUTODIFF) -> scalar mean loss (+ L2 penalty when reg > 0)
    loss_and_grads(params, x, y) -> (loss, grads): the MANUAL mode, backward pairs in reverse
    predict(params, x) -> (N,) integer labels
    """

    name: str
    config: dict
    init: Callable
    scores: Callable
    loss: Callable
    loss_and_grads: Callable
    predict: Callable


def argmax_predict(scores_fn):
    """predict(params, x) = argmax of the scores (002's `predict`, applied to the hidden
    activations — the document's version fed X to the second layer, an erratum)."""

    def predict(params, x):
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
