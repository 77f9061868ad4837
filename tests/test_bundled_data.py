"""The data shipped in the package: a fresh clone with nothing beside it reads every dataset
the README's results are measured on (`jaxnets reproduce`), and reads the published files."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from experiments import char_lm, filters, image_data, occupancy, reproduce, transformer_lm, vanishing_gradients
from jaxnets.data import (DataError, DataUnavailableError, default_data_dir, load_dataset, load_names, read_occupancy,
                          source_name)
from jaxnets.data import make_bundled
from jaxnets.data import sources as sources_mod


@pytest.fixture
def no_shared(monkeypatch, tmp_path):
    """As on a fresh clone: no ../shared/data and no $JAXNETS_SHARED_DATA."""
    monkeypatch.delenv("JAXNETS_SHARED_DATA", raising=False)
    monkeypatch.setattr(sources_mod, "DEFAULT_SHARED_DIR", tmp_path / "no-shared" / "data")


def test_bundled_files_are_the_published_ones():
    for src, (digest, name) in make_bundled.FILES.items():
        stored = (make_bundled.BUNDLED_DIR / name).read_bytes()
        assert make_bundled.md5(make_bundled.published_bytes(src, stored)) == digest, name
    assert (make_bundled.BUNDLED_DIR / "ATTRIBUTION.md").is_file()


#: what each run of `jaxnets reproduce` (without --fashion) reads when it has no --data: the
#: experiment's own data set, or None for none to load (the filters' bundled photograph, the
#: vanishing-gradient experiment's random sequences)
OWN_DATA = {occupancy.main: "occupancy", filters.main: None, char_lm.main: "names", transformer_lm.main: "names",
            vanishing_gradients.main: None}


def test_every_reproduce_row_loads_its_data_and_test_set_without_the_shared_folder(no_shared):
    seen = set()
    for label, main, argv in reproduce.plan(False, image_data.DEFAULT_SPEC):
        spec = argv[argv.index("--data") + 1] if "--data" in argv else OWN_DATA[main]
        if spec is None:
            if main is filters.main:
                assert filters.load_image().shape[2] == 3, label
            continue
        if spec == "names":  # the language model's word list
            assert make_bundled.BUNDLED_DIR in Path(load_names(spec).source).parents, label
            continue
        if spec in seen:
            continue
        seen.add(spec)
        ds = load_dataset(spec)
        assert ds.x_test is not None and "the copy shipped with jaxnets" in ds.source, (label, ds.source)
        assert str(make_bundled.BUNDLED_DIR) in ds.source
        assert len(ds.y_test) == {"occupancy": 2665, "sample+mnist-test": 10000}[spec], label
    assert seen == {"occupancy", "sample+mnist-test"}


def test_shared_folder_still_overrides_the_bundled_copy(monkeypatch, tmp_path, no_shared):
    shared = tmp_path / "shared"
    (shared / "occupancy").mkdir(parents=True)
    bundled = default_data_dir("occupancy")
    for name in ("datatraining.txt", "datatest.txt"):  # plain text, as published
        (shared / "occupancy" / name).write_bytes(gzip.decompress((bundled / f"{name}.gz").read_bytes()))
    monkeypatch.setenv("JAXNETS_SHARED_DATA", str(shared))
    ours, theirs = load_dataset("occupancy"), None
    assert str(shared) in ours.source and "shipped" not in ours.source
    monkeypatch.delenv("JAXNETS_SHARED_DATA")
    theirs = load_dataset("occupancy")
    assert "shipped" in theirs.source
    for a, b in zip(ours[:4], theirs[:4]):
        np.testing.assert_array_equal(a, b)
    # a shared folder without mnist/: the test set comes from the package
    monkeypatch.setenv("JAXNETS_SHARED_DATA", str(shared))
    assert default_data_dir("mnist") == make_bundled.BUNDLED_DIR / "mnist"
    monkeypatch.setenv("JAXNETS_SHARED_DATA", str(tmp_path / "absent"))  # an explicit setting is never ignored
    with pytest.raises(DataUnavailableError, match="absent"):
        default_data_dir("mnist")


def test_a_corrupt_gzip_occupancy_file_is_one_data_error(tmp_path):
    good = (make_bundled.BUNDLED_DIR / "occupancy" / "datatest.txt.gz").read_bytes()
    bad = tmp_path / "datatest.txt.gz"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"datatest.txt.gz: corrupt or truncated gzip"):
        read_occupancy(bad)


@pytest.mark.parametrize("spec, name", [("sample", "sample"), ("sample+mnist-test", "sample+mnist-test"),
                                        ("sample+mnist-test:/x", "sample+mnist-test"), ("occupancy", "occupancy"),
                                        ("idx:/x", "idx"), ("csv:a.csv", "csv"), ("fashion-mnist", "fashion-mnist"),
                                        ("mnist", "mnist")])
def test_source_name_is_the_name_load_dataset_gives(spec, name, no_shared):
    assert source_name(spec) == name
    if spec in ("sample", "sample+mnist-test", "occupancy"):
        assert load_dataset(spec).name == name
    for bad in ("", "mnsit", "sample:x", "idx", "csv:"):
        with pytest.raises(DataError):
            source_name(bad)
