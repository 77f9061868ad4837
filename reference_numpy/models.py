"""The networks of `jaxnets.models` in NumPy float64: the four of the source documents,
cs231n assignment 2's fully connected net and deeper ConvNet, and the sequence models
(`sequence_models.py`).

Same factory names, config keys, parameter names and shapes as jaxnets, so parameters can be
copied between the two. Each factory returns a `Model` with
  init(rng: np.random.Generator) -> params (dict of float64 arrays)
  scores(params, x) -> (N, C) logits ((N,) logits for the binary occupancy net)
  loss(params, x, y) -> float (mean data loss + L2 penalty where reg > 0)
  loss_and_grads(params, x, y) -> (loss, grads): the backward functions chained in reverse
  predict(params, x) -> (N,) int labels
"""
import math
from typing import Callable, NamedTuple

import numpy as np

from netspec.networks import deep_conv_stages, fc_net_stages
from reference_numpy.layers import (affine_backward, affine_forward, binary_cross_entropy_with_logits, conv_backward,
                                    conv_forward, l2_penalty, max_pool_backward, max_pool_forward, relu_backward,
                                    relu_forward, softmax_loss, tanh_backward, tanh_forward)
from reference_numpy.stages import backward, run

__all__ = ["Model", "occupancy_net", "digits_mlp", "two_layer_net", "conv_net", "fc_net", "deep_conv_net", "char_lm",
           "row_lstm", "transformer_lm", "MODELS"]


class Model(NamedTuple):
    """A network as plain functions over a params dict (the NumPy twin of jaxnets' Model)."""

    name: str
    config: dict
    init: Callable
    scores: Callable
    loss: Callable
    loss_and_grads: Callable
    predict: Callable


def _argmax_predict(scores):
    def predict(params, x):
        return np.argmax(scores(params, x), axis=1)

    return predict


def _with_l2(value, grads, params, reg):
    """002: loss += 0.5 reg (sum W1^2 + sum W2^2); grads['W'] = dW + reg W (weights only)."""
    if reg:
        for key in ("W1", "W2"):
            penalty, dw = l2_penalty(params[key], reg)
            value += penalty
            grads[key] = grads[key] + dw
    return value


def _l2_value(params, reg):
    return sum(l2_penalty(params[k], reg)[0] for k in ("W1", "W2")) if reg else 0.0


# --------------------------------------------------------------------------- 000: occupancy

def occupancy_net(hidden=5, n_features=5):
    """000's 5-5-1 occupancy classifier: affine - tanh - affine - sigmoid + mean BCE (from logits).

    W1 (n_features, hidden) = 0.01 randn, b1 = 0, W2 (hidden, 1) = 0.01 uniform[0, 1), b2 (1,) = 0.
    x (N, n_features), y (N,) 0/1 floats; scores are the (N,) output logits; predict = logit > 0.
    """
    config = {"hidden": hidden, "n_features": n_features}

    def init(rng):
        return {
            "W1": 0.01 * rng.standard_normal((n_features, hidden)),
            "b1": np.zeros(hidden),
            "W2": 0.01 * rng.random((hidden, 1)),
            "b2": np.zeros(1),
        }

    def scores(params, x):
        a1, _ = tanh_forward(affine_forward(x, params["W1"], params["b1"])[0])
        return affine_forward(a1, params["W2"], params["b2"])[0][:, 0]

    def loss(params, x, y):
        return binary_cross_entropy_with_logits(scores(params, x), y)[0]

    def loss_and_grads(params, x, y):
        z1, c1 = affine_forward(x, params["W1"], params["b1"])
        a1, c2 = tanh_forward(z1)
        z2, c3 = affine_forward(a1, params["W2"], params["b2"])
        value, dz2 = binary_cross_entropy_with_logits(z2[:, 0], y)
        da1, dW2, db2 = affine_backward(dz2[:, None], c3)
        dz1 = tanh_backward(da1, c2)
        _, dW1, db1 = affine_backward(dz1, c1)
        return value, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    def predict(params, x):
        return (scores(params, x) > 0).astype(np.int64)

    return Model("occupancy", config, init, scores, loss, loss_and_grads, predict)


# --------------------------------------------------------------------------- 001/002/003: MLPs

def _mlp(name, config, init, reg):
    """affine - ReLU - affine - softmax (+ L2 on W1, W2 when reg > 0)."""

    def scores(params, x):
        a1, _ = relu_forward(affine_forward(x, params["W1"], params["b1"])[0])
        return affine_forward(a1, params["W2"], params["b2"])[0]

    def loss(params, x, y):
        return softmax_loss(scores(params, x), y)[0] + _l2_value(params, reg)

    def loss_and_grads(params, x, y):
        z1, c1 = affine_forward(x, params["W1"], params["b1"])
        a1, c2 = relu_forward(z1)
        z2, c3 = affine_forward(a1, params["W2"], params["b2"])
        value, dz2 = softmax_loss(z2, y)
        da1, dW2, db2 = affine_backward(dz2, c3)
        dz1 = relu_backward(da1, c2)
        _, dW1, db1 = affine_backward(dz1, c1)
        grads = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
        value = _with_l2(value, grads, params, reg)
        return value, grads

    return Model(name, config, init, scores, loss, loss_and_grads, _argmax_predict(scores))


