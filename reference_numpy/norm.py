"""Normalisation and dropout layers in NumPy float64, the twins of `jaxnets.ops.norm` and
`jaxnets.ops.dropout` (same names; re-exported by `reference_numpy.layers`).

The backwards here are written the long way, node by node through the computational graph
mean -> centred -> var -> std -> xhat (cs231n's first, "staged" batch-norm backward), so they
are an independent derivation of the one-line simplified form jaxnets uses.

Dropout takes the uniform draws u (the values `jaxnets.ops.dropout_noise(key, shape)` gives)
instead of a JAX key: the twin shares the randomness, not the arithmetic.
"""
import numpy as np

from reference_numpy.checks import check_dout, f64

__all__ = [
    "batchnorm_forward", "batchnorm_backward", "batchnorm_inference",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward", "spatial_batchnorm_inference",
    "layernorm_forward", "layernorm_backward", "temporal_layernorm_forward", "temporal_layernorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
    "running_average", "dropout_forward", "dropout_backward",
]


def _check(name, x, gamma, beta, ndim):
    if x.ndim != ndim:
        raise ValueError(f"{name}: x must be {ndim}-D, got shape {x.shape}")
    if gamma.shape != (x.shape[1],) or beta.shape != (x.shape[1],):
        raise ValueError(f"{name}: gamma and beta must be ({x.shape[1]},), got {gamma.shape} and {beta.shape}")


