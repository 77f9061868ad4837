"""Planted mistakes in the pools' backwards: max pooling's gradient to every tied maximum or to
the last one, average pooling's not divided by the window or scattered with the wrong stride."""
from __future__ import annotations

import jax.numpy as jnp

from jaxnets.conformance.mutants.mutant import Mutant
from jaxnets.ops.windows import tap, untap


def _max_pool_backward(dout, cache, *, order=1, first_only=True):
    x, out = cache.x, cache.out
    ph, pw, s = cache.pool_height, cache.pool_width, cache.stride
    ho, wo = out.shape[2], out.shape[3]
    h, w = x.shape[2], x.shape[3]
    claimed = jnp.zeros(out.shape, bool)
    dx = jnp.zeros(x.shape, dout.dtype)
    for i, j in [(i, j) for i in range(ph) for j in range(pw)][::order]:
        hit = tap(x, i, j, s, ho, wo) == out
        if first_only:
            hit = hit & ~claimed
            claimed = claimed | hit
        dx = dx + untap(jnp.where(hit, dout, 0), i, j, s, h, w)
    return dx


def max_pool_backward_all_tied_maxima(dout, cache):
    return _max_pool_backward(dout, cache, first_only=False)  # 000's mask x == max(x)


def max_pool_backward_last_maximum(dout, cache):
    return _max_pool_backward(dout, cache, order=-1)  # the last maximum in row-major order


def _avg_pool_backward(dout, cache, *, divide=True, stride_delta=0):
    x = cache.x
    ph, pw, s = cache.pool_height, cache.pool_width, cache.stride
    share = dout / (ph * pw) if divide else dout
    dx = jnp.zeros(x.shape, dout.dtype)
    for i in range(ph):
        for j in range(pw):
            dx = dx + untap(share, i, j, s + stride_delta, x.shape[2], x.shape[3])
    return dx


def avg_pool_backward_not_divided(dout, cache):
    return _avg_pool_backward(dout, cache, divide=False)  # dZ spread without / (f * f)


def avg_pool_backward_stride_off_by_one(dout, cache):
    return _avg_pool_backward(dout, cache, stride_delta=1)


PLANTED = (
    Mutant("max_pool_grad_to_all_tied_maxima", "max_pool", max_pool_backward_all_tied_maxima,
           "every tied maximum of a window gets the full gradient (000's x == max(x) mask)"),
    Mutant("max_pool_grad_to_last_maximum", "max_pool", max_pool_backward_last_maximum,
           "ties resolved to the last maximum in row-major order"),
    Mutant("avg_pool_not_divided_by_window", "avg_pool", avg_pool_backward_not_divided,
           "dZ spread over the window without dividing by ph * pw"),
    Mutant("avg_pool_stride_off_by_one", "avg_pool", avg_pool_backward_stride_off_by_one,
           "window gradients scattered with stride + 1"),
)
