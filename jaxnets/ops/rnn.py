"""Recurrent layers of cs231n assignment 3: the vanilla (tanh) RNN and the LSTM, one time step
and a whole sequence, with cs231n's names, signatures and return orders.

Row layout as everywhere: x_t (N, D), h_t (N, H), Wx (D, G*H), Wh (H, G*H), b (G*H,) with
G = 1 (RNN) or 4 (LSTM, gates i, f, o, g along the 4H axis, cs231n's order). A sequence is
x (N, T, D) -> h (N, T, H), run over time with `lax.scan`; the LSTM starts from c0 = 0.

The sequence forms do the input products x_t Wx of all time steps in one matmul before the
scan (they do not depend on h), and their backwards scan only the recurrence (backprop
through time: the gradient reaching h_{t-1} is carried from step t) and then form dx, dWx,
dWh and db as single products over all N*T rows, instead of T small ones. Everything wide
stays time-major (T, N, G*H), the order the scan reads and writes: x (D wide) is transposed
before its product, dx after its own, and h and dh (H wide) once each; the gate arrays (4H
wide) are never transposed (XLA:CPU wrote each transpose out: three (T, N, 4H) copies in the
compiled LSTM pair, issue 29), as the weight gradients sum over the rows in any order.
"""
import jax
import jax.numpy as jnp
from jax import lax

from jaxnets.ops.dense import weight_gradient
from jaxnets.ops.vjp import manual_vjp

__all__ = [
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "rnn_through_time", "lstm_through_time",
]


def check_recurrent(name, x, h, Wx, Wh, biases, gates, seq):
    """ValueError naming the first argument whose shape does not fit
    x (N, D) or (N, T, D) when `seq`, h (N, H), Wx (D, gates*H), Wh (H, gates*H) and
    each bias (gates*H,)."""
    if x.ndim != (3 if seq else 2):
        raise ValueError(f"{name}: x must be {'(N, T, D)' if seq else '(N, D)'}, got shape {x.shape}")
    if seq and x.shape[1] == 0:
        raise ValueError(f"{name}: x has no time steps (shape {x.shape})")
    if h.ndim != 2 or h.shape[0] != x.shape[0]:
        raise ValueError(f"{name}: the hidden state must be (N, H) with N = {x.shape[0]}, got shape {h.shape}")
    hidden = h.shape[1]
    g = gates * hidden
    if Wx.shape != (x.shape[-1], g):
        raise ValueError(f"{name}: Wx must be ({x.shape[-1]}, {g}) for D = {x.shape[-1]}, H = {hidden}, "
                         f"got {Wx.shape}")
    if Wh.shape != (hidden, g):
        raise ValueError(f"{name}: Wh must be ({hidden}, {g}) for H = {hidden}, got {Wh.shape}")
    for bias in biases:
        if bias.shape != (g,):
            raise ValueError(f"{name}: biases must be ({g},), got {bias.shape}")


def time_major(a):
    """(N, T, ...) <-> (T, N, ...): lax.scan runs over the leading axis."""
    return jnp.swapaxes(a, 0, 1)


def previous_states(h0, h, time_axis=1):
    """The states h_{t-1} for t = 0..T-1: h0, then h_0 .. h_{T-2}; h (N, T, H), or time-major
    (T, N, H) with time_axis=0."""
    return jnp.concatenate([jnp.expand_dims(h0, time_axis), lax.slice_in_dim(h, 0, -1, axis=time_axis)],
                           axis=time_axis)


def sequence_weight_gradients(x, prev_h, dax, dah):
    """(dWx, dWh, dbx, dbh) from the pre-activation gradients of every step, dax on the input
    side and dah on the hidden side (N, T, G*H) (the same array except in the GRU):
    dWx = sum_t x_t^T dax_t, dWh = sum_t h_{t-1}^T dah_t, dbx and dbh their sums over t and n;
    each one product over the N*T rows. The sums do not depend on the rows' order, so the four
    may as well all be time-major (T, N, ...)."""
    rows = x.shape[0] * x.shape[1]
    dax2, dah2 = dax.reshape(rows, -1), dah.reshape(rows, -1)
    return (weight_gradient(x.reshape(rows, -1), dax2), weight_gradient(prev_h.reshape(rows, -1), dah2),
            jnp.sum(dax2, axis=0), jnp.sum(dah2, axis=0))