def digits_mlp(hidden=10, input_size=784, num_classes=10):
    """001/003's 784-10-10 net: every parameter uniform in [-0.5, 0.5) (`rand - 0.5`).

    W1 (input_size, hidden), b1 (hidden,), W2 (hidden, num_classes), b2 (num_classes,).
    """
    config = {"hidden": hidden, "input_size": input_size, "num_classes": num_classes}

    def init(rng):
        return {
            "W1": rng.random((input_size, hidden)) - 0.5,
            "b1": rng.random(hidden) - 0.5,
            "W2": rng.random((hidden, num_classes)) - 0.5,
            "b2": rng.random(num_classes) - 0.5,
        }

    return _mlp("digits", config, init, reg=0.0)


def two_layer_net(input_size=784, hidden_size=50, num_classes=10, std=1e-4, reg=0.0):
    """002's TwoLayerNet: W1 (D, H) = std randn, b1 = 0, W2 (H, C) = std randn, b2 = 0;
    loss adds 0.5 reg (sum W1^2 + sum W2^2)."""
    config = {
        "input_size": input_size, "hidden_size": hidden_size, "num_classes": num_classes,
        "std": std, "reg": reg,
    }

    def init(rng):
        return {
            "W1": std * rng.standard_normal((input_size, hidden_size)),
            "b1": np.zeros(hidden_size),
            "W2": std * rng.standard_normal((hidden_size, num_classes)),
            "b2": np.zeros(num_classes),
        }

    return _mlp("two_layer", config, init, reg=reg)


# --------------------------------------------------------------------------- 000: ConvNet

def conv_net(input_shape=(1, 28, 28), num_filters=8, filter_size=3, stride=1, pad=1, pool=2,
             num_classes=10, weight_scale=None, reg=0.0):
    """conv - ReLU - max_pool(pool, pool, stride pool) - affine - softmax from 000's blocks.

    W1 (F, C, k, k), b1 (F,), W2 (F*Hp*Wp, num_classes), b2 (num_classes,). The documents give
    no CNN initialisation: weight_scale None = He, sqrt(2 / fan_in) randn per layer; a number
    = weight_scale * randn (cs231n). Biases 0. Loss adds L2 on W1 and W2 when reg > 0.
    """
    c, h, w = input_shape
    hc = (h + 2 * pad - filter_size) // stride + 1
    wc = (w + 2 * pad - filter_size) // stride + 1
    hp, wp = (hc - pool) // pool + 1, (wc - pool) // pool + 1
    if min(hc, wc) < 1 or min(hp, wp) < 1:
        raise ValueError(f"conv_net: input {tuple(input_shape)} too small for filter {filter_size}, pad {pad}, pool {pool}")
    flat = num_filters * hp * wp
    config = {
        "input_shape": list(input_shape), "num_filters": num_filters, "filter_size": filter_size,
        "stride": stride, "pad": pad, "pool": pool, "num_classes": num_classes,
        "weight_scale": weight_scale, "reg": reg,
    }

    def scale(fan_in):
        return math.sqrt(2.0 / fan_in) if weight_scale is None else weight_scale

    def init(rng):
        return {
            "W1": scale(c * filter_size**2) * rng.standard_normal((num_filters, c, filter_size, filter_size)),
            "b1": np.zeros(num_filters),
            "W2": scale(flat) * rng.standard_normal((flat, num_classes)),
            "b2": np.zeros(num_classes),
        }

    def scores(params, x):
        z1, _ = conv_forward(x, params["W1"], params["b1"], stride, pad)
        p1, _ = max_pool_forward(relu_forward(z1)[0], pool, pool, pool)
        return affine_forward(p1, params["W2"], params["b2"])[0]

    def loss(params, x, y):
        return softmax_loss(scores(params, x), y)[0] + _l2_value(params, reg)

    def loss_and_grads(params, x, y):
        z1, c1 = conv_forward(x, params["W1"], params["b1"], stride, pad)
        a1, c2 = relu_forward(z1)
        p1, c3 = max_pool_forward(a1, pool, pool, pool)
        z2, c4 = affine_forward(p1, params["W2"], params["b2"])
        value, dz2 = softmax_loss(z2, y)
        dp1, dW2, db2 = affine_backward(dz2, c4)
        da1 = max_pool_backward(dp1, c3)
        dz1 = relu_backward(da1, c2)
        _, dW1, db1 = conv_backward(dz1, c1)
        grads = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
        value = _with_l2(value, grads, params, reg)
        return value, grads

    return Model("conv", config, init, scores, loss, loss_and_grads, _argmax_predict(scores))


# --------------------------------------------------------------------------- cs231n assignment 2

