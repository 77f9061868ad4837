"""Planted mistakes in the sequence layers (issue 20): the slips of backprop through time,
gates, embeddings, masks and attention. Each is a modified copy of the correct `jaxnets.ops`
function with one mistake, in `mutants_cs231n.PLANTED`'s record format (name, op, function,
what is wrong); `mutants.MUTANTS` lists them with the others, and tests/test_mutants.py checks
that each is caught.
"""
import math

import jax.numpy as jnp
from jax import lax

from jax.scipy.special import erfc

from jaxnets.ops.attention import (ACTIVATIONS, attention_backward, masked_softmax, merge_heads,
                                   multihead_attention_backward, visible_keys)
from jaxnets.ops.dense import weight_gradient
from jaxnets.ops.norm import layernorm_backward
from jaxnets.ops.rnn import lstm_cell_backward, previous_states, sequence_weight_gradients, time_major
from jaxnets.ops.sequence import temporal_affine_backward


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


def word_embedding_backward_assigns(dout, cache):
    x, W = cache
    # .set: at a repeated index one position's gradient overwrites the others (dW[x] = dout)
    return jnp.zeros_like(W).at[jnp.asarray(x)].set(dout, mode="drop", wrap_negative_indices=False)


def temporal_softmax_loss_masked_in_forward_only(x, y, mask):
    n = x.shape[0]
    shifted = x - lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
    log_probs = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))
    onehot = jnp.eye(x.shape[-1], dtype=x.dtype)[y]
    loss = -jnp.sum(jnp.where(mask, jnp.sum(log_probs * onehot, axis=-1), 0)) / n
    dx = (jnp.exp(log_probs) - onehot) / n  # every step's gradient, the padded ones too
    return loss, dx


def _rebuilt(cache, causal=None):
    """(q / sqrt(d), p) as attention_backward rebuilds them; `causal` overrides the cache's."""
    q, k = cache.q, cache.k
    qs = q * (1 / math.sqrt(q.shape[-1]))
    causal = cache.causal if causal is None else causal
    return qs, masked_softmax(qs @ jnp.swapaxes(k, -1, -2), visible_keys(cache.mask, causal, q.shape[-2], k.shape[-2]))


def attention_backward_without_row_sum(dout, cache):
    qs, p = _rebuilt(cache)
    dv = jnp.swapaxes(p, -1, -2) @ dout
    ds = p * (dout @ jnp.swapaxes(cache.v, -1, -2))  # softmax backward as if dp_j -> ds_j = p_j dp_j
    scale = 1 / math.sqrt(cache.q.shape[-1])
    return (ds @ cache.k) * scale, jnp.swapaxes(ds, -1, -2) @ qs, dv


def attention_backward_unscaled(dout, cache):
    qs, p = _rebuilt(cache)
    dv = jnp.swapaxes(p, -1, -2) @ dout
    dp = dout @ jnp.swapaxes(cache.v, -1, -2)
    ds = p * (dp - jnp.sum(p * dp, axis=-1, keepdims=True))
    return ds @ cache.k, jnp.swapaxes(ds, -1, -2) @ cache.q, dv  # d(q k^T / sqrt d) without the 1 / sqrt(d)


def attention_backward_causal_mask_forgotten(dout, cache):
    qs, p = _rebuilt(cache, causal=False)  # p rebuilt with the padding mask only: future keys get weight
    dv = jnp.swapaxes(p, -1, -2) @ dout
    dp = dout @ jnp.swapaxes(cache.v, -1, -2)
    ds = p * (dp - jnp.sum(p * dp, axis=-1, keepdims=True))
    scale = 1 / math.sqrt(cache.q.shape[-1])
    return (ds @ cache.k) * scale, jnp.swapaxes(ds, -1, -2) @ qs, dv


def gru_step_backward_update_gate_swapped(dnext_h, cache):
    x, prev_h, Wx, Wh, r, z, n, ahn = cache
    # derived for h' = z n + (1 - z) h (the other paper's convention) while the forward is
    # PyTorch's h' = (1 - z) n + z h: z and 1 - z trade places
    dan = dnext_h * z * (1 - n * n)
    dar = dan * ahn * r * (1 - r)
    daz = dnext_h * (n - prev_h) * z * (1 - z)
    dax = jnp.concatenate([dar, daz, dan], axis=-1)
    dah = jnp.concatenate([dar, daz, dan * r], axis=-1)
    return (dax @ Wx.T, dah @ Wh.T + dnext_h * (1 - z), weight_gradient(x, dax), weight_gradient(prev_h, dah),
            jnp.sum(dax, axis=0), jnp.sum(dah, axis=0))


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


def temporal_affine_backward_db_per_step(dout, cache):
    x, w = cache
    rows = x.shape[0] * x.shape[1]
    dout2 = dout.reshape(rows, -1)
    return dout @ w.T, weight_gradient(x.reshape(rows, -1), dout2), jnp.sum(dout, axis=0)  # (T, M): not over t


def positional_embedding_backward_first_sequence(dout, cache):
    return dout, jnp.zeros_like(cache).at[:dout.shape[1]].set(dout[0])  # one sequence's, not the batch's sum


def last_step_backward_at_first_step(dout, cache):
    return jnp.zeros_like(cache).at[:, 0].set(dout)  # the gradient sent to step 0, not T - 1


