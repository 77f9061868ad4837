"""The gated recurrent unit (Cho et al. 2014), one step and a sequence, in PyTorch's convention
(`torch.nn.GRU`), so weights carry over: Wx = weight_ih.T (D, 3H), Wh = weight_hh.T (H, 3H),
b = bias_ih (3H,), bh = bias_hh (3H,), gates r, z, n in that order along the 3H axis:

    r = sigmoid(x Wx_r + b_r + h Wh_r + bh_r)          reset gate
    z = sigmoid(x Wx_z + b_z + h Wh_z + bh_z)          update gate
    n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n))       candidate (the reset gate inside)
    h' = (1 - z) * n + z * h

z = 1 keeps the old state. The hidden bias of n sits inside the reset product, which is why
PyTorch keeps two biases (for r and z they simply add). cs231n has no GRU; the names and
return orders follow its RNN and LSTM (`gru_step_forward(x, prev_h, Wx, Wh, b, bh)`, ...).
"""
import jax
import jax.numpy as jnp
from jax import lax

from jaxnets.ops.dense import weight_gradient
from jaxnets.ops.rnn import check_recurrent, previous_states, sequence_weight_gradients, time_major
from jaxnets.ops.vjp import manual_vjp

__all__ = ["gru_step_forward", "gru_step_backward", "gru_forward", "gru_backward"]


def gru_gates(ax, ah, prev_h):
    """(next_h, r, z, n) from the input and hidden pre-activations ax, ah (..., 3H)."""
    axr, axz, axn = jnp.split(ax, 3, axis=-1)
    ahr, ahz, ahn = jnp.split(ah, 3, axis=-1)
    r = jax.nn.sigmoid(axr + ahr)
    z = jax.nn.sigmoid(axz + ahz)
    n = jnp.tanh(axn + r * ahn)
    return (1 - z) * n + z * prev_h, r, z, n


def gru_cell_backward(dnext_h, prev_h, r, z, n, ahn):
    """(dax, dah, dprev_h through z) for gru_gates; see gru_step_backward."""
    dan = dnext_h * (1 - z) * (1 - n * n)
    dar = dan * ahn * r * (1 - r)
    daz = dnext_h * (prev_h - n) * z * (1 - z)
    return (jnp.concatenate([dar, daz, dan], axis=-1), jnp.concatenate([dar, daz, dan * r], axis=-1),
            dnext_h * z)


def gru_step_forward(x, prev_h, Wx, Wh, b, bh):
    """One GRU step (module docstring). Returns `(next_h, cache)`."""
    check_recurrent("gru_step_forward", x, prev_h, Wx, Wh, (b, bh), 3, seq=False)
    ah = prev_h @ Wh + bh
    next_h, r, z, n = gru_gates(x @ Wx + b, ah, prev_h)
    return next_h, (x, prev_h, Wx, Wh, r, z, n, jnp.split(ah, 3, axis=-1)[2])


def gru_step_backward(dnext_h, cache):
    """Return `(dx, dprev_h, dWx, dWh, db, dbh)` for gru_step_forward.

    Chain rule through h' = (1 - z) n + z h (Cho et al. 2014, PyTorch's gate convention):
    dn = dh' (1 - z), dz = dh' (h - n), and h gets dh' z directly;
    dan = dn (1 - n^2) (tanh'), so dax_n = dan, dah_n = dan * r and dr = dan * ah_n;
    dar = dr r (1 - r), daz = dz z (1 - z) (sigmoid'), the same for ax and ah;
    dx = dax Wx^T, dprev_h = dah Wh^T + dh' z, dWx = x^T dax, dWh = prev_h^T dah,
    db = sum_n dax, dbh = sum_n dah.
    """
    x, prev_h, Wx, Wh, r, z, n, ahn = cache
    dax, dah, dh_direct = gru_cell_backward(dnext_h, prev_h, r, z, n, ahn)
    return (dax @ Wx.T, dah @ Wh.T + dh_direct, weight_gradient(x, dax), weight_gradient(prev_h, dah),
            jnp.sum(dax, axis=0), jnp.sum(dah, axis=0))


def gru_forward(x, h0, Wx, Wh, b, bh):
    """A GRU over x (N, T, D) from h0 (N, H): h (N, T, H). Returns `(h, cache)`."""
    check_recurrent("gru_forward", x, h0, Wx, Wh, (b, bh), 3, seq=True)

    def step(prev_h, ax_t):
        ah = prev_h @ Wh + bh
        next_h, r, z, n = gru_gates(ax_t, ah, prev_h)
        return next_h, (next_h, jnp.concatenate([r, z, n, jnp.split(ah, 3, axis=-1)[2]], axis=-1))

    _, (hs, acts) = lax.scan(step, h0, time_major(x) @ Wx + b)
    h = time_major(hs)
    return h, (x, h0, Wx, Wh, h, acts)


def gru_backward(dh, cache):
    """Return `(dx, dh0, dWx, dWh, db, dbh)` for gru_forward.

    Backprop through time as for the RNN (cs231n's rnn_backward): gru_step_backward at
    t = T-1 .. 0 with dnext_h = dh_t + dprev_h(t+1); the weight gradients sum over the steps.
    The arrays stay time-major (T, N, 3H), as in the rnn module.
    """
    x, h0, Wx, Wh, h, acts = cache

    def step(dprev_h, inputs):
        dh_t, prev_h, act = inputs
        r, z, n, ahn = jnp.split(act, 4, axis=-1)
        dax, dah, dh_direct = gru_cell_backward(dh_t + dprev_h, prev_h, r, z, n, ahn)
        return dah @ Wh.T + dh_direct, (dax, dah)

    prev_h = previous_states(h0, time_major(h), time_axis=0)
    dh0, (dax, dah) = lax.scan(step, jnp.zeros_like(h0), (time_major(dh), prev_h, acts), reverse=True)
    dWx, dWh, db, dbh = sequence_weight_gradients(time_major(x), prev_h, dax, dah)
    return time_major(dax @ Wx.T), dh0, dWx, dWh, db, dbh


LAYERS = {
    "gru_step": (gru_step_forward, manual_vjp(gru_step_forward, gru_step_backward)),
    "gru": (gru_forward, manual_vjp(gru_forward, gru_backward)),
}
