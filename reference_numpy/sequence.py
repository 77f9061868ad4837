"""Word embeddings, the temporal affine layer and the temporal softmax loss in NumPy float64,
the twins of `jaxnets.ops.sequence` (re-exported by `reference_numpy.layers`)."""
import numpy as np

from reference_numpy.checks import check_dout, f64

__all__ = [
    "word_embedding_forward", "word_embedding_backward",
    "temporal_affine_forward", "temporal_affine_backward",
    "last_step_forward", "last_step_backward", "positional_embedding_forward", "positional_embedding_backward",
    "temporal_softmax_loss",
]


def _indices(name, what, a, upper):
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name}: {what} must be integers, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= upper):
        raise ValueError(f"{name}: {what} out of range 0..{upper - 1} (min {a.min()}, max {a.max()})")
    return a


def word_embedding_forward(x, W):
    """out[n, t] = W[x[n, t]]; x (N, T) integers in 0..V-1, W (V, D); cache = (x, V)."""
    W = f64(W)
    if W.ndim != 2:
        raise ValueError(f"word_embedding_forward: W must be (V, D), got shape {W.shape}")
    x = _indices("word_embedding_forward", "x (word indices)", x, W.shape[0])
    return W[x], (x, W.shape)


def word_embedding_backward(dout, cache):
    """dW = sum of dout over the positions of each word: np.add.at (cs231n's hint), which adds
    at repeated indices where `dW[x] += dout` would keep only one of them."""
    x, shape = cache
    dout = f64(dout)
    check_dout("word_embedding_backward", dout, x.shape + shape[1:])
    dW = np.zeros(shape)
    np.add.at(dW, x, dout)
    return dW


def temporal_affine_forward(x, w, b):
    """out = x w + b at every step: x (N, T, D), w (D, M), b (M,) -> (N, T, M); cache = (x, w)."""
    x, w, b = f64(x), f64(w), f64(b)
    if x.ndim != 3 or w.ndim != 2 or w.shape[0] != x.shape[2] or b.shape != (w.shape[1],):
        raise ValueError(f"temporal_affine_forward: need x (N, T, D), w (D, M), b (M,); got {x.shape}, {w.shape}, {b.shape}")
    n, t, d = x.shape
    return (x.reshape(n * t, d) @ w + b).reshape(n, t, -1), (x, w)


def temporal_affine_backward(dout, cache):
    """The affine backward on the N*T rows: dx = dout w^T, dw = x^T dout, db = sum dout."""
    x, w = cache
    dout = f64(dout)
    n, t, d = x.shape
    check_dout("temporal_affine_backward", dout, (n, t, w.shape[1]))
    dout2 = dout.reshape(n * t, -1)
    return (dout2 @ w.T).reshape(x.shape), x.reshape(n * t, d).T @ dout2, dout2.sum(axis=0)


def positional_embedding_forward(x, W):
    """out[:, t] = x[:, t] + W[t] for x (N, T, D), W (P >= T, D); cache = (T, P)."""
    x, W = f64(x), f64(W)
    if x.ndim != 3 or W.ndim != 2 or W.shape[1] != x.shape[2] or W.shape[0] < x.shape[1]:
        raise ValueError(f"positional_embedding_forward: need x (N, T, D) and W (P >= T, D); got {x.shape} and {W.shape}")
    return x + W[:x.shape[1]], W.shape


def positional_embedding_backward(dout, shape):
    """dx = dout; dW[t] = sum_n dout[n, t] for t < T, 0 beyond."""
    dout = f64(dout)
    dW = np.zeros(shape)
    for t in range(dout.shape[1]):  # row by row: each position's gradient from every sequence
        dW[t] = dout[:, t].sum(axis=0)
    return dout.copy(), dW


def last_step_forward(h):
    """out = h[:, -1] for h (N, T, H); cache = h's shape."""
    h = f64(h)
    if h.ndim != 3 or h.shape[1] < 1:
        raise ValueError(f"last_step_forward: h must be (N, T, H) with T >= 1, got shape {h.shape}")
    return h[:, -1].copy(), h.shape


def last_step_backward(dout, shape):
    """dh: dout at the last step, zeros elsewhere."""
    dout = f64(dout)
    check_dout("last_step_backward", dout, (shape[0], shape[2]))
    dh = np.zeros(shape)
    dh[:, -1] = dout
    return dh


def temporal_softmax_loss(x, y, mask):
    """cs231n's temporal softmax loss: cross-entropy at each step where mask is True, summed
    over time and divided by N; returns (loss, dx).

    x (N, T, V), y (N, T) integers in 0..V-1, mask (N, T) boolean.
    dx[n, t] = mask[n, t] (softmax(x[n, t]) - onehot(y[n, t])) / N.
    """
    x = f64(x)
    name = "temporal_softmax_loss"
    if x.ndim != 3:
        raise ValueError(f"{name}: x must be (N, T, V), got shape {x.shape}")
    n, t, v = x.shape
    y = _indices(name, "y (targets)", y, v)
    mask = np.asarray(mask)
    if y.shape != (n, t) or mask.shape != (n, t):
        raise ValueError(f"{name}: y and mask must be ({n}, {t}), got {y.shape} and {mask.shape}")
    if mask.dtype != np.bool_:
        raise ValueError(f"{name}: mask must be boolean, got dtype {mask.dtype}")
    flat = x.reshape(n * t, v)
    rows, yf, mf = np.arange(n * t), y.reshape(-1), mask.reshape(-1)
    shifted = flat - flat.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.sum(log_probs[rows, yf][mf]) / n
    dx = np.exp(log_probs)
    dx[rows, yf] -= 1.0
    dx *= mf[:, None] / n
    return float(loss), dx.reshape(n, t, v)
