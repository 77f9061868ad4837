"""Planted mistakes in the convolution's backward: dx with the kernel flipped the wrong way,
scattered with the wrong stride or returned with its padding, db averaged."""
from __future__ import annotations

import jax.numpy as jnp

from jaxnets.conformance.mutants.mutant import Mutant
from jaxnets.ops.windows import tap, untap


def _conv_backward(dout, cache, *, flip=False, stride_delta=0, strip=True, db_mean=False):
    """conv_backward (jaxnets.ops.conv) with switchable mistakes."""
    x, w, stride, pad = cache.x, cache.w, cache.stride, cache.pad
    n, c, h, wd = x.shape
    hh, ww = w.shape[2], w.shape[3]
    ho, wo = dout.shape[2], dout.shape[3]
    xp = jnp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    hp, wp = h + 2 * pad, wd + 2 * pad
    dxp = jnp.zeros(xp.shape, dout.dtype)
    dw_taps = []
    for i in range(hh):
        for j in range(ww):
            dw_taps.append(jnp.einsum("nfhw,nchw->fc", dout, tap(xp, i, j, stride, ho, wo)))
            wi, wj = (hh - 1 - i, ww - 1 - j) if flip else (i, j)
            dxp = dxp + untap(jnp.einsum("nfhw,fc->nchw", dout, w[:, :, wi, wj]), i, j, stride + stride_delta, hp, wp)
    dw = jnp.stack(dw_taps, axis=-1).reshape(w.shape)
    db = jnp.sum(dout, axis=(0, 2, 3))
    if db_mean:
        db = db / (ho * wo)
    dx = dxp[:, :, pad : pad + h, pad : pad + wd] if strip else dxp
    return dx, dw, db


def conv_backward_unflipped_kernel(dout, cache):
    return _conv_backward(dout, cache, flip=True)  # tap (i, j) pairs with w[HH-1-i, WW-1-j]


def conv_backward_stride_off_by_one(dout, cache):
    return _conv_backward(dout, cache, stride_delta=1)  # dx scattered with stride + 1


def conv_backward_padding_not_stripped(dout, cache):
    return _conv_backward(dout, cache, strip=False)  # dx keeps the padded (H + 2p, W + 2p) shape


def conv_backward_bias_averaged_over_positions(dout, cache):
    return _conv_backward(dout, cache, db_mean=True)  # db_c = mean instead of sum over (h, w)


PLANTED = (
    Mutant("conv_dx_unflipped_kernel", "conv", conv_backward_unflipped_kernel,
           "dx's full convolution pairs tap (i, j) with the flipped tap (HH-1-i, WW-1-j)"),
    Mutant("conv_dx_stride_off_by_one", "conv", conv_backward_stride_off_by_one,
           "dx scattered back with stride + 1"),
    Mutant("conv_dx_padding_not_stripped", "conv", conv_backward_padding_not_stripped,
           "dx returned with the zero padding still on"),
    Mutant("conv_db_averaged_over_positions", "conv", conv_backward_bias_averaged_over_positions,
           "db = mean over output positions instead of the sum"),
)
