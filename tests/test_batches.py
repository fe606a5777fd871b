"""Directory batches: the 2017 iterator attributes, order, determinism and the bad-input messages."""

import os

import numpy as np
import pytest
from PIL import Image

from dl1.data.batches import get_batches, get_classes, get_data, onehot
from dl1.io.errors import DataError


def _img(path, size=(40, 30), color=(200, 10, 10)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def tiny(tmp_path):
    """Two classes whose pixels say which image is which: red cats, blue dogs, value = index."""
    for i in range(5):
        _img(tmp_path / "cats" / f"cat.{i}.jpg", color=(200, 10, 10 + i))
        _img(tmp_path / "dogs" / f"dog.{i}.png", color=(10, 10, 200))
    return tmp_path


def test_iterator_has_the_2017_attributes(tiny, capsys):
    b = get_batches(tiny, batch_size=4, shuffle=False, target_size=(16, 16))
    assert "Found 10 images belonging to 2 classes." in capsys.readouterr().out
    assert b.n == b.samples == b.nb_sample == b.N == 10
    assert b.num_classes == b.nb_class == 2
    assert b.class_indices == {"cats": 0, "dogs": 1}
    assert b.batch_size == 4
    assert b.filenames[:2] == [os.path.join("cats", "cat.0.jpg"), os.path.join("cats", "cat.1.jpg")]
    assert list(b.classes) == [0] * 5 + [1] * 5
    assert len(b) == 3


def test_next_gives_images_and_onehot_labels_in_order(tiny):
    b = get_batches(tiny, batch_size=4, shuffle=False, target_size=(16, 16), verbose=False)
    x, y = next(b)
    assert x.shape == (4, 16, 16, 3) and x.dtype == np.float32
    assert y.tolist() == [[1, 0]] * 4
    assert 150 < x[0, ..., 0].mean() <= 255 and x[0, ..., 2].mean() < 60  # red, 0-255 scale, RGB order
    x2, y2 = next(b)
    x3, y3 = next(b)  # last, partial batch
    assert x3.shape[0] == 2 and y3.tolist() == [[0, 1]] * 2
    x4, _ = next(b)  # endless: wraps to the first batch again
    np.testing.assert_array_equal(x4, x)


def test_shuffle_is_a_permutation_per_epoch_and_reproducible(tiny):
    a = get_batches(tiny, batch_size=3, shuffle=True, seed=5, target_size=(8, 8), verbose=False)
    b = get_batches(tiny, batch_size=3, shuffle=True, seed=5, target_size=(8, 8), verbose=False)
    first = a.index_array.copy()
    assert sorted(first) == list(range(10)) and list(first) != list(range(10))
    np.testing.assert_array_equal(first, b.index_array)
    for _ in range(len(a)):
        next(a)
    assert a.epoch == 1 and sorted(a.index_array) == list(range(10))
    assert list(a.index_array) != list(first)
    b.set_epoch(1)
    np.testing.assert_array_equal(a.index_array, b.index_array)


def test_labels_follow_images_when_shuffled(tiny):
    b = get_batches(tiny, batch_size=10, shuffle=True, seed=1, target_size=(8, 8), verbose=False)
    x, y = b[0]
    is_red = x[:, 0, 0, 0] > x[:, 0, 0, 2]
    assert (is_red == (y[:, 0] == 1)).all()


def test_class_modes(tiny):
    kw = {"shuffle": False, "target_size": (8, 8), "verbose": False, "batch_size": 10}
    assert get_batches(tiny, class_mode="binary", **kw)[0][1].tolist() == [0] * 5 + [1] * 5
    assert get_batches(tiny, class_mode="sparse", **kw)[0][1].shape == (10,)
    assert get_batches(tiny, class_mode=None, **kw)[0].shape == (10, 8, 8, 3)  # images only, as in 2017


def test_get_data_and_onehot(tiny):
    data = get_data(tiny, target_size=(12, 10), verbose=False)
    assert data.shape == (10, 12, 10, 3)
    assert onehot(np.array([1, 0, 2])).tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]


def test_get_classes_returns_the_2017_tuple(course_data):
    val_classes, trn_classes, val_labels, trn_labels, val_files, trn_files, test_files = \
        get_classes(str(course_data))
    assert len(trn_classes) == len(trn_files) == trn_labels.shape[0] == 192
    assert len(val_classes) == 48 and val_labels.shape == (48, 2)
    assert test_files[0].startswith("unknown" + os.sep)


