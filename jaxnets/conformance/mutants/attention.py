"""Planted mistakes in attention's backwards: the softmax backward without its row sum, the
1 / sqrt(d) or the causal mask forgotten, multi-head's heads split without a transpose, the
transformer block's MLP residual path dropped."""
from __future__ import annotations

import math

import jax.numpy as jnp

from jaxnets.conformance.mutants.mutant import Mutant
from jaxnets.ops.attention import (ACTIVATIONS, attention_backward, masked_softmax, merge_heads,
                                   multihead_attention_backward, visible_keys)
from jaxnets.ops.norm import layernorm_backward
from jaxnets.ops.sequence import temporal_affine_backward


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


PLANTED = (
    Mutant("attention_softmax_without_row_sum", "attention", attention_backward_without_row_sum,
           "softmax backward ds = p * dp, without the - sum_j p_j dp_j term"),
    Mutant("attention_scale_forgotten_in_backward", "attention", attention_backward_unscaled,
           "dq = ds k and dk = ds^T q without the forward's 1 / sqrt(d)"),
    Mutant("attention_causal_mask_forgotten_in_backward", "attention", attention_backward_causal_mask_forgotten,
           "p rebuilt in the backward without the causal mask"),
    Mutant("multihead_heads_not_transposed", "multihead_attention", multihead_attention_backward_heads_not_transposed,
           "dout split into heads by a bare reshape (N, T, E) -> (N, heads, T, E / heads), no transpose"),
    Mutant("transformer_mlp_residual_dropped", "transformer_block", transformer_block_backward_mlp_residual_dropped,
           "out = h + MLP(h) differentiated as MLP(h): the residual path's gradient dropped"),
)
