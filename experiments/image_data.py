"""MNIST-like data for the image experiments, prepared the way each document does it.

Sources are `jaxnets.data.load_dataset` specs. The default, `sample+mnist-test`, is the
built-in 5000 real MNIST training images tested on the official 10000 MNIST test images (both
shipped in the package; `../shared/data/mnist` or `$JAXNETS_SHARED_DATA/mnist` is read instead
when present).

Held-out split: a source with at least 60000 training images is split as 002 does (first 50000
train, next 10000 validation); a smaller one (the 5000 sample, Kaggle's 42000-row train.csv)
loses 1000 shuffled rows to validation, as 001/003 hold out 1000 dev rows (a fifth of the rows
below 5000). The test set, when the source has one, is never used for training or selection.
"""
from __future__ import annotations


from experiments.runner import Prepared
from jaxnets.data import STYLES, fit_pixel_transform, head_split, load_dataset, shuffle_split

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
FULL_SIZE = 60000
SMALL_HOLDOUT = 1000


#: the image experiments' data: the built-in sample, tested on the official test set
DEFAULT_SPEC = "sample+mnist-test"


def _split(ds, seed):
    if ds.x_train.shape[0] >= FULL_SIZE:
        return head_split(ds.x_train, ds.y_train, 50000, 10000), "first 50000 train, next 10000 validation (002)"
    n = ds.x_train.shape[0]
    holdout = SMALL_HOLDOUT if n >= 5 * SMALL_HOLDOUT else n // 5
    return (shuffle_split(ds.x_train, ds.y_train, holdout, seed),
            f"{holdout} shuffled rows held out for validation (seed {seed}), the rest train (001/003)")


def prepare(spec, style, seed=0, n_train=None):
    """Load `spec`, split it (see the module docstring) and preprocess for `style`
    (`jaxnets.data.fit_pixel_transform`, fitted on the training split).

    n_train: keep only the first n_train rows of the training split (002's overfit check).
    """
    ds = load_dataset(spec)
    (x_tr, y_tr, x_val, y_val), split = _split(ds, seed)
    if n_train is not None:
        if not 0 < n_train <= x_tr.shape[0]:
            raise ValueError(f"--n-train {n_train} must be between 1 and {x_tr.shape[0]} (the training rows of "
                             f"{spec!r})")
        x_tr, y_tr = x_tr[:n_train], y_tr[:n_train]
    transform = fit_pixel_transform(style, x_tr)
    x_te = None if ds.x_test is None else transform(ds.x_test)
    return Prepared(
        transform(x_tr), y_tr, transform(x_val), y_val, x_te, ds.y_test,
        data={"spec": spec, "name": ds.name, "source": ds.source, "split": split,
              "preprocessing": STYLES[style], "n_train_limit": n_train},
        show_test=ds.x_test, class_names=FASHION_CLASSES if ds.name == "fashion-mnist" else None,
        transform=transform, images=(x_tr, x_val),
    )