def test_test_folder_without_unknown_level_is_read_directly(tmp_path, capsys):
    for i in (10, 2, 1):
        _img(tmp_path / "test" / f"{i}.jpg")
    b = get_batches(tmp_path / "test", class_mode=None, shuffle=False, target_size=(8, 8))
    assert b.filenames == ["1.jpg", "2.jpg", "10.jpg"]
    assert "Found 3 images." in capsys.readouterr().out


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "nope", "folder not found"),
    (lambda p: (_img(p / "a.jpg"), p)[1], "no class sub-folders"),
    (lambda p: (os.makedirs(p / "cats"), _img(p / "dogs" / "d.jpg"), p)[2], "empty class folder"),
])
def test_bad_folders_give_a_message_naming_the_path(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(DataError, match=message) as e:
        get_batches(path, verbose=False)
    assert str(tmp_path) in str(e.value)


def test_non_image_files_are_skipped_with_a_warning(tiny, capsys):
    (tiny / "cats" / "notes.txt").write_text("not an image")
    (tiny / "cats" / ".DS_Store").write_bytes(b"\0\1")
    b = get_batches(tiny, shuffle=False, target_size=(8, 8))
    err = capsys.readouterr().err
    assert "notes.txt" in err and ".DS_Store" not in err
    assert b.n == 10


def test_unreadable_images_are_reported_by_name_and_skipped(tiny, capsys):
    (tiny / "cats" / "empty.jpg").write_bytes(b"")
    (tiny / "dogs" / "text.jpg").write_text("hello, I am not a JPEG")
    b = get_batches(tiny, shuffle=True, seed=0, target_size=(8, 8), batch_size=4)
    err = capsys.readouterr().err
    assert "empty.jpg (empty file)" in err and "text.jpg" in err and "not an image" in err
    assert b.n == 10 and set(b.bad_files) == {os.path.join("cats", "empty.jpg"),
                                              os.path.join("dogs", "text.jpg")}


def test_truncated_image_found_while_decoding_is_replaced_in_training(tiny, capsys):
    src = tiny / "cats" / "cat.0.jpg"
    Image.new("RGB", (300, 200), (200, 10, 10)).save(src, quality=95)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])  # a half-downloaded file: its header is fine
    b = get_batches(tiny, shuffle=True, seed=0, target_size=(8, 8), batch_size=10, verbose=False)
    x, y = b[0]
    assert x.shape[0] == 10 and np.isfinite(x).all()
    err = capsys.readouterr().err
    assert "cat.0.jpg" in err and "truncated" in err
    ordered = get_batches(tiny, shuffle=False, target_size=(8, 8), batch_size=10, verbose=False)
    xo = ordered[0][0]
    assert xo[0].max() == 0  # prediction order kept: the unreadable image's slot stays black


def test_augmented_batches_keep_shape_and_range(tiny):
    from dl1.data.batches import ImageDataGenerator

    gen = ImageDataGenerator(rotation_range=15, width_shift_range=0.1, height_shift_range=0.1,
                             shear_range=0.15, zoom_range=0.1, channel_shift_range=10,
                             horizontal_flip=True)
    b = get_batches(tiny, gen, shuffle=True, seed=2, target_size=(16, 16), batch_size=10, verbose=False)
    x, y = b[0]
    assert x.shape == (10, 16, 16, 3) and x.min() >= 0 and x.max() <= 255
    plain = get_batches(tiny, shuffle=True, seed=2, target_size=(16, 16), batch_size=10, verbose=False)
    assert not np.allclose(x, plain[0][0])


def test_mix_iterator_concatenates_one_batch_of_each(tiny):
    from dl1.data.batches import ImageDataGenerator, MixIterator

    real = get_batches(tiny, batch_size=4, shuffle=False, target_size=(8, 8), verbose=False)
    pseudo = ImageDataGenerator().flow(np.zeros((6, 8, 8, 3)), np.tile([[0.5, 0.5]], (6, 1)), batch_size=2,
                                       shuffle=False)
    mix = MixIterator([real, pseudo])
    x, y = next(mix)
    assert x.shape == (6, 8, 8, 3) and y.shape == (6, 2) and mix.N == 16
    assert y[:4].tolist() == [[1, 0]] * 4 and y[4:].tolist() == [[0.5, 0.5]] * 2
