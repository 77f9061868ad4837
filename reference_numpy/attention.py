"""Attention in NumPy float64, the twins of `jaxnets.ops.attention` (and of the GELU in
`jaxnets.ops.activations`, the transformer MLP's activation); re-exported by
`reference_numpy.layers`.

An independent derivation of the backward: the forward keeps the attention matrix p and the
backward applies the softmax Jacobian row by row, ds = p * (dp - sum_j p_j dp_j) (jaxnets
instead rebuilds p from a log-sum-exp and forms the row sum from dout and out).
"""
import math

import numpy as np

from reference_numpy.checks import check_dout, f64
from reference_numpy.norm import layernorm_backward, layernorm_forward
from reference_numpy.sequence import temporal_affine_backward, temporal_affine_forward
from netspec.stages import TRANSFORMER_BLOCK_PARAMS  # noqa: F401 - the block's argument order, declared once

__all__ = [
    "gelu_forward", "gelu_backward",
    "attention_forward", "attention_backward",
    "multihead_attention_forward", "multihead_attention_backward",
    "TRANSFORMER_BLOCK_PARAMS", "transformer_block_forward", "transformer_block_backward",
]

_erfc = np.frompyfunc(math.erfc, 1, 1)


def _phi_cdf(x):
    return 0.5 * _erfc(-x / math.sqrt(2.0)).astype(np.float64)


def gelu_forward(x):
    """GELU, exact: x Phi(x) with Phi the standard normal CDF, 0.5 erfc(-x / sqrt 2); cache = x."""
    x = f64(x)
    return x * _phi_cdf(x), x


def gelu_backward(dout, cache):
    """dx = dout (Phi(x) + x phi(x)), phi the standard normal density."""
    x = cache
    dout = f64(dout)
    check_dout("gelu_backward", dout, x.shape)
    return dout * (_phi_cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi))


# --------------------------------------------------------------------------- attention

