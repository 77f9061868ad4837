"""Full MNIST through `tensorflow-datasets`, behind the optional extra `jaxnets[tfds]`.

Nothing here is imported until a tfds dataset is asked for. The records are read with
`tfds.data_source` (random access to a copy prepared as ArrayRecord files), which needs no
TensorFlow: `tensorflow_datasets` decodes the stored examples with protobuf and Pillow (or
OpenCV when installed). The loader first reads the local tfds data directory
(`download=False`; `data_dir`, else `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`), and only
when that fails downloads and prepares the dataset (`download=True`). Preparing does need
TensorFlow (tfds reads the raw files with `tf.io.gfile` and encodes the images with
`tf.image.encode_png`) and internet access, so without TensorFlow the loader says so at once
instead of downloading first. A missing `tensorflow_datasets`, a missing TensorFlow for the
first preparation, or a failed download (no network, proxy, checksum) becomes one
`DataUnavailableError` that says how to install the extra or how to use local IDX files
instead; malformed records become one `DataError`.
"""
from __future__ import annotations

import importlib
import importlib.util

import numpy as np

from .errors import DataError, DataUnavailableError

INSTALL_HINT = (
    "install the optional extra with `pip install 'jaxnets[tfds]'` (enough to read a copy that "
    "tfds already prepared as array_record in its data dir, $TFDS_DATA_DIR or ~/tensorflow_datasets); "
    "the first download also needs `pip install tensorflow` (tfds prepares the dataset with it) and "
    "internet access; or point at local MNIST IDX files with the source "
    "'idx:DIR' (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...)"
)

# Records per `__getitems__` call: one batched read of the ArrayRecord files each, few calls in all.
_CHUNK = 10_000
# Only ArrayRecord gives random access; with an explicit data_dir tfds would otherwise prepare
# TFRecord files, which `tfds.data_source` cannot read.
_BUILDER_KWARGS = {"file_format": "array_record"}


def _import_tfds():
    """Import tensorflow_datasets lazily; any import failure becomes DataUnavailableError."""
    try:
        return importlib.import_module("tensorflow_datasets")
    except ImportError as e:
        raise DataUnavailableError(
            f"tfds dataset requested but tensorflow-datasets cannot be imported ({e}); {INSTALL_HINT}"
        ) from e


def _tensorflow_installed() -> bool:
    """Whether TensorFlow, which tfds needs to prepare (not to read) a dataset, can be imported."""
    return importlib.util.find_spec("tensorflow") is not None


def _read_records(name: str, split: str, source) -> tuple[np.ndarray, np.ndarray]:
    """All (image, label) pairs of one split's data source, in record order, as two arrays.

    Reads in chunks with the source's batched `__getitems__` (ArrayRecord reads a batch in
    parallel); a source without it (a plain sequence) is read item by item.
    """
    supervised = getattr(getattr(source, "dataset_info", None), "supervised_keys", None)
    if not (isinstance(supervised, tuple) and len(supervised) == 2 and all(isinstance(k, str) for k in supervised)):
        supervised = ("image", "label")  # what mnist's are
    image_key, label_key = supervised
    getitems = getattr(source, "__getitems__", None)
    n = len(source)
    images, labels = [], []
    for start in range(0, n, _CHUNK):
        idx = list(range(start, min(n, start + _CHUNK)))
        try:
            records = getitems(idx) if getitems is not None else [source[i] for i in idx]
        except Exception as e:  # unreadable file, undecodable image, ...
            raise DataError(f"tfds {name!r} split {split!r}: reading records {idx[0]}..{idx[-1]} "
                            f"failed ({type(e).__name__}: {e})") from e
        try:
            images.extend(r[image_key] for r in records)
            labels.extend(r[label_key] for r in records)
        except (KeyError, TypeError, IndexError) as e:
            raise DataError(f"tfds {name!r} split {split!r}: records lack {image_key!r} / {label_key!r} ({e!r})") from e
    if not images:
        raise DataError(f"tfds {name!r} split {split!r}: no records")
    try:
        return np.stack(images), np.asarray(labels)
    except ValueError as e:  # ragged image shapes
        shapes = sorted({np.shape(i) for i in images})[:4]
        raise DataError(f"tfds {name!r} split {split!r}: images of differing shapes {shapes}") from e


def _to_numpy(name: str, split: str, pair) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (np.asarray(a) for a in pair)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"tfds {name!r} split {split!r}: unexpected shapes images {images.shape}, labels {labels.shape}")
    return images.astype(np.uint8), labels.astype(np.int32)


def load_tfds(name: str = "mnist", data_dir=None):
    """(x_train, y_train, x_test, y_test): uint8 images (N, H, W) and int32 labels from tfds.

    Reads the 'train' and 'test' splits through `tfds.data_source` (no TensorFlow needed): the
    local cache first (`download=False`), and only when that fails downloads and prepares the
    dataset as array_record (`download=True`, which needs TensorFlow and internet access).
    """
    tfds = _import_tfds()
    kwargs = dict(split=["train", "test"], data_dir=data_dir, builder_kwargs=dict(_BUILDER_KWARGS))
    try:
        splits = tfds.data_source(name, download=False, **kwargs)
    except Exception as cache_error:  # not in the cache (tfds raises assorted types here)
        if not _tensorflow_installed():
            raise DataUnavailableError(
                f"tfds dataset {name!r} is not in the local cache as array_record "
                f"({type(cache_error).__name__}: {cache_error}), and downloading and preparing it "
                f"needs TensorFlow, which is not installed; {INSTALL_HINT}"
            ) from cache_error
        try:
            splits = tfds.data_source(name, download=True, **kwargs)
        except Exception as e:  # network, proxy, checksum, disk: one clear error
            raise DataUnavailableError(
                f"tfds dataset {name!r} is not in the local cache and downloading it failed "
                f"({type(e).__name__}: {e}); {INSTALL_HINT}"
            ) from e
    train, test = splits
    return (*_to_numpy(name, "train", _read_records(name, "train", train)),
            *_to_numpy(name, "test", _read_records(name, "test", test)))
