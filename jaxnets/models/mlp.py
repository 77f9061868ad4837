"""Two-layer ReLU/softmax MLPs: 001/003's 784-10-10 digits net and 002's TwoLayerNet.

Both are affine - ReLU - affine - softmax; they differ in initialisation and L2 penalty.
x (N, D) (or (N, d1, ...), flattened), y (N,) ints; W1 (D, H), b1 (H,), W2 (H, C), b2 (C,).
"""
import jax
import jax.numpy as jnp

from jaxnets.models.base import Model, add_l2_penalty, argmax_predict
from jaxnets.ops import (
    AUTODIFF,
    affine_backward,
    affine_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)


def _mlp(name, config, init, reg):
    def scores(params, x, layers=AUTODIFF):
        hidden = layers.relu(layers.affine(x, params["W1"], params["b1"]))
        return layers.affine(hidden, params["W2"], params["b2"])

    def loss(params, x, y, layers=AUTODIFF):
        value = layers.softmax_loss(scores(params, x, layers), y)
        if reg:
            value = value + layers.l2_penalty(params["W1"], reg) + layers.l2_penalty(params["W2"], reg)
        return value

    def loss_and_grads(params, x, y):
        z1, c1 = affine_forward(x, params["W1"], params["b1"])
        a1, c2 = relu_forward(z1)
        z2, c3 = affine_forward(a1, params["W2"], params["b2"])
        value, dz2 = softmax_loss(z2, y)
        da1, dW2, db2 = affine_backward(dz2, c3)
        dz1 = relu_backward(da1, c2)
        _, dW1, db1 = affine_backward(dz1, c1)
        return add_l2_penalty(value, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}, params, reg)

    return Model(name, config, init, scores, loss, loss_and_grads, argmax_predict(scores))


def digits_mlp(hidden=10, input_size=784, num_classes=10):
    """001/003: every parameter uniform in [-0.5, 0.5) (`np.random.rand(...) - 0.5`)."""
    config = {"hidden": hidden, "input_size": input_size, "num_classes": num_classes}

    def init(key):
        k = jax.random.split(key, 4)
        u = lambda kk, shape: jax.random.uniform(kk, shape) - 0.5
        return {
            "W1": u(k[0], (input_size, hidden)),
            "b1": u(k[1], (hidden,)),
            "W2": u(k[2], (hidden, num_classes)),
            "b2": u(k[3], (num_classes,)),
        }

    return _mlp("digits", config, init, reg=0.0)


def two_layer_net(input_size=784, hidden_size=50, num_classes=10, std=1e-4, reg=0.0):
    """002's TwoLayerNet: W = std * randn, b = 0; loss adds 0.5 * reg * (|W1|^2 + |W2|^2)."""
    config = {
        "input_size": input_size, "hidden_size": hidden_size, "num_classes": num_classes,
        "std": std, "reg": reg,
    }

    def init(key):
        k1, k2 = jax.random.split(key)
        return {
            "W1": std * jax.random.normal(k1, (input_size, hidden_size)),
            "b1": jnp.zeros(hidden_size),
            "W2": std * jax.random.normal(k2, (hidden_size, num_classes)),
            "b2": jnp.zeros(num_classes),
        }

    return _mlp("two_layer", config, init, reg=reg)