def _deep(name, config, stages, reg, init, stateful):
    """A network as a stage list (`netspec.networks`, the one jaxnets runs) through this
    package's interpreter (`reference_numpy.stages`). The training loss takes `noise`: the
    uniform draws of each dropout stage in order (`jaxnets.models.Model.noise`); with batch
    norm, loss_and_grads also returns the batch statistics (running_mean{i}, running_var{i})
    and scores (inference) takes the running statistics `state`."""

    def l2(params):
        return sum(l2_penalty(params[k], reg)[0] for k in params if k.startswith("W")) if reg else 0.0

    def scores(params, x, state=None, train=False, noise=None):
        """Inference scores (running statistics `state`), or with train=True the training
        forward's (batch statistics, dropout with the draws `noise`)."""
        return run(stages, params, x, train, state, noise)[0]

    def loss(params, x, y, noise=None):
        return softmax_loss(run(stages, params, x, True, noise=noise)[0], y)[0] + l2(params)

    def loss_and_grads(params, x, y, noise=None):
        out, tape, stats = run(stages, params, x, True, noise=noise)
        value, dout = softmax_loss(out, y)
        grads = backward(stages, params, tape, dout)
        for k in params:
            if k.startswith("W") and reg:
                penalty, dw = l2_penalty(params[k], reg)
                value += penalty
                grads[k] = grads[k] + dw
        return (value, grads, stats) if stateful else (value, grads)

    def predict(params, x, state=None):
        return np.argmax(scores(params, x, state), axis=1)

    return Model(name, config, init, scores, loss, loss_and_grads, predict)


def fc_net(hidden_dims=(100, 100), input_size=784, num_classes=10, norm=None, dropout=0.0, reg=0.0,
           weight_scale=1e-2, momentum=0.9):
    """cs231n's FullyConnectedNet: {affine - [norm] - relu - [dropout]} x (L-1) - affine - softmax.
    W{i} = weight_scale randn, b{i} = 0, gamma{i} = 1, beta{i} = 0 (momentum: jaxnets' state
    update only; the twin reports the batch statistics)."""
    hidden_dims = tuple(hidden_dims)
    dims = (input_size, *hidden_dims, num_classes)
    config = {"hidden_dims": list(hidden_dims), "input_size": input_size, "num_classes": num_classes,
              "norm": norm, "dropout": dropout, "reg": reg, "weight_scale": weight_scale, "momentum": momentum}
    stages = fc_net_stages(hidden_dims, norm, dropout)

    def init(rng):
        params = {}
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:]), 1):
            params[f"W{i}"] = weight_scale * rng.standard_normal((d_in, d_out))
            if norm != "batchnorm" or i == len(dims) - 1:
                params[f"b{i}"] = np.zeros(d_out)
            if norm and i < len(dims) - 1:
                params[f"gamma{i}"], params[f"beta{i}"] = np.ones(d_out), np.zeros(d_out)
        return params

    return _deep("fc_net", config, stages, reg, init, norm == "batchnorm")


def deep_conv_net(input_shape=(1, 28, 28), filters=(32, 64), filter_size=3, hidden=256, num_classes=10,
                  batchnorm=True, dropout=0.5, reg=0.0, weight_scale=None, momentum=0.9):
    """{conv (same padding) - [spatial batch norm] - relu - 2x2 max pool} x K - affine -
    [batch norm] - relu - [dropout] - affine - softmax; He initialisation when weight_scale
    is None."""
    filters = tuple(filters)
    c, h, w = input_shape
    config = {"input_shape": list(input_shape), "filters": list(filters), "filter_size": filter_size,
              "hidden": hidden, "num_classes": num_classes, "batchnorm": batchnorm, "dropout": dropout,
              "reg": reg, "weight_scale": weight_scale, "momentum": momentum}
    stages = deep_conv_stages(len(filters), filter_size, batchnorm, dropout)
    shapes, c_in = [], c
    for f in filters:
        shapes.append((f, c_in, filter_size, filter_size))
        c_in, h, w = f, h // 2, w // 2
    k = len(filters) + 1
    shapes += [(c_in * h * w, hidden), (hidden, num_classes)]

    def init(rng):
        params = {}
        for i, shape in enumerate(shapes, 1):
            fan_in = math.prod(shape[1:]) if len(shape) == 4 else shape[0]
            scale = math.sqrt(2.0 / fan_in) if weight_scale is None else weight_scale
            params[f"W{i}"] = scale * rng.standard_normal(shape)
            normed = batchnorm and (i <= len(filters) or i == k)
            if not normed:
                params[f"b{i}"] = np.zeros(shape[0] if len(shape) == 4 else shape[1])
            if normed:
                width = shape[0] if len(shape) == 4 else shape[1]
                params[f"gamma{i}"], params[f"beta{i}"] = np.ones(width), np.zeros(width)
        return params

    return _deep("deep_conv", config, stages, reg, init, batchnorm)


from reference_numpy.sequence_models import char_lm, row_lstm, transformer_lm  # noqa: E402 - they build this file's Model

MODELS = {
    "occupancy": occupancy_net,
    "digits": digits_mlp,
    "two_layer": two_layer_net,
    "conv": conv_net,
    "fc_net": fc_net,
    "deep_conv": deep_conv_net,
    "char_lm": char_lm,
    "row_lstm": row_lstm,
    "transformer_lm": transformer_lm,
}
