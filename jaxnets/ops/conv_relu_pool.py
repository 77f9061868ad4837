"""Conv (stride 1) - ReLU - P x P max pool of stride P as ONE layer, in "pool-phase" layout.

Equal to `max_pool(relu(conv(x, w, b, 1, pad)), P, P, P)` (document 000's three blocks), and
its backward to the three backwards chained, up to float rounding; checked five ways like
every op (`jaxnets.conformance`).

Why one layer: the convolution is computed only where a pool window reads it, directly in
pool-phase layout: conv output (P a + p, P b + q) is phase p*P + q of pool cell (a, b). All
phases read the same (P+HH-1)(P+WW-1) strided slices of the input, so the layer is ONE matrix
product (F*P*P, C*(P+HH-1)*(P+WW-1)) @ (.., Hp*Wp*N) with examples and positions on one axis,
the pool is a max over the phase axis and its backward a select (no scatter), and the pooled
output is already laid out (F*Hp*Wp, N) for the affine layer that follows. Computed as three
separate ops instead, XLA:CPU recomputes or re-reads (N, F, H, W) arrays through strided 2x2
windows several times (~2x slower; see docs/performance.md).

Convention at ties: a window's gradient goes to its first maximum in row-major order, as in
`max_pool_backward`. ReLU is monotone, so the pool of ReLU outputs is the ReLU of the largest
conv output, and the first maximum of the ReLU outputs is the first maximum of the conv
outputs whenever the gradient can flow (max > 0; otherwise ReLU'(.) = 0 blocks it anyway).
"""
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from jaxnets.ops.activations import relu_backward, relu_forward
from jaxnets.ops.vjp import manual_vjp
from jaxnets.ops.windows import output_size

__all__ = [
    "ConvReluPoolCache", "conv_relu_pool_forward", "conv_relu_pool_backward",
    "conv_relu_pool_forward_examples_last", "conv_relu_pool_backward_examples_last",
]


@partial(jax.tree_util.register_dataclass, data_fields=["w", "slices", "z", "first"],
         meta_fields=["x_shape", "pad", "pool"])
@dataclass(frozen=True)
class ConvReluPoolCache:
    """What the backward needs (arrays examples-last, see `_phase_slices`); a pytree whose
    geometry is static, so it passes through jit like the other ops' caches.

    w (F, C, HH, WW) filters; slices (C*rows*cols, Hp*Wp*N) strided input slices;
    z (F, P*P, Hp*Wp*N) conv outputs (pre-ReLU), one row per pool phase;
    first (F, Hp*Wp*N) int32, the phase of each window's first maximum.
    """

    w: jax.Array
    slices: jax.Array
    z: jax.Array
    first: jax.Array
    x_shape: tuple
    pad: int
    pool: int


def _geometry(x, w, b, pad, pool):
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1] or b.shape != (w.shape[0],):
        raise ValueError(f"conv_relu_pool: need x (N, C, H, W), w (F, C, HH, WW), b (F,); got "
                         f"{x.shape}, {w.shape}, {b.shape}")
    if pad < 0 or pool < 1:
        raise ValueError(f"conv_relu_pool: need pad >= 0 and pool >= 1, got pad={pad}, pool={pool}")
    hc = output_size(x.shape[2] + 2 * pad, w.shape[2], 1, "conv_relu_pool (height)")
    wc = output_size(x.shape[3] + 2 * pad, w.shape[3], 1, "conv_relu_pool (width)")
    hp = output_size(hc, pool, pool, "conv_relu_pool pool (height)")
    wp = output_size(wc, pool, pool, "conv_relu_pool pool (width)")
    return hp, wp


def _grid(start, pool, size):
    return slice(start, start + pool * (size - 1) + 1, pool)


