"""The real `tensorflow_datasets` code path of `jaxnets.data.load_tfds`, on mocked records.

`tensorflow-datasets` is in the `test` extra, so this module is never skipped: the README's
`uv run --extra test pytest` installs it (and no TensorFlow, which reading does not need).
`tfds.testing.mock_data` replaces what is read from disk, not the API: `tfds.data_source`,
the MNIST builder, its features, splits and `ArrayRecordDataSource` are tfds's own; only the
ArrayRecord file reader underneath returns N random MNIST-shaped examples (image (28, 28, 1)
uint8, label 0..9). `download_and_prepare` becomes a no-op and GCS look-ups return False, so
nothing is downloaded (the loader's first, cache-only call already succeeds).
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxnets.data import DataError, load_dataset, load_tfds
from jaxnets.data import tfds as tfds_mod

N = 37  # records per split: not a multiple of anything the loader might batch by


class _BatchReadMock(tfds.testing.PickableDataSourceMock):
    """tfds's own ArrayRecord mock, with batched reads (`__getitems__`) working.

    `mock_data` assigns `__getitems__ = partial(_getitems, generator=...)` to the mock, but
    MagicMock binds only the dunder methods it knows (`__getitem__` yes, `__getitems__` no), so
    the partial gets no `self` and every batch read fails with "missing 1 required positional
    argument: 'record_keys'" (tensorflow-datasets 4.9.10). Bind it as MagicMock binds the others.
    """

    def __setattr__(self, name, value):
        if name == "__getitems__" and isinstance(value, functools.partial) and not value.args:
            value = functools.partial(value, self)
        super().__setattr__(name, value)


def mocked(num_examples=N, **kw):
    return tfds.testing.mock_data(num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE,
                                  mock_array_record_data_source=_BatchReadMock(), **kw)


@pytest.fixture
def no_download(monkeypatch):
    """Fail the test if the loader ever asks tfds to download (it must read the cache first)."""
    calls = []
    real = tfds.data_source

    def data_source(name, **kw):
        calls.append(kw["download"])
        if kw["download"]:
            raise AssertionError("load_tfds asked tfds to download although the cache read succeeds")
        return real(name, **kw)

    monkeypatch.setattr(tfds, "data_source", data_source)
    return calls


def check_split(x, y, n=N):
    assert x.shape == (n, 28, 28) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int32
    assert 0 <= y.min() and y.max() <= 9
    assert x.max() > 0  # random pixels, not an all-zero placeholder


def test_mock_data_source_is_tfds_own_array_record_source():
    with mocked():
        train, test = tfds.data_source("mnist", split=["train", "test"], download=False)
        assert type(train).__name__ == "ArrayRecordDataSource" and len(train) == len(test) == N
        assert train.dataset_info.supervised_keys == ("image", "label")
        r = train[0]
        assert r["image"].shape == (28, 28, 1) and r["image"].dtype == np.uint8
        assert [np.array_equal(a["image"], train[i]["image"]) for i, a in enumerate(train.__getitems__([0, 1, 2]))] == [True] * 3


def test_load_tfds_mnist_reads_through_data_source(no_download):
    with mocked():
        x_train, y_train, x_test, y_test = load_tfds("mnist")
        expected = [r["image"][..., 0] for r in tfds.data_source("mnist", split="train", download=False)]
    assert no_download == [False, False]  # the loader's cache read, then the one just above
    check_split(x_train, y_train)
    check_split(x_test, y_test)
    np.testing.assert_array_equal(x_train, np.stack(expected))  # record order kept


def test_load_tfds_batches_reads(monkeypatch):
    monkeypatch.setattr(tfds_mod, "_CHUNK", 10)  # 37 records -> 4 batched reads per split
    with mocked():
        x_train, y_train, x_test, y_test = load_tfds("mnist")
        expected = np.stack([r["image"][..., 0] for r in tfds.data_source("mnist", split="train", download=False)])
    check_split(x_train, y_train)
    np.testing.assert_array_equal(x_train, expected)


def test_load_dataset_mnist_through_tfds(no_download):
    with mocked():
        ds = load_dataset("mnist")
    assert no_download == [False]
    check_split(ds.x_train, ds.y_train)
    check_split(ds.x_test, ds.y_test)
    assert ds.name == "mnist" and ds.num_classes == 10


def test_load_tfds_explicit_data_dir(no_download, tmp_path):
    with mocked():
        x_train, y_train, x_test, y_test = load_tfds("mnist", data_dir=tmp_path)
    check_split(x_train, y_train)
    assert no_download == [False]


@pytest.mark.parametrize("shape, problem", [
    ((28, 28, 3), r"unexpected shapes images \(5, 28, 28, 3\)"),
    ((784,), r"unexpected shapes images \(5, 784\)"),
])
def test_malformed_image_shape_is_one_data_error(shape, problem):
    """A builder whose images are not (28, 28[, 1]): tfds's own mock makes records of that shape."""
    builder_cls = tfds.builder_cls("mnist")
    real_info = builder_cls._info

    def info(self):
        i = real_info(self)
        return tfds.core.DatasetInfo(builder=self, supervised_keys=("image", "label"),
                                     features=tfds.features.FeaturesDict({
                                         "image": tfds.features.Tensor(shape=shape, dtype=np.uint8),
                                         "label": i.features["label"]}))

    with pytest.MonkeyPatch.context() as mp, mocked(num_examples=5):
        mp.setattr(builder_cls, "_info", info)
        with pytest.raises(DataError, match=rf"tfds 'mnist' split 'train': {problem}"):
            load_tfds("mnist")


def test_records_without_image_key_are_one_data_error():
    def as_data_source(self, split, **kw):
        return [[{"img": np.zeros((28, 28, 1), np.uint8), "label": 1}] * 3 for _ in split]

    with mocked(as_data_source_fn=as_data_source):
        with pytest.raises(DataError, match=r"split 'train': records lack 'image' / 'label'"):
            load_tfds("mnist")


def test_ragged_images_are_one_data_error():
    def as_data_source(self, split, **kw):  # plain lists: read item by item (no __getitems__)
        recs = [{"image": np.zeros((28, 28, 1), np.uint8), "label": 1},
                {"image": np.zeros((27, 28, 1), np.uint8), "label": 2}]
        return [recs for _ in split]

    with mocked(as_data_source_fn=as_data_source):
        with pytest.raises(DataError, match=r"split 'train': images of differing shapes"):
            load_tfds("mnist")


def test_plain_sequence_source_is_read_item_by_item():
    recs = [{"image": np.full((28, 28, 1), i, np.uint8), "label": i % 10} for i in range(12)]

    with mocked(as_data_source_fn=lambda self, split, **kw: [recs[:12], recs[:5]]):
        x_train, y_train, x_test, y_test = load_tfds("mnist")
    assert x_train.shape == (12, 28, 28) and x_test.shape == (5, 28, 28)
    assert x_train[:, 0, 0].tolist() == list(range(12)) and y_test.tolist() == [0, 1, 2, 3, 4]
