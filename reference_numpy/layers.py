"""The layers of the source documents in NumPy float64: the oracle jaxnets is tested against.

Row layout (x (N, D), w (D, M), out = x @ w + b) and NCHW images with filters (F, C, HH, WW),
as in document 002 / cs231n. Every forward returns `(out, cache)`, every backward takes
`(dout, cache)` and returns the gradients in input order. The losses return `(value, grad)`
and are means over the N samples, so the 1/N of the documents' `(1/m)` equations lives in the
loss gradient; the layer backwards themselves carry no 1/N.

Conventions (identical in every version here and in jaxnets):
- ReLU'(0) = 0 (mask x > 0);
- max pool sends each window's gradient to the FIRST maximum of the window in row-major
  order (np.argmax of the flattened window); overlapping windows add up;
- conv and pool output size floor((H + 2 pad - HH) / stride) + 1: windows that do not fit
  are dropped; conv's dx has the padding stripped.

The vectorised conv and pools loop only over the HH*WW kernel taps: tap (i, j) reads the
strided slice `x[:, :, i : i + s*(Ho-1) + 1 : s, j : j + s*(Wo-1) + 1 : s]`. The `*_naive`
functions are document 000's loops (Coursera style), kept as a second, independent oracle.
"""
import operator

import numpy as np

__all__ = [
    "affine_forward", "affine_backward",
    "relu_forward", "relu_backward",
    "tanh_forward", "tanh_backward",
    "sigmoid_forward", "sigmoid_backward",
    "zero_pad",
    "conv_forward", "conv_backward",
    "max_pool_forward", "max_pool_backward",
    "avg_pool_forward", "avg_pool_backward",
    "softmax_loss", "binary_cross_entropy_with_logits", "binary_cross_entropy", "l2_penalty",
    "conv_single_step", "conv_forward_naive", "conv_backward_naive",
    "max_pool_forward_naive", "max_pool_backward_naive",
    "avg_pool_forward_naive", "avg_pool_backward_naive",
]


# --------------------------------------------------------------------------- input checks

def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _int_at_least(name, what, value, minimum):
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name}: {what} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or v < minimum:
        raise ValueError(f"{name}: {what} must be an integer >= {minimum}, got {value!r}")
    return v


def _check_4d(name, what, a):
    if a.ndim != 4:
        raise ValueError(f"{name}: {what} must be 4-D (N, C, H, W), got shape {a.shape}")


def _check_dout(name, dout, expected):
    if dout.shape != tuple(expected):
        raise ValueError(f"{name}: dout has shape {dout.shape}, expected {tuple(expected)}")


def _out_size(name, n, k, stride, axis):
    """floor((n - k) / stride) + 1 for an (already padded) extent n (000's output size)."""
    if k > n:
        raise ValueError(f"{name}: window {axis} {k} is larger than the (padded) input {axis} {n}")
    return (n - k) // stride + 1


def _tap(x, i, j, stride, ho, wo):
    """The (N, C, ho, wo) slice of x read by kernel tap (i, j)."""
    return x[:, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]


# --------------------------------------------------------------------------- dense

