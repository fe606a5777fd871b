"""save_array / load_array on blosc2 and the atomic writes under them."""

import os

import numpy as np
import pytest

from dl1.io.arrays import load_array, save_array
from dl1.io.atomic import atomic_path
from dl1.io.errors import DataError


@pytest.mark.parametrize("arr", [
    np.maximum(np.random.default_rng(0).normal(size=(50, 7, 7, 8)), 0).astype("float32"),
    np.arange(12, dtype="int64").reshape(3, 4),
    np.array(["unknown/1.jpg", "unknown/22.jpg"]),
    np.array(3.5),
])
def test_round_trip_keeps_values_shape_and_dtype(tmp_path, arr):
    path = tmp_path / "x.dat"
    save_array(str(path), arr)
    out = load_array(str(path))
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_lists_of_file_names_save_as_strings(tmp_path):
    save_array(tmp_path / "f.dat", ["cats/cat.1.jpg", "dogs/dog.10.jpg"])
    assert list(load_array(tmp_path / "f.dat")) == ["cats/cat.1.jpg", "dogs/dog.10.jpg"]


def test_relu_features_are_stored_smaller_than_raw(tmp_path):
    arr = np.maximum(np.random.default_rng(1).normal(size=(200, 2048)) - 0.5, 0).astype("float32")
    save_array(tmp_path / "f.dat", arr)
    assert os.path.getsize(tmp_path / "f.dat") < arr.nbytes * 0.9  # ~70% zeros: ~86% of the raw bytes


def test_metadata_travels_with_the_array(tmp_path):
    save_array(tmp_path / "m.dat", np.zeros(3), meta={"index": {"files": [["a.jpg", 1, 2]], "ok": [True]}})
    _, meta = load_array(tmp_path / "m.dat", with_meta=True)
    assert meta["index"]["files"] == [["a.jpg", 1, 2]]


def test_missing_or_damaged_files_give_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_array(tmp_path / "nope.dat")
    (tmp_path / "junk.dat").write_bytes(b"definitely not blosc2")
    with pytest.raises(DataError, match="cannot read array file"):
        load_array(tmp_path / "junk.dat")
    os.mkdir(tmp_path / "old.bc")  # bcolz wrote folders
    with pytest.raises(DataError, match="bcolz"):
        save_array(tmp_path / "old.bc", np.zeros(2))


def test_a_failed_write_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "preds.dat"
    save_array(path, np.ones(5))
    with pytest.raises(RuntimeError), atomic_path(str(path)) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half a fi")
        raise RuntimeError("killed half way")
    np.testing.assert_array_equal(load_array(path), np.ones(5))
    assert sorted(os.listdir(tmp_path)) == ["preds.dat"]
