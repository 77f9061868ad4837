"""Preprocessing as the documents do it (pure NumPy).

Each function reproduces one document's step; its docstring says where that step departs from
good practice, and where a flag gives the better variant.
"""
from __future__ import annotations

import numpy as np

from .errors import DataError


def scale_pixels(x) -> np.ndarray:
    """uint8 pixels / 255 -> float32 in [0, 1] (001, 003: `X / 255.`).

    Differs from good practice only mildly: the inputs are not centred (mean ~0.13, not 0),
    which slows plain gradient descent a little; `subtract_mean_image` after scaling fixes that.
    """
    return np.asarray(x, dtype=np.float32) / np.float32(255.0)


def mean_image(x_train, dtype=np.float32) -> np.ndarray:
    """The mean training image, accumulated in float64 and returned as `dtype`."""
    return np.mean(np.asarray(x_train, dtype=np.float64), axis=0).astype(dtype)


def subtract_mean_image(x_train, *others, dtype=np.float32) -> tuple[np.ndarray, ...]:
    """Subtract the mean *training* image from x_train and from every array in `others` (002).

    Returns `(x_train - mean, *(o - mean for o in others))` in `dtype` (float32 or float64).
    Erratum in 002: the document computed and subtracted the mean in uint8, so every pixel
    darker than the mean wrapped around to ~255 (see `subtract_mean_image_uint8`). Here the mean
    is taken in float64 and the result is float, as it should be. Using the training mean for
    validation and test sets too (not their own means) is the correct practice, and what 002 does.
    """
    if dtype not in (np.float32, np.float64):
        raise DataError(f"subtract_mean_image: dtype must be float32 or float64, got {dtype}")
    mu = mean_image(x_train, np.float64)
    return tuple((np.asarray(a, dtype=np.float64) - mu).astype(dtype) for a in (x_train, *others))


def subtract_mean_image_uint8(x_train, *others) -> tuple[np.ndarray, ...]:
    """The document's erratum (002), kept only to demonstrate it: mean and subtraction in uint8.

    Values below the mean wrap around modulo 256. Do not train on this.
    """
    mu = np.mean(x_train, axis=0).astype(np.uint8)
    return tuple(np.asarray(a, dtype=np.uint8) - mu for a in (x_train, *others))


def flatten(x) -> np.ndarray:
    """(N, d1, ..., dk) -> (N, d1*...*dk), e.g. images to (N, 784) for the MLPs (001, 002, 003)."""
    x = np.asarray(x)
    if x.ndim < 1:
        raise DataError(f"flatten: need an array with a leading sample axis, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def add_channel(x) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W): one grey channel, NCHW, for the conv net."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise DataError(f"add_channel: expected images (N, H, W), got shape {x.shape}")
    return x[:, None, :, :]


def normalize_features(x_train, x_test=None, use_train_norms: bool = False):
    """Scale every feature (column of an (N, F) array) to unit L2 norm across the samples (000).

    This is `sklearn.preprocessing.normalize(X, axis=1)` on the document's F x m matrix. A
    feature whose norm is 0 is left as zeros (sklearn does the same).

    Default (`use_train_norms=False`) reproduces the document, which normalised the test set
    with *its own* norms. That is an erratum: the scale then depends on the set (and on its
    size; a feature's values shrink like 1/sqrt(N)), so test inputs are ~sqrt(8143/2665) = 1.75x
    larger than the training inputs the net saw, and test-set statistics leak into
    preprocessing. `use_train_norms=True` is correct practice: divide both sets by the
    *training* norms. (Better still would be standardising with training means and stds.)

    Returns `x_train_n` when `x_test` is None, else `(x_train_n, x_test_n)`, as float64.
    """
    def norms(a, what):
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] == 0:
            raise DataError(f"normalize_features: {what} must be a non-empty (N, F) array, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise DataError(f"normalize_features: {what} contains NaN or inf")
        n = np.linalg.norm(a, axis=0)
        return a, np.where(n == 0, 1.0, n)

    xtr, ntr = norms(x_train, "x_train")
    if x_test is None:
        return xtr / ntr
    xte, nte = norms(x_test, "x_test")
    if xte.shape[1] != xtr.shape[1]:
        raise DataError(f"normalize_features: x_train has {xtr.shape[1]} features, x_test {xte.shape[1]}")
    return xtr / ntr, xte / (ntr if use_train_norms else nte)


def _check_xy(fn, x, y):
    x, y = np.asarray(x), np.asarray(y)
    if x.shape[:1] != y.shape[:1] or x.ndim == 0:
        raise DataError(f"{fn}: x has {x.shape[:1]} samples, y has {y.shape[:1]}")
    return x, y


def shuffle_split(x, y, n_holdout: int = 1000, seed: int = 0):
    """Shuffle, then the first `n_holdout` rows are held out (dev), the rest train (001, 003).

    Returns `(x_train, y_train, x_dev, y_dev)`. Matches the documents' `np.random.shuffle` then
    slice, with an explicit seed (the documents used the global RNG, so their split was not
    reproducible). The split is not stratified; with 1000 of 42000 rows that is harmless.
    """
    x, y = _check_xy("shuffle_split", x, y)
    n = x.shape[0]
    if not 0 < n_holdout < n:
        raise DataError(f"shuffle_split: n_holdout={n_holdout} must be between 1 and N-1={n - 1}")
    perm = np.random.default_rng(seed).permutation(n)
    dev, train = perm[:n_holdout], perm[n_holdout:]
    return x[train], y[train], x[dev], y[dev]


def head_split(x, y, n_train: int = 50000, n_val: int = 10000):
    """Train = the first `n_train` rows, validation = the next `n_val` (002: 50000 / 10000).

    Returns `(x_train, y_train, x_val, y_val)`. No shuffle: fine for MNIST, whose training file
    is not ordered by class, but wrong for any file sorted by label or time.
    """
    x, y = _check_xy("head_split", x, y)
    n = x.shape[0]
    if n_train <= 0 or n_val < 0 or n_train + n_val > n:
        raise DataError(f"head_split: n_train={n_train} + n_val={n_val} does not fit in N={n} rows")
    return x[:n_train], y[:n_train], x[n_train:n_train + n_val], y[n_train:n_train + n_val]
