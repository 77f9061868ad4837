"""Data package: readers, named sources, preprocessing and validation.

Every bad-input kind has its own test that builds a small malformed file in tmp_path and
checks that one `DataError` (a ValueError) names the file and the problem. The real-data tests
read the shared data directory (`$JAXNETS_SHARED_DATA` or `<repo>/../shared/data`) or, where
the package ships a copy (the MNIST test set, occupancy), that copy; a test that needs a file
only the shared folder has skips with a reason when it is absent.
"""
from __future__ import annotations

import gzip
import re
import sys
import types

import numpy as np
import pytest

from jaxnets.data import (DataError, DataUnavailableError, Dataset, PixelTransform, add_channel, check_arrays,
                          fit_pixel_transform, flatten, head_split, load_dataset, normalize_features, read_idx,
                          read_idx_images, read_idx_labels, read_idx_pair, read_kaggle_csv,
                          read_occupancy, scale_pixels, shared_data_dir, shuffle_split,
                          subtract_mean_image, subtract_mean_image_uint8, write_idx)
from jaxnets.data import sources as sources_mod

OCC_HEADER = '"date","Temperature","Humidity","Light","CO2","HumidityRatio","Occupancy"'
OCC_ROW = '"{i}","2015-02-04 17:51:00",23.18,27.272,426,721.25,0.00479298817650529,{y}'
PIXELS = ",".join(f"pixel{i}" for i in range(784))


# --------------------------------------------------------------------------- helpers

