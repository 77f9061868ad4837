"""Attention ("Attention is all you need", Vaswani et al. 2017): scaled dot-product attention
with an optional causal and/or boolean mask, multi-head attention with its projections, and a
pre-norm transformer block, each a forward/backward pair.

Scaled dot-product attention of q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv):
    s = q k^T / sqrt(d),  p = softmax(s) over the keys a query may see,  out = p v.
Masks: `mask` is boolean, broadcastable to (..., Tq, Tk), True where query i may attend to
key j (a padding mask is (N, 1, Tk) or (N, 1, 1, Tk)); `causal=True` also hides the keys
j > i (top-left aligned, as PyTorch's is_causal, also when Tq != Tk). A query that may see no
key at all (a fully masked row) gets out = 0 and passes no gradient (PyTorch gives NaN).

The backward recomputes p from q, k and the masks instead of keeping the (..., Tq, Tk)
matrix: the cache holds only the inputs, as in FlashAttention (Dao et al. 2022), at the price
of one q k^T product more. That recomputation must apply the scale and the masks exactly as the
forward did (forgetting either is the classic slip; the suite plants both).
"""
import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from jaxnets.ops.activations import gelu_backward, gelu_forward, relu_backward, relu_forward
from jaxnets.ops.norm import layernorm_backward, layernorm_forward
from jaxnets.ops.sequence import temporal_affine_backward, temporal_affine_forward
from jaxnets.ops.vjp import manual_vjp
from netspec.stages import TRANSFORMER_BLOCK_PARAMS  # noqa: F401 - the block's argument order, declared once

__all__ = [
    "AttentionCache", "attention_forward", "attention_backward",
    "multihead_attention_forward", "multihead_attention_backward",
    "TRANSFORMER_BLOCK_PARAMS", "transformer_block_forward", "transformer_block_backward",
]


@partial(jax.tree_util.register_dataclass, data_fields=["q", "k", "v", "mask"],
         meta_fields=["causal"])
@dataclass(frozen=True)
class AttentionCache:
    """The inputs and the masks: what the backward needs to rebuild p."""

    q: jax.Array
    k: jax.Array
    v: jax.Array
    mask: jax.Array | None
    causal: bool


def visible_keys(mask, causal, tq, tk):
    """Boolean (..., Tq, Tk) of the keys each query may attend to, or None for all of them."""
    if not causal:
        return mask
    lower = jnp.tril(jnp.ones((tq, tk), dtype=bool))  # key j <= query i
    return lower if mask is None else mask & lower


def _check_attention(q, k, v, mask):
    name = "attention_forward"
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"{name}: q, k, v must be (..., T, d) with the same leading axes, "
                         f"got {q.shape}, {k.shape}, {v.shape}")
    if q.shape[:-2] != k.shape[:-2] or q.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"{name}: q, k, v have different leading (batch) axes: {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or q.shape[-1] == 0:
        raise ValueError(f"{name}: q and k need the same width d >= 1, got {q.shape} and {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{name}: k and v need the same number of keys, got {k.shape} and {v.shape}")
    if mask is not None:
        if mask.dtype != jnp.bool_:
            raise ValueError(f"{name}: mask must be boolean (True = may attend), got dtype {mask.dtype}")
        scores = q.shape[:-1] + (k.shape[-2],)
        try:
            fits = jnp.broadcast_shapes(mask.shape, scores) == scores
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{name}: mask {mask.shape} does not broadcast to the scores' shape {scores}")


def masked_softmax(s, visible):
    """softmax of the scores s (..., Tq, Tk) over each row's visible keys (None: all), 0 at
    the hidden ones; a row that sees no key gets p = 0."""
    if visible is not None:
        s = jnp.where(visible, s, -jnp.inf)
    # the row maximum does not change p; stop_gradient keeps autodiff off it
    m = jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))
    m = jnp.where(m > -jnp.inf, m, 0)  # a fully masked row has no maximum
    e = jnp.exp(s - m)  # exactly 0 at hidden keys
    total = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(total > 0, total, 1)


def attention_forward(q, k, v, mask=None, causal=False):
    """out = softmax(q k^T / sqrt(d), over the visible keys) v (module docstring); returns
    `(out, cache)` with out (..., Tq, dv)."""
    _check_attention(q, k, v, mask)
    qs = q * (1 / math.sqrt(q.shape[-1]))
    p = masked_softmax(qs @ jnp.swapaxes(k, -1, -2), visible_keys(mask, causal, q.shape[-2], k.shape[-2]))
    return p @ v, AttentionCache(q, k, v, mask, causal)


