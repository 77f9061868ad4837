"""The ConvNet built from document 000's blocks: conv - ReLU - max pool - affine - softmax.

x (N, C, H, W), y (N,) ints; W1 (F, C, k, k), b1 (F,), W2 (F*Hp*Wp, classes), b2 (classes,).

With conv stride 1 its fast gradient (`fused_gradient`) runs conv - ReLU - pool as the one
layer `jaxnets.ops.conv_relu_pool`, whose output is already examples-last for the affine layer.
"""
import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxnets.models import checks
from jaxnets.models.base import Model, add_l2_penalty, argmax_predict, decoded, register_model, stateless_fast
from jaxnets.ops import (
    AUTODIFF,
    affine_backward,
    affine_forward,
    conv_backward,
    conv_forward,
    conv_relu_pool_backward_examples_last,
    conv_relu_pool_forward_examples_last,
    max_pool_backward,
    max_pool_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)


def fused_gradient(pad, pool, reg):
    """A stride-1 ConvNet's fast gradient: `(decode, layout) -> (params, x, y) -> (loss, grads)`
    (made a `FastGradient` by `stateless_fast`; the fused layer has one form on every backend).

    x: (N, C, H, W) stored inputs, y: (N,) int labels. The pooled activations stay
    examples-last, P (F*Hp*Wp, N), so the affine layer is 002's affine pair transposed:
    scores = P^T W2 + b2, dW2 = P dscores, dP = W2 dscores^T.
    """

    def make(decode=None, layout=None):
        def value_and_grad_fn(params, x, y):
            x = decoded(decode, x, params["W1"].dtype)
            p1, c1 = conv_relu_pool_forward_examples_last(x, params["W1"], params["b1"], pad, pool)
            if params["W2"].shape[0] != p1.shape[0]:
                raise ValueError(f"conv_net fast gradient: W2 has {params['W2'].shape[0]} rows, the "
                                 f"pooled activations have {p1.shape[0]} features")
            scores = lax.dot_general(p1, params["W2"], (((0,), (0,)), ((), ()))) + params["b2"]
            loss, dscores = softmax_loss(scores, y)
            dW2 = p1 @ dscores
            db2 = jnp.sum(dscores, axis=0)
            dp1 = params["W2"] @ dscores.T
            _, dW1, db1 = conv_relu_pool_backward_examples_last(dp1, c1)
            return add_l2_penalty(loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}, params, reg)

        return value_and_grad_fn

    return make


@register_model("conv")
def conv_net(input_shape=(1, 28, 28), num_filters=8, filter_size=3, stride=1, pad=1, pool=2,
             num_classes=10, weight_scale=None, reg=0.0):
    """Sizes are configurable; the pool is pool x pool with stride pool.

    The documents give no initialisation for the CNN; weight_scale=None uses He's
    sqrt(2 / fan_in) per layer, a number uses cs231n's weight_scale * randn. Biases start at 0.
    """
    c, h, w = checks.image_shape("conv_net", input_shape)
    for name, value, low in (("num_filters", num_filters, 1), ("filter_size", filter_size, 1), ("stride", stride, 1),
                             ("pad", pad, 0), ("pool", pool, 1), ("num_classes", num_classes, 2)):
        checks.count("conv_net", name, value, low)
    checks.strength("conv_net", "weight_scale", weight_scale, positive=True, optional=True)
    checks.strength("conv_net", "reg", reg)
    hc = (h + 2 * pad - filter_size) // stride + 1
    wc = (w + 2 * pad - filter_size) // stride + 1
    hp, wp = (hc - pool) // pool + 1, (wc - pool) // pool + 1
    if min(hc, wc) < 1 or min(hp, wp) < 1:
        raise ValueError(f"conv_net: input {input_shape} too small for filter {filter_size}, pad {pad}, pool {pool}")
    flat = num_filters * hp * wp
    config = {
        "input_shape": list(input_shape), "num_filters": num_filters, "filter_size": filter_size,
        "stride": stride, "pad": pad, "pool": pool, "num_classes": num_classes,
        "weight_scale": weight_scale, "reg": reg,
    }

    def scale(fan_in):
        return math.sqrt(2.0 / fan_in) if weight_scale is None else weight_scale

    def init(key):
        k1, k2 = jax.random.split(key)
        return {
            "W1": scale(c * filter_size**2) * jax.random.normal(k1, (num_filters, c, filter_size, filter_size)),
            "b1": jnp.zeros(num_filters),
            "W2": scale(flat) * jax.random.normal(k2, (flat, num_classes)),
            "b2": jnp.zeros(num_classes),
        }

    def scores(params, x, layers=AUTODIFF, state=None):
        a = layers.relu(layers.conv(x, params["W1"], params["b1"], stride, pad, layers.layout))
        a = layers.max_pool(a, pool, pool, pool)
        return layers.affine(a, params["W2"], params["b2"])

    def loss(params, state, x, y, key=None, layers=AUTODIFF):
        value = layers.softmax_loss(scores(params, x, layers), y)
        if reg:
            value = value + layers.l2_penalty(params["W1"], reg) + layers.l2_penalty(params["W2"], reg)
        return value, state

    def loss_and_grads(params, state, x, y, key=None, layout=None):
        z1, c1 = conv_forward(x, params["W1"], params["b1"], stride, pad, layout)
        a1, c2 = relu_forward(z1)
        p1, c3 = max_pool_forward(a1, pool, pool, pool)
        z2, c4 = affine_forward(p1, params["W2"], params["b2"])
        value, dz2 = softmax_loss(z2, y)
        dp1, dW2, db2 = affine_backward(dz2, c4)
        da1 = max_pool_backward(dp1, c3)
        dz1 = relu_backward(da1, c2)
        _, dW1, db1 = conv_backward(dz1, c1)
        return (*add_l2_penalty(value, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}, params, reg), state)

    return Model("conv", config, init, scores, loss, loss_and_grads, argmax_predict(scores),
                 input_shape=tuple(input_shape), num_classes=num_classes, conv_filters="W1",
                 fast_gradient=stateless_fast(fused_gradient(pad, pool, reg)) if stride == 1 else None)
