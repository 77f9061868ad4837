"""One entry point for every way to get a model's gradient; they must agree.

- "manual":     the model's `loss_and_grads`, backward functions chained by hand;
- "autodiff":   `jax.value_and_grad` of the forward pass alone (layers = ops.AUTODIFF);
- "custom_vjp": `jax.value_and_grad` where each layer's derivative is its hand-written
                backward (layers = ops.CUSTOM_VJP);
- "fast":       the manual gradient laid out for speed (`Model.fast_gradient`: one pass over X
                for the MLPs, the fused conv-ReLU-pool layer for stride-1 ConvNets), or
                "manual" itself for a model without one. Equal to "manual" up to rounding.

The first three are the modes the documents' derivations are checked with (MODES); all four
are covered by the equivalence suite (`jaxnets.conformance`).

Every mode has the model's one signature, `(params, state, x, y, key) -> (loss, grads,
new_state)`: the state (batch norm's running statistics, {} without) goes in and its update
comes out; the key draws dropout masks, the same in every mode.

The forms the ops take are an argument too (`layout`, a `jaxnets.ops.Layout`; None: the
default backend's). Mode "autodiff" differentiates the forward in the layout's
`for_jax_rules()` forms (`mode_layout`): on the CPU every conv in im2col form, whose JAX
derivative runs fast there, where the other modes run the convolution primitive from 8
channels on (documentation: Performance).
"""
import jax

from jaxnets.ops import AUTODIFF, CUSTOM_VJP
from jaxnets.ops.layout import default_layout

__all__ = ["MODES", "TRAIN_MODES", "gradient", "value_and_grad", "mode_layout"]

MODES = ("manual", "autodiff", "custom_vjp")
TRAIN_MODES = MODES + ("fast",)


def mode_layout(mode, layout=None):
    """The layout whose forward program `mode` runs: `layout` (None: the default backend's),
    or for "autodiff" its `for_jax_rules()` forms — what JAX's own rules differentiate."""
    if mode not in TRAIN_MODES:
        raise ValueError(f"unknown gradient mode {mode!r}; choose one of {', '.join(TRAIN_MODES)}")
    layout = default_layout(layout)
    return layout.for_jax_rules() if mode == "autodiff" else layout


def gradient(model, mode, decode=None, layout=None):
    """A jit-able `(params, state, x, y, key=None) -> (loss, grads, new_state)` for `model` in
    gradient `mode`, in `layout`'s forms (`mode_layout`).

    decode: None, or a function from stored inputs to model inputs (e.g. uint8 pixels to
    preprocessed floats, `jaxnets.data.PixelTransform.decoder`) applied inside the gradient,
    so x can stay in its stored form on the device ("fast" decodes chunk by chunk).

    A model with state (batch norm's running statistics) refuses, in one line, a state that
    is not its own: pass `model.init_state()` to start, then the `new_state` each call returns.
    """
    fn = _gradient(model, mode, decode, layout)
    if not model.stateful:
        return fn
    names = sorted(model.init_state())

    def with_state(params, state, x, y, key=None):
        if not isinstance(state, dict) or sorted(state) != names:
            got = sorted(state) if isinstance(state, dict) else state
            raise ValueError(f"model {model.name!r} has batch-norm running statistics {names}: pass them as state "
                             f"(model.init_state() to start, then the new_state each call returns), got {got!r}")
        return fn(params, state, x, y, key)

    return with_state


def _gradient(model, mode, decode, layout):
    layout = mode_layout(mode, layout)
    if mode == "fast" and model.fast_gradient is not None:
        return model.fast_gradient.make(decode, layout)
    prepare = (lambda x: x) if decode is None else decode
    if mode in ("manual", "fast"):  # fast: a model without a fast layout
        def manual(params, state, x, y, key=None):
            return model.loss_and_grads(params, state, prepare(x), y, key, layout)

        return manual
    layers = (AUTODIFF if mode == "autodiff" else CUSTOM_VJP)._replace(layout=layout)

    def differentiated(params, state, x, y, key=None):
        x = prepare(x)
        (value, new_state), grads = jax.value_and_grad(
            lambda p: model.loss(p, state, x, y, key, layers), has_aux=True)(params)
        return value, grads, new_state

    return differentiated


def value_and_grad(model, mode, decode=None, layout=None):
    """`(params, x, y, key=None) -> (loss, grads)`: `gradient` from the model's initial state,
    without the new state (a model with batch norm normalises with the batch's statistics in
    training, so its loss and gradient do not depend on the running ones)."""
    fn = gradient(model, mode, decode, layout)

    def value_and_grad_fn(params, x, y, key=None):
        value, grads, _ = fn(params, model.init_state(), x, y, key)
        return value, grads

    return value_and_grad_fn
