"""Layers as (forward, backward) pairs, and the two sets of differentiable functions built
from them: AUTODIFF (jax.grad differentiates the forward) and CUSTOM_VJP (jax.grad calls the
hand-written backward). Names follow the documents (000 and 002/cs231n)."""
from typing import Callable, NamedTuple

from jaxnets.ops import activations, conv, dense, losses, pool
from jaxnets.ops.activations import (
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from jaxnets.ops.conv import conv_backward, conv_forward, zero_pad
from jaxnets.ops.dense import affine_backward, affine_forward
from jaxnets.ops.losses import binary_cross_entropy, binary_cross_entropy_with_logits, l2_penalty, softmax_loss
from jaxnets.ops.pool import avg_pool_backward, avg_pool_forward, max_pool_backward, max_pool_forward


class Layers(NamedTuple):
    """Single-output differentiable functions a model's loss is written with."""

    affine: Callable
    relu: Callable
    tanh: Callable
    sigmoid: Callable
    conv: Callable
    max_pool: Callable
    avg_pool: Callable
    softmax_loss: Callable
    bce_with_logits: Callable
    bce: Callable
    l2_penalty: Callable


def _value(pair):
    def f(*args):
        return pair(*args)[0]

    f.__name__ = pair.__name__
    return f


AUTODIFF = Layers(*(_value(p) for p in (
    affine_forward, relu_forward, tanh_forward, sigmoid_forward, conv_forward,
    max_pool_forward, avg_pool_forward, softmax_loss, binary_cross_entropy_with_logits,
    binary_cross_entropy, l2_penalty,
)))

CUSTOM_VJP = Layers(
    dense.affine, activations.relu, activations.tanh, activations.sigmoid, conv.conv,
    pool.max_pool, pool.avg_pool, losses.softmax_cross_entropy, losses.bce_with_logits,
    losses.bce, losses.l2,
)

__all__ = [
    "AUTODIFF", "CUSTOM_VJP", "Layers",
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward",
    "zero_pad", "conv_forward", "conv_backward",
    "max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward",
    "softmax_loss", "binary_cross_entropy_with_logits", "binary_cross_entropy", "l2_penalty",
]
