"""Input checks and window arithmetic shared by the NumPy layers (`layers`, `naive`)."""
import operator

import numpy as np

__all__ = ["f64", "int_at_least", "check_4d", "check_dout", "out_size", "tap", "conv_setup", "pool_setup"]


def f64(a):
    return np.asarray(a, dtype=np.float64)


def int_at_least(name, what, value, minimum):
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name}: {what} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or v < minimum:
        raise ValueError(f"{name}: {what} must be an integer >= {minimum}, got {value!r}")
    return v


def check_4d(name, what, a):
    if a.ndim != 4:
        raise ValueError(f"{name}: {what} must be 4-D (N, C, H, W), got shape {a.shape}")


def check_dout(name, dout, expected):
    if dout.shape != tuple(expected):
        raise ValueError(f"{name}: dout has shape {dout.shape}, expected {tuple(expected)}")


def out_size(name, n, k, stride, axis):
    """floor((n - k) / stride) + 1 for an (already padded) extent n (000's output size)."""
    if k > n:
        raise ValueError(f"{name}: window {axis} {k} is larger than the (padded) input {axis} {n}")
    return (n - k) // stride + 1


def tap(x, i, j, stride, ho, wo):
    """The (N, C, ho, wo) slice of x read by kernel tap (i, j)."""
    return x[:, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]


def conv_setup(name, x, w, b, stride, pad):
    x, w, b = f64(x), f64(w), f64(b)
    check_4d(name, "x", x)
    if w.ndim != 4:
        raise ValueError(f"{name}: w must be 4-D (F, C, HH, WW), got shape {w.shape}")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"{name}: channel mismatch, x has {x.shape[1]} channels but w expects {w.shape[1]}")
    if b.shape != (w.shape[0],):
        raise ValueError(f"{name}: b has shape {b.shape}, expected ({w.shape[0]},) for {w.shape[0]} filters")
    stride = int_at_least(name, "stride", stride, 1)
    pad = int_at_least(name, "pad", pad, 0)
    _, _, h, wd = x.shape
    _, _, hh, ww = w.shape
    ho = out_size(name, h + 2 * pad, hh, stride, "height")
    wo = out_size(name, wd + 2 * pad, ww, stride, "width")
    return x, w, b, stride, pad, ho, wo


def pool_setup(name, x, pool_height, pool_width, stride):
    x = f64(x)
    check_4d(name, "x", x)
    ph = int_at_least(name, "pool_height", pool_height, 1)
    pw = int_at_least(name, "pool_width", pool_width, 1)
    stride = int_at_least(name, "stride", stride, 1)
    ho = out_size(name, x.shape[2], ph, stride, "height")
    wo = out_size(name, x.shape[3], pw, stride, "width")
    return x, ph, pw, stride, ho, wo