def affine_forward(x, w, b):
    """out = x.reshape(N, D) @ w + b (002 `affine_forward`; 000/001 `Z = W X + b` transposed).

    x (N, d1, ..., dk) with D = d1*...*dk, w (D, M), b (M,) -> out (N, M).
    cache = (x, w, b).
    """
    x, w, b = _f64(x), _f64(w), _f64(b)
    if x.ndim < 1 or w.ndim != 2 or b.ndim != 1:
        raise ValueError(f"affine_forward: need x (N, ...), w (D, M), b (M,); got {x.shape}, {w.shape}, {b.shape}")
    d = int(np.prod(x.shape[1:], dtype=np.int64))
    if d != w.shape[0]:
        raise ValueError(f"affine_forward: x has {d} features per sample (shape {x.shape}) but w has {w.shape[0]} rows")
    if b.shape[0] != w.shape[1]:
        raise ValueError(f"affine_forward: b has shape {b.shape}, expected ({w.shape[1]},) to match w {w.shape}")
    out = x.reshape(x.shape[0], d) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Gradients of affine_forward; returns (dx, dw, db), dx in x's original shape.

    000/001: dW1 = (1/m) dZ1 X^T  ->  dw = x.reshape(N, D).T @ dout (1/N already in dout);
    000: db1 = (1/m) sum(dZ1, axis=1)  ->  db = dout.sum(axis=0) (a vector: summing over
    units too, as 001/003's `np.sum(dZ)` does, is an erratum);
    000: dA1 = W2^T dZ2  ->  dx = dout @ w.T, reshaped to x.shape (002 `affine_backward`).
    """
    x, w, _ = cache
    dout = _f64(dout)
    n = x.shape[0]
    _check_dout("affine_backward", dout, (n, w.shape[1]))
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(n, -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


# --------------------------------------------------------------------------- activations

def relu_forward(x):
    """out = where(x > 0, x, 0) (001 `ReLU`, 002 `relu_forward`); cache = x."""
    x = _f64(x)
    return np.where(x > 0, x, 0.0), x


def relu_backward(dout, cache):
    """001/003: dZ1 = W2^T dZ2 * g'(Z1) with g'(Z1) = (Z1 > 0)  ->  dx = dout * (x > 0).

    ReLU'(0) = 0. 002's `relu_backward` returns dout unmasked: an erratum.
    """
    x = cache
    dout = _f64(dout)
    _check_dout("relu_backward", dout, x.shape)
    return np.where(x > 0, dout, 0.0)


def tanh_forward(x):
    """out = tanh(x) (000's hidden layer `A1 = tanh(Z1)`); cache = out."""
    out = np.tanh(_f64(x))
    return out, out


def tanh_backward(dout, cache):
    """000: dZ1 = W2^T dZ2 * (1 - A1^2)  ->  dx = dout * (1 - out**2)."""
    out = cache
    dout = _f64(dout)
    _check_dout("tanh_backward", dout, out.shape)
    return dout * (1.0 - out * out)


def _sigmoid(x):
    # exp only of -|x|, so neither branch overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_forward(x):
    """out = 1 / (1 + exp(-x)) (000 `sigmoid`), evaluated without overflow; cache = out."""
    out = _sigmoid(_f64(x))
    return out, out


def sigmoid_backward(dout, cache):
    """000: sigma'(Z2) = A2 (1 - A2)  ->  dx = dout * out * (1 - out)."""
    out = cache
    dout = _f64(dout)
    _check_dout("sigmoid_backward", dout, out.shape)
    return dout * out * (1.0 - out)


# --------------------------------------------------------------------------- convolution

def zero_pad(x, pad):
    """000 `zero_pad`: pad only height and width of x (N, C, H, W) with `pad` zeros per side."""
    x = _f64(x)
    _check_4d("zero_pad", "x", x)
    pad = _int_at_least("zero_pad", "pad", pad, 0)
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant", constant_values=0.0)


def _conv_setup(name, x, w, b, stride, pad):
    x, w, b = _f64(x), _f64(w), _f64(b)
    _check_4d(name, "x", x)
    if w.ndim != 4:
        raise ValueError(f"{name}: w must be 4-D (F, C, HH, WW), got shape {w.shape}")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"{name}: channel mismatch, x has {x.shape[1]} channels but w expects {w.shape[1]}")
    if b.shape != (w.shape[0],):
        raise ValueError(f"{name}: b has shape {b.shape}, expected ({w.shape[0]},) for {w.shape[0]} filters")
    stride = _int_at_least(name, "stride", stride, 1)
    pad = _int_at_least(name, "pad", pad, 0)
    _, _, h, wd = x.shape
    _, _, hh, ww = w.shape
    ho = _out_size(name, h + 2 * pad, hh, stride, "height")
    wo = _out_size(name, wd + 2 * pad, ww, stride, "width")
    return x, w, b, stride, pad, ho, wo


def conv_forward(x, w, b, stride=1, pad=0):
    """Cross-correlation of x (N, C, H, W) with filters w (F, C, HH, WW) plus bias b (F,).

    000: Z[n, f, h, w] = conv_single_step(a_slice, W_f, b_f) = sum(a_slice * W_f) + b_f over
    the zero-padded input; out (N, F, Ho, Wo), Ho = floor((H + 2 pad - HH) / stride) + 1.
    Vectorised over the HH*WW kernel taps. cache = (x, w, b, stride, pad).
    """
    x, w, b, stride, pad, ho, wo = _conv_setup("conv_forward", x, w, b, stride, pad)
    xp = zero_pad(x, pad)
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            out += np.einsum("nchw,fc->nfhw", _tap(xp, i, j, stride, ho, wo), w[:, :, i, j], optimize=True)
    out += b[None, :, None, None]
    return out, (x, w, b, stride, pad)


def conv_backward(dout, cache):
    """Gradients of conv_forward; returns (dx, dw, db).

    000: dW_c += sum_h sum_w a_slice * dZ[h, w, c]  ->  dw[:, :, i, j] = einsum(dout, tap(i, j))
         (sum over samples and output positions);
    000: db_c = sum_h sum_w dZ[h, w, c]  ->  db = dout.sum(axis=(0, 2, 3));
    000: dA_slice += W_c * dZ[h, w, c] (the "full convolution")  ->  for each tap (i, j),
         dx_pad[tap (i, j)] += einsum(dout, w[:, :, i, j]); then the padding is stripped.
    The 1/N of the loss is already in dout.
    """
    x, w, _, stride, pad = cache
    dout = _f64(dout)
    n, _, h, wd = x.shape
    f, _, hh, ww = w.shape
    ho = (h + 2 * pad - hh) // stride + 1
    wo = (wd + 2 * pad - ww) // stride + 1
    _check_dout("conv_backward", dout, (n, f, ho, wo))
    xp = zero_pad(x, pad)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(hh):
        for j in range(ww):
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, _tap(xp, i, j, stride, ho, wo), optimize=True)
            _tap(dxp, i, j, stride, ho, wo)[...] += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j], optimize=True)
    db = dout.sum(axis=(0, 2, 3))
    dx = np.ascontiguousarray(dxp[:, :, pad : pad + h, pad : pad + wd])
    return dx, dw, db


