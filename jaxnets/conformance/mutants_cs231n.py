"""Planted mistakes in the layers cs231n's assignment 2 adds: the slips people make when they
derive batch norm, layer norm, group norm, dropout, the SVM loss and the leaky ReLU by hand.
Each is a modified copy of the correct `jaxnets.ops` function (`mutants.MUTANTS` lists them
with the documents' ones; the optimizer slip, Adam without bias correction, is planted in
tests/test_optimizers.py against optax).
"""
import jax
import jax.numpy as jnp

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


def dropout_backward_mask_not_rescaled(dout, cache):
    return dout if cache is None else dout * (cache != 0)  # the 1 / (1 - rate) forgotten


def dropout_backward_mask_ignored(dout, cache):
    return dout  # as if nothing had been dropped


def svm_loss_counting_the_correct_class(scores, y):
    n, c = scores.shape
    onehot = jax.nn.one_hot(y, c, dtype=scores.dtype)
    margins = scores - jnp.sum(scores * onehot, axis=1, keepdims=True) + 1
    active = margins > 0  # j == y_i included: its margin is always 1
    loss = jnp.sum(jnp.where(active, margins, 0)) / n
    ind = active.astype(scores.dtype)
    return loss, (ind - onehot * jnp.sum(ind, axis=1, keepdims=True)) / n


def leaky_relu_backward_forgets_slope(dout, cache):
    x, _ = cache
    return jnp.where(x > 0, dout, jnp.zeros_like(dout))  # ReLU's backward: the slope alpha forgotten


#: (name, op, function, what is wrong), for `mutants.MUTANTS`
PLANTED = (
    ("batchnorm_dx_missing_mean_term", "batchnorm", batchnorm_backward_missing_mean_term,
     "dx without the mean's share, -sum(dxhat) / N"),
    ("batchnorm_dx_missing_variance_term", "batchnorm", batchnorm_backward_missing_variance_term,
     "dx without the variance's share, -xhat sum(dxhat xhat) / N"),
    ("batchnorm_dgamma_not_summed", "batchnorm", batchnorm_backward_dgamma_not_summed,
     "dgamma = dout * xhat per example, not summed over the batch"),
    ("layernorm_normalised_over_batch_axis", "layernorm", layernorm_backward_batch_axis,
     "layer norm's dx with batch norm's sums over the batch instead of the row"),
    ("temporal_layernorm_rows_time_major", "temporal_layernorm", temporal_layernorm_backward_time_major,
     "dout flattened time-major, (T, N) rows, against the cache's batch-major (N, T) rows"),
    ("groupnorm_groups_reshaped_wrongly", "spatial_groupnorm", spatial_groupnorm_backward_interleaved_groups,
     "channels regrouped k, k+G, ... (reshape (N, C/G, G, ...)) instead of consecutive runs"),
    ("dropout_mask_not_rescaled", "dropout", dropout_backward_mask_not_rescaled,
     "dx = dout * keep, without the 1 / (1 - rate) of inverted dropout"),
    ("dropout_mask_ignored_in_backward", "dropout", dropout_backward_mask_ignored,
     "dx = dout, the dropped values get a gradient"),
    ("svm_counts_the_correct_class", "svm_loss", svm_loss_counting_the_correct_class,
     "the hinge summed over every class, the correct one included (+1 per row)"),
    ("leaky_relu_forgets_slope", "leaky_relu", leaky_relu_backward_forgets_slope,
     "dx = 0 for x <= 0: ReLU's backward, the slope alpha forgotten"),
)
