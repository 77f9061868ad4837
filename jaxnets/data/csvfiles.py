"""Readers for the two CSV formats of the documents.

- Kaggle "digit recognizer" (001, 003): `train.csv` with header `label,pixel0,...,pixel783`
  and one image per row; `test.csv` has the same pixel columns and no label column.
- UCI Occupancy Detection (000): header
  `"date","Temperature","Humidity","Light","CO2","HumidityRatio","Occupancy"` and each data row
  led by a quoted row id that the header does not name, e.g.
  `"1","2015-02-04 17:51:00",23.18,27.272,426,721.25,0.00479298817650529,1`.

Any malformed content raises `DataError` naming the file, and where it applies the row
(1-based data row and the file's line number) and the column.
"""
from __future__ import annotations

import csv
import gzip
import math
import zlib
import warnings
from pathlib import Path

import numpy as np

from .errors import DataError

IMAGE_SIDE = 28
NUM_PIXELS = IMAGE_SIDE * IMAGE_SIDE
PIXEL_COLUMNS = tuple(f"pixel{i}" for i in range(NUM_PIXELS))

OCCUPANCY_HEADER = ("date", "Temperature", "Humidity", "Light", "CO2", "HumidityRatio", "Occupancy")
OCCUPANCY_FEATURES = ("Temperature", "Humidity", "Light", "CO2", "HumidityRatio")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")


_GZIP_MAGIC = b"\x1f\x8b"


def _open_text(path: Path):
    """The file as UTF-8 text, gunzipped when its content starts with the gzip magic."""
    with open(path, "rb") as f:
        gz = f.read(2) == _GZIP_MAGIC
    if gz:
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return open(path, newline="", encoding="utf-8-sig")


def _first_line(path: Path) -> str:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return f.readline()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (cannot decode as UTF-8)") from None


def _fmt(v) -> str:
    """A number as a reader would write it: 12 rather than np.float64(12.0)."""
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------- Kaggle digits

def _kaggle_header(path: Path, require_labels: bool) -> tuple[bool, list[str]]:
    line = _first_line(path)
    if not line.strip():
        raise DataError(f"{path}: empty file: no header line (expected label,pixel0..pixel783)")
    names = [c.strip().strip('"').strip() for c in line.strip().split(",")]
    if all(_is_number(c) for c in names):
        raise DataError(
            f"{path}: no header line: the first line holds numbers; expected a header "
            f"'label,pixel0,...,pixel783' (train) or 'pixel0,...,pixel783' (test)"
        )
    has_label = names[0] == "label"
    if "label" in names[1:]:
        raise DataError(f"{path}: CSV header error: 'label' must be the first column, found at column {names.index('label') + 1}")
    if require_labels and not has_label:
        raise DataError(
            f"{path}: CSV header error: missing label column: the first column is {names[0]!r}, "
            f"expected 'label' (a Kaggle train.csv; test.csv has no labels)"
        )
    pixels = names[1:] if has_label else names
    if len(pixels) != NUM_PIXELS:
        raise DataError(
            f"{path}: CSV header error: wrong pixel column count: {len(pixels)} pixel columns, "
            f"expected {NUM_PIXELS} (pixel0..pixel{NUM_PIXELS - 1})"
        )
    for i, (got, want) in enumerate(zip(pixels, PIXEL_COLUMNS)):
        if got != want:
            raise DataError(f"{path}: CSV header error: pixel column {i} is named {got!r}, expected {want!r}")
    return has_label, names


