"""Normalisation layers: batch norm (Ioffe & Szegedy 2015), its spatial form for NCHW, layer
norm (Ba et al. 2016) and spatial group norm (Wu & He 2018), as in cs231n assignment 2.

All four are one computation over a different axis set: normalise each group of values to
zero mean and unit variance (the biased variance, 1/M), then scale and shift per feature:
    xhat = (x - mean) / sqrt(var + eps),   out = gamma * xhat + beta.
With M values per group, the backward (cs231n's "simplified" form, derived by the chain rule
through mean and var) is
    dxhat = dout * gamma
    dx    = (1 / M) / sqrt(var + eps) * (M dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)),
the sums over the same group, and dgamma = sum(dout * xhat), dbeta = sum(dout) over every
axis but the feature axis. The `- sum(dxhat)` term is the mean's share of the gradient, the
`- xhat sum(dxhat xhat)` term the variance's; forgetting either is the classic mistake (the
equivalence suite plants both).

Batch norm in training mode normalises with the batch's statistics and returns them in the
cache; inference uses running averages (`batchnorm_inference`), which the caller carries
functionally: `running = running_average(running, batch_stat, momentum)` (never mutated).

Every sum in the backwards is a matrix-vector product (`_sum`: with ones, or with gamma
where layer norm sums dout * gamma * xhat over the features): XLA:CPU runs a reduction as a
YNNPACK fusion that cannot absorb the broadcasts around it, so temporaries such as `gamma`
broadcast to the input's shape were written out in full before each sum, and layer norm's dx
ran as one YNNPACK graph of ~50 us at 128 x 512; as products the sums are BLAS matrix-vector
calls and the elementwise work fuses into XLA's loops (README "Performance"). The forwards
keep plain reductions (see `_moments`).
"""
import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from jaxnets.ops.vjp import manual_vjp

__all__ = [
    "NormCache", "batchnorm_forward", "batchnorm_backward", "batchnorm_inference",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward", "spatial_batchnorm_inference",
    "layernorm_forward", "layernorm_backward", "temporal_layernorm_forward", "temporal_layernorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward", "running_average", "batch_moments",
]


@partial(jax.tree_util.register_dataclass, data_fields=["xhat", "gamma", "inv_std", "mean", "var"],
         meta_fields=[])
@dataclass(frozen=True)
class NormCache:
    """xhat (the input's shape, normalised), gamma, 1/sqrt(var + eps) per group, and the
    group statistics (batch norm: the batch's mean and biased variance per feature)."""

    xhat: jax.Array
    gamma: jax.Array
    inv_std: jax.Array
    mean: jax.Array
    var: jax.Array


def _dot(a, b):
    # full float32 (or float64) products on every backend: these are sums, not model maths
    # (TPUs and recent GPUs would otherwise take bfloat16 / TF32 passes by default)
    return jnp.dot(a, b, precision=jax.lax.Precision.HIGHEST)


def _sum(a, axes):
    """sum(a) over `axes`, kept as size-1 axes, as matrix-vector products with ones (see the
    module docstring): the trailing summed axes as a @ ones, the leading ones as ones @ a.
    `axes` must be a leading block, a trailing block, or both (every group here is)."""
    axes = sorted(ax % a.ndim for ax in axes)
    lead = 0
    while lead in axes:
        lead += 1
    trail = a.ndim
    while trail - 1 in axes and trail - 1 >= lead:
        trail -= 1
    if set(axes) != set(range(lead)) | set(range(trail, a.ndim)):
        raise ValueError(f"_sum: axes {axes} of a {a.ndim}-d array are not a leading and/or trailing block")
    kept = a.shape[lead:trail]
    if trail < a.ndim:
        k = math.prod(a.shape[trail:])
        a = _dot(a.reshape(-1, k), jnp.ones((k,), a.dtype)).reshape(a.shape[:trail])
    if lead:
        k = math.prod(a.shape[:lead])
        a = _dot(jnp.ones((k,), a.dtype), a.reshape(k, -1))
    return a.reshape((1,) * lead + kept + (1,) * (len(axes) - lead))