# --------------------------------------------------------------------------- pooling

def _pool_setup(name, x, pool_height, pool_width, stride):
    x = _f64(x)
    _check_4d(name, "x", x)
    ph = _int_at_least(name, "pool_height", pool_height, 1)
    pw = _int_at_least(name, "pool_width", pool_width, 1)
    stride = _int_at_least(name, "stride", stride, 1)
    ho = _out_size(name, x.shape[2], ph, stride, "height")
    wo = _out_size(name, x.shape[3], pw, stride, "width")
    return x, ph, pw, stride, ho, wo


def _windows(x, ph, pw, stride, ho, wo):
    """(N, C, ho, wo, ph*pw): every window's entries, flattened in row-major order."""
    return np.stack([_tap(x, i, j, stride, ho, wo) for i in range(ph) for j in range(pw)], axis=-1)


def max_pool_forward(x, pool_height=2, pool_width=2, stride=2):
    """Max over each (pool_height, pool_width) window of x (N, C, H, W), moved by `stride`
    (000 max pool; windows may overlap or skip). out (N, C, Ho, Wo).

    cache = (x, argmax, pool_height, pool_width, stride), where argmax (N, C, Ho, Wo) is the
    row-major index of the FIRST maximum inside each window.
    """
    x, ph, pw, stride, ho, wo = _pool_setup("max_pool_forward", x, pool_height, pool_width, stride)
    win = _windows(x, ph, pw, stride, ho, wo)
    arg = np.argmax(win, axis=-1)
    out = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    return out, (x, arg, ph, pw, stride)