def attention_forward(q, k, v, mask=None, causal=False):
    """out = p v with p = softmax(q k^T / sqrt(d)) over the keys each query may see (mask True
    and, if causal, key j <= query i); a query that sees no key gets p = 0. cache = (q, k, v, p)."""
    q, k, v = f64(q), f64(k), f64(v)
    if q.shape[:-2] != k.shape[:-2] or q.shape[:-2] != v.shape[:-2] or q.shape[-1] != k.shape[-1] \
            or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention_forward: q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) do not fit: "
                         f"{q.shape}, {k.shape}, {v.shape}")
    tq, tk = q.shape[-2], k.shape[-2]
    visible = np.ones((tq, tk), dtype=bool)
    if causal:
        visible = np.tril(visible)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise ValueError(f"attention_forward: mask must be boolean, got dtype {mask.dtype}")
        visible = visible & mask
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    visible = np.broadcast_to(visible, s.shape)
    s = np.where(visible, s, -np.inf)
    row_max = s.max(axis=-1, keepdims=True)
    e = np.where(visible, np.exp(s - np.where(np.isfinite(row_max), row_max, 0.0)), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    p = e / np.where(total > 0, total, 1.0)
    return p @ v, (q, k, v, p)


def attention_backward(dout, cache):
    """Vaswani et al. 2017 by the chain rule: out = p v: dv = p^T dout, dp = dout v^T;
    p = softmax(s) row by row (Jacobian diag(p) - p p^T): ds = p * (dp - sum_j p_j dp_j);
    s = q k^T / sqrt(d): dq = ds k / sqrt(d), dk = ds^T q / sqrt(d)."""
    q, k, v, p = cache
    dout = f64(dout)
    check_dout("attention_backward", dout, q.shape[:-1] + v.shape[-1:])
    dv = np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    ds = p * (dp - np.sum(p * dp, axis=-1, keepdims=True))
    scale = 1.0 / math.sqrt(q.shape[-1])
    return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, dv


def _split(a, heads):
    n, t, e = a.shape
    return a.reshape(n, t, heads, e // heads).transpose(0, 2, 1, 3)


def _merge(a):
    n, heads, t, d = a.shape
    return a.transpose(0, 2, 1, 3).reshape(n, t, heads * d)


def multihead_attention_forward(query, key, value, Wq, bq, Wk, bk, Wv, bv, Wo, bo, num_heads, mask=None,
                                causal=False):
    """Projections (temporal affine), num_heads heads of attention, heads concatenated, output
    projection; mask broadcastable to (N, Tq, Tk), shared by the heads."""
    if any(np.shape(w)[1] % num_heads for w in (Wq, Wk, Wv)):
        raise ValueError(f"multihead_attention_forward: projection widths must divide by num_heads = {num_heads}")
    Q, cq = temporal_affine_forward(query, Wq, bq)
    K, ck = temporal_affine_forward(key, Wk, bk)
    V, cv = temporal_affine_forward(value, Wv, bv)
    heads_mask = None if mask is None else np.asarray(mask)[..., None, :, :]
    heads, ca = attention_forward(_split(Q, num_heads), _split(K, num_heads), _split(V, num_heads), heads_mask,
                                  causal)
    out, co = temporal_affine_forward(_merge(heads), Wo, bo)
    return out, (cq, ck, cv, ca, co, num_heads)


def multihead_attention_backward(dout, cache):
    """Returns (dquery, dkey, dvalue, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo)."""
    cq, ck, cv, ca, co, heads = cache
    dmerged, dWo, dbo = temporal_affine_backward(dout, co)
    dQ, dK, dV = attention_backward(_split(dmerged, heads), ca)
    dquery, dWq, dbq = temporal_affine_backward(_merge(dQ), cq)
    dkey, dWk, dbk = temporal_affine_backward(_merge(dK), ck)
    dvalue, dWv, dbv = temporal_affine_backward(_merge(dV), cv)
    return dquery, dkey, dvalue, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo


# --------------------------------------------------------------------------- pre-norm transformer block

_ACTIVATIONS = {"relu": (lambda u: (np.where(u > 0, u, 0.0), u),
                         lambda d, u: np.where(u > 0, d, 0.0)),
                "gelu": (gelu_forward, gelu_backward)}


def _token_norm(x, gamma, beta):
    out, cache = layernorm_forward(x.reshape(-1, x.shape[-1]), gamma, beta)
    return out.reshape(x.shape), cache


def transformer_block_forward(x, ln1_gamma, ln1_beta, Wq, bq, Wk, bk, Wv, bv, Wo, bo, ln2_gamma, ln2_beta, W1, b1,
                              W2, b2, num_heads, mask=None, causal=False, activation="relu"):
    """h = x + MHA(LN1(x)), out = h + W2 act(W1 LN2(h) + b1) + b2 (pre-norm, eps 1e-5)."""
    x = f64(x)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"transformer_block_forward: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    a, c1 = _token_norm(x, ln1_gamma, ln1_beta)
    att, c2 = multihead_attention_forward(a, a, a, Wq, bq, Wk, bk, Wv, bv, Wo, bo, num_heads, mask, causal)
    h = x + att
    z, c3 = _token_norm(h, ln2_gamma, ln2_beta)
    u, c4 = temporal_affine_forward(z, W1, b1)
    g, c5 = _ACTIVATIONS[activation][0](u)
    m, c6 = temporal_affine_forward(g, W2, b2)
    return h + m, (c1, c2, c3, c4, c5, c6, activation)


def transformer_block_backward(dout, cache):
    """Gradients of x and the TRANSFORMER_BLOCK_PARAMS, in argument order: the pairs'
    backwards in reverse, each residual adding its two paths."""
    c1, c2, c3, c4, c5, c6, activation = cache
    dout = f64(dout)
    d = dout.shape[-1]
    dg, dW2, db2 = temporal_affine_backward(dout, c6)
    du = _ACTIVATIONS[activation][1](dg, c5)
    dz, dW1, db1 = temporal_affine_backward(du, c4)
    dh_mlp, dg2, dbe2 = layernorm_backward(dz.reshape(-1, d), c3)
    dh = dout + dh_mlp.reshape(dout.shape)
    dq, dk, dv, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo = multihead_attention_backward(dh, c2)
    dx_att, dg1, dbe1 = layernorm_backward((dq + dk + dv).reshape(-1, d), c1)
    return (dh + dx_att.reshape(dout.shape), dg1, dbe1, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo, dg2, dbe2,
            dW1, db1, dW2, db2)