# ----------------------------------------------------------------------------- vanilla RNN

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One tanh RNN step: next_h = tanh(x Wx + prev_h Wh + b). Returns `(next_h, cache)`."""
    check_recurrent("rnn_step_forward", x, prev_h, Wx, Wh, (b,), 1, seq=False)
    next_h = jnp.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Return `(dx, dprev_h, dWx, dWh, db)` for rnn_step_forward.

    cs231n assignment 3 (RNN step backward), tanh' written with the output:
    da = dnext_h * (1 - next_h^2); dx = da Wx^T, dprev_h = da Wh^T, dWx = x^T da,
    dWh = prev_h^T da, db = sum_n da.
    """
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h * next_h)
    return da @ Wx.T, da @ Wh.T, weight_gradient(x, da), weight_gradient(prev_h, da), jnp.sum(da, axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """A tanh RNN over x (N, T, D) from h0 (N, H): h (N, T, H), h_t = tanh(x_t Wx + h_{t-1} Wh
    + b). Returns `(h, cache)`."""
    check_recurrent("rnn_forward", x, h0, Wx, Wh, (b,), 1, seq=True)

    def step(prev_h, ax_t):
        next_h = jnp.tanh(ax_t + prev_h @ Wh)
        return next_h, next_h

    _, hs = lax.scan(step, h0, time_major(x) @ Wx + b)
    h = time_major(hs)
    return h, (x, h0, Wx, Wh, h)


def rnn_backward(dh, cache):
    """Return `(dx, dh0, dWx, dWh, db)` for rnn_forward; dh (N, T, H) is the upstream gradient
    of every h_t (from the layers above, not yet the one carried between steps).

    cs231n assignment 3 (rnn_backward), backprop through time: h_t feeds the loss directly and
    through h_{t+1}, so the gradient at step t is dh_t + dprev_h(t+1), and
    da_t = (dh_t + da_{t+1} Wh^T) (1 - h_t^2) for t = T-1 .. 0 (nothing carried into T-1);
    dh0 = da_0 Wh^T; the weight gradients sum the steps' (rnn_step_backward's) shares.
    """
    x, h0, Wx, Wh, h = cache
    _, da, dh0 = rnn_through_time(dh, cache)
    dx, dWx, dWh, db = through_time_gradients(x, h0, Wx, time_major(h), da)
    return dx, dh0, dWx, dWh, db


def rnn_through_time(dh, cache):
    """The backward scan of rnn_backward: `(dnext_h, da, dh0)`, dnext_h and da time-major
    (T, N, H). dnext_h_t = dh_t + da_{t+1} Wh^T is the whole gradient dL/dh_t (what BPTT
    carries: the loss through h_t's own output and through every later step); da_t its
    pre-activation gradient. (Unused outputs of the scan are dropped by the compiler.)"""
    x, h0, Wx, Wh, h = cache

    def step(dprev_h, inputs):
        dh_t, h_t = inputs
        dnext_h = dh_t + dprev_h
        da = dnext_h * (1 - h_t * h_t)
        return da @ Wh.T, (dnext_h, da)

    dh0, (dnext_h, das) = lax.scan(step, jnp.zeros_like(h0), (time_major(dh), time_major(h)), reverse=True)
    return dnext_h, das, dh0


def through_time_gradients(x, h0, Wx, hs, da):
    """`(dx, dWx, dWh, db)` once the backward scan has left da (T, N, G*H), time-major:
    dx_t = da_t Wx^T (transposed back to (N, T, D)), dWx = sum_t x_t^T da_t,
    dWh = sum_t h_{t-1}^T da_t, db = sum_t sum_n da_t, the sums as single products over the
    N*T rows (time-major: hs (T, N, H) are the states h_t)."""
    dWx, dWh, db, _ = sequence_weight_gradients(time_major(x), previous_states(h0, hs, time_axis=0), da, da)
    return time_major(da @ Wx.T), dWx, dWh, db


# ----------------------------------------------------------------------------- LSTM

def lstm_gates(a):
    """(i, f, o, g) from the pre-activations a (..., 4H): sigmoid input, forget and output gates
    and the tanh block input, in cs231n's order along the last axis."""
    ai, af, ao, ag = jnp.split(a, 4, axis=-1)
    return jax.nn.sigmoid(ai), jax.nn.sigmoid(af), jax.nn.sigmoid(ao), jnp.tanh(ag)


def lstm_cell_backward(dh, dc, prev_c, i, f, o, g, tanh_c):
    """(da, dprev_c) through c = f prev_c + i g, h = o tanh(c), given the gradients dh, dc
    reaching h and c from above (see lstm_step_backward)."""
    dc = dc + dh * o * (1 - tanh_c * tanh_c)
    da = jnp.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dh * tanh_c * o * (1 - o),
                          dc * i * (1 - g * g)], axis=-1)
    return da, dc * f


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000):
    a = x Wx + prev_h Wh + b (N, 4H) split into i, f, o, g (sigmoid, sigmoid, sigmoid, tanh);
    next_c = f * prev_c + i * g, next_h = o * tanh(next_c). Returns `(next_h, next_c, cache)`."""
    check_recurrent("lstm_step_forward", x, prev_h, Wx, Wh, (b,), 4, seq=False)
    if prev_c.shape != prev_h.shape:
        raise ValueError(f"lstm_step_forward: prev_c must be {prev_h.shape} like prev_h, got {prev_c.shape}")
    i, f, o, g = lstm_gates(x @ Wx + prev_h @ Wh + b)
    next_c = f * prev_c + i * g
    tanh_c = jnp.tanh(next_c)
    return o * tanh_c, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Return `(dx, dprev_h, dprev_c, dWx, dWh, db)` for lstm_step_forward.

    cs231n assignment 3 (LSTM step backward), each gate's derivative in terms of its output:
    dc = dnext_c + dnext_h * o * (1 - tanh(c)^2) (c reaches the loss directly and through h);
    di = dc g, df = dc prev_c, do = dnext_h tanh(c), dg = dc i, dprev_c = dc f;
    da = [di i(1-i), df f(1-f), do o(1-o), dg (1-g^2)] (sigmoid' = s(1-s), tanh' = 1-t^2);
    then dx = da Wx^T, dprev_h = da Wh^T, dWx = x^T da, dWh = prev_h^T da, db = sum_n da.
    """
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    da, dprev_c = lstm_cell_backward(dnext_h, dnext_c, prev_c, i, f, o, g, tanh_c)
    return (da @ Wx.T, da @ Wh.T, dprev_c, weight_gradient(x, da), weight_gradient(prev_h, da),
            jnp.sum(da, axis=0))


