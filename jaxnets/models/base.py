"""The `Model` record every network is described by."""
from typing import Callable, NamedTuple

import jax.numpy as jnp


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
