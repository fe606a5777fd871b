"""The defects a review of the first landing found (issue 10), each checked the way a user meets it."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import dl1  # noqa: F401  (conftest set KERAS_BACKEND)
from dl1.data.batches import ImageDataGenerator, get_batches
from dl1.inspect.plots import plots
from dl1.inspect.predictions import plots_idx
from dl1.models.vgg16 import Vgg16
from dl1.train.features import FeatureCache, FrozenPrefix, frozen_prefix_length, prune_cache
from dl1.workflow.results import Results

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


class _Seen(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.seen = self.model


def test_callbacks_on_the_cached_feature_path_see_the_whole_model(tmp_path, course_data, standin_weights,
                                                                  seeded):
    vgg = Vgg16(weights=str(standin_weights), size=64, verbose=False)
    batches = vgg.get_batches(course_data / "train", batch_size=16, verbose=False)
    val = vgg.get_batches(course_data / "valid", batch_size=32, shuffle=False, verbose=False)
    vgg.finetune(batches)
    seen = _Seen()
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), save_weights_only=True)
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)  # stops after epoch 2
    history = vgg.fit(batches, val, nb_epoch=4, callbacks=[seen, ckpt, stop], verbose=0)
    assert seen.seen is vgg.model and len(seen.seen.layers) == len(vgg.model.layers)
    assert history.model is vgg.model
    assert len(history.epoch) == 2  # EarlyStopping reached the loop that trained the head
    fresh = Vgg16(weights=None, size=64, verbose=False)
    fresh.ft(2)
    fresh.model.load_weights(tmp_path / "best.weights.h5")
    x = next(iter(val))[0][:4]
    np.testing.assert_allclose(fresh.model.predict(x, verbose=0), vgg.model.predict(x, verbose=0), atol=1e-5)


def test_convolution2d_is_the_class_of_vgg16s_convolutions():
    from utils import Convolution2D, Dense  # noqa: F401

    model = Vgg16(weights=None, size=32, verbose=False).model
    convs = [i for i, layer in enumerate(model.layers) if type(layer) is Convolution2D]
    assert len(convs) == 13
    last_conv_idx = [index for index, layer in enumerate(model.layers) if type(layer) is Convolution2D][-1]
    assert model.layers[last_conv_idx].name == "block5_conv3"
    k1 = Convolution2D(8, 3, 3, border_mode="same", subsample=(2, 2))
    assert (k1.kernel_size, k1.padding, k1.strides) == ((3, 3), "same", (2, 2))


def test_plots_of_nothing_say_so_and_go_on(capsys, tmp_path):
    plots([])
    plots_idx(np.array([], dtype=int), [], str(tmp_path))
    assert capsys.readouterr().out.count("no images to show") == 2


def test_only_the_newest_epoch_weight_files_are_kept(tmp_path):
    results = Results(tmp_path)
    for epoch in range(1, 6):
        with open(results.file(results.epoch_weights_name(epoch)), "w") as f:
            f.write("w")
        results.prune_epoch_weights(2)
    assert sorted(os.listdir(results.path)) == ["ft4.h5", "ft5.h5"]
    assert results.prune_epoch_weights(0) == []


def test_the_feature_cache_is_bounded(tmp_path, monkeypatch, course_data):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DL1_CACHE_DIR", str(folder))
    monkeypatch.setenv("DL1_CACHE_MAX_FILES", "2")
    batches = get_batches(course_data / "valid", shuffle=False, batch_size=16, target_size=(32, 32), verbose=False)
    made = []
    for seed in range(4):  # four different frozen weights: four cache files
        keras.utils.set_random_seed(seed)
        vgg = Vgg16(weights=None, size=32, verbose=False)
        vgg.ft(2)
        prefix = FrozenPrefix(vgg.model, frozen_prefix_length(vgg.model))
        cache = FeatureCache(prefix, verbose=False)
        cache.features(batches)
        made.append(cache.path_for(batches))
        os.utime(made[-1], (1e9 + seed, 1e9 + seed))
    left = sorted(os.listdir(folder))
    assert left == sorted(os.path.basename(p) for p in made[-2:])
    assert prune_cache(str(folder), keep=made[-1:]) == []


def test_dl1_cache_command_shows_and_clears(tmp_path, monkeypatch):
    from dl1.cli import main

    cache = tmp_path / "data" / ".dl1-cache"
    cache.mkdir(parents=True)
    (cache / "train-0.b2nd").write_bytes(b"x" * 2048)
    monkeypatch.delenv("DL1_CACHE_DIR", raising=False)
    assert main(["cache", str(tmp_path / "data")]) == 0
    assert main(["cache", str(tmp_path / "data"), "--clear"]) == 0
    assert not list(cache.iterdir())


@pytest.mark.parametrize("version, ok", [("3.15.1", True), ("3.99.0", False), ("2.15.0", False)])
def test_keras_internals_are_used_only_on_verified_versions(monkeypatch, version, ok, caplog):
    from dl1.nn import kprivate

    monkeypatch.setattr(keras, "__version__", version)
    kprivate.recheck()
    try:
        with caplog.at_level("WARNING", logger="dl1"):
            assert kprivate.verified() is ok
            assert kprivate.fast_torch_layers() is ok
        assert ("outside the versions dl1 was verified on" in caplog.text) is (not ok)
    finally:
        monkeypatch.undo()
        kprivate.recheck()


@pytest.mark.parametrize("private", ["1", "0"])
def test_both_keras_paths_give_the_same_training(monkeypatch, private):
    """Changing ``trainable`` after compile, and the fast convolutions, on the private path and on the
    plain-Keras path: same predictions and the same weights after the same steps."""
    from dl1.nn import kprivate
    from dl1.nn.layers import Conv2D
    from dl1.nn.model import Sequential

    def run():
        keras.utils.set_random_seed(0)
        model = Sequential([keras.Input((8, 8, 3)), Conv2D(4, 3, padding="same", activation="relu"),
                            keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        x = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
        y = np.eye(2, dtype="float32")[np.arange(16) % 2]
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
        model.layers[0].trainable = False
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
        return model.predict(x, verbose=0), [w.copy() for w in model.get_weights()]

    monkeypatch.setenv("DL1_KERAS_PRIVATE", "1")
    kprivate.recheck()
    reference = run()
    monkeypatch.setenv("DL1_KERAS_PRIVATE", private)
    kprivate.recheck()
    try:
        assert kprivate.verified() is (private == "1")
        preds, weights = run()
    finally:
        monkeypatch.delenv("DL1_KERAS_PRIVATE")
        kprivate.recheck()
    np.testing.assert_allclose(preds, reference[0], atol=1e-5)
    for a, b in zip(weights, reference[1], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
