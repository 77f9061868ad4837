"""Document 000's loops (Coursera style) in NumPy float64: a second, independent oracle.

Same signatures, caches and results as the vectorised `reference_numpy.layers` functions they
shadow, written the way the document writes them: loops over examples, output rows, output
columns and filters (NCHW instead of the document's NHWC).
"""
import numpy as np

from reference_numpy.checks import check_dout, conv_setup, f64, pool_setup
from reference_numpy.layers import zero_pad

__all__ = [
    "conv_single_step", "conv_forward_naive", "conv_backward_naive",
    "max_pool_forward_naive", "max_pool_backward_naive",
    "avg_pool_forward_naive", "avg_pool_backward_naive",
]


def conv_single_step(a_slice_prev, W, b):
    """000 `conv_single_step`: Z = sum(a_slice_prev * W) + b for one window (C, HH, WW) and
    one filter W (C, HH, WW) with scalar bias b; returns a float."""
    a_slice_prev, W = f64(a_slice_prev), f64(W)
    if a_slice_prev.shape != W.shape:
        raise ValueError(f"conv_single_step: slice {a_slice_prev.shape} and filter {W.shape} differ in shape")
    return float(np.sum(a_slice_prev * W) + float(np.asarray(b, dtype=np.float64).reshape(())))


def conv_forward_naive(x, w, b, stride=1, pad=0):
    """000 `conv_forward` as loops over examples, output rows, output columns and filters
    (NCHW instead of the document's NHWC). Same signature, cache and result as conv_forward."""
    x, w, b, stride, pad, n_H, n_W = conv_setup("conv_forward_naive", x, w, b, stride, pad)
    m, n_C = x.shape[0], w.shape[0]
    f_h, f_w = w.shape[2], w.shape[3]
    A_prev_pad = zero_pad(x, pad)
    Z = np.zeros((m, n_C, n_H, n_W))
    for i in range(m):
        a_prev_pad = A_prev_pad[i]
        for h in range(n_H):
            vert_start = h * stride
            vert_end = vert_start + f_h
            for wo in range(n_W):
                horiz_start = wo * stride
                horiz_end = horiz_start + f_w
                a_slice_prev = a_prev_pad[:, vert_start:vert_end, horiz_start:horiz_end]
                for c in range(n_C):
                    Z[i, c, h, wo] = conv_single_step(a_slice_prev, w[c], b[c])
    return Z, (x, w, b, stride, pad)


def conv_backward_naive(dout, cache):
    """000 `conv_backward` as loops; returns (dx, dw, db) like conv_backward.

    000: dA_slice += W_c * dZ[h, w, c]; dW_c += a_slice * dZ[h, w, c]; db_c += dZ[h, w, c];
    then dA_prev[i] = dA_prev_pad[i] with the padding stripped.
    """
    x, w, _, stride, pad = cache
    dZ = f64(dout)
    m, _, n_H_prev, n_W_prev = x.shape
    n_C, _, f_h, f_w = w.shape
    n_H = (n_H_prev + 2 * pad - f_h) // stride + 1
    n_W = (n_W_prev + 2 * pad - f_w) // stride + 1
    check_dout("conv_backward_naive", dZ, (m, n_C, n_H, n_W))
    A_prev_pad = zero_pad(x, pad)
    dA_prev_pad = np.zeros_like(A_prev_pad)
    dW = np.zeros_like(w)
    db = np.zeros(n_C)
    for i in range(m):
        a_prev_pad = A_prev_pad[i]
        da_prev_pad = dA_prev_pad[i]
        for h in range(n_H):
            for wo in range(n_W):
                for c in range(n_C):
                    vert_start = h * stride
                    vert_end = vert_start + f_h
                    horiz_start = wo * stride
                    horiz_end = horiz_start + f_w
                    a_slice = a_prev_pad[:, vert_start:vert_end, horiz_start:horiz_end]
                    da_prev_pad[:, vert_start:vert_end, horiz_start:horiz_end] += w[c] * dZ[i, c, h, wo]
                    dW[c] += a_slice * dZ[i, c, h, wo]
                    db[c] += dZ[i, c, h, wo]
    dA_prev = np.ascontiguousarray(dA_prev_pad[:, :, pad : pad + n_H_prev, pad : pad + n_W_prev])
    return dA_prev, dW, db