def attention_backward(dout, cache):
    """Return `(dq, dk, dv)` for attention_forward.

    Vaswani et al. 2017 differentiated by the chain rule, with p recomputed from q, k and the
    masks (as FlashAttention's backward does, Dao et al. 2022):
    dv = p^T dout, dp = dout v^T;
    softmax backward, row by row: ds = p * (dp - sum_j p_j dp_j);
    dq = ds k / sqrt(d), dk = ds^T q / sqrt(d) (the scale is part of s).
    A query that sees a single key (p = 1) has ds = 0 exactly in exact arithmetic; computed,
    it is rounding noise of dp's size times eps (XLA may fuse dp's product into the
    subtraction as one fused multiply-add), so compare such entries at the gradient's scale.
    """
    q, k, v = cache.q, cache.k, cache.v
    scale = 1 / math.sqrt(q.shape[-1])
    qs = q * scale
    p = masked_softmax(qs @ jnp.swapaxes(k, -1, -2), visible_keys(cache.mask, cache.causal, q.shape[-2], k.shape[-2]))
    dv = jnp.swapaxes(p, -1, -2) @ dout
    dp = dout @ jnp.swapaxes(v, -1, -2)
    ds = p * (dp - jnp.sum(p * dp, axis=-1, keepdims=True))
    return (ds @ k) * scale, jnp.swapaxes(ds, -1, -2) @ qs, dv


# ----------------------------------------------------------------------------- multi-head attention

def split_heads(a, heads):
    """(N, T, E) -> (N, heads, T, E / heads)."""
    n, t, e = a.shape
    return a.reshape(n, t, heads, e // heads).transpose(0, 2, 1, 3)


def merge_heads(a):
    """(N, heads, T, d) -> (N, T, heads * d): split_heads undone."""
    n, heads, t, d = a.shape
    return a.transpose(0, 2, 1, 3).reshape(n, t, heads * d)


def multihead_attention_forward(query, key, value, Wq, bq, Wk, bk, Wv, bv, Wo, bo, num_heads, mask=None,
                                causal=False):
    """Multi-head attention (Vaswani et al. 2017, section 3.2.2; cs231n's MultiHeadAttention):
    Q = query Wq + bq, K = key Wk + bk, V = value Wv + bv (temporal affine layers), each split
    into `num_heads` heads of width E / num_heads, attention per head, heads concatenated,
    out = concat Wo + bo. query (N, Tq, Eq), key (N, Tk, Ek), value (N, Tk, Ev); mask
    boolean, broadcastable to (N, Tq, Tk) ((Tq, Tk) or (N, Tq, Tk)), the same for every head.
    Self-attention passes the same array as query, key and value. Returns `(out, cache)`."""
    name = "multihead_attention_forward"
    if not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"{name}: num_heads must be a positive integer, got {num_heads!r}")
    for what, w in (("Wq", Wq), ("Wk", Wk), ("Wv", Wv)):
        if w.ndim != 2 or w.shape[1] % num_heads:
            raise ValueError(f"{name}: {what} {w.shape} must have a width divisible by num_heads = {num_heads}")
    if mask is not None and mask.ndim not in (2, 3):
        raise ValueError(f"{name}: mask must be (Tq, Tk) or (N, Tq, Tk), got shape {mask.shape}")
    Q, cache_q = temporal_affine_forward(query, Wq, bq)
    K, cache_k = temporal_affine_forward(key, Wk, bk)
    V, cache_v = temporal_affine_forward(value, Wv, bv)
    heads, cache_a = attention_forward(split_heads(Q, num_heads), split_heads(K, num_heads),
                                       split_heads(V, num_heads), None if mask is None else mask[..., None, :, :],
                                       causal)
    out, cache_o = temporal_affine_forward(merge_heads(heads), Wo, bo)
    return out, (cache_q, cache_k, cache_v, cache_a, cache_o)


def multihead_attention_backward(dout, cache):
    """Return `(dquery, dkey, dvalue, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo)`.

    The forward's pairs backwards in reverse order: temporal_affine_backward of the output
    projection, the heads split like the forward's, attention_backward per head, heads
    merged, temporal_affine_backward of the three input projections. (Self-attention: the
    caller adds dquery + dkey + dvalue, as x feeds all three.)
    """
    cache_q, cache_k, cache_v, cache_a, cache_o = cache
    heads = cache_a.q.shape[1]
    dmerged, dWo, dbo = temporal_affine_backward(dout, cache_o)
    dQ, dK, dV = attention_backward(split_heads(dmerged, heads), cache_a)
    dquery, dWq, dbq = temporal_affine_backward(merge_heads(dQ), cache_q)
    dkey, dWk, dbk = temporal_affine_backward(merge_heads(dK), cache_k)
    dvalue, dWv, dbv = temporal_affine_backward(merge_heads(dV), cache_v)
    return dquery, dkey, dvalue, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo


# ----------------------------------------------------------------------------- pre-norm transformer block

#: the parameters of transformer_block_forward, in argument order after x
ACTIVATIONS = {"relu": (relu_forward, relu_backward), "gelu": (gelu_forward, gelu_backward)}


@partial(jax.tree_util.register_dataclass, data_fields=["ln1", "attn", "ln2", "fc1", "act", "fc2"],
         meta_fields=["activation"])
@dataclass(frozen=True)
class BlockCache:
    """The caches of the block's pairs, in forward order, and the MLP's activation name."""

    ln1: object
    attn: object
    ln2: object
    fc1: object
    act: object
    fc2: object
    activation: str


def _tokens_layernorm(x, gamma, beta):
    """layernorm_forward of every token of x (N, T, D) (the pair works on rows (N, D))."""
    out, cache = layernorm_forward(x.reshape(-1, x.shape[-1]), gamma, beta)
    return out.reshape(x.shape), cache


def transformer_block_forward(x, ln1_gamma, ln1_beta, Wq, bq, Wk, bk, Wv, bv, Wo, bo, ln2_gamma, ln2_beta, W1, b1,
                              W2, b2, num_heads, mask=None, causal=False, activation="relu"):
    """A pre-norm transformer block (GPT-2's arrangement of Vaswani et al.'s encoder layer;
    PyTorch's TransformerEncoderLayer with norm_first=True, without dropout) on x (N, T, D):
        h   = x + MHA(LN1(x))                      (self-attention, `num_heads` heads, masks)
        out = h + W2 act(W1 LN2(h) + b1) + b2      (act: "relu" or "gelu")
    layer norms with eps 1e-5; W1 (D, F), W2 (F, D). Returns `(out, cache)`."""
    if x.ndim != 3:
        raise ValueError(f"transformer_block_forward: x must be (N, T, D), got shape {x.shape}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"transformer_block_forward: activation must be one of {sorted(ACTIVATIONS)}, "
                         f"got {activation!r}")
    a, ln1 = _tokens_layernorm(x, ln1_gamma, ln1_beta)
    att, attn = multihead_attention_forward(a, a, a, Wq, bq, Wk, bk, Wv, bv, Wo, bo, num_heads, mask, causal)
    h = x + att
    z, ln2 = _tokens_layernorm(h, ln2_gamma, ln2_beta)
    u, fc1 = temporal_affine_forward(z, W1, b1)
    g, act = ACTIVATIONS[activation][0](u)
    m, fc2 = temporal_affine_forward(g, W2, b2)
    return h + m, BlockCache(ln1, attn, ln2, fc1, act, fc2, activation)


def transformer_block_backward(dout, cache):
    """Return the gradients of x and of TRANSFORMER_BLOCK_PARAMS, in argument order.

    Composed from the pairs' backwards in reverse order; each residual connection y = a + f(a)
    adds its two paths' gradients (da = dy + df's backward), and the self-attention input
    LN1(x) feeds query, key and value, so it gets dquery + dkey + dvalue.
    """
    d = dout.shape[-1]
    dg, dW2, db2 = temporal_affine_backward(dout, cache.fc2)
    du = ACTIVATIONS[cache.activation][1](dg, cache.act)
    dz, dW1, db1 = temporal_affine_backward(du, cache.fc1)
    dh_mlp, dln2_gamma, dln2_beta = layernorm_backward(dz.reshape(-1, d), cache.ln2)
    dh = dout + dh_mlp.reshape(dout.shape)
    dquery, dkey, dvalue, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo = multihead_attention_backward(dh, cache.attn)
    dx_att, dln1_gamma, dln1_beta = layernorm_backward((dquery + dkey + dvalue).reshape(-1, d), cache.ln1)
    dx = dh + dx_att.reshape(dout.shape)
    return (dx, dln1_gamma, dln1_beta, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo, dln2_gamma, dln2_beta,
            dW1, db1, dW2, db2)


LAYERS = {
    "attention": (attention_forward,
                  manual_vjp(attention_forward, attention_backward, nondiff_argnums=(4,), no_grad_argnums=(3,))),
    "multihead_attention": (multihead_attention_forward,
                            manual_vjp(multihead_attention_forward, multihead_attention_backward,
                                       nondiff_argnums=(11, 13), no_grad_argnums=(12,))),
    "transformer_block": (transformer_block_forward,
                          manual_vjp(transformer_block_forward, transformer_block_backward,
                                     nondiff_argnums=(17, 19, 20), no_grad_argnums=(18,))),
}