def _rows_forward(x2, eps):
    """Normalise each COLUMN of x2 (M, K) over its M entries; cache for `_rows_backward`."""
    mu = x2.mean(axis=0)
    xc = x2 - mu
    var = (xc ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    xhat = xc / std
    return xhat, (xc, std, mu, var)


def _rows_backward(dxhat, stats):
    """dL/dx2 from dL/dxhat through xhat = xc / std, std = sqrt(var + eps),
    var = mean(xc^2), xc = x2 - mean(x2), node by node."""
    xc, std, _, _ = stats
    m = dxhat.shape[0]
    dxc = dxhat / std
    dstd = -np.sum(dxhat * xc, axis=0) / std ** 2
    dvar = dstd / (2 * std)
    dxc = dxc + 2 * xc * dvar / m
    dmu = -np.sum(dxc, axis=0)
    return dxc + dmu / m


# --------------------------------------------------------------------------- batch norm

def batchnorm_forward(x, gamma, beta, *, eps=1e-5):
    """Training-mode batch norm of x (N, D): statistics over the N rows (biased variance)."""
    x, gamma, beta = f64(x), f64(gamma), f64(beta)
    _check("batchnorm_forward", x, gamma, beta, 2)
    xhat, stats = _rows_forward(x, eps)
    return gamma * xhat + beta, (xhat, gamma, stats)


def batchnorm_backward(dout, cache):
    xhat, gamma, stats = cache
    dout = f64(dout)
    check_dout("batchnorm_backward", dout, xhat.shape)
    return _rows_backward(dout * gamma, stats), np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def batchnorm_inference(x, gamma, beta, running_mean, running_var, *, eps=1e-5):
    return f64(gamma) * (f64(x) - running_mean) / np.sqrt(f64(running_var) + eps) + f64(beta)


def running_average(running, batch_stat, momentum):
    return momentum * f64(running) + (1 - momentum) * f64(batch_stat)


# --------------------------------------------------------------------------- spatial batch norm

def _to_columns(x):
    """(N, C, H, W) -> (N*H*W, C): each channel one column."""
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _from_columns(a, shape):
    n, c, h, w = shape
    return a.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def spatial_batchnorm_forward(x, gamma, beta, *, eps=1e-5):
    """Batch norm of x (N, C, H, W) per channel over N, H, W (cs231n: the (N*H*W, C) view)."""
    x = f64(x)
    _check("spatial_batchnorm_forward", x, f64(gamma), f64(beta), 4)
    out, cache = batchnorm_forward(_to_columns(x), gamma, beta, eps=eps)
    return _from_columns(out, x.shape), (cache, x.shape)


def spatial_batchnorm_backward(dout, cache):
    inner, shape = cache
    dx, dgamma, dbeta = batchnorm_backward(_to_columns(f64(dout)), inner)
    return _from_columns(dx, shape), dgamma, dbeta


def spatial_batchnorm_inference(x, gamma, beta, running_mean, running_var, *, eps=1e-5):
    x = f64(x)
    return _from_columns(batchnorm_inference(_to_columns(x), gamma, beta, running_mean, running_var, eps=eps), x.shape)


# --------------------------------------------------------------------------- layer norm

def layernorm_forward(x, gamma, beta, *, eps=1e-5):
    """Layer norm of x (N, D): each row over its D features (batch norm of x transposed)."""
    x, gamma, beta = f64(x), f64(gamma), f64(beta)
    _check("layernorm_forward", x, gamma, beta, 2)
    xhat_t, stats = _rows_forward(x.T, eps)
    return gamma * xhat_t.T + beta, (xhat_t.T, gamma, stats)


def layernorm_backward(dout, cache):
    xhat, gamma, stats = cache
    dout = f64(dout)
    check_dout("layernorm_backward", dout, xhat.shape)
    dx = _rows_backward((dout * gamma).T, stats).T
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def temporal_layernorm_forward(x, gamma, beta, *, eps=1e-5):
    """Layer norm of every step of x (N, T, D): layernorm_forward on the N*T rows."""
    x = f64(x)
    if x.ndim != 3:
        raise ValueError(f"temporal_layernorm_forward: x must be (N, T, D), got shape {x.shape}")
    out, cache = layernorm_forward(x.reshape(-1, x.shape[2]), gamma, beta, eps=eps)
    return out.reshape(x.shape), (x.shape, cache)


def temporal_layernorm_backward(dout, cache):
    shape, rows = cache
    dout = f64(dout)
    check_dout("temporal_layernorm_backward", dout, shape)
    dx, dgamma, dbeta = layernorm_backward(dout.reshape(-1, shape[2]), rows)
    return dx.reshape(shape), dgamma, dbeta


# --------------------------------------------------------------------------- group norm

def spatial_groupnorm_forward(x, gamma, beta, *, groups, eps=1e-5):
    """Group norm of x (N, C, H, W): each example's `groups` groups of C/G consecutive
    channels normalised over their C/G*H*W values; gamma, beta per channel."""
    x, gamma, beta = f64(x), f64(gamma), f64(beta)
    _check("spatial_groupnorm_forward", x, gamma, beta, 4)
    n, c, h, w = x.shape
    if groups < 1 or c % groups:
        raise ValueError(f"spatial_groupnorm_forward: groups must divide the {c} channels, got {groups}")
    cols = x.reshape(n * groups, -1).T  # one column per (example, group)
    xhat_cols, stats = _rows_forward(cols, eps)
    xhat = xhat_cols.T.reshape(x.shape)
    return gamma[None, :, None, None] * xhat + beta[None, :, None, None], (xhat, gamma, stats, groups)


def spatial_groupnorm_backward(dout, cache):
    xhat, gamma, stats, groups = cache
    dout = f64(dout)
    check_dout("spatial_groupnorm_backward", dout, xhat.shape)
    n = dout.shape[0]
    dxhat = dout * gamma[None, :, None, None]
    dx = _rows_backward(dxhat.reshape(n * groups, -1).T, stats).T.reshape(dout.shape)
    return dx, np.sum(dout * xhat, axis=(0, 2, 3)), np.sum(dout, axis=(0, 2, 3))


# --------------------------------------------------------------------------- dropout

def dropout_forward(x, u, *, rate, train=True):
    """Inverted dropout with the uniform draws u (x's shape): keep where u >= rate, scale
    kept values by 1 / (1 - rate); the identity in inference or with rate 0."""
    x = f64(x)
    if not 0 <= rate < 1:
        raise ValueError(f"dropout_forward: rate must be in [0, 1), got {rate}")
    if not train or rate == 0:
        return x, None
    u = np.asarray(u)
    if u.shape != x.shape:
        raise ValueError(f"dropout_forward: draws u {u.shape} and x {x.shape} differ in shape")
    mask = (u >= rate) / (1.0 - rate)
    return x * mask, mask


def dropout_backward(dout, cache):
    return f64(dout) if cache is None else f64(dout) * cache
