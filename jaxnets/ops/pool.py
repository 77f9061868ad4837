"""Max and average pooling over NCHW inputs (document 000), overlapping windows allowed.

x: (N, C, H, W) -> out: (N, C, Ho, Wo), Ho = floor((H - pool_height) / stride) + 1.
Forwards use `lax.reduce_window`, so jax.grad of the max-pool forward follows the same
tie convention as the hand-written backward: each window's gradient goes to its FIRST maximum
in row-major order (ties are common after ReLU).
"""
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from jaxnets.ops._vjp import manual_vjp
from jaxnets.ops._windows import output_size, tap, untap


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["x", "out"],
    meta_fields=["pool_height", "pool_width", "stride"],
)
@dataclass(frozen=True)
class PoolCache:
    """Input and output of the pool (the average pool only needs their shapes)."""

    x: jax.Array
    out: jax.Array
    pool_height: int
    pool_width: int
    stride: int


def _check(x, pool_height, pool_width, stride, name):
    if x.ndim != 4:
        raise ValueError(f"{name}: x must be (N, C, H, W), got shape {x.shape}")
    output_size(x.shape[2], pool_height, stride, f"{name} (height)")
    output_size(x.shape[3], pool_width, stride, f"{name} (width)")


def _reduce(x, init, op, pool_height, pool_width, stride):
    # A Python-scalar init lets JAX recognise the max/add monoid even under jit, so the
    # reduction stays differentiable (reduce_window_max / reduce_window_sum primitives).
    return lax.reduce_window(
        x, init, op, (1, 1, pool_height, pool_width), (1, 1, stride, stride), "VALID"
    )


def max_pool_forward(x, pool_height=2, pool_width=2, stride=2):
    """Return `(out, cache)` with out the maximum over each window."""
    _check(x, pool_height, pool_width, stride, "max_pool")
    out = _reduce(x, -jnp.inf, lax.max, pool_height, pool_width, stride)
    return out, PoolCache(x, out, pool_height, pool_width, stride)


def max_pool_backward(dout, cache):
    """000: dA_prev[window] += mask(max of window) * dA  ->  each window's dout goes to the
    first position (row-major) where x equals the window's maximum; overlapping windows add.

    Taps are visited in row-major order and a window is "claimed" by its first hit, so a tie
    sends the whole gradient to one element, never split and never duplicated.
    """
    x, out = cache.x, cache.out
    ph, pw, s = cache.pool_height, cache.pool_width, cache.stride
    ho, wo = out.shape[2], out.shape[3]
    h, w = x.shape[2], x.shape[3]
    claimed = jnp.zeros(out.shape, bool)
    dx = jnp.zeros(x.shape, dout.dtype)
    for i in range(ph):
        for j in range(pw):
            hit = (tap(x, i, j, s, ho, wo) == out) & ~claimed
            claimed = claimed | hit
            dx = dx + untap(jnp.where(hit, dout, 0), i, j, s, h, w)
    return dx


def avg_pool_forward(x, pool_height=2, pool_width=2, stride=2):
    """Return `(out, cache)` with out the mean over each window."""
    _check(x, pool_height, pool_width, stride, "avg_pool")
    total = _reduce(x, 0.0, lax.add, pool_height, pool_width, stride)
    out = total / (pool_height * pool_width)
    return out, PoolCache(x, out, pool_height, pool_width, stride)


def avg_pool_backward(dout, cache):
    """000: dA_prev[window] += dZ / (f * f)  ->  dout / (pool_height * pool_width) spread
    evenly over every position of its window; overlapping windows add."""
    x = cache.x
    ph, pw, s = cache.pool_height, cache.pool_width, cache.stride
    ho, wo = dout.shape[2], dout.shape[3]
    share = dout / (ph * pw)
    dx = jnp.zeros(x.shape, dout.dtype)
    for i in range(ph):
        for j in range(pw):
            dx = dx + untap(share, i, j, s, x.shape[2], x.shape[3])
    return dx


max_pool = manual_vjp(max_pool_forward, max_pool_backward, nondiff_argnums=(1, 2, 3))
avg_pool = manual_vjp(avg_pool_forward, avg_pool_backward, nondiff_argnums=(1, 2, 3))