def idx_bytes(array: np.ndarray, magic_override: bytes | None = None) -> bytes:
    """A tiny IDX writer independent of the package's: header + big-endian dims + uint8 data."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, 8, a.ndim]) if magic_override is None else magic_override
    return head + b"".join(int(d).to_bytes(4, "big") for d in a.shape) + a.tobytes()


def write_idx_file(path, array, gz: bool, **kw):
    data = idx_bytes(array, **kw)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def tiny_mnist(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def idx_dir(tmp_path, n=6, test=True, gz=True):
    x, y = tiny_mnist(n)
    ext = ".gz" if gz else ""
    write_idx_file(tmp_path / f"train-images-idx3-ubyte{ext}", x, gz)
    write_idx_file(tmp_path / f"train-labels-idx1-ubyte{ext}", y, gz)
    if test:
        write_idx_file(tmp_path / f"t10k-images-idx3-ubyte{ext}", x[:3], gz)
        write_idx_file(tmp_path / f"t10k-labels-idx1-ubyte{ext}", y[:3], gz)
    return x, y


def kaggle_csv(path, rows, header=None):
    header = ("label," + PIXELS) if header is None else header
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def kaggle_row(label=3, pixel=0, n=784):
    return ",".join([str(label)] + [str(pixel)] * n)


def occupancy_file(path, rows=None, header=OCC_HEADER):
    rows = [OCC_ROW.format(i=i + 1, y=i % 2) for i in range(4)] if rows is None else rows
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def raises_naming(path, pattern, fn, *args, **kw):
    """fn(*args) raises DataError whose message names `path` (if given) and matches `pattern`."""
    with pytest.raises(DataError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    if path is not None:
        assert str(path) in msg, msg
    assert re.search(pattern, msg, re.IGNORECASE), msg
    return msg


def shared_or_skip(sub):
    try:
        d = shared_data_dir() / sub
    except DataUnavailableError as e:
        pytest.skip(f"shared data directory absent: {e}")
    if not d.is_dir():
        pytest.skip(f"shared data subdirectory absent: {d}")
    return d


# --------------------------------------------------------------------------- good paths

@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_idx_round_trip(tmp_path, gz):
    x, y = tiny_mnist()
    name = ".gz" if gz else ""
    xi, yi = read_idx_pair(write_idx_file(tmp_path / f"i{name}", x, gz),
                           write_idx_file(tmp_path / f"l{name}", y, gz))
    assert xi.dtype == np.uint8 and xi.shape == (6, 28, 28)
    np.testing.assert_array_equal(xi, x)
    np.testing.assert_array_equal(yi, y)


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    x, _ = tiny_mnist()
    p = write_idx_file(tmp_path / "images.bin", x, gz=True)  # gzip content, no .gz name
    np.testing.assert_array_equal(read_idx_images(p), x)
    q = write_idx_file(tmp_path / "images.gz", x, gz=False)  # raw IDX content, .gz name
    np.testing.assert_array_equal(read_idx_images(q), x)


def test_package_idx_writer_round_trip(tmp_path):
    x, y = tiny_mnist()
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x.gz", x)), x)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "y", y)), y)


def test_idx_dir_source(tmp_path):
    x, y = idx_dir(tmp_path, gz=False)
    ds = load_dataset(f"idx:{tmp_path}")
    assert isinstance(ds, Dataset) and ds.num_classes == 10 and ds.name == "idx"
    np.testing.assert_array_equal(ds.x_train, x)
    assert ds.y_train.dtype == np.int32 and ds.x_test.shape == (3, 28, 28)
    assert str(tmp_path) in ds.source


def test_idx_dir_source_without_test_files(tmp_path):
    idx_dir(tmp_path, test=False)
    ds = load_dataset(f"idx:{tmp_path}")
    assert ds.x_test is None and ds.y_test is None


def test_kaggle_train_and_test_csv(tmp_path):
    tr = kaggle_csv(tmp_path / "train.csv", [kaggle_row(7, 255), kaggle_row(0, 1)])
    x, y = read_kaggle_csv(tr)
    assert x.shape == (2, 28, 28) and x.dtype == np.uint8 and x[0].max() == 255
    np.testing.assert_array_equal(y, [7, 0])
    te = kaggle_csv(tmp_path / "test.csv", [",".join(["5"] * 784)], header=PIXELS)
    xt, yt = read_kaggle_csv(te)
    assert xt.shape == (1, 28, 28) and yt is None
    ds = load_dataset(f"csv:{tr}")
    assert ds.x_train.shape == (2, 28, 28) and ds.x_test is None and str(tr) in ds.source


def test_builtin_sample_has_5000_images_500_per_digit():
    ds = load_dataset()
    assert ds.name == "sample" and ds.x_test is None and ds.num_classes == 10
    assert ds.x_train.shape == (5000, 28, 28) and ds.x_train.dtype == np.uint8
    assert ds.y_train.shape == (5000,)
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), [500] * 10)
    assert 0 < ds.x_train.mean() < 255 and ds.x_train.max() == 255


def test_official_mnist_test_set_reads_10000_images():
    d = shared_or_skip("mnist")
    x, y = read_idx_pair(d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert np.bincount(y, minlength=10).min() > 800
    labels = read_idx_labels(d / "train-labels-idx1-ubyte.gz")
    assert labels.shape == (60000,)


def test_sample_plus_mnist_test_has_no_overlap():  # the shared folder's or the package's copy
    ds = load_dataset("sample+mnist-test")
    assert ds.x_train.shape == (5000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert ds.y_test.dtype == np.int32 and "t10k-images" in ds.source
    train = {img.tobytes() for img in ds.x_train}
    assert not any(img.tobytes() in train for img in ds.x_test[:2000])


def test_sample_plus_mnist_test_with_explicit_dir(tmp_path):
    x, y = tiny_mnist(4)
    write_idx_file(tmp_path / "t10k-images-idx3-ubyte", x, gz=False)
    write_idx_file(tmp_path / "t10k-labels-idx1-ubyte", y, gz=False)
    ds = load_dataset(f"sample+mnist-test:{tmp_path}")
    np.testing.assert_array_equal(ds.x_test, x)


def test_occupancy_real_files():
    ds = load_dataset("occupancy")  # the shared folder's or the package's copy
    assert ds.x_train.shape == (8143, 5) and ds.x_test.shape == (2665, 5)
    assert ds.x_train.dtype == np.float64 and ds.num_classes == 2
    assert set(np.unique(ds.y_train)) == {0, 1}
    np.testing.assert_allclose(ds.x_train[0], [23.18, 27.272, 426, 721.25, 0.00479298817650529])
    d = shared_or_skip("occupancy")
    x2, _ = read_occupancy(d / "datatest2.txt")  # unquoted dates in this file
    assert x2.shape == (9752, 5)


def test_occupancy_with_explicit_dir(tmp_path):
    occupancy_file(tmp_path / "datatraining.txt")
    occupancy_file(tmp_path / "datatest.txt")
    ds = load_dataset(f"occupancy:{tmp_path}")
    assert ds.x_train.shape == (4, 5)
    np.testing.assert_array_equal(ds.y_train, [0, 1, 0, 1])


def test_fashion_mnist_installed():
    if not sources_mod.FASHION_MNIST_DIR.is_dir():
        pytest.skip(f"Fashion-MNIST not installed at {sources_mod.FASHION_MNIST_DIR} (apt-get install -y dataset-fashion-mnist)")
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)


def fake_tfds(monkeypatch, data_source):
    """A stand-in `tensorflow_datasets` whose `data_source` is the given function.

    tests/test_tfds.py runs the real module; these fakes pin down the loader's control flow
    (cache first, then download) and its error messages without any tfds machinery.
    """
    fake = types.ModuleType("tensorflow_datasets")
    fake.data_source = data_source
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)


def test_tfds_loader_uses_cache_first(monkeypatch):
    calls = []

    def data_source(name, *, split, download, **kw):
        calls.append(download)
        x = np.zeros((28, 28, 1), np.uint8)
        train, test = [{"image": x, "label": i} for i in (1, 2, 3)], [{"image": x, "label": i} for i in (4, 5)]
        return [{"train": train, "test": test}[s] for s in split]

    fake_tfds(monkeypatch, data_source)
    ds = load_dataset("mnist")
    assert calls == [False]
    assert ds.x_train.shape == (3, 28, 28) and ds.y_test.tolist() == [4, 5]


# --------------------------------------------------------------------------- bad input: IDX

def test_truncated_idx_file(tmp_path):
    x, _ = tiny_mnist()
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(idx_bytes(x)[:-100])
    raises_naming(p, r"truncated", read_idx_images, p)
    p.write_bytes(idx_bytes(x)[:10])  # inside the header
    raises_naming(p, r"truncated", read_idx_images, p)


def test_idx_trailing_bytes(tmp_path):
    x, _ = tiny_mnist()
    p = tmp_path / "images"
    p.write_bytes(idx_bytes(x) + b"\0\0")
    raises_naming(p, r"trailing bytes", read_idx_images, p)


def test_gz_named_file_with_non_gzip_content(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(b"<!DOCTYPE html><html>404 Not Found</html>")
    raises_naming(p, r"not gzip", read_idx_images, p)


def test_corrupt_gzip_stream(tmp_path):
    x, _ = tiny_mnist()
    p = tmp_path / "train-images-idx3-ubyte.gz"
    good = gzip.compress(idx_bytes(x))
    p.write_bytes(good[: len(good) // 2])  # cut off mid-stream
    raises_naming(p, r"corrupt or truncated gzip", read_idx_images, p)
    p.write_bytes(good[:10] + bytes(b ^ 0xFF for b in good[10:40]) + good[40:])
    raises_naming(p, r"gzip", read_idx_images, p)


def test_wrong_magic(tmp_path):
    _, y = tiny_mnist()
    p = write_idx_file(tmp_path / "labels-given-as-images", y, gz=False)
    raises_naming(p, r"wrong magic number 2049.*expected 2051", read_idx_images, p)
    q = tmp_path / "garbage"
    q.write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 20)
    raises_naming(q, r"wrong magic", read_idx_images, q)


def test_byte_swapped_magic(tmp_path):
    x, _ = tiny_mnist()
    p = write_idx_file(tmp_path / "swapped", x, gz=False, magic_override=(2051).to_bytes(4, "little"))
    raises_naming(p, r"byte-swapped / little-endian", read_idx_images, p)


def test_image_label_count_mismatch(tmp_path):
    x, y = tiny_mnist(6)
    xi = write_idx_file(tmp_path / "imgs", x, gz=False)
    yi = write_idx_file(tmp_path / "lbls", y[:5], gz=False)
    msg = raises_naming(xi, r"count mismatch.*6 images.*5 labels", read_idx_pair, xi, yi)
    assert str(yi) in msg


def test_images_not_28x28(tmp_path):
    p = write_idx_file(tmp_path / "imgs.gz", np.zeros((2, 32, 32), np.uint8), gz=True)
    raises_naming(p, r"32x32, expected 28x28", read_idx_images, p)
    q = write_idx_file(tmp_path / "flat", np.zeros((2, 784), np.uint8), gz=False)
    raises_naming(q, r"wrong magic number 2050 \(a 2-dimensional IDX file\)", read_idx_images, q)


def test_idx_labels_outside_range(tmp_path):
    p = write_idx_file(tmp_path / "lbls", np.array([1, 2, 10], np.uint8), gz=False)
    raises_naming(p, r"label 10 at index 2 is outside 0\.\.9", read_idx_labels, p)


def test_empty_idx_file(tmp_path):
    p = write_idx_file(tmp_path / "imgs", np.zeros((0, 28, 28), np.uint8), gz=False)
    raises_naming(p, r"empty dataset", read_idx_images, p)
    q = tmp_path / "zero-bytes"
    q.write_bytes(b"")
    raises_naming(q, r"truncated", read_idx_images, q)


# --------------------------------------------------------------------------- bad input: CSV

def test_csv_missing_label_column(tmp_path):
    p = kaggle_csv(tmp_path / "train.csv", [",".join(["0"] * 784)], header=PIXELS)
    raises_naming(p, r"missing label column", load_dataset, f"csv:{p}")


def test_csv_wrong_pixel_column_count(tmp_path):
    header = "label," + ",".join(f"pixel{i}" for i in range(783))
    p = kaggle_csv(tmp_path / "train.csv", [kaggle_row(n=783)], header=header)
    raises_naming(p, r"wrong pixel column count: 783 .*expected 784", read_kaggle_csv, p)


def test_csv_misnamed_pixel_column(tmp_path):
    p = kaggle_csv(tmp_path / "train.csv", [kaggle_row()], header="label," + PIXELS.replace("pixel5,", "pixel05,"))
    raises_naming(p, r"pixel column 5 is named 'pixel05'", read_kaggle_csv, p)


def test_csv_without_header(tmp_path):
    p = tmp_path / "mnist_5k.csv"
    p.write_text(kaggle_row() + "\n")
    raises_naming(p, r"no header line", read_kaggle_csv, p)


def test_csv_non_numeric_cell_names_row_and_column(tmp_path):
    bad = kaggle_row().split(",")
    bad[101] = "abc"  # column pixel100 of data row 2
    p = kaggle_csv(tmp_path / "train.csv", [kaggle_row(), ",".join(bad)])
    raises_naming(p, r"row 2 \(line 3\), column 'pixel100': 'abc' is not a number", read_kaggle_csv, p)


def test_csv_wrong_row_length(tmp_path):
    p = kaggle_csv(tmp_path / "train.csv", [kaggle_row(), kaggle_row(n=780)])
    raises_naming(p, r"row 2 \(line 3\) has 781 fields, expected 785", read_kaggle_csv, p)
    q = kaggle_csv(tmp_path / "first.csv", [kaggle_row(n=780), kaggle_row(n=780)])
    raises_naming(q, r"row 1 \(line 2\) has 781 fields", read_kaggle_csv, q)


def test_csv_labels_outside_range(tmp_path):
    p = kaggle_csv(tmp_path / "train.csv", [kaggle_row(3), kaggle_row(12)])
    raises_naming(p, r"row 2 .*label 12 is outside 0\.\.9", read_kaggle_csv, p)


def test_csv_pixel_values_outside_0_255(tmp_path):
    p = kaggle_csv(tmp_path / "train.csv", [kaggle_row(pixel=256)])
    raises_naming(p, r"column 'pixel0': pixel value 256 is not an integer in 0\.\.255", read_kaggle_csv, p)
    q = kaggle_csv(tmp_path / "neg.csv", [kaggle_row(pixel=-1)])
    raises_naming(q, r"0\.\.255", read_kaggle_csv, q)


def test_csv_empty_dataset(tmp_path):
    p = kaggle_csv(tmp_path / "train.csv", [])
    raises_naming(p, r"empty dataset", read_kaggle_csv, p)
    q = tmp_path / "blank.csv"
    q.write_text("")
    raises_naming(q, r"empty file", read_kaggle_csv, q)


# --------------------------------------------------------------------------- bad input: occupancy

def test_occupancy_header_mismatch(tmp_path):
    p = occupancy_file(tmp_path / "datatraining.txt", header=OCC_HEADER.replace(',"Light"', ""))
    raises_naming(p, r"header mismatch \(missing \['Light'\]\)", read_occupancy, p)
    q = occupancy_file(tmp_path / "swapped.txt", header=OCC_HEADER.replace('"Temperature","Humidity"', '"Humidity","Temperature"'))
    raises_naming(q, r"wrong order", read_occupancy, q)


def test_occupancy_wrong_row_length(tmp_path):
    rows = [OCC_ROW.format(i=1, y=0), '"2","2015-02-04 17:52:00",23.18,27.272,426,721.25,1']
    p = occupancy_file(tmp_path / "datatest.txt", rows)
    raises_naming(p, r"row 2 \(line 3\) has 7 fields, expected 8", read_occupancy, p)


def test_occupancy_non_numeric_cell(tmp_path):
    rows = [OCC_ROW.format(i=1, y=0).replace("426", "n/a")]
    p = occupancy_file(tmp_path / "datatest.txt", rows)
    raises_naming(p, r"row 1 \(line 2\), column 'Light': 'n/a' is not a number", read_occupancy, p)


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_occupancy_nan_or_inf_feature(tmp_path, value):
    rows = [OCC_ROW.format(i=1, y=0), OCC_ROW.format(i=2, y=1).replace("721.25", value)]
    p = occupancy_file(tmp_path / "datatest.txt", rows)
    raises_naming(p, r"row 2 .*column 'CO2'.*not finite", read_occupancy, p)


def test_occupancy_label_not_binary(tmp_path):
    p = occupancy_file(tmp_path / "datatest.txt", [OCC_ROW.format(i=1, y=2)])
    raises_naming(p, r"'Occupancy': label '2' is not 0 or 1", read_occupancy, p)


def test_occupancy_empty_dataset(tmp_path):
    p = occupancy_file(tmp_path / "datatest.txt", rows=[])
    raises_naming(p, r"empty dataset", read_occupancy, p)


# --------------------------------------------------------------------------- bad input: sources

def test_missing_file_and_directory_are_named(tmp_path):
    missing = tmp_path / "nowhere"
    raises_naming(missing, r"directory not found", load_dataset, f"idx:{missing}")
    raises_naming(missing / "train.csv", r"file not found", load_dataset, f"csv:{missing / 'train.csv'}")
    raises_naming(missing / "x.gz", r"file not found", read_idx_images, missing / "x.gz")
    write_idx_file(tmp_path / "train-images-idx3-ubyte.gz", tiny_mnist()[0], gz=True)
    raises_naming(tmp_path, r"missing file train-labels-idx1-ubyte\[\.gz\]", load_dataset, f"idx:{tmp_path}")
    occupancy_file(tmp_path / "datatraining.txt")
    raises_naming(tmp_path, r"missing file datatest.txt\[\.gz\]", load_dataset, f"occupancy:{tmp_path}")


def test_unknown_source_lists_valid_ones():
    msg = raises_naming(None, r"unknown data source 'mnsit'", load_dataset, "mnsit")
    for name in ("sample", "sample+mnist-test", "fashion-mnist", "idx:DIR", "csv:PATH", "occupancy"):
        assert name in msg
    raises_naming(None, r"needs a directory", load_dataset, "idx")
    raises_naming(None, r"empty data source", load_dataset, "")


def test_fashion_mnist_absent_names_apt_command(tmp_path):
    with pytest.raises(DataUnavailableError, match=r"apt-get install -y dataset-fashion-mnist"):
        load_dataset(f"fashion-mnist:{tmp_path / 'none'}")


def test_shared_data_dir_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXNETS_SHARED_DATA", str(tmp_path / "absent"))
    msg = raises_naming(tmp_path / "absent", r"shared data directory not found.*JAXNETS_SHARED_DATA",
                        load_dataset, "occupancy")
    assert "DIR" in msg


def test_tfds_absent_gives_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import now raises ImportError
    with pytest.raises(DataUnavailableError) as info:
        load_dataset("mnist")
    msg = str(info.value)
    assert "tensorflow-datasets cannot be imported" in msg
    assert "pip install 'jaxnets[tfds]'" in msg and "idx:DIR" in msg
    assert isinstance(info.value, ValueError)


def not_in_cache_then(calls, download_error):
    def data_source(name, *, download, **kw):
        calls.append(download)
        if not download:
            raise KeyError("Trying to access `splits['train']` but `splits` is empty.")
        raise download_error
    return data_source


def test_tfds_download_failure_gives_one_clear_error(monkeypatch):
    from jaxnets.data import tfds as tfds_mod
    calls = []
    fake_tfds(monkeypatch, not_in_cache_then(calls, ConnectionError("Name or service not known")))
    monkeypatch.setattr(tfds_mod, "_tensorflow_installed", lambda: True)
    with pytest.raises(DataUnavailableError, match=r"downloading it failed \(ConnectionError.*idx:DIR"):
        load_dataset("mnist")
    assert calls == [False, True]


def test_tfds_without_tensorflow_says_so_before_downloading(monkeypatch):
    """Preparing a tfds dataset needs TensorFlow: say so at once, do not download first."""
    from jaxnets.data import tfds as tfds_mod
    calls = []
    fake_tfds(monkeypatch, not_in_cache_then(calls, AssertionError("must not be called")))
    monkeypatch.setattr(tfds_mod, "_tensorflow_installed", lambda: False)
    with pytest.raises(DataUnavailableError) as info:
        load_dataset("mnist")
    msg = str(info.value)
    assert calls == [False]
    assert "not in the local cache as array_record (KeyError" in msg
    assert "needs TensorFlow, which is not installed" in msg and "pip install tensorflow" in msg
    assert "idx:DIR" in msg


# --------------------------------------------------------------------------- preprocessing

def test_scale_pixels_float32_unit_range():
    x = np.array([[0, 128, 255]], np.uint8)
    s = scale_pixels(x)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s, [[0, 128 / 255, 1]], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subtract_mean_image_in_float_no_wraparound(dtype):
    rng = np.random.default_rng(0)
    xtr = rng.integers(0, 256, (200, 28, 28), dtype=np.uint8)
    xva = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    ctr, cva = subtract_mean_image(xtr, xva, dtype=dtype)
    assert ctr.dtype == dtype and cva.dtype == dtype
    assert np.abs(ctr.mean(axis=0, dtype=np.float64)).max() < 1e-4
    assert ctr.min() < -100 and ctr.max() < 256  # negative values survive, nothing wraps
    np.testing.assert_allclose(cva, xva - xtr.mean(axis=0), rtol=1e-5, atol=1e-3)
    wrapped = subtract_mean_image_uint8(xtr)[0]  # the 002 erratum: no negatives, values wrap
    assert wrapped.dtype == np.uint8 and wrapped.min() >= 0 and (ctr < 0).any()
    assert np.abs(wrapped.mean(axis=0, dtype=np.float64)).max() > 50


def test_flatten_and_add_channel():
    x = np.zeros((4, 28, 28), np.uint8)
    assert flatten(x).shape == (4, 784)
    assert add_channel(x).shape == (4, 1, 28, 28)
    with pytest.raises(DataError, match="expected images"):
        add_channel(flatten(x))


def test_normalize_features_unit_norm_and_train_norms():
    rng = np.random.default_rng(1)
    xtr, xte = rng.normal(5, 2, (300, 5)), rng.normal(5, 2, (100, 5))
    ntr, nte = normalize_features(xtr, xte)  # the document: each set with its own norms
    np.testing.assert_allclose(np.linalg.norm(ntr, axis=0), 1.0)
    np.testing.assert_allclose(np.linalg.norm(nte, axis=0), 1.0)
    _, nte2 = normalize_features(xtr, xte, use_train_norms=True)  # correct practice
    np.testing.assert_allclose(nte2, xte / np.linalg.norm(xtr, axis=0))
    np.testing.assert_allclose(normalize_features(xtr), ntr)
    # sklearn.preprocessing.normalize(X.T, axis=1).T on the document's F x m layout
    np.testing.assert_allclose(ntr, (xtr.T / np.sqrt((xtr.T ** 2).sum(axis=1, keepdims=True))).T)
    with pytest.raises(DataError, match="NaN or inf"):
        normalize_features(np.array([[1.0, np.nan]]))


def test_shuffle_split_and_head_split():
    x, y = np.arange(50).reshape(25, 2), np.arange(25)
    xtr, ytr, xdv, ydv = shuffle_split(x, y, n_holdout=5, seed=3)
    assert xdv.shape == (5, 2) and xtr.shape == (20, 2)
    assert sorted(np.concatenate([ytr, ydv]).tolist()) == list(range(25))
    np.testing.assert_array_equal(xdv[:, 0] // 2, ydv)  # rows stay paired
    np.testing.assert_array_equal(shuffle_split(x, y, 5, seed=3)[3], ydv)  # reproducible
    a, b, c, d = head_split(x, y, n_train=20, n_val=3)
    assert b.tolist() == list(range(20)) and d.tolist() == [20, 21, 22]
    with pytest.raises(DataError, match="does not fit"):
        head_split(x, y, 20, 10)
    with pytest.raises(DataError, match="n_holdout"):
        shuffle_split(x, y, 25)


# --------------------------------------------------------------------------- check_arrays

GOOD_X, GOOD_Y = np.zeros((4, 784), np.float32), np.array([0, 1, 2, 9])


def test_check_arrays_accepts_good_inputs():
    check_arrays(GOOD_X, GOOD_Y, feature_shape=(784,), num_classes=10)
    check_arrays(np.zeros((3, 5)), np.array([0.0, 1.0, 1.0]), binary=True)
    check_arrays(np.zeros((3, 1, 28, 28), np.float32), np.array([0, 1, 0]), binary=True)


def test_check_arrays_accepts_jax_arrays():
    import jax.numpy as jnp
    check_arrays(jnp.zeros((4, 784), jnp.float32), jnp.asarray(GOOD_Y), num_classes=10)
    with pytest.raises(ValueError, match="NaN/inf"):
        check_arrays(jnp.full((2, 3), jnp.nan), jnp.array([0, 1]))


@pytest.mark.parametrize("x, y, kw, pattern", [
    (np.zeros(4, np.float32), GOOD_Y, {}, r"at least 2-D"),
    (np.zeros((4, 783), np.float32), GOOD_Y, {"feature_shape": (784,)}, r"feature shape \(783,\), expected \(784,\)"),
    (np.zeros((4, 784), np.uint8), GOOD_Y, {}, r"floating.*uint8.*scale_pixels"),
    (np.array([[np.nan, 0.0]] * 4), GOOD_Y, {}, r"NaN/inf"),
    (np.array([[np.inf, 0.0]] * 4), GOOD_Y, {}, r"NaN/inf"),
    (GOOD_X, np.array([0, 1, 2, 10]), {"num_classes": 10}, r"0\.\.9; y\[3\] = 10"),
    (GOOD_X, np.array([0, -1, 2, 3]), {"num_classes": 10}, r"y\[1\] = -1"),
    (GOOD_X, GOOD_Y[:3], {}, r"4 samples but y has 3"),
    (np.zeros((0, 784), np.float32), np.zeros(0, int), {}, r"empty dataset"),
    (GOOD_X, GOOD_Y.reshape(2, 2), {}, r"shape \(N,\)"),
    (GOOD_X, GOOD_Y.astype(np.float32), {}, r"dtype float32; expected integers"),
    (GOOD_X, np.array([0, 1, 2, 0]), {"binary": True}, r"0 or 1; y\[2\] = 2"),
    (GOOD_X, np.array([[0], [1], [1], [0]]), {"binary": True}, r"shape \(N,\) = \(4,\), got \(4, 1\)"),
    (GOOD_X, np.array([0.0, np.nan, 1.0, 0.0]), {"binary": True}, r"NaN/inf \(first at index 1\)"),
], ids=["ndim", "feature-shape", "dtype", "nan", "inf", "label-high", "label-negative",
        "n-mismatch", "empty", "y-ndim", "y-dtype", "binary-labels", "binary-column", "binary-nan"])
def test_check_arrays_rejects(x, y, kw, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        check_arrays(x, y, name="train", **kw)
    assert str(info.value).startswith("train: ")


# --------------------------------------------------------------------------- pixel transform

def test_pixel_transforms_match_the_documents_preprocessing():
    imgs = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28) % 256
    imgs = imgs.astype(np.uint8)
    scaled = fit_pixel_transform("scaled", imgs)(imgs)
    np.testing.assert_allclose(scaled, imgs.reshape(2, 784) / 255.0, rtol=1e-6)
    centred = fit_pixel_transform("mean_subtracted", imgs)(imgs)
    np.testing.assert_allclose(centred, (imgs - imgs.mean(axis=0)).reshape(2, 784), atol=1e-4)
    assert centred.min() < 0  # in float: no uint8 wrap-around (002's erratum)
    conv = fit_pixel_transform("conv", imgs)(imgs)
    assert conv.shape == (2, 1, 28, 28) and abs(conv.mean()) < 1e-5
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        fit_pixel_transform("scaled", imgs)(imgs.reshape(2, 784))
    t = fit_pixel_transform("mean_subtracted", imgs)
    again = PixelTransform.from_arrays(t.to_arrays())  # what a run's preprocess.npz holds
    np.testing.assert_array_equal(again(imgs), centred)
