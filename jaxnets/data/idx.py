"""Reader for the IDX files MNIST and Fashion-MNIST are published in.

Format (big-endian): two zero bytes, one dtype byte (0x08 = unsigned byte), one byte with the
number of dimensions, one uint32 per dimension, then the data in C order. Images are idx3
(magic 2051 = 0x00000803, dims N x 28 x 28), labels idx1 (magic 2049 = 0x00000801, dims N).
A file may be gzip-compressed or raw; which one is decided by the gzip magic bytes (1f 8b), not
by the file name.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e})") from None


def _decompress(path: Path, raw: bytes) -> bytes:
    """Raw bytes of the IDX payload: gunzipped when the content starts with the gzip magic."""
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path}: corrupt or truncated gzip stream ({type(e).__name__}: {e})"
        ) from None


def read_idx(path, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip or raw) of unsigned bytes into a uint8 array of its stated shape.

    Checks the header (zero bytes, dtype, magic, byte order), that no dimension is zero, and
    that the payload length is exactly the product of the dimensions (truncated files and
    trailing bytes are both errors). Raises `DataError` naming the file.
    """
    path = Path(path)
    raw = _read_bytes(path)
    data = _decompress(path, raw)
    gz_note = ""
    if raw[:2] != _GZIP_MAGIC and path.suffix == ".gz":
        gz_note = " (the name ends in .gz but the content is not gzip data)"
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file: {len(data)} bytes, shorter than the 4-byte magic{gz_note}")
    magic_be = int.from_bytes(data[:4], "big")
    magic_le = int.from_bytes(data[:4], "little")
    known = (IMAGES_MAGIC, LABELS_MAGIC)
    if gz_note and magic_be not in known and magic_le not in known:
        raise DataError(
            f"{path}: not gzip data: the name ends in .gz but the content starts with "
            f"{raw[:8]!r} (no gzip magic 1f 8b) and is not a raw IDX file either"
        )
    if expected_magic is not None and magic_be != expected_magic:
        if magic_le == expected_magic or magic_le in known:
            raise DataError(
                f"{path}: byte-swapped / little-endian IDX header (magic reads {magic_le} only as "
                f"little-endian); IDX files are big-endian, expected magic {expected_magic}"
            )
        what = {IMAGES_MAGIC: "an image file (idx3)", LABELS_MAGIC: "a label file (idx1)"}
        if data[:3] == b"\x00\x00\x08":
            found = what.get(magic_be, f"a {data[3]}-dimensional IDX file")
        else:
            found = f"bytes 0x{data[:4].hex()}"
        raise DataError(
            f"{path}: wrong magic number {magic_be} ({found}); expected {expected_magic} "
            f"({what.get(expected_magic, 'IDX')}){gz_note}"
        )
    if data[0] != 0 or data[1] != 0:
        if magic_le in known:
            raise DataError(f"{path}: byte-swapped / little-endian IDX header; IDX files are big-endian")
        raise DataError(f"{path}: not an IDX file: first bytes 0x{data[:4].hex()}{gz_note}")
    if data[2] != _UBYTE:
        raise DataError(f"{path}: unsupported IDX element type 0x{data[2]:02x}; only 0x08 (unsigned byte) is supported")
    ndim = data[3]
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{path}: truncated IDX file: header needs {header_len} bytes, file has {len(data)}")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if dims[0] == 0:
        raise DataError(f"{path}: empty dataset: the IDX header declares 0 items (dims {dims})")
    if any(d == 0 for d in dims):
        raise DataError(f"{path}: IDX header has a zero dimension: {dims}")
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(data) - header_len
    if got < expected:
        raise DataError(
            f"{path}: truncated IDX file: header declares dims {dims} = {expected} bytes of data, "
            f"only {got} present"
        )
    if got > expected:
        raise DataError(
            f"{path}: IDX file has {got - expected} trailing bytes after the {expected} bytes "
            f"declared by dims {dims}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims).copy()


def read_idx_images(path, image_shape: tuple[int, int] | None = (28, 28)) -> np.ndarray:
    """uint8 images (N, H, W) from an idx3 file; `image_shape` (default 28x28) is enforced unless None."""
    x = read_idx(path, IMAGES_MAGIC)
    if x.ndim != 3:
        raise DataError(f"{path}: image file must have 3 dimensions (N, rows, cols), header has {x.ndim}: {x.shape}")
    if image_shape is not None and x.shape[1:] != tuple(image_shape):
        raise DataError(
            f"{path}: images are {x.shape[1]}x{x.shape[2]}, expected "
            f"{image_shape[0]}x{image_shape[1]}"
        )
    return x


def read_idx_labels(path, num_classes: int | None = 10) -> np.ndarray:
    """uint8 labels (N,) from an idx1 file; values must lie in 0..num_classes-1 (unless None)."""
    y = read_idx(path, LABELS_MAGIC)
    if y.ndim != 1:
        raise DataError(f"{path}: label file must have 1 dimension, header has {y.ndim}: {y.shape}")
    if num_classes is not None:
        bad = np.flatnonzero(y >= num_classes)
        if bad.size:
            raise DataError(
                f"{path}: label {int(y[bad[0]])} at index {int(bad[0])} is outside 0..{num_classes - 1} "
                f"({bad.size} such labels)"
            )
    return y


def read_idx_pair(images_path, labels_path, num_classes: int | None = 10,
                  image_shape: tuple[int, int] | None = (28, 28)) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels from matching idx3/idx1 files; their counts must agree."""
    x = read_idx_images(images_path, image_shape)
    y = read_idx_labels(labels_path, num_classes)
    if x.shape[0] != y.shape[0]:
        raise DataError(
            f"image/label count mismatch: {images_path} has {x.shape[0]} images but "
            f"{labels_path} has {y.shape[0]} labels"
        )
    return x, y


def write_idx(path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write a uint8 array as an IDX file (gzip when `compress`, default: when the name ends in .gz)."""
    path = Path(path)
    a = np.ascontiguousarray(array)
    if a.dtype != np.uint8:
        raise DataError(f"{path}: write_idx needs a uint8 array, got {a.dtype}")
    header = bytes([0, 0, _UBYTE, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    payload = header + a.tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path
