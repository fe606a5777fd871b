"""The frozen-feature cache: the user's callbacks see the whole model while the head trains on cached
features, the cache folder stays bounded, and ``dl1 cache`` shows and clears it."""

import os

import keras
import numpy as np

import dl1  # noqa: F401  (conftest set KERAS_BACKEND)
from dl1.data.batches import get_batches
from dl1.models.vgg16 import Vgg16
from dl1.train.features import FeatureCache, FrozenPrefix, frozen_prefix_length, prune_cache


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
        cache = FeatureCache(prefix, verbose=False, folder=folder)
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


def test_the_weights_fingerprint_follows_every_change_and_hashes_unchanged_weights_once(monkeypatch):
    """The fingerprint names the cache file and the checkpoint's model: it must change with any weight, set
    in place or by an optimizer step; a weight that did not change is not hashed again (a notebook's fits)."""
    import hashlib

    from dl1.train import features

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="a"), keras.layers.Dense(2, name="b")])
    layers = model.layers
    hashed = []
    real = hashlib.sha256
    monkeypatch.setattr(features.hashlib, "sha256", lambda *a: hashed.append(1) or real(*a))
    first = features.weights_fingerprint(layers)
    assert len(hashed) == 4  # two kernels, two biases
    assert features.weights_fingerprint(layers) == first and len(hashed) == 4
    kernel = layers[1].kernel
    original = kernel.numpy().copy()
    kernel.assign(original + 1e-6)
    second = features.weights_fingerprint(layers)
    assert second != first and len(hashed) == 5
    kernel.assign(original)  # back to the same values: the same fingerprint
    assert features.weights_fingerprint(layers) == first
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.train_on_batch(np.ones((3, 6), "float32"), np.zeros((3, 2), "float32"))
    assert features.weights_fingerprint(layers) not in (first, second)
    renamed = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="c"), keras.layers.Dense(2, name="b")])
    renamed.set_weights(model.get_weights())
    assert features.weights_fingerprint(renamed.layers) != features.weights_fingerprint(layers)
