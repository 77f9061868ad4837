"""Finite differences and error measures: the oracle's own check (cs231n's gradient_check).

`numerical_gradient(f, x)` differentiates a scalar function, `numerical_gradient_array(f, x,
dout)` the scalar sum(f(x) * dout) of an array function, both by central differences
(f(x + h) - f(x - h)) / (2h), perturbing x in place one element at a time and restoring it.
"""
import numpy as np

__all__ = ["rel_error", "max_rel_error", "numerical_gradient", "numerical_gradient_array"]


def _relative(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    return np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))


def rel_error(a, b):
    """cs231n's relative error: max(|a - b| / maximum(1e-8, |a| + |b|)) (0.0 for empty arrays)."""
    r = _relative(a, b)
    return float(r.max()) if r.size else 0.0


def max_rel_error(a, b):
    """(rel_error(a, b), index tuple of the element where it is reached); () for scalars."""
    r = _relative(a, b)
    if r.size == 0:
        return 0.0, ()
    flat = int(np.argmax(r))
    return float(r.flat[flat]), tuple(int(i) for i in np.unravel_index(flat, r.shape))


def _check_x(name, x):
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{name}: x must be a float64 numpy array (perturbed in place), got {kind}")


def numerical_gradient(f, x, h=1e-6):
    """Central-difference gradient of scalar-valued f at x (float64 ndarray), same shape as x.

    grad[ix] = (f(x + h e_ix) - f(x - h e_ix)) / (2h); x is perturbed in place and restored.
    """
    _check_x("numerical_gradient", x)
    grad = np.zeros_like(x)
    for ix in np.ndindex(*x.shape):
        old = x[ix]
        x[ix] = old + h
        fp = float(f(x))
        x[ix] = old - h
        fm = float(f(x))
        x[ix] = old
        grad[ix] = (fp - fm) / (2.0 * h)
    return grad


def numerical_gradient_array(f, x, dout, h=1e-6):
    """Central-difference gradient of sum(f(x) * dout) at x, for array-valued f (a layer's
    forward) and upstream gradient dout of f(x)'s shape; x is perturbed in place and restored."""
    _check_x("numerical_gradient_array", x)
    dout = np.asarray(dout, dtype=np.float64)
    grad = np.zeros_like(x)
    for ix in np.ndindex(*x.shape):
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old - h
        neg = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old
        if pos.shape != dout.shape:
            raise ValueError(f"numerical_gradient_array: f(x) has shape {pos.shape} but dout {dout.shape}")
        grad[ix] = np.sum((pos - neg) * dout) / (2.0 * h)
    return grad