def lstm_forward(x, h0, Wx, Wh, b):
    """An LSTM over x (N, T, D) from h0 (N, H) and c0 = 0 (cs231n): h (N, T, H); the cell
    states stay internal. Returns `(h, cache)`."""
    check_recurrent("lstm_forward", x, h0, Wx, Wh, (b,), 4, seq=True)

    def step(carry, ax_t):
        prev_h, prev_c = carry
        i, f, o, g = lstm_gates(ax_t + prev_h @ Wh)
        c = f * prev_c + i * g
        h = o * jnp.tanh(c)
        return (h, c), (h, c, jnp.concatenate([i, f, o, g], axis=-1))

    _, (hs, cs, acts) = lax.scan(step, (h0, jnp.zeros_like(h0)), time_major(x) @ Wx + b)
    h = time_major(hs)
    return h, (x, h0, Wx, Wh, h, cs, acts)


def lstm_backward(dh, cache):
    """Return `(dx, dh0, dWx, dWh, db)` for lstm_forward.

    cs231n assignment 3 (lstm_backward): lstm_step_backward at t = T-1 .. 0 with
    dnext_h = dh_t + dprev_h(t+1) and dnext_c = dprev_c(t+1) (both 0 after the last step):
    the cell state carries its own gradient through time, dprev_c = dc f. (c0 is a constant,
    so its gradient is dropped.)
    """
    x, h0, Wx, Wh, h, cs, acts = cache
    _, da, dh0 = lstm_through_time(dh, cache)
    dx, dWx, dWh, db = through_time_gradients(x, h0, Wx, time_major(h), da)
    return dx, dh0, dWx, dWh, db


def lstm_through_time(dh, cache):
    """The backward scan of lstm_backward: `(dnext_h, da, dh0)`, dnext_h (T, N, H) and da
    (T, N, 4H) time-major. dnext_h_t = dh_t + da_{t+1} Wh^T is the whole gradient dL/dh_t
    (what BPTT carries beside dL/dc_t); da_t the gates' pre-activation gradient. (Unused
    outputs of the scan are dropped by the compiler.)"""
    x, h0, Wx, Wh, h, cs, acts = cache
    prev_cs = jnp.concatenate([jnp.zeros_like(cs[:1]), cs[:-1]], axis=0)

    def step(carry, inputs):
        dprev_h, dprev_c = carry
        dh_t, c, prev_c, act = inputs
        i, f, o, g = jnp.split(act, 4, axis=-1)
        dnext_h = dh_t + dprev_h
        da, dc = lstm_cell_backward(dnext_h, dprev_c, prev_c, i, f, o, g, jnp.tanh(c))
        return (da @ Wh.T, dc), (dnext_h, da)

    zeros = jnp.zeros_like(h0)
    (dh0, _), (dnext_h, das) = lax.scan(step, (zeros, zeros), (time_major(dh), cs, prev_cs, acts), reverse=True)
    return dnext_h, das, dh0


LAYERS = {
    "rnn_step": (rnn_step_forward, manual_vjp(rnn_step_forward, rnn_step_backward)),
    "rnn": (rnn_forward, manual_vjp(rnn_forward, rnn_backward)),
    "lstm_step": (lstm_step_forward, manual_vjp(lstm_step_forward, lstm_step_backward, n_out=2)),
    "lstm": (lstm_forward, manual_vjp(lstm_forward, lstm_backward)),
}
