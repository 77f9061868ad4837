"""Full MNIST through `tensorflow-datasets`, behind the optional extra `jaxnets[tfds]`.

Nothing here is imported until a tfds dataset is asked for, so the library works without
TensorFlow. The loader first tries the local tfds cache (`download=False`), then downloads.
A missing `tensorflow` / `tensorflow_datasets`, or a failed download (no network, proxy,
checksum), becomes one `DataUnavailableError` that says how to install the extra or how to
use local IDX files instead.
"""
from __future__ import annotations

import importlib

import numpy as np

from .errors import DataError, DataUnavailableError

INSTALL_HINT = (
    "install the optional extra with `pip install 'jaxnets[tfds]' tensorflow` (and have internet "
    "access for the first download), or point at local MNIST IDX files with the source "
    "'idx:DIR' (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...)"
)


def _import_tfds():
    """Import tensorflow_datasets lazily; any import failure becomes DataUnavailableError."""
    try:
        return importlib.import_module("tensorflow_datasets")
    except ImportError as e:  # also tensorflow missing underneath tensorflow_datasets
        raise DataUnavailableError(
            f"tfds dataset requested but tensorflow-datasets cannot be imported ({e}); {INSTALL_HINT}"
        ) from e


def _to_numpy(name: str, split: str, pair) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (np.asarray(a) for a in pair)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise DataError(f"tfds {name!r} split {split!r}: unexpected shapes images {images.shape}, labels {labels.shape}")
    return images.astype(np.uint8), labels.astype(np.int32)


def load_tfds(name: str = "mnist", data_dir=None):
    """(x_train, y_train, x_test, y_test): uint8 images (N, 28, 28) and int32 labels from tfds.

    Tries the local cache first (`download=False`) and downloads only when that fails.
    """
    tfds = _import_tfds()
    kwargs = dict(split=["train", "test"], batch_size=-1, as_supervised=True, data_dir=data_dir)
    try:
        splits = tfds.load(name, download=False, **kwargs)
    except Exception:  # not in the cache (tfds raises assorted types here): download instead
        try:
            splits = tfds.load(name, download=True, **kwargs)
        except Exception as e:  # network, proxy, checksum, disk: one clear error
            raise DataUnavailableError(
                f"tfds dataset {name!r} is not in the local cache and downloading it failed "
                f"({type(e).__name__}: {e}); {INSTALL_HINT}"
            ) from e
    try:
        train, test = (tfds.as_numpy(s) for s in splits)
    except Exception as e:
        raise DataUnavailableError(f"tfds dataset {name!r} could not be converted to NumPy ({e}); {INSTALL_HINT}") from e
    return (*_to_numpy(name, "train", train), *_to_numpy(name, "test", test))
