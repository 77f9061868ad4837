"""Max and average pooling over NCHW inputs (document 000), overlapping windows allowed.

x: (N, C, H, W) -> out: (N, C, Ho, Wo), Ho = floor((H - pool_height) / stride) + 1.
Both forwards visit the window taps (i, j) in row-major order, each an (N, C, Ho, Wo) strided
slice of x. The max is a chain `m = where(tap > m, tap, m)`: a tie keeps the earlier tap, so
jax.grad of this forward sends each window's gradient to its FIRST maximum in row-major order
— the convention the hand-written backward follows too (ties are common after ReLU). (jax.grad
of `lax.reduce_window` max follows it as well, but both its forward and its gradient are 3-4x
slower on CPU than this elementwise chain, which XLA fuses into one loop.)

The backwards write each tap's share back with `windows.untap`; when windows do not overlap
(stride >= pool size, the usual 2x2/2) the taps are disjoint and are interleaved by one stack
and reshape instead (`windows.interleave`), which avoids a padded full-size array per tap.
"""
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from jaxnets.ops.vjp import manual_vjp
from jaxnets.ops.windows import interleave, output_size, tap, untap


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
    ho = output_size(x.shape[2], pool_height, stride, f"{name} (height)")
    wo = output_size(x.shape[3], pool_width, stride, f"{name} (width)")
    return ho, wo


def _taps(x, pool_height, pool_width, stride, ho, wo):
    """The window taps in row-major order, each (N, C, ho, wo)."""
    return [tap(x, i, j, stride, ho, wo) for i in range(pool_height) for j in range(pool_width)]


def _scatter_taps(parts, pool_height, pool_width, stride, shape):
    """dx of shape `shape` (N, C, H, W) from per-tap gradients (row-major list of (N, C, Ho, Wo)):
    each tap's part goes back to the positions it read; overlapping windows add up."""
    h, w = shape[2], shape[3]
    if stride >= pool_height and stride >= pool_width:
        return interleave(parts, pool_height, pool_width, stride, h, w)
    dx = jnp.zeros(shape, parts[0].dtype)
    for k, part in enumerate(parts):
        dx = dx + untap(part, k // pool_width, k % pool_width, stride, h, w)
    return dx


def max_pool_forward(x, pool_height=2, pool_width=2, stride=2):
    """Return `(out, cache)` with out the maximum over each window.

    A NaN anywhere in a window makes that window's output NaN (as `lax.max` would)."""
    ho, wo = _check(x, pool_height, pool_width, stride, "max_pool")
    out = None
    for t in _taps(x, pool_height, pool_width, stride, ho, wo):
        out = t if out is None else jnp.where((t > out) | jnp.isnan(t), t, out)
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
    claimed = jnp.zeros(out.shape, bool)
    zero = jnp.zeros((), dout.dtype)
    parts = []
    for t in _taps(x, ph, pw, s, ho, wo):
        hit = (t == out) & ~claimed
        claimed = claimed | hit
        parts.append(jnp.where(hit, dout, zero))
    return _scatter_taps(parts, ph, pw, s, x.shape)


def avg_pool_forward(x, pool_height=2, pool_width=2, stride=2):
    """Return `(out, cache)` with out the mean over each window."""
    ho, wo = _check(x, pool_height, pool_width, stride, "avg_pool")
    total = sum(_taps(x, pool_height, pool_width, stride, ho, wo))
    out = total / (pool_height * pool_width)
    return out, PoolCache(x, out, pool_height, pool_width, stride)


def avg_pool_backward(dout, cache):
    """000: dA_prev[window] += dZ / (f * f)  ->  dout / (pool_height * pool_width) spread
    evenly over every position of its window; overlapping windows add."""
    x = cache.x
    ph, pw, s = cache.pool_height, cache.pool_width, cache.stride
    share = dout / (ph * pw)
    return _scatter_taps([share] * (ph * pw), ph, pw, s, x.shape)


__all__ = ["max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward", "PoolCache"]

max_pool = manual_vjp(max_pool_forward, max_pool_backward, nondiff_argnums=(1, 2, 3))
avg_pool = manual_vjp(avg_pool_forward, avg_pool_backward, nondiff_argnums=(1, 2, 3))

LAYERS = {"max_pool": (max_pool_forward, max_pool), "avg_pool": (avg_pool_forward, avg_pool)}
