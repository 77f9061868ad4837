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
strided slice `x[:, :, i : i + s*(Ho-1) + 1 : s, j : j + s*(Wo-1) + 1 : s]`. Document 000's
loops (Coursera style), a second, independent oracle, are in `reference_numpy.naive`.
"""
import numpy as np

from reference_numpy.checks import check_4d, check_dout, conv_setup, f64, int_at_least, pool_setup, tap
from reference_numpy.rnn import sigmoid  # cs231n's stable sigmoid (exp only of -|x|)

__all__ = [
    "affine_forward", "affine_backward",
    "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
    "tanh_forward", "tanh_backward",
    "sigmoid_forward", "sigmoid_backward",
    "zero_pad",
    "conv_forward", "conv_backward",
    "max_pool_forward", "max_pool_backward",
    "avg_pool_forward", "avg_pool_backward",
    "conv_relu_pool_forward", "conv_relu_pool_backward",
    "softmax_loss", "svm_loss", "binary_cross_entropy_with_logits", "binary_cross_entropy", "l2_penalty",
]


# --------------------------------------------------------------------------- dense

def affine_forward(x, w, b):
    """out = x.reshape(N, D) @ w + b (002 `affine_forward`; 000/001 `Z = W X + b` transposed).

    x (N, d1, ..., dk) with D = d1*...*dk, w (D, M), b (M,) -> out (N, M).
    cache = (x, w, b).
    """
    x, w, b = f64(x), f64(w), f64(b)
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
    dout = f64(dout)
    n = x.shape[0]
    check_dout("affine_backward", dout, (n, w.shape[1]))
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(n, -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


# --------------------------------------------------------------------------- activations

def relu_forward(x):
    """out = where(x > 0, x, 0) (001 `ReLU`, 002 `relu_forward`); cache = x."""
    x = f64(x)
    return np.where(x > 0, x, 0.0), x


def relu_backward(dout, cache):
    """001/003: dZ1 = W2^T dZ2 * g'(Z1) with g'(Z1) = (Z1 > 0)  ->  dx = dout * (x > 0).

    ReLU'(0) = 0. 002's `relu_backward` returns dout unmasked: an erratum.
    """
    x = cache
    dout = f64(dout)
    check_dout("relu_backward", dout, x.shape)
    return np.where(x > 0, dout, 0.0)


def leaky_relu_forward(x, *, alpha=0.01):
    """out = x for x > 0, alpha * x otherwise; cache = (x, alpha)."""
    x = f64(x)
    return np.where(x > 0, x, alpha * x), (x, alpha)


def leaky_relu_backward(dout, cache):
    """dx = dout where x > 0, alpha * dout elsewhere (slope alpha at 0, as ReLU'(0) = 0)."""
    x, alpha = cache
    dout = f64(dout)
    check_dout("leaky_relu_backward", dout, x.shape)
    return np.where(x > 0, dout, alpha * dout)


def tanh_forward(x):
    """out = tanh(x) (000's hidden layer `A1 = tanh(Z1)`); cache = out."""
    out = np.tanh(f64(x))
    return out, out


def tanh_backward(dout, cache):
    """000: dZ1 = W2^T dZ2 * (1 - A1^2)  ->  dx = dout * (1 - out**2)."""
    out = cache
    dout = f64(dout)
    check_dout("tanh_backward", dout, out.shape)
    return dout * (1.0 - out * out)


def sigmoid_forward(x):
    """out = 1 / (1 + exp(-x)) (000 `sigmoid`), evaluated without overflow; cache = out."""
    out = sigmoid(f64(x))
    return out, out


def sigmoid_backward(dout, cache):
    """000: sigma'(Z2) = A2 (1 - A2)  ->  dx = dout * out * (1 - out)."""
    out = cache
    dout = f64(dout)
    check_dout("sigmoid_backward", dout, out.shape)
    return dout * out * (1.0 - out)


# --------------------------------------------------------------------------- convolution

def zero_pad(x, pad):
    """000 `zero_pad`: pad only height and width of x (N, C, H, W) with `pad` zeros per side."""
    x = f64(x)
    check_4d("zero_pad", "x", x)
    pad = int_at_least("zero_pad", "pad", pad, 0)
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant", constant_values=0.0)


def conv_forward(x, w, b, stride=1, pad=0):
    """Cross-correlation of x (N, C, H, W) with filters w (F, C, HH, WW) plus bias b (F,).

    000: Z[n, f, h, w] = conv_single_step(a_slice, W_f, b_f) = sum(a_slice * W_f) + b_f over
    the zero-padded input; out (N, F, Ho, Wo), Ho = floor((H + 2 pad - HH) / stride) + 1.
    Vectorised over the HH*WW kernel taps. cache = (x, w, b, stride, pad).
    """
    x, w, b, stride, pad, ho, wo = conv_setup("conv_forward", x, w, b, stride, pad)
    xp = zero_pad(x, pad)
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            out += np.einsum("nchw,fc->nfhw", tap(xp, i, j, stride, ho, wo), w[:, :, i, j], optimize=True)
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
    dout = f64(dout)
    n, _, h, wd = x.shape
    f, _, hh, ww = w.shape
    ho = (h + 2 * pad - hh) // stride + 1
    wo = (wd + 2 * pad - ww) // stride + 1
    check_dout("conv_backward", dout, (n, f, ho, wo))
    xp = zero_pad(x, pad)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(hh):
        for j in range(ww):
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, tap(xp, i, j, stride, ho, wo), optimize=True)
            tap(dxp, i, j, stride, ho, wo)[...] += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j], optimize=True)
    db = dout.sum(axis=(0, 2, 3))
    dx = np.ascontiguousarray(dxp[:, :, pad : pad + h, pad : pad + wd])
    return dx, dw, db