def _pool_forward_naive(name, x, pool_height, pool_width, stride, reduce):
    x, f_h, f_w, stride, n_H, n_W = pool_setup(name, x, pool_height, pool_width, stride)
    m, n_C = x.shape[0], x.shape[1]
    A = np.zeros((m, n_C, n_H, n_W))
    for i in range(m):
        for c in range(n_C):
            for h in range(n_H):
                vert_start = h * stride
                for wo in range(n_W):
                    horiz_start = wo * stride
                    a_prev_slice = x[i, c, vert_start : vert_start + f_h, horiz_start : horiz_start + f_w]
                    A[i, c, h, wo] = reduce(a_prev_slice)
    return A, (x, f_h, f_w, stride)


def max_pool_forward_naive(x, pool_height=2, pool_width=2, stride=2):
    """000 `pool_forward(mode="max")` as loops; returns (out, cache) like max_pool_forward
    (its cache holds the window argmax too, so either backward accepts either cache)."""
    out, (x, ph, pw, stride) = _pool_forward_naive("max_pool_forward_naive", x, pool_height, pool_width, stride, np.max)
    arg = np.zeros(out.shape, dtype=np.int64)
    for idx in np.ndindex(*out.shape):
        i, c, h, wo = idx
        window = x[i, c, h * stride : h * stride + ph, wo * stride : wo * stride + pw]
        arg[idx] = np.argmax(window)
    return out, (x, arg, ph, pw, stride)


def _create_mask_from_window(x):
    """000 `create_mask_from_window`, but True only at the FIRST maximum in row-major order
    (the document's `x == np.max(x)` marks every tied maximum)."""
    mask = np.zeros(x.shape, dtype=bool)
    mask[np.unravel_index(np.argmax(x), x.shape)] = True
    return mask


def max_pool_backward_naive(dout, cache):
    """000 `pool_backward(mode="max")` as loops: dA_prev[window] += mask * dA[i, c, h, w] with
    the mask of the window's first maximum; overlapping windows add up."""
    x, arg, ph, pw, stride = cache
    dA = f64(dout)
    check_dout("max_pool_backward_naive", dA, arg.shape)
    m, n_C, n_H, n_W = dA.shape
    dA_prev = np.zeros_like(x)
    for i in range(m):
        for c in range(n_C):
            for h in range(n_H):
                vert_start = h * stride
                for wo in range(n_W):
                    horiz_start = wo * stride
                    a_prev_slice = x[i, c, vert_start : vert_start + ph, horiz_start : horiz_start + pw]
                    mask = _create_mask_from_window(a_prev_slice)
                    dA_prev[i, c, vert_start : vert_start + ph, horiz_start : horiz_start + pw] += mask * dA[i, c, h, wo]
    return dA_prev


def avg_pool_forward_naive(x, pool_height=2, pool_width=2, stride=2):
    """000 `pool_forward(mode="average")` as loops; returns (out, cache) like avg_pool_forward."""
    return _pool_forward_naive("avg_pool_forward_naive", x, pool_height, pool_width, stride, np.mean)


def _distribute_value(dz, shape):
    """000 `distribute_value`: dz spread evenly over a window of `shape`, dz / (n_H * n_W)."""
    n_H, n_W = shape
    return np.ones(shape) * (dz / (n_H * n_W))


def avg_pool_backward_naive(dout, cache):
    """000 `pool_backward(mode="average")` as loops:
    dA_prev[window] += distribute_value(dA[i, c, h, w], (ph, pw)); overlapping windows add up."""
    x, ph, pw, stride = cache
    dA = f64(dout)
    m, n_C, H, W = x.shape
    n_H, n_W = (H - ph) // stride + 1, (W - pw) // stride + 1
    check_dout("avg_pool_backward_naive", dA, (m, n_C, n_H, n_W))
    dA_prev = np.zeros_like(x)
    for i in range(m):
        for c in range(n_C):
            for h in range(n_H):
                vert_start = h * stride
                for wo in range(n_W):
                    horiz_start = wo * stride
                    dA_prev[i, c, vert_start : vert_start + ph, horiz_start : horiz_start + pw] += _distribute_value(
                        dA[i, c, h, wo], (ph, pw)
                    )
    return dA_prev
