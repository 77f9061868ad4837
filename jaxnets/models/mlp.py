"""Two-layer ReLU/softmax MLPs: 001/003's 784-10-10 digits net and 002's TwoLayerNet.

Both are affine - ReLU - affine - softmax; they differ in initialisation and L2 penalty.
x (N, D) (or (N, d1, ...), flattened), y (N,) ints; W1 (D, H), b1 (H,), W2 (H, C), b2 (C,).

Their fast gradient (`one_pass_gradient`) reads X once: the rows are visited in chunks, and
each chunk runs forward and backward while it is in cache and adds its share to dW, so one
full-batch iteration streams X from memory once instead of twice (forward, then
dW1 = X^T dZ1). dW1 is accumulated as (H, D) = dZ1^T X, the product layout XLA:CPU computes
~2x faster for a narrow hidden layer. Stored pixels (e.g. uint8) are decoded chunk by chunk.
"""
import jax
import jax.numpy as jnp
from jax import lax

from jaxnets.models import checks
from jaxnets.models.base import Model, add_l2_penalty, argmax_predict, decoded, register_model, stateless_fast
from jaxnets.ops import (
    AUTODIFF,
    affine_backward,
    affine_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)
from jaxnets.ops.layout import default_layout


#: rows per chunk of the one-pass gradient on CPU (measured best of 500-13667 for m = 41000,
#: 784 pixels): the decoded chunk (~6 MB) stays in L3 between its forward and its dW product.
CPU_CHUNK = 2048


def _add(a, b):
    return jax.tree.map(jnp.add, a, b)


def one_pass_gradient(reg, chunk=None):
    """The two-layer MLPs' fast gradient: `(decode, layout) -> (params, x, y) -> (loss, grads)`
    (made a `FastGradient` by `stateless_fast`).

    x: (N, D) stored inputs, decoded chunk by chunk; y: (N,) int labels. chunk: rows per
    chunk; None = CPU_CHUNK in the CPU layout and all rows at once in the others (GPUs and
    TPUs stream X fast enough that chunking only adds loop steps). The last chunk may be
    shorter.
    Per chunk of n_c rows, the mean loss and its gradient are weighted by n_c / N, so the sum
    over chunks is 001's (1/m) sum over all m rows.
    """

    def make(decode=None, layout=None):
        cpu = default_layout(layout).cpu

        def chunk_terms(params, xc, yc, n_total):
            xc = decoded(decode, xc.reshape(xc.shape[0], -1), params["W1"].dtype)
            weight = xc.shape[0] / n_total
            z1, c1 = affine_forward(xc, params["W1"], params["b1"])
            a1, c2 = relu_forward(z1)
            z2, c3 = affine_forward(a1, params["W2"], params["b2"])
            loss, dz2 = softmax_loss(z2, yc)
            da1, dW2, db2 = affine_backward(dz2 * weight, c3)
            dz1 = relu_backward(da1, c2)
            # 001: dW1 = (1/m) dZ1 X^T, here (H, D) per chunk (the 1/m is in dz2); transposed
            # once at the end. b1 as in affine_backward: summed over rows only.
            dW1_t = lax.dot_general(dz1, xc, (((0,), (0,)), ((), ())))
            return loss * weight, (dW1_t, jnp.sum(dz1, axis=0), dW2, db2)

        def value_and_grad_fn(params, x, y):
            n = x.shape[0]
            if y.shape != (n,):
                raise ValueError(f"one-pass MLP gradient: y must have shape ({n},), got {y.shape}")
            size = chunk if chunk is not None else (CPU_CHUNK if cpu else n)
            size = max(1, min(int(size), n))
            n_full = n // size
            total = jax.eval_shape(lambda: chunk_terms(params, x[:size], y[:size], n))
            total = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), total)
            if n_full == 1:
                total = chunk_terms(params, x[:size], y[:size], n)
            elif n_full > 1:
                def body(i, acc):
                    xc = lax.dynamic_slice_in_dim(x, i * size, size)
                    yc = lax.dynamic_slice_in_dim(y, i * size, size)
                    return _add(acc, chunk_terms(params, xc, yc, n))

                total = lax.fori_loop(0, n_full, body, total)
            if n_full * size < n:
                total = _add(total, chunk_terms(params, x[n_full * size:], y[n_full * size:], n))
            loss, (dW1_t, db1, dW2, db2) = total
            return add_l2_penalty(loss, {"W1": dW1_t.T, "b1": db1, "W2": dW2, "b2": db2}, params, reg)

        return value_and_grad_fn

    return make


def _mlp(name, config, init, reg, input_size, num_classes):
    def scores(params, x, layers=AUTODIFF, state=None):
        hidden = layers.relu(layers.affine(x, params["W1"], params["b1"]))
        return layers.affine(hidden, params["W2"], params["b2"])

    def loss(params, state, x, y, key=None, layers=AUTODIFF):
        value = layers.softmax_loss(scores(params, x, layers), y)
        if reg:
            value = value + layers.l2_penalty(params["W1"], reg) + layers.l2_penalty(params["W2"], reg)
        return value, state

    def loss_and_grads(params, state, x, y, key=None, layout=None):
        z1, c1 = affine_forward(x, params["W1"], params["b1"])
        a1, c2 = relu_forward(z1)
        z2, c3 = affine_forward(a1, params["W2"], params["b2"])
        value, dz2 = softmax_loss(z2, y)
        da1, dW2, db2 = affine_backward(dz2, c3)
        dz1 = relu_backward(da1, c2)
        _, dW1, db1 = affine_backward(dz1, c1)
        return (*add_l2_penalty(value, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}, params, reg), state)

    return Model(name, config, init, scores, loss, loss_and_grads, argmax_predict(scores),
                 input_shape=(input_size,), num_classes=num_classes,
                 fast_gradient=stateless_fast(one_pass_gradient(reg)))


@register_model("digits")
def digits_mlp(hidden=10, input_size=784, num_classes=10):
    """001/003: every parameter uniform in [-0.5, 0.5) (`np.random.rand(...) - 0.5`)."""
    for name, value, low in (("hidden", hidden, 1), ("input_size", input_size, 1), ("num_classes", num_classes, 2)):
        checks.count("digits_mlp", name, value, low)
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

    return _mlp("digits", config, init, 0.0, input_size, num_classes)


@register_model("two_layer")
def two_layer_net(input_size=784, hidden_size=50, num_classes=10, std=1e-4, reg=0.0):
    """002's TwoLayerNet: W = std * randn, b = 0; loss adds 0.5 * reg * (|W1|^2 + |W2|^2)."""
    for name, value, low in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1),
                             ("num_classes", num_classes, 2)):
        checks.count("two_layer_net", name, value, low)
    checks.strength("two_layer_net", "std", std, positive=True)
    checks.strength("two_layer_net", "reg", reg)
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

    return _mlp("two_layer", config, init, reg, input_size, num_classes)