# --------------------------------------------------------------------------- pooling

def _windows(x, ph, pw, stride, ho, wo):
    """(N, C, ho, wo, ph*pw): every window's entries, flattened in row-major order."""
    return np.stack([tap(x, i, j, stride, ho, wo) for i in range(ph) for j in range(pw)], axis=-1)


def max_pool_forward(x, pool_height=2, pool_width=2, stride=2):
    """Max over each (pool_height, pool_width) window of x (N, C, H, W), moved by `stride`
    (000 max pool; windows may overlap or skip). out (N, C, Ho, Wo).

    cache = (x, argmax, pool_height, pool_width, stride), where argmax (N, C, Ho, Wo) is the
    row-major index of the FIRST maximum inside each window.
    """
    x, ph, pw, stride, ho, wo = pool_setup("max_pool_forward", x, pool_height, pool_width, stride)
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
    dout = f64(dout)
    check_dout("max_pool_backward", dout, arg.shape)
    ho, wo = arg.shape[2], arg.shape[3]
    dx = np.zeros_like(x)
    for i in range(ph):
        for j in range(pw):
            tap(dx, i, j, stride, ho, wo)[...] += np.where(arg == i * pw + j, dout, 0.0)
    return dx


def avg_pool_forward(x, pool_height=2, pool_width=2, stride=2):
    """Mean over each (pool_height, pool_width) window of x (N, C, H, W), moved by `stride`
    (000 average pool). out (N, C, Ho, Wo); cache = (x, pool_height, pool_width, stride)."""
    x, ph, pw, stride, ho, wo = pool_setup("avg_pool_forward", x, pool_height, pool_width, stride)
    out = np.zeros((x.shape[0], x.shape[1], ho, wo))
    for i in range(ph):
        for j in range(pw):
            out += tap(x, i, j, stride, ho, wo)
    return out / (ph * pw), (x, ph, pw, stride)


def avg_pool_backward(dout, cache):
    """000: dA_prev[window] += distribute_value(dA[h, w]) = dA[h, w] / (f * f) everywhere in
    the window  ->  for each tap (i, j): dx[tap (i, j)] += dout / (ph * pw); overlaps add."""
    x, ph, pw, stride = cache
    dout = f64(dout)
    n, c, h, w = x.shape
    ho, wo = (h - ph) // stride + 1, (w - pw) // stride + 1
    check_dout("avg_pool_backward", dout, (n, c, ho, wo))
    dx = np.zeros_like(x)
    share = dout / (ph * pw)
    for i in range(ph):
        for j in range(pw):
            tap(dx, i, j, stride, ho, wo)[...] += share
    return dx


