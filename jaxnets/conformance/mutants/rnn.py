"""Planted mistakes in the RNN's and the LSTM's backwards: backprop through time without the
carried dh or dc, the LSTM's g gate differentiated as a sigmoid, dWh from the state the step
produced."""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from jaxnets.conformance.mutants.mutant import Mutant
from jaxnets.ops.dense import weight_gradient
from jaxnets.ops.rnn import lstm_cell_backward, previous_states, sequence_weight_gradients, time_major


def rnn_backward_dh_not_carried(dh, cache):
    x, h0, Wx, Wh, h = cache

    def step(dprev_h, inputs):
        dh_t, h_t = inputs
        da = dh_t * (1 - h_t * h_t)  # the gradient carried back from step t + 1 (dprev_h) is dropped
        return da @ Wh.T, da

    dh0, das = lax.scan(step, jnp.zeros_like(h0), (time_major(dh), time_major(h)), reverse=True)
    da = time_major(das)
    dWx, dWh, db, _ = sequence_weight_gradients(x, previous_states(h0, h), da, da)
    return da @ Wx.T, dh0, dWx, dWh, db


def lstm_step_backward_g_with_sigmoid_derivative(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1 - tanh_c * tanh_c)
    da = jnp.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * tanh_c * o * (1 - o),
                          dc * i * g * (1 - g)], axis=-1)  # g = tanh(a_g) differentiated as a sigmoid
    return (da @ Wx.T, da @ Wh.T, dc * f, weight_gradient(x, da), weight_gradient(prev_h, da),
            jnp.sum(da, axis=0))


def rnn_step_backward_dWh_from_next_h(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h * next_h)
    # dWh = next_h^T da: the state the step produced instead of the one it read
    return da @ Wx.T, da @ Wh.T, weight_gradient(x, da), weight_gradient(next_h, da), jnp.sum(da, axis=0)


def lstm_backward_cell_gradient_not_carried(dh, cache):
    x, h0, Wx, Wh, h, cs, acts = cache
    prev_cs = jnp.concatenate([jnp.zeros_like(cs[:1]), cs[:-1]], axis=0)

    def step(carry, inputs):
        dprev_h, dprev_c = carry
        dh_t, c, prev_c, act = inputs
        i, f, o, g = jnp.split(act, 4, axis=-1)
        da, dc = lstm_cell_backward(dh_t + dprev_h, jnp.zeros_like(dprev_c), prev_c, i, f, o, g, jnp.tanh(c))
        return (da @ Wh.T, dc), da  # dprev_c computed but never fed into the next step

    zeros = jnp.zeros_like(h0)
    (dh0, _), das = lax.scan(step, (zeros, zeros), (time_major(dh), cs, prev_cs, acts), reverse=True)
    da = time_major(das)
    dWx, dWh, db, _ = sequence_weight_gradients(x, previous_states(h0, h), da, da)
    return da @ Wx.T, dh0, dWx, dWh, db


PLANTED = (
    Mutant("rnn_bptt_dh_not_carried", "rnn", rnn_backward_dh_not_carried,
           "backprop through time without the gradient carried from step t + 1: da_t = dh_t (1 - h_t^2)"),
    Mutant("lstm_g_gate_sigmoid_derivative", "lstm_step", lstm_step_backward_g_with_sigmoid_derivative,
           "the block input g = tanh(a_g) differentiated with sigmoid's g (1 - g) instead of 1 - g^2"),
    Mutant("rnn_step_dWh_from_next_h", "rnn_step", rnn_step_backward_dWh_from_next_h,
           "dWh = next_h^T da instead of prev_h^T da"),
    Mutant("lstm_bptt_cell_gradient_not_carried", "lstm", lstm_backward_cell_gradient_not_carried,
           "backprop through time carries dh but not dc: dnext_c = 0 at every step"),
)