def _scan_numeric(path: Path, names: list[str], skip_first: int = 1) -> DataError:
    """Find the first malformed row the fast reader choked on, as an error naming row and column."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if lineno <= skip_first:
                continue
            if not row:
                continue
            r = lineno - skip_first
            if len(row) != len(names):
                return DataError(
                    f"{path}: row {r} (line {lineno}) has {len(row)} fields, expected {len(names)}"
                )
            for name, cell in zip(names, row):
                if not _is_number(cell):
                    return DataError(
                        f"{path}: row {r} (line {lineno}), column {name!r}: {cell!r} is not a number"
                    )
    return DataError(f"{path}: cannot parse the CSV data")


def read_kaggle_csv(path, require_labels: bool = False, num_classes: int = 10):
    """Images (N, 28, 28) uint8 and labels (N,) int32 — or None for a test.csv — from a Kaggle CSV.

    `require_labels=True` makes a missing `label` column an error (a train.csv is expected).
    Pixels must be integers in 0..255, labels integers in 0..num_classes-1.
    """
    path = Path(path)
    _check_file(path)
    has_label, names = _kaggle_header(path, require_labels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2,
                              encoding="utf-8-sig")
    except ValueError:
        raise _scan_numeric(path, names) from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: empty dataset: header but no data rows")
    if data.shape[1] != len(names):
        raise _scan_numeric(path, names)
    pixels = data[:, 1:] if has_label else data
    bad = ~np.isfinite(pixels) | (pixels < 0) | (pixels > 255) | (pixels != np.round(pixels))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: row {r + 1} (line {r + 2}), column 'pixel{c}': pixel value {_fmt(pixels[r, c])} "
            f"is not an integer in 0..255"
        )
    x = pixels.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    if not has_label:
        return x, None
    labels = data[:, 0]
    bad = ~np.isfinite(labels) | (labels < 0) | (labels > num_classes - 1) | (labels != np.round(labels))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: row {r + 1} (line {r + 2}), column 'label': label {_fmt(labels[r])} is outside "
            f"0..{num_classes - 1} ({int(bad.sum())} such rows)"
        )
    return x, labels.astype(np.int32)


# --------------------------------------------------------------------------- occupancy

def read_occupancy(path):
    """Features (N, 5) float64 (Temperature, Humidity, Light, CO2, HumidityRatio) and labels (N,) int32 0/1.

    The `date` column and the leading row id are dropped, as in document 000. The file may be
    gzip-compressed (recognised by its content).
    """
    path = Path(path)
    _check_file(path)
    try:
        with _open_text(path) as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (cannot decode as UTF-8)") from None
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: corrupt or truncated gzip stream ({type(e).__name__}: {e})") from None
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV ({e})") from None
    if not rows:
        raise DataError(f"{path}: empty file: no header line")
    header = tuple(c.strip() for c in rows[0])
    if header != OCCUPANCY_HEADER:
        missing = [c for c in OCCUPANCY_HEADER if c not in header]
        extra = [c for c in header if c not in OCCUPANCY_HEADER]
        detail = []
        if missing:
            detail.append(f"missing {missing}")
        if extra:
            detail.append(f"unexpected {extra}")
        if not detail:
            detail.append("columns in the wrong order")
        raise DataError(
            f"{path}: occupancy header mismatch ({'; '.join(detail)}): found {list(header)}, "
            f"expected {list(OCCUPANCY_HEADER)}"
        )
    width = len(OCCUPANCY_HEADER) + 1  # the unnamed row id leads every data row
    feat_idx = [1 + OCCUPANCY_HEADER.index(c) for c in OCCUPANCY_FEATURES]
    label_idx = 1 + OCCUPANCY_HEADER.index("Occupancy")
    x, y = [], []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        r = lineno - 1
        if len(row) != width:
            raise DataError(
                f"{path}: row {r} (line {lineno}) has {len(row)} fields, expected {width} "
                f"(a row id and the {len(OCCUPANCY_HEADER)} header columns)"
            )
        vals = []
        for j in feat_idx + [label_idx]:
            name = OCCUPANCY_HEADER[j - 1]
            try:
                v = float(row[j])
            except ValueError:
                raise DataError(
                    f"{path}: row {r} (line {lineno}), column {name!r}: {row[j]!r} is not a number"
                ) from None
            if not math.isfinite(v):
                raise DataError(
                    f"{path}: row {r} (line {lineno}), column {name!r}: value {row[j]!r} is not finite (NaN/inf)"
                )
            vals.append(v)
        if vals[-1] not in (0.0, 1.0):
            raise DataError(
                f"{path}: row {r} (line {lineno}), column 'Occupancy': label {row[label_idx]!r} is not 0 or 1"
            )
        x.append(vals[:-1])
        y.append(int(vals[-1]))
    if not x:
        raise DataError(f"{path}: empty dataset: header but no data rows")
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int32)
