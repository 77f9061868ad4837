"""2-D convolution (cross-correlation, as in document 000 and cs231n) over NCHW inputs.

x: (N, C, H, W), w: (F, C, HH, WW), b: (F,), out: (N, F, Ho, Wo) with
Ho = floor((H + 2 pad - HH) / stride) + 1 (000), and likewise Wo.
Kernel tap (i, j) reads a strided slice of the padded input (`windows.tap`). The forward
stacks the HH*WW taps of every channel into patches (N, C*HH*WW, Ho*Wo) (im2col) and contracts
them with the filters reshaped to (F, C*HH*WW) — document 000's `conv_single_step` loop
vectorised over examples, positions and filters; the filter gradient is the same contraction
transposed, and dx sends every tap's share back to the positions it read.

From CONV_PRIMITIVE_MIN_CHANNELS input channels on (`Layout.conv_algorithm`: the `layout`
argument, `jaxnets.ops.layout`), the same three formulas run on XLA's convolution primitive instead: the forward as a strided
cross-correlation, dw as the correlation of the padded input with dout dilated by the stride,
dx as the "full" correlation of the dilated dout with the flipped filters (000's derivation,
written as convolutions; the hand-written backward still, not jax.grad). Much faster with
many channels; im2col's single wide product wins for one or a few.
"""
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from jax import lax

from jaxnets.ops.layout import default_layout
from jaxnets.ops.vjp import manual_vjp
from jaxnets.ops.windows import output_size, tap, untap


def zero_pad(x, pad):
    """Pad height and width (axes 2 and 3) of an NCHW array with `pad` zeros (000 `zero_pad`)."""
    if x.ndim != 4:
        raise ValueError(f"zero_pad: x must be (N, C, H, W), got shape {x.shape}")
    if pad < 0:
        raise ValueError(f"zero_pad: pad must be >= 0, got {pad}")
    return jnp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


@partial(jax.tree_util.register_dataclass, data_fields=["x", "w"],
         meta_fields=["stride", "pad", "algorithm", "cpu"])
@dataclass(frozen=True)
class ConvCache:
    """What conv_backward needs: the unpadded input, the filters, the static geometry, and
    the forms the forward took (its algorithm, CPU products or not), which the backward
    takes too."""

    x: jax.Array
    w: jax.Array
    stride: int
    pad: int
    algorithm: str = "im2col"
    cpu: bool = True


def _geometry(x, w, b, stride, pad):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv: need x (N, C, H, W) and w (F, C, HH, WW), got {x.shape}, {w.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"conv: x has {x.shape[1]} channels but w expects {w.shape[1]} ({w.shape})")
    if b.shape != (w.shape[0],):
        raise ValueError(f"conv: b must be ({w.shape[0]},), got {b.shape}")
    if pad < 0:
        raise ValueError(f"conv: pad must be >= 0, got {pad}")
    ho = output_size(x.shape[2] + 2 * pad, w.shape[2], stride, "conv (height)")
    wo = output_size(x.shape[3] + 2 * pad, w.shape[3], stride, "conv (width)")
    return ho, wo


def conv_forward(x, w, b, stride=1, pad=0, layout=None):
    """Return `(out, cache)`: out[n, f] = sum_{c,i,j} xpad[n, c, s*h + i, s*w + j] w[f, c, i, j] + b[f].

    layout: the `jaxnets.ops.Layout` whose forms to take (None: the default backend's)."""
    ho, wo = _geometry(x, w, b, stride, pad)
    layout = default_layout(layout)
    algorithm = layout.conv_algorithm(x.shape[1])
    cache = ConvCache(x, w, stride, pad, algorithm, layout.cpu)
    if algorithm == "primitive":
        out = _nhwc_conv(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), ((pad, pad), (pad, pad)),
                         window_strides=(stride, stride))
        return out.transpose(0, 3, 1, 2) + b[None, :, None, None], cache
    xp = zero_pad(x, pad)
    f = w.shape[0]
    patches = _patches(xp, w.shape, stride, ho, wo)
    wk = w.reshape(f, -1)
    if layout.cpu:
        # One batched (F, K) @ (K, P) product per example. As HH*WW per-tap products of
        # contraction size C, XLA:CPU rewrites the convolution into elementwise code and
        # recomputes it inside every fusion that reads it (ReLU, pool and their backwards):
        # ~1.4x slower for the whole ConvNet gradient (measured on a 2-core CPU).
        out = jnp.einsum("nfk,nkp->nfp", jnp.broadcast_to(wk, (x.shape[0],) + wk.shape), patches)
    else:
        out = jnp.einsum("fk,nkp->nfp", wk, patches)
    out = out.reshape(x.shape[0], f, ho, wo) + b[None, :, None, None]
    return out, cache