def max_pool_backward(dout, cache):
    """000: dA_prev[window] += mask(window) * dA[h, w], mask = 1 at the window's maximum  ->
    for each tap k = (i, j): dx[tap (i, j)] += dout * (argmax == k).

    Only the FIRST maximum in row-major order gets the gradient (000's `x == max(x)` mask
    would give every tied entry the full gradient); overlapping windows add up.
    """
    x, arg, ph, pw, stride = cache
    dout = _f64(dout)
    _check_dout("max_pool_backward", dout, arg.shape)
    ho, wo = arg.shape[2], arg.shape[3]
    dx = np.zeros_like(x)
    for i in range(ph):
        for j in range(pw):
            _tap(dx, i, j, stride, ho, wo)[...] += np.where(arg == i * pw + j, dout, 0.0)
    return dx


def avg_pool_forward(x, pool_height=2, pool_width=2, stride=2):
    """Mean over each (pool_height, pool_width) window of x (N, C, H, W), moved by `stride`
    (000 average pool). out (N, C, Ho, Wo); cache = (x, pool_height, pool_width, stride)."""
    x, ph, pw, stride, ho, wo = _pool_setup("avg_pool_forward", x, pool_height, pool_width, stride)
    out = np.zeros((x.shape[0], x.shape[1], ho, wo))
    for i in range(ph):
        for j in range(pw):
            out += _tap(x, i, j, stride, ho, wo)
    return out / (ph * pw), (x, ph, pw, stride)


def avg_pool_backward(dout, cache):
    """000: dA_prev[window] += distribute_value(dA[h, w]) = dA[h, w] / (f * f) everywhere in
    the window  ->  for each tap (i, j): dx[tap (i, j)] += dout / (ph * pw); overlaps add."""
    x, ph, pw, stride = cache
    dout = _f64(dout)
    n, c, h, w = x.shape
    ho, wo = (h - ph) // stride + 1, (w - pw) // stride + 1
    _check_dout("avg_pool_backward", dout, (n, c, ho, wo))
    dx = np.zeros_like(x)
    share = dout / (ph * pw)
    for i in range(ph):
        for j in range(pw):
            _tap(dx, i, j, stride, ho, wo)[...] += share
    return dx


# --------------------------------------------------------------------------- losses

def softmax_loss(scores, y):
    """Mean softmax cross-entropy; returns (loss, dscores).

    scores (N, C), y (N,) integers in 0..C-1. loss = -mean_n log softmax(scores)[n, y_n],
    computed from scores minus the row maximum (log-sum-exp), so large scores do not overflow
    (001/003's `exp(Z) / sum(exp(Z))` does: erratum).
    001/003 eq. (13): dZ2 = A2 - onehot(Y), and the (1/m) of eq. (15)  ->
    dscores = (softmax(scores) - onehot(y)) / N (002 `softmax_loss`).
    """
    scores = _f64(scores)
    y = np.asarray(y)
    if scores.ndim != 2:
        raise ValueError(f"softmax_loss: scores must be (N, C), got shape {scores.shape}")
    n, c = scores.shape
    if n == 0:
        raise ValueError("softmax_loss: empty batch")
    if y.shape != (n,):
        raise ValueError(f"softmax_loss: labels must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"softmax_loss: labels must be integers 0..{c - 1}, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= c:
        raise ValueError(f"softmax_loss: labels out of range 0..{c - 1} (min {y.min()}, max {y.max()})")
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -log_probs[rows, y].sum() / n
    dscores = np.exp(log_probs)
    dscores[rows, y] -= 1.0
    return float(loss), dscores / n


def _binary_setup(name, v, y):
    v, y = _f64(v), _f64(y)
    if v.shape != y.shape:
        raise ValueError(f"{name}: predictions {v.shape} and targets {y.shape} differ in shape")
    if v.size == 0:
        raise ValueError(f"{name}: empty batch")
    if np.any((y < 0) | (y > 1)):
        raise ValueError(f"{name}: targets must lie in [0, 1]")
    return v, y


def binary_cross_entropy_with_logits(z, y):
    """Mean binary cross-entropy of sigmoid(z) against 0/1 targets y; returns (loss, dz).

    z, y of shape (N,) or (N, 1). loss = mean(max(z, 0) - z y + log1p(exp(-|z|))), the stable
    form of 000's cost -(1/m) sum(Y log A2 + (1 - Y) log(1 - A2)) with A2 = sigmoid(Z2).
    000: dZ2 = A2 - Y with the (1/m) of dW2 = (1/m) dZ2 A1^T  ->  dz = (sigmoid(z) - y) / N.
    """
    z, y = _binary_setup("binary_cross_entropy_with_logits", z, y)
    n = z.size
    loss = np.sum(np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))) / n
    return float(loss), (_sigmoid(z) - y) / n


