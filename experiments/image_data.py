"""MNIST-like data for the image experiments, prepared the way each document does it.

Sources are `jaxnets.data.load_dataset` specs. The default is the built-in 5000 real MNIST
training images, tested on the official 10000 MNIST test images when `../shared/data/mnist`
(or `$JAXNETS_SHARED_DATA/mnist`) is present, else the built-in sample alone.

Held-out split: a source with at least 60000 training images is split as 002 does (first 50000
train, next 10000 validation); a smaller one (the 5000 sample, Kaggle's 42000-row train.csv)
loses 1000 shuffled rows to validation, as 001/003 hold out 1000 dev rows (a fifth of the rows
below 5000). The test set, when the source has one, is never used for training or selection.
"""
from __future__ import annotations

import numpy as np

from experiments.runner import Prepared
from jaxnets.data import (DataUnavailableError, add_channel, flatten, head_split, load_dataset,
                          mean_image, scale_pixels, shared_data_dir, shuffle_split)

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
FULL_SIZE = 60000
SMALL_HOLDOUT = 1000


def default_spec():
    """`sample+mnist-test` when the official test images are reachable, else `sample`."""
    try:
        present = (shared_data_dir() / "mnist").is_dir()
    except DataUnavailableError:
        present = False
    return "sample+mnist-test" if present else "sample"


def _split(ds, seed):
    if ds.x_train.shape[0] >= FULL_SIZE:
        return head_split(ds.x_train, ds.y_train, 50000, 10000), "first 50000 train, next 10000 validation (002)"
    n = ds.x_train.shape[0]
    holdout = SMALL_HOLDOUT if n >= 5 * SMALL_HOLDOUT else n // 5
    return (shuffle_split(ds.x_train, ds.y_train, holdout, seed),
            f"{holdout} shuffled rows held out for validation (seed {seed}), the rest train (001/003)")


STYLES = {
    "scaled": "pixels / 255, flattened to 784 (001/003)",
    "mean_subtracted": "mean training image subtracted in float32 from 0..255 pixels, flattened (002; not uint8)",
    "conv": "pixels / 255 minus the mean training pixel, NCHW (N, 1, 28, 28)",
}


def fit_transform(style, train_images):
    """The preprocessing of `style`, fitted on the uint8 training images (N, 28, 28):

    - "scaled" (001/003 digits MLP): pixels / 255, flattened to (N, 784);
    - "mean_subtracted" (002 TwoLayerNet): the mean training image subtracted in float (not
      uint8, 002's erratum) from raw 0..255 pixels, flattened;
    - "conv" (the ConvNet): pixels / 255 minus the mean training pixel, NCHW (N, 1, 28, 28).

    Returned as a dict of arrays (saved as a run's `preprocess.npz`, so `predict` applies the
    very same steps to new images).
    """
    if style not in STYLES:
        raise ValueError(f"unknown preprocessing style {style!r}; known: {', '.join(STYLES)}")
    if style == "scaled":
        scale, mean = 1 / 255, np.zeros((), np.float32)
    elif style == "mean_subtracted":
        scale, mean = 1.0, mean_image(train_images, np.float32)
    else:
        scale = 1 / 255
        mean = np.float32(scale_pixels(train_images).mean(dtype=np.float64))
    return {"style": np.array(style), "scale": np.float32(scale), "mean": np.asarray(mean, np.float32),
            "image_shape": np.array(train_images.shape[1:])}


def apply_transform(transform, images):
    """uint8 images (N, H, W) -> model inputs, as fitted by `fit_transform`."""
    images = np.asarray(images)
    want = tuple(int(d) for d in transform["image_shape"])
    if images.ndim != 3 or images.shape[1:] != want:
        raise ValueError(f"images must have shape (N, {want[0]}, {want[1]}), got {images.shape}")
    x = images.astype(np.float32) * transform["scale"] - transform["mean"]
    return add_channel(x) if str(transform["style"]) == "conv" else flatten(x)


def prepare(spec, style, seed=0, n_train=None):
    """Load `spec`, split it (see the module docstring) and preprocess for `style`
    (`fit_transform`, fitted on the training split).

    n_train: keep only the first n_train rows of the training split (002's overfit check).
    """
    ds = load_dataset(spec)
    (x_tr, y_tr, x_val, y_val), split = _split(ds, seed)
    if n_train is not None:
        if not 0 < n_train <= x_tr.shape[0]:
            raise ValueError(f"n_train={n_train} must be between 1 and {x_tr.shape[0]} (training rows of {spec!r})")
        x_tr, y_tr = x_tr[:n_train], y_tr[:n_train]
    transform = fit_transform(style, x_tr)
    x_te = None if ds.x_test is None else apply_transform(transform, ds.x_test)
    return Prepared(
        apply_transform(transform, x_tr), y_tr, apply_transform(transform, x_val), y_val, x_te, ds.y_test,
        data={"spec": spec, "name": ds.name, "source": ds.source, "split": split,
              "preprocessing": STYLES[style], "n_train_limit": n_train},
        show_test=ds.x_test, class_names=FASHION_CLASSES if ds.name == "fashion-mnist" else None,
        transform=transform,
    )