def _moments(x, axes):
    """(mean, biased variance) over `axes`, kept as size-1 axes: the one place the statistics
    are computed, for normalising and for the running averages (`batch_moments`). Plain
    reductions, unlike the backwards' sums: this forward is also what mode autodiff
    differentiates, and JAX's transpose of a product with ones is an outer product, ~6x
    slower than its transpose of a sum (a broadcast) in layer norm's autodiff backward."""
    mean = jnp.mean(x, axis=axes, keepdims=True)
    return mean, jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)  # biased: 1/M


def _normalise(x, axes, eps):
    """(xhat, inv_std, mean, var) with the statistics over `axes` (kept as size-1 axes)."""
    mean, var = _moments(x, axes)
    inv_std = jax.lax.rsqrt(var + eps)
    return (x - mean) * inv_std, inv_std, mean, var


def _dx(dxhat, xhat, inv_std, axes):
    """dx = (1/M) inv_std (M dxhat - sum(dxhat) - xhat sum(dxhat xhat)), sums over `axes`."""
    m = math.prod(dxhat.shape[a] for a in axes)
    total = _sum(dxhat, axes)
    along = _sum(dxhat * xhat, axes)
    return (inv_std / m) * (m * dxhat - total - xhat * along)


def _batch_backward(dout, cache, axes, per_feature):
    """Batch norm's `(dx, dgamma, dbeta)`, sums over `axes` (every axis but the feature's).

    Here gamma is constant along the summed axes, so _dx's two sums are gamma times the
    parameter gradients: sum(dxhat) = gamma dbeta and sum(dxhat xhat) = gamma dgamma, and
        dx = gamma / sqrt(var + eps) / M * (M dout - dbeta - xhat dgamma)
    (cs231n assignment 2's `batchnorm_backward_alt`): two reductions instead of four, one pass
    over the data fewer (spatial batch norm at 64 x 32 x 28 x 28: 4.3 -> 1.5 ms forward +
    backward on a 2-core CPU). Not for layer or group norm, whose dx sums run over other axes."""
    m = math.prod(dout.shape[a] for a in axes)
    dbeta = _sum(dout, axes)
    dgamma = _sum(dout * cache.xhat, axes)
    dx = (per_feature(cache.gamma) * cache.inv_std / m) * (m * dout - dbeta - cache.xhat * dgamma)
    return dx, dgamma.reshape(-1), dbeta.reshape(-1)


def _check(name, x, gamma, beta, feature_axis, ndim):
    if x.ndim != ndim:
        raise ValueError(f"{name}: x must be {'(N, D)' if ndim == 2 else '(N, C, H, W)'}, got shape {x.shape}")
    d = x.shape[feature_axis]
    if gamma.shape != (d,) or beta.shape != (d,):
        raise ValueError(f"{name}: gamma and beta must be ({d},), got {gamma.shape} and {beta.shape}")


# ----------------------------------------------------------------------------- batch norm


def batchnorm_forward(x, gamma, beta, *, eps=1e-5):
    """Training-mode batch norm of x (N, D) with the batch's mean and biased variance per
    feature; gamma, beta (D,). Returns `(out, cache)`; `cache.mean` / `cache.var` (each (D,))
    are the batch statistics a running average is updated with."""
    _check("batchnorm_forward", x, gamma, beta, 1, 2)
    xhat, inv_std, mean, var = _normalise(x, (0,), eps)
    return gamma * xhat + beta, NormCache(xhat, gamma, inv_std, mean[0], var[0])


def batchnorm_backward(dout, cache):
    """Return `(dx, dgamma, dbeta)` for batchnorm_forward.

    cs231n assignment 2 (BatchNorm, the simplified backward), M = N rows per feature:
    dx = (1/N) gamma / sqrt(var + eps) (N dout - sum_n dout - xhat sum_n(dout xhat));
    dgamma = sum_n dout * xhat; dbeta = sum_n dout (summed over the batch); computed with the
    two sums shared (`_batch_backward`).
    """
    return _batch_backward(dout, cache, (0,), lambda v: v)


def batchnorm_inference(x, gamma, beta, running_mean, running_var, *, eps=1e-5):
    """Inference-mode batch norm: x normalised with the running statistics (no batch
    statistics, so each row's output depends on that row only)."""
    _check("batchnorm_inference", x, gamma, beta, 1, 2)
    return gamma * (x - running_mean) * jax.lax.rsqrt(running_var + eps) + beta