# --------------------------------------------------------------------------- conv - ReLU - pool

def conv_relu_pool_forward(x, w, b, pad=1, pool=2):
    """conv (stride 1, `pad`) - ReLU - `pool` x `pool` max pool of stride `pool`, the three
    layers above chained (the twin of jaxnets' fused layer `jaxnets.ops.conv_relu_pool`)."""
    z, conv_cache = conv_forward(x, w, b, 1, pad)
    a, relu_cache = relu_forward(z)
    out, pool_cache = max_pool_forward(a, pool, pool, pool)
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout, cache):
    """The three backwards in reverse; returns (dx, dw, db)."""
    conv_cache, relu_cache, pool_cache = cache
    return conv_backward(relu_backward(max_pool_backward(dout, pool_cache), relu_cache), conv_cache)


# --------------------------------------------------------------------------- losses

def _check_labels(name, scores, y):
    if scores.ndim != 2:
        raise ValueError(f"{name}: scores must be (N, C), got shape {scores.shape}")
    n, c = scores.shape
    if n == 0:
        raise ValueError(f"{name}: empty batch")
    if y.shape != (n,):
        raise ValueError(f"{name}: labels must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integers 0..{c - 1}, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= c:
        raise ValueError(f"{name}: labels out of range 0..{c - 1} (min {y.min()}, max {y.max()})")
    return n, c


def softmax_loss(scores, y):
    """Mean softmax cross-entropy; returns (loss, dscores).

    scores (N, C), y (N,) integers in 0..C-1. loss = -mean_n log softmax(scores)[n, y_n],
    computed from scores minus the row maximum (log-sum-exp), so large scores do not overflow
    (001/003's `exp(Z) / sum(exp(Z))` does: erratum).
    001/003 eq. (13): dZ2 = A2 - onehot(Y), and the (1/m) of eq. (15)  ->
    dscores = (softmax(scores) - onehot(y)) / N (002 `softmax_loss`).
    """
    scores, y = f64(scores), np.asarray(y)
    n, c = _check_labels("softmax_loss", scores, y)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -log_probs[rows, y].sum() / n
    dscores = np.exp(log_probs)
    dscores[rows, y] -= 1.0
    return float(loss), dscores / n


def svm_loss(scores, y):
    """Multiclass SVM loss, margin 1, mean over N; returns (loss, dscores).

    cs231n assignment 1 (svm_loss_naive), looped over rows and classes: for each row i and
    class j != y_i with margin s_ij - s_iy_i + 1 > 0 (a margin of exactly 0 counts as
    inactive), loss += margin, dscores_ij += 1, dscores_iy_i -= 1; all divided by N.
    """
    scores, y = f64(scores), np.asarray(y)
    n, c = _check_labels("svm_loss", scores, y)
    loss, dscores = 0.0, np.zeros_like(scores)
    for i in range(n):
        for j in range(c):
            if j == y[i]:
                continue
            margin = scores[i, j] - scores[i, y[i]] + 1
            if margin > 0:
                loss += margin
                dscores[i, j] += 1
                dscores[i, y[i]] -= 1
    return loss / n, dscores / n


def _binary_setup(name, v, y):
    v, y = f64(v), f64(y)
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
    return float(loss), (sigmoid(z) - y) / n


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
    w = f64(w)
    return float(0.5 * reg * np.sum(w * w)), reg * w


# The normalisation and dropout twins live in `norm`, the recurrent ones in `rnn`, the sequence
# layers in `sequence` and attention in `attention`; `layers` is the one namespace of every pair.
from reference_numpy.norm import *  # noqa: E402, F401, F403
from reference_numpy.norm import __all__ as _norm_names  # noqa: E402
from reference_numpy.rnn import *  # noqa: E402, F401, F403
from reference_numpy.rnn import __all__ as _rnn_names  # noqa: E402
from reference_numpy.sequence import *  # noqa: E402, F401, F403
from reference_numpy.sequence import __all__ as _sequence_names  # noqa: E402
from reference_numpy.attention import *  # noqa: E402, F401, F403
from reference_numpy.attention import __all__ as _attention_names  # noqa: E402

__all__ += _norm_names + _rnn_names + _sequence_names + _attention_names
