"""Recurrent layers in NumPy float64, the twins of `jaxnets.ops.rnn` and `jaxnets.ops.gru`
(same names, signatures and return orders; re-exported by `reference_numpy.layers`).

Written as cs231n assignment 3 sets them: the sequence forwards loop over time calling the
step forward and keep the list of step caches; the sequence backwards loop back over time
calling the step backward with dnext_h = dh[:, t] + the dprev_h of step t + 1, and add up the
steps' weight gradients. (jaxnets hoists the input products out of the time loop and forms
the weight gradients in one product each: a different order of the same sums.)
"""
import numpy as np

from reference_numpy.checks import check_dout, f64

__all__ = [
    "sigmoid",
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "gru_step_forward", "gru_step_backward", "gru_forward", "gru_backward",
]


def sigmoid(x):
    """cs231n's numerically stable logistic sigmoid: exp only of -|x|, so nothing overflows."""
    x = f64(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check(name, x, h, Wx, Wh, biases, gates, seq):
    if x.ndim != (3 if seq else 2) or h.ndim != 2 or h.shape[0] != x.shape[0]:
        raise ValueError(f"{name}: need x {'(N, T, D)' if seq else '(N, D)'} and h (N, H), got {x.shape}, {h.shape}")
    if seq and x.shape[1] == 0:
        raise ValueError(f"{name}: x has no time steps (shape {x.shape})")
    g = gates * h.shape[1]
    if Wx.shape != (x.shape[-1], g) or Wh.shape != (h.shape[1], g) or any(bb.shape != (g,) for bb in biases):
        raise ValueError(f"{name}: need Wx ({x.shape[-1]}, {g}), Wh ({h.shape[1]}, {g}), biases ({g},); "
                         f"got {Wx.shape}, {Wh.shape}, {[bb.shape for bb in biases]}")


def _loop_forward(step, x, h0, params):
    """h (N, T, H) and the step caches from `step(x_t, prev_h, *params) -> (next_h, cache)`."""
    n, t, _ = x.shape
    h = np.zeros((n, t, h0.shape[1]))
    caches, prev_h = [], h0
    for s in range(t):
        prev_h, cache = step(x[:, s], prev_h, *params)
        h[:, s] = prev_h
        caches.append(cache)
    return h, caches


def _loop_backward(step_backward, dh, caches, d):
    """(dx, dh0, summed parameter gradients) from `step_backward(dnext_h, cache) -> (dx,
    dprev_h, *dparams)`, dnext_h = dh[:, t] + the dprev_h carried from step t + 1."""
    n, t, hidden = dh.shape
    dx = np.zeros((n, t, d))
    dprev_h, dparams = np.zeros((n, hidden)), None
    for s in reversed(range(t)):
        dx[:, s], dprev_h, *grads = step_backward(dh[:, s] + dprev_h, caches[s])
        dparams = grads if dparams is None else [a + g for a, g in zip(dparams, grads)]
    return (dx, dprev_h, *dparams)


# --------------------------------------------------------------------------- vanilla RNN

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """next_h = tanh(x Wx + prev_h Wh + b); cache = (x, prev_h, Wx, Wh, next_h)."""
    x, prev_h, Wx, Wh, b = map(f64, (x, prev_h, Wx, Wh, b))
    _check("rnn_step_forward", x, prev_h, Wx, Wh, (b,), 1, False)
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """dz = dnext_h (1 - next_h^2) (tanh' from the output); dx = dz Wx^T, dprev_h = dz Wh^T,
    dWx = x^T dz, dWh = prev_h^T dz, db = sum_n dz."""
    x, prev_h, Wx, Wh, next_h = cache
    dnext_h = f64(dnext_h)
    check_dout("rnn_step_backward", dnext_h, next_h.shape)
    dz = dnext_h * (1.0 - next_h ** 2)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    x, h0 = f64(x), f64(h0)
    _check("rnn_forward", x, h0, f64(Wx), f64(Wh), (f64(b),), 1, True)
    return _loop_forward(rnn_step_forward, x, h0, (Wx, Wh, b))


def rnn_backward(dh, cache):
    dh = f64(dh)
    return _loop_backward(rnn_step_backward, dh, cache, cache[0][0].shape[1])


# --------------------------------------------------------------------------- LSTM

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """a = x Wx + prev_h Wh + b split into i, f, o, g (sigmoid x3, tanh);
    next_c = f prev_c + i g, next_h = o tanh(next_c)."""
    x, prev_h, prev_c, Wx, Wh, b = map(f64, (x, prev_h, prev_c, Wx, Wh, b))
    _check("lstm_step_forward", x, prev_h, Wx, Wh, (b,), 4, False)
    if prev_c.shape != prev_h.shape:
        raise ValueError(f"lstm_step_forward: prev_c {prev_c.shape} and prev_h {prev_h.shape} differ")
    hidden = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = (sigmoid(a[:, k * hidden:(k + 1) * hidden]) for k in range(3))
    g = np.tanh(a[:, 3 * hidden:])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Node by node: next_h = o * t with t = tanh(next_c): do = dnext_h t, dt = dnext_h o;
    dc = dnext_c + dt (1 - t^2); next_c = f prev_c + i g: df = dc prev_c, dprev_c = dc f,
    di = dc g, dg = dc i; through the nonlinearities s' = s (1 - s), tanh' = 1 - g^2."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    dnext_h, dnext_c = f64(dnext_h), f64(dnext_c)
    check_dout("lstm_step_backward", dnext_h, prev_h.shape)
    check_dout("lstm_step_backward", dnext_c, prev_h.shape)
    t = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1.0 - t ** 2)  # a new array: the caller's dnext_c is not changed
    da = np.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * t * o * (1 - o),
                         dc * i * (1 - g ** 2)], axis=1)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """The LSTM over time from h0 and c0 = 0 (cs231n); the cell states stay in the caches."""
    x, h0 = f64(x), f64(h0)
    _check("lstm_forward", x, h0, f64(Wx), f64(Wh), (f64(b),), 4, True)
    n, t, _ = x.shape
    h = np.zeros((n, t, h0.shape[1]))
    caches, prev_h, prev_c = [], h0, np.zeros_like(h0)
    for s in range(t):
        prev_h, prev_c, cache = lstm_step_forward(x[:, s], prev_h, prev_c, Wx, Wh, b)
        h[:, s] = prev_h
        caches.append(cache)
    return h, caches


