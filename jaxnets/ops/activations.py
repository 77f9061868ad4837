"""Elementwise activations: ReLU (001-003), tanh (000 hidden layer), sigmoid (000 output),
the leaky ReLU (Maas et al. 2013; cs231n) and the GELU (Hendrycks & Gimpel 2016; the
transformer block's MLP).

Each forward takes any shape and returns `(out, cache)`; each backward returns dx of that shape.
"""
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import erfc

from jaxnets.ops.vjp import manual_vjp


def relu_forward(x):
    """ReLU as `where(x > 0, x, 0)`: jax.grad of this form gives ReLU'(0) = 0 (DESIGN.md)."""
    return jnp.where(x > 0, x, jnp.zeros_like(x)), x


def relu_backward(dout, cache):
    """001: dZ1 = W2^T dZ2 * (Z1 > 0)  ->  dx = dout * (x > 0).

    The mask is the whole point: 002's `relu_backward` returned dout unmasked (erratum).
    ReLU'(0) = 0 by convention, identical in all modes and in NumPy.
    """
    x = cache
    return jnp.where(x > 0, dout, jnp.zeros_like(dout))


def tanh_forward(x):
    """tanh; the cache is the output, because tanh' is written in terms of it."""
    out = jnp.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """000: dZ1 = W2^T dZ2 * (1 - A1^2)  ->  dx = dout * (1 - out**2), out = tanh(x).

    The derivative uses the activation A1 = tanh(Z1), never the pre-activation Z1.
    """
    out = cache
    return dout * (1 - out * out)


def sigmoid_forward(x):
    """Logistic sigmoid 1 / (1 + exp(-x)), computed stably (jax.nn.sigmoid)."""
    out = jax.nn.sigmoid(x)
    return out, out


def sigmoid_backward(dout, cache):
    """000: sigma'(z) = sigma(z) (1 - sigma(z))  ->  dx = dout * out * (1 - out)."""
    out = cache
    return dout * out * (1 - out)


def leaky_relu_forward(x, *, alpha=0.01):
    """Leaky ReLU `where(x > 0, x, alpha * x)`; the cache holds x and alpha."""
    return jnp.where(x > 0, x, alpha * x), (x, alpha)


def leaky_relu_backward(dout, cache):
    """d/dx leaky_relu = 1 for x > 0, alpha otherwise  ->  dx = where(x > 0, dout, alpha * dout).

    At x = 0 the slope is alpha (the convention of ReLU'(0) = 0, with 0 replaced by alpha);
    jax.grad of the forward above gives the same. Forgetting the alpha (dx = 0 for x <= 0)
    is the classic slip.
    """
    x, alpha = cache
    return jnp.where(x > 0, dout, alpha * dout)


def gelu_forward(x):
    """GELU, exact form (PyTorch's default): x * Phi(x), Phi the standard normal CDF,
    computed as 0.5 erfc(-x / sqrt 2) (the same as 0.5 (1 + erf(x / sqrt 2)) without its
    cancellation for x << 0, where Phi is tiny); the cache is x."""
    return x * _normal_cdf(x), x


def gelu_backward(dout, cache):
    """Hendrycks & Gimpel 2016: d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi)
    ->  dx = dout * (Phi(x) + x phi(x))."""
    x = cache
    return dout * (_normal_cdf(x) + x * jnp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))


def _normal_cdf(x):
    return 0.5 * erfc(-x / math.sqrt(2))


__all__ = ["relu_forward", "relu_backward", "tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward",
           "leaky_relu_forward", "leaky_relu_backward", "gelu_forward", "gelu_backward"]

relu = manual_vjp(relu_forward, relu_backward)
tanh = manual_vjp(tanh_forward, tanh_backward)
sigmoid = manual_vjp(sigmoid_forward, sigmoid_backward)
gelu = manual_vjp(gelu_forward, gelu_backward)

def _leaky_relu(x, alpha=0.01):
    return leaky_relu_forward(x, alpha=alpha)


LAYERS = {
    "relu": (relu_forward, relu),
    "leaky_relu": (_leaky_relu, manual_vjp(_leaky_relu, leaky_relu_backward, nondiff_argnums=(1,))),
    "tanh": (tanh_forward, tanh),
    "sigmoid": (sigmoid_forward, sigmoid),
    "gelu": (gelu_forward, gelu),
}
