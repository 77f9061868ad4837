"""Networks written as a short list of stages (affine, conv, batch/layer norm, ReLU, max pool,
dropout), run three ways from the same list, so a deep net is written once:

- `forward(...)` with a set of single-output layers (`ops.AUTODIFF` or `ops.CUSTOM_VJP`):
  the loss jax.grad differentiates, in training mode (batch statistics, dropout) or inference
  mode (running statistics, no dropout);
- `manual_loss_and_grads(...)`: the hand-written pairs forward, caches kept, then every
  backward in reverse (the "manual" mode);
- both return the batch statistics of every batch-norm stage, from which the model's running
  averages are updated (`update_state`), functionally.
Conv stages take the layout they are given (`layers.layout` in `forward`, `layout` in
`manual_loss_and_grads`).

Parameters follow cs231n's FullyConnectedNet / ConvNet names: W1, b1, ... per affine or conv
stage, gamma1, beta1 for the norm after stage 1, and the state running_mean1, running_var1. A
stage followed by batch norm has no bias: batch norm subtracts the batch mean, so such a bias
would not change the output and its gradient is exactly 0 (beta takes its place).
Dropout stage j draws its mask from `fold_in(key, j)` (`dropout_noise`), so the NumPy twin
can be given the very same draws.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.models.base import add_l2_penalty
from jaxnets.ops import (AUTODIFF, affine_backward, affine_forward, batch_moments, batchnorm_backward,
                         batchnorm_forward, batchnorm_inference, conv_backward, conv_forward, dropout_backward,
                         dropout_forward, dropout_noise, layernorm_backward, layernorm_forward, max_pool_backward,
                         max_pool_forward, relu_backward, relu_forward, running_average, softmax_loss,
                         spatial_batchnorm_backward, spatial_batchnorm_forward, spatial_batchnorm_inference)

EPS = 1e-5


class Stage(NamedTuple):
    """kind: "affine" | "conv" | "batchnorm" | "spatial_batchnorm" | "layernorm" | "relu" |
    "max_pool" | "dropout"; index: the parameter number (W{index}, gamma{index}) or the
    dropout number; arg: conv pad, pool size or dropout rate."""

    kind: str
    index: int = 0
    arg: float = 0


NORMS = ("batchnorm", "spatial_batchnorm", "layernorm")
STATEFUL = ("batchnorm", "spatial_batchnorm")


def init_state(stages, widths):
    """Running mean 0 and variance 1 per feature of every batch-norm stage (cs231n's start);
    `widths[index]` is the number of features (or channels) of stage `index`. NumPy float32
    arrays (made on the host: nothing is compiled per width)."""
    state = {}
    for s in stages:
        if s.kind in STATEFUL:
            state[f"running_mean{s.index}"] = np.zeros(widths[s.index], np.float32)
            state[f"running_var{s.index}"] = np.ones(widths[s.index], np.float32)
    return state


def update_state(state, stats, momentum):
    """New running statistics: running_average of each with this batch's (stats has the same
    keys as state: the batch mean and biased variance of every batch-norm stage)."""
    return {k: running_average(state[k], jax.lax.stop_gradient(stats[k]).astype(state[k].dtype), momentum)
            for k in state}


def _stats(stats, index, mean, var):
    stats[f"running_mean{index}"], stats[f"running_var{index}"] = mean, var


def _bias(params, i, w):
    """b{i}, or zeros for a stage without a bias (followed by batch norm)."""
    b = params.get(f"b{i}")
    return jnp.zeros(w.shape[0] if w.ndim == 4 else w.shape[1], w.dtype) if b is None else b


def forward(stages, params, x, layers=AUTODIFF, *, train=True, state=None, key=None):
    """(scores, batch statistics) of the stages; train: batch statistics and dropout (with
    `key`), else running statistics from `state` and no dropout."""
    h, stats = x, {}
    for s in stages:
        i = s.index
        if s.kind == "affine":
            h = layers.affine(h, params[f"W{i}"], _bias(params, i, params[f"W{i}"]))
        elif s.kind == "conv":
            h = layers.conv(h, params[f"W{i}"], _bias(params, i, params[f"W{i}"]), 1, int(s.arg), layers.layout)
        elif s.kind == "relu":
            h = layers.relu(h)
        elif s.kind == "max_pool":
            h = layers.max_pool(h, int(s.arg), int(s.arg), int(s.arg))
        elif s.kind == "layernorm":
            h = layers.layernorm(h, params[f"gamma{i}"], params[f"beta{i}"], EPS)
        elif s.kind in STATEFUL:
            gamma, beta = params[f"gamma{i}"], params[f"beta{i}"]
            if train:
                _stats(stats, i, *batch_moments(jax.lax.stop_gradient(h)))
                h = getattr(layers, s.kind)(h, gamma, beta, EPS)
            else:
                infer = batchnorm_inference if s.kind == "batchnorm" else spatial_batchnorm_inference
                h = infer(h, gamma, beta, state[f"running_mean{i}"], state[f"running_var{i}"], eps=EPS)
        elif s.kind == "dropout" and train and s.arg:
            h = layers.dropout(h, jax.random.fold_in(key, i), s.arg)
    return h, stats


_PAIRS = {
    "affine": (affine_forward, affine_backward),
    "conv": (conv_forward, conv_backward),
    "relu": (relu_forward, relu_backward),
    "max_pool": (max_pool_forward, max_pool_backward),
    "batchnorm": (batchnorm_forward, batchnorm_backward),
    "spatial_batchnorm": (spatial_batchnorm_forward, spatial_batchnorm_backward),
    "layernorm": (layernorm_forward, layernorm_backward),
    "dropout": (dropout_forward, dropout_backward),
}


def _pair_forward(s, params, h, key, layout):
    i = s.index
    if s.kind in ("affine", "conv"):
        static = (1, int(s.arg), layout) if s.kind == "conv" else ()
        return _PAIRS[s.kind][0](h, params[f"W{i}"], _bias(params, i, params[f"W{i}"]), *static)
    if s.kind in NORMS:
        return _PAIRS[s.kind][0](h, params[f"gamma{i}"], params[f"beta{i}"], eps=EPS)
    if s.kind == "max_pool":
        return max_pool_forward(h, int(s.arg), int(s.arg), int(s.arg))
    if s.kind == "dropout":
        return dropout_forward(h, jax.random.fold_in(key, i), rate=s.arg)
    return relu_forward(h)


def manual_loss_and_grads(stages, params, x, y, reg, key=None, layout=None):
    """(loss, grads, batch statistics): the hand-written forward pairs, softmax loss, and
    every backward in reverse (cs231n FullyConnectedNet.loss / ConvNet.loss), plus 002's L2
    on every W; conv stages in `layout`'s forms."""
    h, caches, stats = x, [], {}
    for s in stages:
        h, cache = _pair_forward(s, params, h, key, layout)
        caches.append(cache)
        if s.kind in STATEFUL:
            _stats(stats, s.index, cache.mean, cache.var)
    value, dh = softmax_loss(h, y)
    grads = {}
    for s, cache in zip(reversed(stages), reversed(caches)):
        back = _PAIRS[s.kind][1](dh, cache)
        i = s.index
        if s.kind in ("affine", "conv"):
            dh, grads[f"W{i}"], db = back
            if f"b{i}" in params:
                grads[f"b{i}"] = db
        elif s.kind in NORMS:
            dh, grads[f"gamma{i}"], grads[f"beta{i}"] = back
        else:
            dh = back
    value, grads = add_l2_penalty(value, grads, params, reg, weight_names(params))
    return value, grads, stats


def weight_names(params):
    """The weight matrices and filters, W1, W2, ...: what the L2 penalty covers (not biases,
    gammas or betas)."""
    return tuple(sorted(k for k in params if k.startswith("W")))


def l2_value(value, params, reg, layers):
    """The loss plus 002's 0.5 reg |W|^2 for every weight, through `layers` (autodiff or
    custom_vjp mode)."""
    for k in weight_names(params) if reg else ():
        value = value + layers.l2_penalty(params[k], reg)
    return value


def noise(stages, key, shapes):
    """The uniform draws each dropout stage takes from `key` (`dropout_noise(fold_in(key, j),
    shape)`), in stage order, for inputs of `shapes[j]`: what the NumPy twin is given."""
    return tuple(dropout_noise(jax.random.fold_in(key, s.index), shapes[s.index])
                 for s in stages if s.kind == "dropout" and s.arg)


def predict_fn(stages):
    def predict(params, x, state=None):
        return jnp.argmax(forward(stages, params, x, train=False, state=state)[0], axis=1)

    return predict
