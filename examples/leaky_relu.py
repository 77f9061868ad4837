"""A leaky ReLU written by hand, with the mistake people make most: the backward forgets the
slope on the negative side. `jaxnets gradcheck` finds it:

    uv run jaxnets gradcheck examples/leaky_relu.py:leaky_relu         # exit 1: the backward disagrees
    uv run jaxnets gradcheck examples/leaky_relu.py:leaky_relu_fixed   # exit 0

Each layer is a pair in the cs231n convention, `NAME_forward(x, **static) -> (out, cache)` and
`NAME_backward(dout, cache) -> dx`, and `NAME_example()` gives the arrays (and keyword values)
of one valid call; the checker generates its cases from it.
"""
import jax.numpy as jnp
import numpy as np


def leaky_relu_forward(x, slope=0.01):
    out = jnp.where(x > 0, x, slope * x)
    return out, (x, slope)


def leaky_relu_backward(dout, cache):
    x, slope = cache
    return jnp.where(x > 0, dout, 0.0)  # the mistake: ReLU's backward, the slope forgotten


def leaky_relu_example():
    x = np.random.default_rng(0).standard_normal((4, 6))
    return x, {"slope": 0.1}


# The fix: below zero the output is slope * x, so its derivative is slope, not 0.
leaky_relu_fixed_forward = leaky_relu_forward
leaky_relu_fixed_example = leaky_relu_example


def leaky_relu_fixed_backward(dout, cache):
    x, slope = cache
    return jnp.where(x > 0, dout, slope * dout)
