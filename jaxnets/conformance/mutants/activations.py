"""Planted mistakes in the activations' backwards: ReLU without its mask or with ReLU'(0) = 1,
tanh' from the pre-activation, sigmoid' without (1 - sigma), the leaky ReLU's slope forgotten
and the GELU without the product rule."""
from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import erfc

from jaxnets.conformance.mutants.mutant import Mutant


def relu_backward_without_mask(dout, cache):
    return dout  # 002's relu_backward


def relu_backward_grad_one_at_zero(dout, cache):
    x = cache
    return jnp.where(x >= 0, dout, jnp.zeros_like(dout))  # ReLU'(0) = 1


def tanh_backward_from_preactivation(dout, cache):
    out = cache
    x = jnp.arctanh(out)
    return dout * (1 - x * x)  # 1 - Z1^2 instead of 1 - A1^2


def sigmoid_backward_missing_one_minus(dout, cache):
    out = cache
    return dout * out  # sigma' = sigma (1 - sigma) with the (1 - sigma) forgotten


def leaky_relu_backward_forgets_slope(dout, cache):
    x, _ = cache
    return jnp.where(x > 0, dout, jnp.zeros_like(dout))  # ReLU's backward: the slope alpha forgotten


def gelu_backward_without_product_rule(dout, cache):
    x = cache
    return dout * 0.5 * erfc(-x / math.sqrt(2))  # d(x Phi(x)) = Phi(x) + x phi(x): the x phi(x) forgotten


PLANTED = (
    Mutant("relu_backward_without_mask", "relu", relu_backward_without_mask,
           "relu_backward returns dout, no (x > 0) mask", True),
    Mutant("tanh_grad_from_preactivation", "tanh", tanh_backward_from_preactivation,
           "tanh' as 1 - Z^2 (pre-activation) instead of 1 - A^2"),
    Mutant("relu_grad_one_at_zero", "relu", relu_backward_grad_one_at_zero,
           "mask x >= 0: ReLU'(0) = 1 against the project's ReLU'(0) = 0"),
    Mutant("sigmoid_grad_missing_one_minus", "sigmoid", sigmoid_backward_missing_one_minus,
           "sigmoid' = out instead of out * (1 - out)"),
    Mutant("leaky_relu_forgets_slope", "leaky_relu", leaky_relu_backward_forgets_slope,
           "dx = 0 for x <= 0: ReLU's backward, the slope alpha forgotten"),
    Mutant("gelu_without_product_rule", "gelu", gelu_backward_without_product_rule,
           "GELU' = Phi(x), the x phi(x) of the product rule forgotten"),
)