def binary_cross_entropy(p, y):
    """Mean binary cross-entropy of probabilities p in (0, 1); returns (loss, dp).

    000: cost = -(1/m) sum(Y log A2 + (1 - Y) log(1 - A2))  ->
    loss = -mean(y log p + (1 - y) log1p(-p)); dp = (p - y) / (p (1 - p)) / N.
    """
    p, y = _binary_setup("binary_cross_entropy", p, y)
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("binary_cross_entropy: probabilities must lie strictly inside (0, 1)")
    n = p.size
    loss = -np.sum(y * np.log(p) + (1.0 - y) * np.log1p(-p)) / n
    return float(loss), (p - y) / (p * (1.0 - p)) / n


def l2_penalty(w, reg):
    """002's L2 weight decay: returns (0.5 * reg * sum(w**2), reg * w).

    002: grads['W'] = dW + reg * W  ->  dw = reg * w.
    """
    w = _f64(w)
    return float(0.5 * reg * np.sum(w * w)), reg * w


# --------------------------------------------------------------------------- naive loops (000)

def conv_single_step(a_slice_prev, W, b):
    """000 `conv_single_step`: Z = sum(a_slice_prev * W) + b for one window (C, HH, WW) and
    one filter W (C, HH, WW) with scalar bias b; returns a float."""
    a_slice_prev, W = _f64(a_slice_prev), _f64(W)
    if a_slice_prev.shape != W.shape:
        raise ValueError(f"conv_single_step: slice {a_slice_prev.shape} and filter {W.shape} differ in shape")
    return float(np.sum(a_slice_prev * W) + float(np.asarray(b, dtype=np.float64).reshape(())))


def conv_forward_naive(x, w, b, stride=1, pad=0):
    """000 `conv_forward` as loops over examples, output rows, output columns and filters
    (NCHW instead of the document's NHWC). Same signature, cache and result as conv_forward."""
    x, w, b, stride, pad, n_H, n_W = _conv_setup("conv_forward_naive", x, w, b, stride, pad)
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
    dZ = _f64(dout)
    m, _, n_H_prev, n_W_prev = x.shape
    n_C, _, f_h, f_w = w.shape
    n_H = (n_H_prev + 2 * pad - f_h) // stride + 1
    n_W = (n_W_prev + 2 * pad - f_w) // stride + 1
    _check_dout("conv_backward_naive", dZ, (m, n_C, n_H, n_W))
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
    x, f_h, f_w, stride, n_H, n_W = _pool_setup(name, x, pool_height, pool_width, stride)
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
    dA = _f64(dout)
    _check_dout("max_pool_backward_naive", dA, arg.shape)
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
    dA = _f64(dout)
    m, n_C, H, W = x.shape
    n_H, n_W = (H - ph) // stride + 1, (W - pw) // stride + 1
    _check_dout("avg_pool_backward_naive", dA, (m, n_C, n_H, n_W))
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