def batch_moments(x):
    """The batch statistics batch norm normalises x with: per-feature mean and biased variance
    over the batch, (D,) each for x (N, D), per channel over (N, H, W) for x (N, C, H, W).
    For models whose loss is written with single-output layers (autodiff, custom_vjp modes),
    which need the statistics for their running averages."""
    mean, var = _moments(x, (0,) if x.ndim == 2 else _SPATIAL)
    return mean.reshape(-1), var.reshape(-1)


def running_average(running, batch_stat, momentum=0.9):
    """cs231n's running statistic: `momentum * running + (1 - momentum) * batch_stat`
    (cs231n's default momentum 0.9 is PyTorch's `momentum=0.1`, which weights the batch)."""
    return momentum * running + (1 - momentum) * batch_stat


# ----------------------------------------------------------------------------- spatial batch norm
# NCHW: one mean and variance per channel over (N, H, W); gamma, beta (C,).

_SPATIAL = (0, 2, 3)


def _channels(v):
    return v[None, :, None, None]


def spatial_batchnorm_forward(x, gamma, beta, *, eps=1e-5):
    """Training-mode batch norm of x (N, C, H, W), statistics per channel over N, H and W;
    gamma, beta (C,); cache.mean / cache.var are (C,)."""
    _check("spatial_batchnorm_forward", x, gamma, beta, 1, 4)
    xhat, inv_std, mean, var = _normalise(x, _SPATIAL, eps)
    return _channels(gamma) * xhat + _channels(beta), NormCache(xhat, gamma, inv_std, mean.reshape(-1),
                                                                 var.reshape(-1))


def spatial_batchnorm_backward(dout, cache):
    """Return `(dx, dgamma, dbeta)`: batchnorm_backward with each channel's M = N*H*W values
    as its batch (cs231n's spatial batch norm: the (N*H*W, C) view of batch norm)."""
    return _batch_backward(dout, cache, _SPATIAL, _channels)


def spatial_batchnorm_inference(x, gamma, beta, running_mean, running_var, *, eps=1e-5):
    """Inference-mode spatial batch norm with per-channel running statistics (C,)."""
    _check("spatial_batchnorm_inference", x, gamma, beta, 1, 4)
    scale = gamma * jax.lax.rsqrt(running_var + eps)
    return _channels(scale) * (x - _channels(running_mean)) + _channels(beta)


# ----------------------------------------------------------------------------- layer norm


def layernorm_forward(x, gamma, beta, *, eps=1e-5):
    """Layer norm of x (N, D): each row normalised over its D features (the same in training
    and inference); gamma, beta (D,)."""
    _check("layernorm_forward", x, gamma, beta, 1, 2)
    xhat, inv_std, mean, var = _normalise(x, (1,), eps)
    return gamma * xhat + beta, NormCache(xhat, gamma, inv_std, mean, var)


def layernorm_backward(dout, cache):
    """Return `(dx, dgamma, dbeta)` for layernorm_forward.

    cs231n assignment 2 (LayerNorm): batch norm's backward transposed, M = D features per
    row: dx = (1/D) / sqrt(var + eps) (D dxhat - sum_d dxhat - xhat sum_d(dxhat xhat)) with
    dxhat = dout * gamma; dgamma and dbeta still sum over the rows.
    """
    # _dx with its second row sum as a product with gamma: sum_d dxhat xhat = (dout xhat) @ gamma
    d = dout.shape[1]
    dxhat = dout * cache.gamma
    along = dout * cache.xhat
    dx = (cache.inv_std / d) * (d * dxhat - _sum(dxhat, (1,)) - cache.xhat * _dot(along, cache.gamma)[:, None])
    return dx, _sum(along, (0,))[0], _sum(dout, (0,))[0]


def temporal_layernorm_forward(x, gamma, beta, *, eps=1e-5):
    """Layer norm of every time step of x (N, T, D) over its D features (a transformer's layer
    norm): layernorm_forward on the N*T rows, reshaped back. Returns `(out, cache)`."""
    if x.ndim != 3:
        raise ValueError(f"temporal_layernorm_forward: x must be (N, T, D), got shape {x.shape}")
    out, cache = layernorm_forward(x.reshape(-1, x.shape[2]), gamma, beta, eps=eps)
    return out.reshape(x.shape), cache


