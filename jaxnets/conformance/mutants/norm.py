"""Planted mistakes in the norms' backwards, the slips of deriving them by hand: batch norm's dx
without the mean's or the variance's share, dgamma not summed, layer norm over the batch axis,
the temporal layer norm's rows taken time-major, group norm's channels grouped wrongly."""
from __future__ import annotations

import jax.numpy as jnp

from jaxnets.conformance.mutants.mutant import Mutant
from jaxnets.ops.norm import layernorm_backward


def _dxhat_terms(dxhat, xhat, axes):
    total = jnp.sum(dxhat, axis=axes, keepdims=True)
    along = jnp.sum(dxhat * xhat, axis=axes, keepdims=True)
    m = 1
    for a in axes:
        m *= dxhat.shape[a]
    return m, total, along


def batchnorm_backward_missing_mean_term(dout, cache):
    dxhat = dout * cache.gamma
    m, _, along = _dxhat_terms(dxhat, cache.xhat, (0,))
    dx = (cache.inv_std / m) * (m * dxhat - cache.xhat * along)  # the mean's share, - sum(dxhat), forgotten
    return dx, jnp.sum(dout * cache.xhat, axis=0), jnp.sum(dout, axis=0)


def batchnorm_backward_missing_variance_term(dout, cache):
    dxhat = dout * cache.gamma
    m, total, _ = _dxhat_terms(dxhat, cache.xhat, (0,))
    dx = (cache.inv_std / m) * (m * dxhat - total)  # as if var did not depend on x
    return dx, jnp.sum(dout * cache.xhat, axis=0), jnp.sum(dout, axis=0)


def batchnorm_backward_dgamma_not_summed(dout, cache):
    dxhat = dout * cache.gamma
    m, total, along = _dxhat_terms(dxhat, cache.xhat, (0,))
    dx = (cache.inv_std / m) * (m * dxhat - total - cache.xhat * along)
    return dx, dout * cache.xhat, jnp.sum(dout, axis=0)  # dgamma per example, (N, D)


def layernorm_backward_batch_axis(dout, cache):
    dxhat = dout * cache.gamma
    m, total, along = _dxhat_terms(dxhat, cache.xhat, (0,))  # batch norm's axis, not the row's
    dx = (cache.inv_std / m) * (m * dxhat - total - cache.xhat * along)
    return dx, jnp.sum(dout * cache.xhat, axis=0), jnp.sum(dout, axis=0)


def temporal_layernorm_backward_time_major(dout, cache):
    """dout's rows taken time-major (t, n) against the forward's batch-major (n, t) rows."""
    n, t, d = dout.shape
    dx, dgamma, dbeta = layernorm_backward(jnp.swapaxes(dout, 0, 1).reshape(-1, d), cache)
    return dx.reshape(dout.shape), dgamma, dbeta


def spatial_groupnorm_backward_interleaved_groups(dout, cache):
    """Channels grouped k, k + G, k + 2G, ... instead of G runs of consecutive channels."""
    n, c, h, w = dout.shape
    groups = cache.inv_std.shape[1]

    def regroup(a):
        return a.reshape(n, c // groups, groups, h, w).transpose(0, 2, 1, 3, 4)

    dxhat = regroup(dout * cache.gamma[None, :, None, None])
    xhat = regroup(cache.xhat)
    m, total, along = _dxhat_terms(dxhat, xhat, (2, 3, 4))
    dx = (cache.inv_std / m) * (m * dxhat - total - xhat * along)
    dx = dx.transpose(0, 2, 1, 3, 4).reshape(dout.shape)
    return dx, jnp.sum(dout * cache.xhat, axis=(0, 2, 3)), jnp.sum(dout, axis=(0, 2, 3))


PLANTED = (
    Mutant("batchnorm_dx_missing_mean_term", "batchnorm", batchnorm_backward_missing_mean_term,
           "dx without the mean's share, -sum(dxhat) / N"),
    Mutant("batchnorm_dx_missing_variance_term", "batchnorm", batchnorm_backward_missing_variance_term,
           "dx without the variance's share, -xhat sum(dxhat xhat) / N"),
    Mutant("batchnorm_dgamma_not_summed", "batchnorm", batchnorm_backward_dgamma_not_summed,
           "dgamma = dout * xhat per example, not summed over the batch"),
    Mutant("layernorm_normalised_over_batch_axis", "layernorm", layernorm_backward_batch_axis,
           "layer norm's dx with batch norm's sums over the batch instead of the row"),
    Mutant("temporal_layernorm_rows_time_major", "temporal_layernorm", temporal_layernorm_backward_time_major,
           "dout flattened time-major, (T, N) rows, against the cache's batch-major (N, T) rows"),
    Mutant("groupnorm_groups_reshaped_wrongly", "spatial_groupnorm", spatial_groupnorm_backward_interleaved_groups,
           "channels regrouped k, k+G, ... (reshape (N, C/G, G, ...)) instead of consecutive runs"),
)