def lstm_backward(dh, cache):
    """lstm_step_backward from t = T-1 down, carrying dprev_h into dnext_h (added to dh[:, t])
    and dprev_c into dnext_c; the weight gradients summed over the steps."""
    dh = f64(dh)
    n, t, hidden = dh.shape
    dx = np.zeros((n, t, cache[0][0].shape[1]))
    dprev_h, dprev_c, dparams = np.zeros((n, hidden)), np.zeros((n, hidden)), None
    for s in reversed(range(t)):
        dx[:, s], dprev_h, dprev_c, *grads = lstm_step_backward(dh[:, s] + dprev_h, dprev_c, cache[s])
        dparams = grads if dparams is None else [a + g for a, g in zip(dparams, grads)]
    return (dx, dprev_h, *dparams)


# --------------------------------------------------------------------------- GRU

def gru_step_forward(x, prev_h, Wx, Wh, b, bh):
    """PyTorch's GRU: r = s(x Wx_r + b_r + h Wh_r + bh_r), z likewise, n = tanh(x Wx_n + b_n +
    r (h Wh_n + bh_n)), next_h = (1 - z) n + z h; gates r, z, n along the 3H axis."""
    x, prev_h, Wx, Wh, b, bh = map(f64, (x, prev_h, Wx, Wh, b, bh))
    _check("gru_step_forward", x, prev_h, Wx, Wh, (b, bh), 3, False)
    hidden = prev_h.shape[1]
    ax, ah = x @ Wx + b, prev_h @ Wh + bh
    r = sigmoid(ax[:, :hidden] + ah[:, :hidden])
    z = sigmoid(ax[:, hidden:2 * hidden] + ah[:, hidden:2 * hidden])
    hn = ah[:, 2 * hidden:]
    n = np.tanh(ax[:, 2 * hidden:] + r * hn)
    next_h = (1 - z) * n + z * prev_h
    return next_h, (x, prev_h, Wx, Wh, r, z, n, hn)


def gru_step_backward(dnext_h, cache):
    """Node by node: next_h = (1 - z) n + z h: dn = dnext_h (1 - z), dz = dnext_h (h - n),
    dh_direct = dnext_h z; n = tanh(an), an = ax_n + r hn: dan = dn (1 - n^2), dr = dan hn,
    dhn = dan r; r, z = sigmoid: dar = dr r (1 - r), daz = dz z (1 - z)."""
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    dnext_h = f64(dnext_h)
    check_dout("gru_step_backward", dnext_h, prev_h.shape)
    dn = dnext_h * (1 - z)
    dz = dnext_h * (prev_h - n)
    dan = dn * (1 - n ** 2)
    dar = dan * hn * r * (1 - r)
    daz = dz * z * (1 - z)
    dax = np.concatenate([dar, daz, dan], axis=1)
    dah = np.concatenate([dar, daz, dan * r], axis=1)
    return dax @ Wx.T, dah @ Wh.T + dnext_h * z, x.T @ dax, prev_h.T @ dah, dax.sum(axis=0), dah.sum(axis=0)


def gru_forward(x, h0, Wx, Wh, b, bh):
    x, h0 = f64(x), f64(h0)
    _check("gru_forward", x, h0, f64(Wx), f64(Wh), (f64(b), f64(bh)), 3, True)
    return _loop_forward(gru_step_forward, x, h0, (Wx, Wh, b, bh))


def gru_backward(dh, cache):
    dh = f64(dh)
    return _loop_backward(gru_step_backward, dh, cache, cache[0][0].shape[1])
