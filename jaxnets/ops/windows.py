"""Shared window arithmetic for convolution and pooling over NCHW arrays.

A layer with a (kh, kw) window and stride s reads, for kernel tap (i, j), the strided slice
`x[:, :, i : i + s*(Ho-1) + 1 : s, j : j + s*(Wo-1) + 1 : s]` — one (N, C, Ho, Wo) array per tap.
Writing a per-tap gradient back is the transpose of that slice: zero padding with `s - 1`
zeros between entries (`lax.pad` interior padding), which needs no scatter.
"""
import jax.numpy as jnp
from jax import lax


def output_size(n, k, stride, name):
    """floor((n - k) / stride) + 1 for an (already padded) extent n; windows that do not fit
    are dropped (000: floor((n_prev - f + 2 pad) / stride) + 1)."""
    if stride < 1:
        raise ValueError(f"{name}: stride must be >= 1, got {stride}")
    if k < 1 or k > n:
        raise ValueError(f"{name}: window {k} does not fit in input extent {n}")
    return (n - k) // stride + 1


def tap(x, i, j, stride, ho, wo):
    """The (N, C, ho, wo) slice read by window tap (i, j)."""
    return x[:, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]


def untap(g, i, j, stride, h, w):
    """Transpose of `tap`: place g (N, C, ho, wo) at the positions tap (i, j) read, in an
    (N, C, h, w) array of zeros."""
    ho, wo = g.shape[2], g.shape[3]
    zero = lax.full((), 0, g.dtype)
    return lax.pad(
        g,
        zero,
        [
            (0, 0, 0),
            (0, 0, 0),
            (i, h - i - stride * (ho - 1) - 1, stride - 1),
            (j, w - j - stride * (wo - 1) - 1, stride - 1),
        ],
    )


def interleave(parts, kh, kw, stride, h, w):
    """Sum of `untap(parts[i * kw + j], i, j, stride, h, w)` over the taps of a (kh, kw) window
    whose windows do not overlap (stride >= kh and stride >= kw), so every position of the
    (N, C, h, w) result comes from at most one tap.

    The taps fill an (N, C, Ho, stride, Wo, stride) grid (zeros where a window has no tap),
    which reshapes to (N, C, Ho * stride, Wo * stride) and is cropped or zero-padded at the
    bottom/right to (h, w): one fused write instead of a padded full-size array per tap.
    """
    if stride < kh or stride < kw:
        raise ValueError(f"interleave: windows {kh}x{kw} overlap at stride {stride}")
    n, c, ho, wo = parts[0].shape
    zero = jnp.zeros_like(parts[0])
    rows = [
        jnp.stack([parts[i * kw + j] if i < kh and j < kw else zero for j in range(stride)], axis=-1)
        for i in range(stride)
    ]
    grid = jnp.stack(rows, axis=3).reshape(n, c, ho * stride, wo * stride)
    pad_value = lax.full((), 0, grid.dtype)
    return lax.pad(grid, pad_value, [(0, 0, 0), (0, 0, 0), (0, h - ho * stride, 0), (0, w - wo * stride, 0)])
