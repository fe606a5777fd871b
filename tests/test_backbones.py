"""Modern keras.applications backbones through the Vgg16 recipe: the API, weights (ImageNet file from the
Keras cache, None, a file, offline message), preprocessing inside, cached frozen features for functional
models, and batch normalisation staying in inference mode while the rest is fine-tuned."""

import inspect
import os

import keras
import numpy as np
import pytest

import dl1  # noqa: F401
from dl1.io.errors import WeightsError
from dl1.models.backbones import (
    ARCHITECTURES,
    ConvNeXtTiny,
    EfficientNetV2B0,
    Resnet50,
    architecture,
)
from dl1.models.vgg16 import Vgg16
from dl1.models.weights import BACKBONE_WEIGHTS
from dl1.nn.frozen import FrozenBase, with_fast_convs
from dl1.nn.weightfiles import save_legacy_h5
from dl1.train.features import FrozenPrefix, chain_layers, frozen_prefix_length
from dl1.train.fit import cache_plan, predict_batches

SIZE = 32


@pytest.fixture(scope="module")
def small_data(module_tmp):
    from dl1.data.sample import write_sample

    path = module_tmp.mktemp("bb") / "data"
    write_sample(str(path), n=40, layout="course", seed=1, max_side=64, progress=False)
    return path


def _images(n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


def test_the_names_and_the_2017_resnet50_signature():
    assert list(ARCHITECTURES) == ["vgg16", "vgg16bn", "resnet50", "efficientnetv2b0", "efficientnetv2s",
                                   "convnext_tiny", "densenet121"]
    assert architecture(None) is Vgg16 and architecture("ResNet50") is Resnet50
    with pytest.raises(ValueError, match="convnext_tiny"):
        architecture("alexnet")
    params = inspect.signature(Resnet50).parameters
    assert list(params)[:2] == ["size", "include_top"] and params["size"].default == (224, 224)
    for name in ("get_batches", "finetune", "fit", "test", "predict", "ft", "compile", "fit_data"):
        assert callable(getattr(Resnet50, name))


@pytest.mark.parametrize("cls", [Resnet50, EfficientNetV2B0, ConvNeXtTiny])
def test_raw_rgb_in_imagenet_softmax_out_and_the_same_as_keras_application(cls, seeded):
    model = cls(weights=None, size=SIZE, verbose=False)
    assert model.model.output_shape == (None, 1000) and len(model.classes) == 1000
    probs, idxs, names = model.predict(_images())
    assert probs.shape == (4,) and names[0] == model.classes[idxs[0]]
    # the same numbers as the plain application with its preprocessing, fed the same weights
    fn, extra, caffe = {"resnet50": ("ResNet50", {}, True), "efficientnetv2b0": (
        "EfficientNetV2B0", {"include_preprocessing": True}, False), "convnext_tiny": (
        "ConvNeXtTiny", {"include_preprocessing": True}, False)}[model.arch]
    plain = getattr(keras.applications, fn)(weights=None, input_shape=(SIZE, SIZE, 3), **extra)
    plain.set_weights(model.base.get_weights() + model.model.get_layer("predictions").get_weights())
    x = _images()
    fed = keras.applications.resnet50.preprocess_input(x.copy()) if caffe else x
    np.testing.assert_allclose(model.model.predict(x, verbose=0), plain.predict(fed, verbose=0),
                               atol=2e-5)


def test_fast_convolutions_give_the_same_outputs(seeded):
    plain = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    fast = with_fast_convs(plain)
    assert fast is not plain
    assert any(type(layer).__module__ == "dl1.nn.layers" for layer in fast.layers)
    x = keras.applications.resnet50.preprocess_input(_images())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fast(x)), keras.ops.convert_to_numpy(plain(x)),
                               rtol=1e-4, atol=1e-4)


def test_imagenet_weights_come_from_the_keras_cache_under_keras_file_name(seeded, tmp_path, monkeypatch):
    home = tmp_path / "keras"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    app = keras.applications.ConvNeXtTiny(weights=None, input_shape=(SIZE, SIZE, 3),
                                          include_preprocessing=True)
    rng = np.random.default_rng(0)
    app.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in app.get_weights()])
    fname = BACKBONE_WEIGHTS["convnext_tiny"][0].fname
    assert fname == "convnext_tiny.h5" and BACKBONE_WEIGHTS["efficientnetv2b0"][1].fname == \
        "efficientnetv2-b0_notop.h5"
    save_legacy_h5(app, str(home / "models" / fname))
    model = ConvNeXtTiny(weights="imagenet", size=SIZE, verbose=False)
    x = _images()
    np.testing.assert_allclose(model.model.predict(x, verbose=0), app.predict(x, verbose=0), atol=2e-5)
    # DL1_WEIGHTS may be a folder holding Keras' files
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("DL1_WEIGHTS", str(home / "models"))
    again = ConvNeXtTiny(weights="imagenet", size=SIZE, verbose=False, fast_convs=False)
    np.testing.assert_allclose(again.model.predict(x, verbose=0), app.predict(x, verbose=0), atol=2e-5)