def _phase_slices(x, pad, pool, rows, cols, hp, wp):
    """(C*rows*cols, Hp*Wp*N): row (c, r, s) holds xpad[n, c, r + pool*a, s + pool*b] over the
    pool grid (a, b) and the examples n (examples last), for r < rows = pool + HH - 1 and
    s < cols = pool + WW - 1. With examples and positions on one axis the convolution is a
    single matrix product, and the pooled output comes out as (F*Hp*Wp, N): the layout the
    following affine layer multiplies without a transpose."""
    xt = jnp.transpose(x, (1, 2, 3, 0))  # (C, H, W, N)
    xt = jnp.pad(xt, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    taps = [xt[:, _grid(r, pool, hp), _grid(s, pool, wp), :] for r in range(rows) for s in range(cols)]
    return jnp.stack(taps, axis=1).reshape(x.shape[1] * rows * cols, hp * wp * x.shape[0])


def _phase_filters(w, pool):
    """(F*P*P, C*rows*cols): row (f, p, q) holds w[f] placed at offset (p, q) in a zero
    (C, rows, cols) window, so that row times the phase slices is conv output (P a + p, P b + q)."""
    f, c, hh, ww = w.shape
    rows, cols = pool + hh - 1, pool + ww - 1
    placed = [
        jnp.pad(w, ((0, 0), (0, 0), (p, rows - hh - p), (q, cols - ww - q)))
        for p in range(pool)
        for q in range(pool)
    ]
    return jnp.stack(placed, axis=1).reshape(f * pool * pool, c * rows * cols)


def conv_relu_pool_forward_examples_last(x, w, b, pad=1, pool=2):
    """`conv_relu_pool_forward` with the output examples-last: `(out (F*Hp*Wp, N), cache)`."""
    hp, wp = _geometry(x, w, b, pad, pool)
    n, f = x.shape[0], w.shape[0]
    rows, cols = pool + w.shape[2] - 1, pool + w.shape[3] - 1
    slices = _phase_slices(x, pad, pool, rows, cols, hp, wp)
    z = (_phase_filters(w, pool) @ slices).reshape(f, pool * pool, hp * wp * n) + b[:, None, None]
    best = z[:, 0]
    first = jnp.zeros(best.shape, jnp.int32)
    for k in range(1, pool * pool):
        later = z[:, k] > best  # a tie keeps the earlier phase: the first maximum, row-major
        best = jnp.where(later, z[:, k], best)
        first = jnp.where(later, jnp.int32(k), first)
    out, _ = relu_forward(best)
    cache = ConvReluPoolCache(w, slices, z, first, tuple(x.shape), pad, pool)
    return out.reshape(f * hp * wp, n), cache


def conv_relu_pool_backward_examples_last(dout_t, cache):
    """`conv_relu_pool_backward` taking dout examples-last, (F*Hp*Wp, N); returns (dx, dw, db)."""
    w, slices, z, first = cache.w, cache.slices, cache.z, cache.first
    pad, pool = cache.pad, cache.pool
    n, c, h, wd = cache.x_shape
    f, pp, ln = z.shape
    hh, ww = w.shape[2], w.shape[3]
    rows, cols = pool + hh - 1, pool + ww - 1
    hp = (h + 2 * pad - hh + 1) // pool
    wp = (wd + 2 * pad - ww + 1) // pool
    d = dout_t.reshape(f, 1, ln)
    phase = lax.broadcasted_iota(jnp.int32, (1, pp, 1), 1)
    da = jnp.where(phase == first[:, None, :], d, jnp.zeros((), d.dtype))
    dz = relu_backward(da, z).reshape(f * pp, ln)
    dwph = lax.dot_general(dz, slices, (((1,), (1,)), ((), ()))).reshape(f, pool, pool, c, rows, cols)
    dw = sum(dwph[:, p, q, :, p : p + hh, q : q + ww] for p in range(pool) for q in range(pool))
    db = jnp.sum(dz.reshape(f, pp * ln), axis=1)
    dslices = lax.dot_general(_phase_filters(w, pool), dz, (((0,), (0,)), ((), ())))
    dslices = dslices.reshape(c, rows, cols, hp, wp, n)
    hpad, wpad = h + 2 * pad, wd + 2 * pad
    zero = jnp.zeros((), d.dtype)
    dxp = jnp.zeros((c, hpad, wpad, n), d.dtype)
    for r in range(rows):
        for s in range(cols):
            dxp = dxp + lax.pad(dslices[:, r, s], zero, [
                (0, 0, 0),
                (r, hpad - r - pool * (hp - 1) - 1, pool - 1),
                (s, wpad - s - pool * (wp - 1) - 1, pool - 1),
                (0, 0, 0),
            ])
    dx = jnp.transpose(dxp[:, pad : pad + h, pad : pad + wd, :], (3, 0, 1, 2))
    return dx, dw, db


def conv_relu_pool_forward(x, w, b, pad=1, pool=2):
    """max_pool(relu(conv(x, w, b, stride=1, pad)), pool, pool, pool) as one layer.

    Returns `(out (N, F, Hp, Wp), cache)`; conv outputs no pool window reads (rows/columns
    beyond Hp*P) are never computed, as they cannot affect the result.
    """
    hp, wp = _geometry(x, w, b, pad, pool)
    out_t, cache = conv_relu_pool_forward_examples_last(x, w, b, pad, pool)
    f, n = w.shape[0], x.shape[0]
    return jnp.transpose(out_t.reshape(f, hp * wp, n), (2, 0, 1)).reshape(n, f, hp, wp), cache


def conv_relu_pool_backward(dout, cache):
    """Return `(dx, dw, db)` for conv_relu_pool_forward; dout: (N, F, Hp, Wp).

    000's three backwards in pool-phase layout:
    max pool: dA[phase] = dout at the first phase (row-major) holding the window's maximum;
    ReLU:     dZ = dA * (Z > 0)  (ReLU'(0) = 0);
    conv:     dw[f, c, i, j] = sum_{n, a, b, phase (p, q)} dZ[f, (p, q), (a, b, n)]
              xpad[n, c, P a + p + i, P b + q + j]  — the phase-filter gradient folded back;
              db = sum of dZ; dx = every phase slice's share sent back to where it was read.
    """
    n, f = dout.shape[0], dout.shape[1]
    return conv_relu_pool_backward_examples_last(jnp.transpose(dout.reshape(n, f, -1), (1, 2, 0)).reshape(-1, n), cache)


conv_relu_pool = manual_vjp(conv_relu_pool_forward, conv_relu_pool_backward, nondiff_argnums=(3, 4))

LAYERS = {"conv_relu_pool": (conv_relu_pool_forward, conv_relu_pool)}
