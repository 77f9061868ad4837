"""One entry point for every way to get a model's gradient; they must agree.

- "manual":     the model's `loss_and_grads`, backward functions chained by hand;
- "autodiff":   `jax.value_and_grad` of the forward pass alone (layers = ops.AUTODIFF);
- "custom_vjp": `jax.value_and_grad` where each layer's derivative is its hand-written
                backward (layers = ops.CUSTOM_VJP);
- "fast":       the manual gradient laid out for speed (`Model.fast_gradient`: one pass over X
                for the MLPs, the fused conv-ReLU-pool layer for stride-1 ConvNets), or
                "manual" itself for a model without one. Equal to "manual" up to rounding.

The first three are the modes the documents' derivations are checked with (MODES); all four
are covered by the equivalence suite (`jaxnets.verify`).
"""
from functools import partial

import jax

from jaxnets.ops import AUTODIFF, CUSTOM_VJP

MODES = ("manual", "autodiff", "custom_vjp")
TRAIN_MODES = MODES + ("fast",)


def value_and_grad(model, mode, decode=None):
    """A jit-able `(params, x, y) -> (loss, grads)` for `model` in gradient `mode`.

    decode: None, or a function from stored inputs to model inputs (e.g. uint8 pixels to
    preprocessed floats, `jaxnets.data.PixelTransform.decoder`) applied inside the gradient,
    so x can stay in its stored form on the device ("fast" decodes chunk by chunk).
    """
    if mode == "fast":
        if model.fast_gradient is not None:
            return model.fast_gradient(decode)
        mode = "manual"
    if mode == "manual":
        fn = model.loss_and_grads
    elif mode == "autodiff":
        fn = jax.value_and_grad(partial(model.loss, layers=AUTODIFF))
    elif mode == "custom_vjp":
        fn = jax.value_and_grad(partial(model.loss, layers=CUSTOM_VJP))
    else:
        raise ValueError(f"unknown gradient mode {mode!r}; choose one of {', '.join(TRAIN_MODES)}")
    if decode is None:
        return fn

    def decoded_fn(params, x, y):
        return fn(params, decode(x), y)

    return decoded_fn
