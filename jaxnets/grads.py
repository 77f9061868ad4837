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

Models with batch norm carry state (running statistics): their loss also returns the batch
statistics, and `training_gradient` turns them into the new state. Models with dropout
(`Model.stochastic`) take a PRNG key for their masks; every mode draws the same masks from it.
"""
import contextlib
from functools import partial

import jax

from jaxnets.ops import AUTODIFF, CUSTOM_VJP
from jaxnets.ops.layout import differentiated_by_jax

MODES = ("manual", "autodiff", "custom_vjp")
TRAIN_MODES = MODES + ("fast",)


def _with_stats(model, mode):
    """`(params, x, y, key) -> (loss, grads, batch statistics)` for any model ({} without
    batch norm)."""
    stateful = model.init_state is not None
    if mode == "fast":  # a model without a fast layout (the callers take the fast one)
        mode = "manual"
    kw = (lambda key: {"key": key}) if model.stochastic else (lambda key: {})
    if mode == "manual":
        def manual(params, x, y, key):
            out = model.loss_and_grads(params, x, y, **kw(key))
            return out if stateful else (*out, {})

        return manual
    if mode not in ("autodiff", "custom_vjp"):
        raise ValueError(f"unknown gradient mode {mode!r}; choose one of {', '.join(TRAIN_MODES)}")
    layers = AUTODIFF if mode == "autodiff" else CUSTOM_VJP

    def differentiated(params, x, y, key):
        f = partial(model.loss, x=x, y=y, layers=layers, **kw(key))
        # autodiff: JAX's rules differentiate the forward, so its ops take the forms whose
        # JAX derivative runs fast (`layout.conv_algorithm`); custom_vjp runs the hand-written ones
        with differentiated_by_jax() if mode == "autodiff" else contextlib.nullcontext():
            if stateful:
                (value, stats), grads = jax.value_and_grad(f, has_aux=True)(params)
                return value, grads, stats
            value, grads = jax.value_and_grad(f)(params)
            return value, grads, {}

    return differentiated


def value_and_grad(model, mode, decode=None):
    """A jit-able `(params, x, y, key=None) -> (loss, grads)` for `model` in gradient `mode`.

    decode: None, or a function from stored inputs to model inputs (e.g. uint8 pixels to
    preprocessed floats, `jaxnets.data.PixelTransform.decoder`) applied inside the gradient,
    so x can stay in its stored form on the device ("fast" decodes chunk by chunk).
    key: the dropout key of a stochastic model (ignored by the others).
    """
    if mode == "fast" and model.fast_gradient is not None:
        fast = model.fast_gradient(decode)
        return lambda params, x, y, key=None: fast(params, x, y)
    fn = _with_stats(model, mode)

    def value_and_grad_fn(params, x, y, key=None):
        value, grads, _ = fn(params, x if decode is None else decode(x), y, key)
        return value, grads

    return value_and_grad_fn


def training_gradient(model, mode, decode=None):
    """`(params, state, x, y, key) -> (loss, grads, new_state)`: one training step's gradient
    in `mode`, the model's new running statistics (`state` unchanged, {} for a model without
    batch norm), with dropout masks from `key`; see `value_and_grad` for `decode`."""
    if mode == "fast" and model.fast_gradient is not None:
        fast = model.fast_gradient(decode)
        return lambda params, state, x, y, key: (*fast(params, x, y), state)
    fn = _with_stats(model, mode)

    def step(params, state, x, y, key):
        value, grads, stats = fn(params, x if decode is None else decode(x), y, key)
        return value, grads, (model.update_state(state, stats) if model.init_state is not None else state)

    return step