def gelu_backward_without_product_rule(dout, cache):
    x = cache
    return dout * 0.5 * erfc(-x / math.sqrt(2))  # d(x Phi(x)) = Phi(x) + x phi(x): the x phi(x) forgotten


def multihead_attention_backward_heads_not_transposed(dout, cache):
    cache_q, cache_k, cache_v, cache_a, cache_o = cache
    heads = cache_a.q.shape[1]
    dmerged, dWo, dbo = temporal_affine_backward(dout, cache_o)
    n, t, e = dmerged.shape
    # (N, T, E) reshaped straight to (N, heads, T, E / heads): tokens and heads mixed up
    dQ, dK, dV = attention_backward(dmerged.reshape(n, heads, t, e // heads), cache_a)
    dquery, dWq, dbq = temporal_affine_backward(merge_heads(dQ), cache_q)
    dkey, dWk, dbk = temporal_affine_backward(merge_heads(dK), cache_k)
    dvalue, dWv, dbv = temporal_affine_backward(merge_heads(dV), cache_v)
    return dquery, dkey, dvalue, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo


def transformer_block_backward_mlp_residual_dropped(dout, cache):
    d = dout.shape[-1]
    dg, dW2, db2 = temporal_affine_backward(dout, cache.fc2)
    du = ACTIVATIONS[cache.activation][1](dg, cache.act)
    dz, dW1, db1 = temporal_affine_backward(du, cache.fc1)
    dh_mlp, dln2_gamma, dln2_beta = layernorm_backward(dz.reshape(-1, d), cache.ln2)
    dh = dh_mlp.reshape(dout.shape)  # out = h + MLP(h): the identity path's dout forgotten
    dquery, dkey, dvalue, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo = multihead_attention_backward(dh, cache.attn)
    dx_att, dln1_gamma, dln1_beta = layernorm_backward((dquery + dkey + dvalue).reshape(-1, d), cache.ln1)
    dx = dh + dx_att.reshape(dout.shape)
    return (dx, dln1_gamma, dln1_beta, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo, dln2_gamma, dln2_beta,
            dW1, db1, dW2, db2)


#: (name, op, function, what is wrong), as `mutants_cs231n.PLANTED`
PLANTED = (
    ("rnn_bptt_dh_not_carried", "rnn", rnn_backward_dh_not_carried,
     "backprop through time without the gradient carried from step t + 1: da_t = dh_t (1 - h_t^2)"),
    ("lstm_g_gate_sigmoid_derivative", "lstm_step", lstm_step_backward_g_with_sigmoid_derivative,
     "the block input g = tanh(a_g) differentiated with sigmoid's g (1 - g) instead of 1 - g^2"),
    ("embedding_backward_assigns", "word_embedding", word_embedding_backward_assigns,
     "dW[x] = dout (assignment): a word at several positions keeps one position's gradient"),
    ("temporal_loss_masked_in_forward_only", "temporal_softmax_loss", temporal_softmax_loss_masked_in_forward_only,
     "the mask applied to the loss but not to dx: padded steps still get gradient"),
    ("attention_softmax_without_row_sum", "attention", attention_backward_without_row_sum,
     "softmax backward ds = p * dp, without the - sum_j p_j dp_j term"),
    ("attention_scale_forgotten_in_backward", "attention", attention_backward_unscaled,
     "dq = ds k and dk = ds^T q without the forward's 1 / sqrt(d)"),
    ("attention_causal_mask_forgotten_in_backward", "attention", attention_backward_causal_mask_forgotten,
     "p rebuilt in the backward without the causal mask"),
    ("gru_update_gate_swapped", "gru_step", gru_step_backward_update_gate_swapped,
     "backward of h' = z n + (1 - z) h for PyTorch's h' = (1 - z) n + z h"),
    ("rnn_step_dWh_from_next_h", "rnn_step", rnn_step_backward_dWh_from_next_h,
     "dWh = next_h^T da instead of prev_h^T da"),
    ("lstm_bptt_cell_gradient_not_carried", "lstm", lstm_backward_cell_gradient_not_carried,
     "backprop through time carries dh but not dc: dnext_c = 0 at every step"),
    ("temporal_affine_db_per_step", "temporal_affine", temporal_affine_backward_db_per_step,
     "db summed over the batch only, one bias gradient per time step"),
    ("positional_gradient_from_one_sequence", "positional_embedding", positional_embedding_backward_first_sequence,
     "dW_pos[t] = dout[0, t]: the first sequence's gradient instead of the sum over the batch"),
    ("last_step_gradient_at_first_step", "last_step", last_step_backward_at_first_step,
     "dh[:, 0] = dout: the summary's gradient sent to the first step instead of the last"),
    ("gelu_without_product_rule", "gelu", gelu_backward_without_product_rule,
     "GELU' = Phi(x), the x phi(x) of the product rule forgotten"),
    ("multihead_heads_not_transposed", "multihead_attention", multihead_attention_backward_heads_not_transposed,
     "dout split into heads by a bare reshape (N, T, E) -> (N, heads, T, E / heads), no transpose"),
    ("transformer_mlp_residual_dropped", "transformer_block", transformer_block_backward_mlp_residual_dropped,
     "out = h + MLP(h) differentiated as MLP(h): the residual path's gradient dropped"),
)