def temporal_layernorm_backward(dout, cache):
    """Return `(dx, dgamma, dbeta)` for temporal_layernorm_forward: layernorm_backward on the
    N*T rows of dout in the forward's (batch-major) row order, dgamma and dbeta summed over
    every row — every sequence and every step."""
    dx, dgamma, dbeta = layernorm_backward(dout.reshape(-1, dout.shape[2]), cache)
    return dx.reshape(dout.shape), dgamma, dbeta


# ----------------------------------------------------------------------------- group norm


def _grouped(x, groups):
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w)


def spatial_groupnorm_forward(x, gamma, beta, *, groups, eps=1e-5):
    """Group norm of x (N, C, H, W): the C channels are split into `groups` consecutive
    groups of C/G channels, each (example, group) normalised over its C/G * H * W values;
    gamma, beta (C,) per channel. groups = 1 is layer norm over (C, H, W), groups = C is
    instance norm."""
    _check("spatial_groupnorm_forward", x, gamma, beta, 1, 4)
    if not isinstance(groups, int) or groups < 1 or x.shape[1] % groups:
        raise ValueError(f"spatial_groupnorm_forward: groups must divide the {x.shape[1]} channels, got {groups!r}")
    xhat, inv_std, mean, var = _normalise(_grouped(x, groups), (2, 3, 4), eps)
    xhat = xhat.reshape(x.shape)
    return _channels(gamma) * xhat + _channels(beta), NormCache(xhat, gamma, inv_std, mean, var)


def spatial_groupnorm_backward(dout, cache):
    """Return `(dx, dgamma, dbeta)` for spatial_groupnorm_forward.

    cs231n assignment 2 (SpatialGroupNorm): layer norm's backward within each (example,
    group) of M = C/G * H * W values, dxhat = dout * gamma per channel; dgamma and dbeta sum
    over N, H and W per channel.
    """
    groups = cache.inv_std.shape[1]
    dxhat = _grouped(dout * _channels(cache.gamma), groups)
    dx = _dx(dxhat, _grouped(cache.xhat, groups), cache.inv_std, (2, 3, 4)).reshape(dout.shape)
    return dx, _sum(dout * cache.xhat, _SPATIAL).reshape(-1), _sum(dout, _SPATIAL).reshape(-1)


# ----------------------------------------------------------------------------- custom_vjp wiring
# The differentiable functions take the static eps (and groups) positionally after the arrays,
# with the forwards' defaults (cs231n's and PyTorch's eps = 1e-5).

def _batchnorm(x, gamma, beta, eps=1e-5):
    return batchnorm_forward(x, gamma, beta, eps=eps)


def _spatial_batchnorm(x, gamma, beta, eps=1e-5):
    return spatial_batchnorm_forward(x, gamma, beta, eps=eps)


def _layernorm(x, gamma, beta, eps=1e-5):
    return layernorm_forward(x, gamma, beta, eps=eps)


def _temporal_layernorm(x, gamma, beta, eps=1e-5):
    return temporal_layernorm_forward(x, gamma, beta, eps=eps)


def _groupnorm(x, gamma, beta, groups, eps=1e-5):
    return spatial_groupnorm_forward(x, gamma, beta, groups=groups, eps=eps)


for _f, _forward in ((_batchnorm, batchnorm_forward), (_spatial_batchnorm, spatial_batchnorm_forward),
                     (_layernorm, layernorm_forward), (_temporal_layernorm, temporal_layernorm_forward),
                     (_groupnorm, spatial_groupnorm_forward)):
    _f.__name__ = _forward.__name__

LAYERS = {
    "batchnorm": (_batchnorm, manual_vjp(_batchnorm, batchnorm_backward, nondiff_argnums=(3,))),
    "spatial_batchnorm": (_spatial_batchnorm,
                          manual_vjp(_spatial_batchnorm, spatial_batchnorm_backward, nondiff_argnums=(3,))),
    "layernorm": (_layernorm, manual_vjp(_layernorm, layernorm_backward, nondiff_argnums=(3,))),
    "temporal_layernorm": (_temporal_layernorm,
                           manual_vjp(_temporal_layernorm, temporal_layernorm_backward, nondiff_argnums=(3,))),
    "spatial_groupnorm": (_groupnorm, manual_vjp(_groupnorm, spatial_groupnorm_backward, nondiff_argnums=(3, 4))),
}
