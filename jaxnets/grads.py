"""One entry point for the three ways to get a model's gradient; they must agree.

- "manual":     the model's `loss_and_grads`, backward functions chained by hand;
- "autodiff":   `jax.value_and_grad` of the forward pass alone (layers = ops.AUTODIFF);
- "custom_vjp": `jax.value_and_grad` where each layer's derivative is its hand-written
                backward (layers = ops.CUSTOM_VJP).
"""
from functools import partial

import jax

from jaxnets.ops import AUTODIFF, CUSTOM_VJP

MODES = ("manual", "autodiff", "custom_vjp")


def value_and_grad(model, mode):
    """Return a jit-able `(params, x, y) -> (loss, grads)` for `model` in gradient `mode`."""
    if mode == "manual":
        return model.loss_and_grads
    if mode == "autodiff":
        return jax.value_and_grad(partial(model.loss, layers=AUTODIFF))
    if mode == "custom_vjp":
        return jax.value_and_grad(partial(model.loss, layers=CUSTOM_VJP))
    raise ValueError(f"unknown gradient mode {mode!r}; choose one of {', '.join(MODES)}")
