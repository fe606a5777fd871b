"""Augmentation: the same pixels whatever the number of decode workers or the batch order, and the fill
modes."""

import os
import subprocess
import sys

import numpy as np

import dl1  # noqa: F401  (conftest set KERAS_BACKEND)
from dl1.data.batches import ImageDataGenerator, get_batches

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _augmented_epoch(path, workers):
    """The pixels of one augmented epoch, decoded with ``workers`` threads in a fresh process."""
    code = ("import numpy as np, sys; from dl1.data.batches import ImageDataGenerator, get_batches;"
            "gen = ImageDataGenerator(rotation_range=15, width_shift_range=0.1, horizontal_flip=True, "
            "channel_shift_range=10, zoom_range=0.1);"
            f"b = get_batches({str(path)!r}, gen, batch_size=5, target_size=(32, 32), seed=3, verbose=False);"
            "b.set_epoch(1); x = np.concatenate([b[i][0] for i in range(len(b))]);"
            "sys.stdout.write(repr(float(x.sum())) + ' ' + repr(float((x * np.arange(x.size).reshape(x.shape) % 7).sum())))")
    env = dict(os.environ, DL1_WORKERS=str(workers))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_augmentation_does_not_depend_on_the_number_of_decode_workers(course_data):
    one = _augmented_epoch(course_data / "train", 1)
    four = _augmented_epoch(course_data / "train", 4)
    assert one == four


def test_an_image_gets_the_same_transform_in_any_batch_order(course_data):
    gen = ImageDataGenerator(rotation_range=20, horizontal_flip=True)
    a = get_batches(course_data / "train", gen, batch_size=4, target_size=(32, 32), seed=1, verbose=False)
    b = get_batches(course_data / "train", gen, batch_size=7, target_size=(32, 32), seed=1, verbose=False)
    first = a.index_array[:4]
    xa = a[0][0]
    pos = {int(j): i for i, j in enumerate(b.index_array)}
    xb = np.stack([b[pos[int(j)] // 7][0][pos[int(j)] % 7] for j in first])
    np.testing.assert_allclose(xa, xb, atol=1e-4)


def test_fill_mode_wrap_tiles_the_image():
    x = np.zeros((1, 8, 8, 3), dtype="float32")
    x[0, :, :2] = 255  # a bright stripe at the left edge
    gen = ImageDataGenerator(width_shift_range=3, fill_mode="wrap", device="cpu", interpolation="nearest")
    rng = np.random.default_rng(0)
    out = gen.apply_batch(x, rng)[0]
    shift = int(round(gen.random_params(1, 8, 8, np.random.default_rng(0))[0][0, 0, 2] * 4))
    assert shift != 0
    np.testing.assert_allclose(out[..., 0], np.roll(x[0, ..., 0], -shift, axis=1), atol=1e-3)
    reflect = ImageDataGenerator(width_shift_range=3, fill_mode="reflect", device="cpu",
                                 interpolation="nearest").apply_batch(x, np.random.default_rng(0))[0]
    assert not np.allclose(reflect, out)