def conv_backward(dout, cache):
    """Return `(dx, dw, db)` for conv_forward; dout: (N, F, Ho, Wo); in the forms the
    forward took (`cache.algorithm`, `cache.cpu`).

    000: dW_c += a_slice * dZ[h, w, c] summed over positions and examples
         ->  dw[:, :, i, j] = sum_{n,h,w} dout[n, :, h, w] xpad_tap(i,j)[n, :, h, w]
    000: db_c = sum dZ[..., c]  ->  db = dout.sum(axis=(0, 2, 3))
    000: dA_slice += W_c * dZ[h, w, c], then strip the padding
         ->  dxpad = sum_{i,j} untap(dout contracted with w[:, :, i, j]) — every tap sends its
         share back to the positions it read (a full convolution with the flipped kernel);
         dx = dxpad[:, :, pad:pad+H, pad:pad+W].
    """
    x, w, stride, pad = cache.x, cache.w, cache.stride, cache.pad
    n, c, h, wd = x.shape
    hh, ww = w.shape[2], w.shape[3]
    xp = zero_pad(x, pad)
    hp, wp = h + 2 * pad, wd + 2 * pad
    if cache.algorithm == "primitive":
        return _backward_primitive(dout, xp, w, stride, pad, x.shape)
    dw = _filter_gradient(dout, xp, w.shape, stride, cache.cpu)
    dxp = jnp.zeros(xp.shape, dout.dtype)
    for i in range(hh):
        for j in range(ww):
            dxp = dxp + untap(jnp.einsum("nfhw,fc->nchw", dout, w[:, :, i, j]), i, j, stride, hp, wp)
    db = jnp.sum(dout, axis=(0, 2, 3))
    dx = dxp[:, :, pad : pad + h, pad : pad + wd]
    return dx, dw, db


def _nhwc_conv(lhs, rhs, padding, window_strides=(1, 1), **dilations):
    """lax.conv_general_dilated on (batch, H, W, features) x (H, W, in, out), the one layout
    every call here is written in, with explicit transposes around it. XLA:CPU runs the NCHW
    and channel-swapped layouts ("CNHW", "IOHW") fast as a lone jit but 3-35x slower inside a
    loop body (`lax.scan`, as in training: 470 ms instead of 13 ms for one dw at batch 64,
    32 -> 64 channels, 14x14); transposed to NHWC both run at full speed. Exact either way."""
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    **dilations)


def _backward_primitive(dout, xp, w, stride, pad, x_shape):
    """conv_backward's formulas as convolutions (see the module docstring)."""
    h, wd = x_shape[2], x_shape[3]
    hh, ww = w.shape[2], w.shape[3]
    ho, wo = dout.shape[2], dout.shape[3]
    # dw[f, c, i, j] = sum_{n,h,w} dout[n, f, h, w] xp[n, c, s h + i, s w + j]: xp correlated
    # with dout dilated by s, the examples n the contracted (feature) axis, the channels c the
    # batch; output positions past (HH, WW) exist only when windows did not fit: cut.
    dw = _nhwc_conv(xp.transpose(1, 2, 3, 0), dout.transpose(2, 3, 0, 1), ((0, 0), (0, 0)),
                    rhs_dilation=(stride, stride)).transpose(3, 0, 1, 2)[:, :, :hh, :ww]
    # dxp[n, c, y, x] = sum_{f,i,j} dout[n, f, (y - i) / s, (x - j) / s] w[f, c, i, j]: dout
    # dilated by s, padded by HH - 1 (plus the rows no window read), correlated with the
    # spatially flipped filters, input and output channels swapped: the full convolution.
    extra_h = xp.shape[2] - (stride * (ho - 1) + hh)
    extra_w = xp.shape[3] - (stride * (wo - 1) + ww)
    dxp = _nhwc_conv(dout.transpose(0, 2, 3, 1), w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1),
                     ((hh - 1, hh - 1 + extra_h), (ww - 1, ww - 1 + extra_w)),
                     lhs_dilation=(stride, stride)).transpose(0, 3, 1, 2)
    return dxp[:, :, pad : pad + h, pad : pad + wd], dw, jnp.sum(dout, axis=(0, 2, 3))


def _patches(xp, w_shape, stride, ho, wo):
    """im2col: the taps of every filter position, (N, C*HH*WW, Ho*Wo), ordered like
    w.reshape(F, C*HH*WW)."""
    n, c = xp.shape[0], xp.shape[1]
    hh, ww = w_shape[2], w_shape[3]
    return jnp.stack(
        [tap(xp, i, j, stride, ho, wo) for i in range(hh) for j in range(ww)], axis=2
    ).reshape(n, c * hh * ww, ho * wo)


def _filter_gradient(dout, xp, w_shape, stride, cpu):
    """dw[f, c, i, j] = sum_{n,h,w} dout[n, f, h, w] tap(i, j)[n, c, h, w], for all taps at once.

    The taps are stacked into patches (N, C*HH*WW, Ho*Wo) (im2col), so dw is one contraction
    over (n, positions) instead of HH*WW skinny ones. On CPU it runs as a batch of per-example
    (F, P) @ (P, K) products summed over n, which XLA's CPU dot handles ~2x faster than a
    single contraction over the (n, positions) pair; other backends take the contraction
    (`cpu`: the forward's `Layout.cpu`).
    """
    f, c, hh, ww = w_shape
    n, ho, wo = dout.shape[0], dout.shape[2], dout.shape[3]
    patches = _patches(xp, w_shape, stride, ho, wo)
    d = dout.reshape(n, f, ho * wo)
    if cpu:
        dw = jnp.einsum("nfp,nkp->nfk", d, patches).sum(axis=0)
    else:
        dw = jnp.einsum("nfp,nkp->fk", d, patches)
    return dw.reshape(w_shape)


__all__ = ["zero_pad", "conv_forward", "conv_backward", "ConvCache"]

_conv = manual_vjp(conv_forward, conv_backward, nondiff_argnums=(3, 4, 5))


def conv(x, w, b, stride=1, pad=0, layout=None):
    """conv_forward's output, with conv_backward as its jax.custom_vjp derivative."""
    return _conv(x, w, b, stride, pad, layout)


LAYERS = {"conv": (conv_forward, conv)}