def test_offline_without_the_file_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("DL1_OFFLINE", "1")
    with pytest.raises(WeightsError) as e:
        Resnet50(size=(SIZE, SIZE))
    msg = str(e.value)
    assert "\n" not in msg
    assert "resnet50_weights_tf_dim_ordering_tf_kernels.h5" in msg and str(tmp_path) in msg
    assert "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" in msg
    assert "weights=None" in msg
    with pytest.raises(WeightsError, match="notop"):
        Resnet50(size=(SIZE, SIZE), include_top=False)
    with pytest.raises(WeightsError, match="not found"):
        Resnet50(size=(SIZE, SIZE), weights=str(tmp_path / "missing.h5"))


def test_finetune_fit_cache_and_a_weights_file_round_trip(small_data, seeded, tmp_path, monkeypatch):
    monkeypatch.setenv("DL1_CACHE_DIR", str(tmp_path / "cache"))
    model = Resnet50(size=(SIZE, SIZE), weights=None, verbose=False)
    batches = model.get_batches(str(small_data / "train"), batch_size=8, seed=0)
    val = model.get_batches(str(small_data / "valid"), batch_size=8, shuffle=False)
    model.finetune(batches)
    assert model.classes == ["cats", "dogs"] and model.model.output_shape == (None, 2)
    assert [type(layer).__name__ for layer in chain_layers(model.model)] == [
        "VggPreprocess", "FrozenBase", "Dense"]
    plan = cache_plan(model.model, [batches, val])
    assert isinstance(plan, FrozenPrefix) and plan.k == 2 and plan.output_shape == (2048,)
    history = model.fit(batches, val, nb_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert os.listdir(tmp_path / "cache")  # the frozen features were cached
    # predictions through the cache equal the whole model's
    _, cached = model.test(str(small_data / "valid"), batch_size=8, verbose=0)
    full = predict_batches(model.model, model.get_batches(str(small_data / "valid"), shuffle=False),
                           cache=False, verbose=0)
    np.testing.assert_allclose(cached, full, atol=1e-5)
    path = tmp_path / "ft1.h5"
    model.model.save_weights(str(path))
    loaded = Resnet50(size=(SIZE, SIZE), weights=str(path), verbose=False)
    assert loaded.model.output_shape == (None, 2)
    x = _images()
    np.testing.assert_allclose(loaded.model.predict(x, verbose=0), model.model.predict(x, verbose=0),
                               atol=1e-5)


def test_resnet50_without_top_outputs_the_last_map_and_finetune_pools(small_data, seeded):
    model = Resnet50(size=(SIZE, SIZE), include_top=False, weights=None, verbose=False)
    assert model.model.output_shape == (None, 1, 1, 2048) and model.classes == []
    x = _images(2)
    np.testing.assert_allclose(model.vgg_preprocess(x), keras.applications.resnet50.preprocess_input(x.copy()),
                               atol=1e-4)
    batches = model.get_batches(str(small_data / "train"), batch_size=8)
    model.finetune(batches)
    assert model.model.output_shape == (None, 2)
    assert [layer.name for layer in model.model.layers][-2:] == ["avg_pool", "predictions"]


def _bn_stats(base):
    return [(layer.name, keras.ops.convert_to_numpy(layer.moving_mean).copy(),
             keras.ops.convert_to_numpy(layer.moving_variance).copy())
            for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("cls", [Resnet50, EfficientNetV2B0])
def test_batchnorm_stays_in_inference_mode_while_the_base_is_fine_tuned(cls, seeded):
    """The Keras fine-tuning trap: training the unfrozen base must not move BN statistics, and the
    training-mode forward pass must equal inference mode (BN uses moving statistics, dropout is off)."""
    model = cls(weights=None, size=SIZE, verbose=False)
    model.ft(3)
    model.unfreeze()  # the whole base learns (BN scale/offset included)
    model.compile(lr=1e-3)
    assert frozen_prefix_length(model.model) == (1 if cls is Resnet50 else 0)  # nothing to cache now
    before = _bn_stats(model.base)
    gamma = keras.ops.convert_to_numpy(
        next(layer for layer in model.base.layers if isinstance(layer, keras.layers.BatchNormalization)).gamma)
    x = _images(8, seed=1) * 0.5 + 40  # a batch whose statistics are far from the moving ones (0, 1)
    y = keras.utils.to_categorical(np.arange(8) % 3, 3)
    model.model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    after = _bn_stats(model.base)
    assert len(before) > 10
    for (name, m0, v0), (_, m1, v1) in zip(before, after, strict=True):
        np.testing.assert_array_equal(m0, m1, err_msg=name)
        np.testing.assert_array_equal(v0, v1, err_msg=name)
    gamma1 = keras.ops.convert_to_numpy(
        next(layer for layer in model.base.layers if isinstance(layer, keras.layers.BatchNormalization)).gamma)
    assert not np.allclose(gamma, gamma1)  # the weights did learn
    train_mode = keras.ops.convert_to_numpy(model.model(x, training=True))
    infer_mode = keras.ops.convert_to_numpy(model.model(x, training=False))
    np.testing.assert_allclose(train_mode, infer_mode, atol=1e-6)
    assert isinstance(model.model.get_layer("base"), FrozenBase)


def test_layer_groups_for_the_training_aids(seeded):
    model = ConvNeXtTiny(weights=None, size=SIZE, verbose=False)
    groups = model.layer_groups()
    assert len(groups) == 3 and groups[-1] == [model.model.get_layer("predictions")]
    assert all(groups[0]) and all(groups[1])
