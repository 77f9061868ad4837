"""`check_arrays`: the one check on arrays before they go into a model.

Training (`jaxnets.training`) calls it for every set it is given, so wrong shapes, NaN/inf,
out-of-range labels and mismatched lengths fail with one clear `ValueError` (a `DataError`)
naming the set and the problem, instead of a broadcasting error or a silent NaN loss deep
inside JAX.
"""
from __future__ import annotations

import numpy as np

from .errors import DataError


def check_arrays(x, y, *, feature_shape=None, num_classes=None, binary=False, name="data",
                 pixels=False, tokens=False, label_shape=()) -> None:
    """Validate model inputs `x` (N, *feature_shape) float and labels `y`.

    - `x`: at least 2-D, real floating dtype, all finite; `x.shape[1:] == feature_shape` if given.
      With `pixels=True`, x is stored uint8 pixels (decoded inside training) instead; with
      `tokens=True`, integer token ids in 0..num_classes-1 (a language model's inputs).
    - `y`: (N,) integer labels in 0..num_classes-1 (if given); with `binary=True`, (N,) 0/1
      values in any real dtype.
    - `label_shape` (T,): y is (N, T), a target per time step, -1 for "no target".
    - same N in both, N > 0.
    Works on NumPy and JAX arrays (JAX arrays are copied to the host once). Raises `DataError`
    whose message starts with `name`.
    """
    try:
        xa, ya = np.asarray(x), np.asarray(y)
    except Exception as e:  # ragged lists and the like
        raise DataError(f"{name}: cannot convert inputs to arrays ({e})") from None
    if xa.ndim < 2:
        raise DataError(f"{name}: x must have a sample axis and features, i.e. at least 2-D; got shape {xa.shape}")
    if pixels and xa.dtype != np.uint8:
        raise DataError(f"{name}: x must hold uint8 pixels (they are decoded inside training), got dtype {xa.dtype}")
    if tokens:
        _check_tokens(name, xa, num_classes)
    elif not pixels and not np.issubdtype(xa.dtype, np.floating):
        raise DataError(
            f"{name}: x must be a floating array, got dtype {xa.dtype}"
            + (" (scale uint8 images with preprocess.scale_pixels first)" if xa.dtype == np.uint8 else "")
        )
    n = xa.shape[0]
    if n == 0:
        raise DataError(f"{name}: empty dataset (x has 0 samples, shape {xa.shape})")
    if feature_shape is not None and xa.shape[1:] != tuple(feature_shape):
        raise DataError(f"{name}: x has feature shape {xa.shape[1:]}, expected {tuple(feature_shape)}")
    if not pixels and not tokens and not np.isfinite(xa).all():
        bad = np.argwhere(~np.isfinite(xa))
        raise DataError(f"{name}: x contains NaN/inf ({len(bad)} values, first at index {tuple(int(i) for i in bad[0])})")
    label_shape = tuple(label_shape)
    if ya.ndim != 1 + len(label_shape) or (ya.ndim and ya.shape[1:] != label_shape):
        want = "(N,)" if not label_shape else f"(N, *{label_shape})"
        raise DataError(f"{name}: labels y must have shape {want} = {(n, *label_shape)}, got {ya.shape}")
    if ya.shape[0] != n:
        raise DataError(f"{name}: x has {n} samples but y has {ya.shape[0]} labels (y shape {ya.shape}, expected ({n},))")
    if not (np.issubdtype(ya.dtype, np.integer) or (binary and np.issubdtype(ya.dtype, np.floating))
            or ya.dtype == np.bool_):
        raise DataError(f"{name}: labels y have dtype {ya.dtype}; expected integers"
                        + (" or 0/1 floats" if binary else ""))
    if np.issubdtype(ya.dtype, np.floating) and not np.isfinite(ya).all():
        raise DataError(f"{name}: labels y contain NaN/inf (first at index {int(np.flatnonzero(~np.isfinite(ya))[0])})")
    if binary:
        bad = np.flatnonzero(~np.isin(ya.ravel(), (0, 1)))
        if bad.size:
            raise DataError(f"{name}: binary labels must be 0 or 1; y[{int(bad[0])}] = {ya.ravel()[bad[0]].item()!r} ({bad.size} bad)")
    elif num_classes is not None:
        low = -1 if label_shape else 0  # a target per step: -1 is "no target"
        bad = np.argwhere((ya < low) | (ya >= num_classes))
        if bad.size:
            at = tuple(int(i) for i in bad[0])
            raise DataError(
                f"{name}: labels must lie in {low}..{num_classes - 1}{' (-1: no target)' if low else ''}; "
                f"y[{', '.join(map(str, at))}] = {int(ya[at])} ({len(bad)} out of range)"
            )


def _check_tokens(name, xa, vocab):
    """Integer token ids in 0..vocab-1 (an id outside would embed as NaNs under jit)."""
    if not np.issubdtype(xa.dtype, np.integer):
        raise DataError(f"{name}: x must hold integer token ids, got dtype {xa.dtype}")
    if vocab is not None:
        bad = np.argwhere((xa < 0) | (xa >= vocab))
        if bad.size:
            at = tuple(int(i) for i in bad[0])
            raise DataError(f"{name}: token ids must lie in 0..{vocab - 1}; x[{', '.join(map(str, at))}] = "
                            f"{int(xa[at])} ({len(bad)} out of range)")
