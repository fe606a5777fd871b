"""Every VGG16 weights file a user may hold loads (DL1_WEIGHTS and weights=FILE), or is one clear line;
``vgg_preprocess`` on tensors; the notop file for networks without their head."""

import os

import keras
import numpy as np
import pytest

import dl1  # noqa: F401  (conftest set KERAS_BACKEND)
from dl1.io.errors import WeightsError
from dl1.models.vgg16 import Vgg16, Vgg16BN, vgg_mean, vgg_preprocess
from dl1.models.weights import VGG16_WEIGHTS, VGG16_WEIGHTS_NO_TOP
from dl1.nn.weightfiles import save_legacy_h5

SIZE = 32
X = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")


@pytest.fixture(scope="module")
def source():
    """A VGG16 with distinct random weights, and its predictions on X."""
    keras.utils.set_random_seed(1)
    vgg = Vgg16(weights=None, size=SIZE, verbose=False)
    return vgg, vgg.model.predict(X, verbose=0)


def _keras_applications_file(tmp_path, source, suffix):
    """The same weights in a plain ``keras.applications.VGG16`` (no dl1 class), saved by Keras 3."""
    vgg, _ = source
    ka = keras.applications.VGG16(weights=None, input_shape=(SIZE, SIZE, 3), classes=1000)
    ours = [layer for layer in vgg.model.layers if layer.weights]
    theirs = [layer for layer in ka.layers if layer.weights]
    for a, b in zip(ours, theirs, strict=True):
        b.set_weights(a.get_weights())
    path = tmp_path / f"ka{suffix}"
    if suffix == ".keras":
        ka.save(path)
    else:
        ka.save_weights(path)
    return path


def _files(tmp_path, source):
    vgg, _ = source
    ours = tmp_path / "ours.h5"  # Keras 3 layout under the 2017 name, as the lessons save
    vgg.model.save_weights(ours)
    legacy = tmp_path / "legacy.h5"
    save_legacy_h5(vgg.model, str(legacy))
    return {"save_weights .h5": ours, "Keras 2 .h5": legacy,
            "keras.applications .weights.h5": _keras_applications_file(tmp_path, source, ".weights.h5"),
            "keras.applications .keras": _keras_applications_file(tmp_path, source, ".keras")}


@pytest.mark.parametrize("how", ["DL1_WEIGHTS", "weights=FILE"])
def test_every_vgg16_weights_file_loads_and_predicts_the_same(tmp_path, monkeypatch, source, how):
    _, expected = source
    for kind, path in _files(tmp_path, source).items():
        if how == "DL1_WEIGHTS":
            monkeypatch.setenv("DL1_WEIGHTS", str(path))
            vgg = Vgg16(size=SIZE, verbose=False)
        else:
            vgg = Vgg16(weights=str(path), size=SIZE, verbose=False)
        got = vgg.model.predict(X, verbose=0)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=kind)


def test_a_fine_tuned_file_rebuilds_its_head(tmp_path, source):
    vgg, _ = source
    tuned = Vgg16(weights=None, size=SIZE, verbose=False)
    tuned.ft(3)
    tuned.model.save_weights(tmp_path / "ft1.h5")
    again = Vgg16(weights=str(tmp_path / "ft1.h5"), size=SIZE, verbose=False)
    assert again.model.output_shape == (None, 3)
    np.testing.assert_allclose(again.model.predict(X, verbose=0), tuned.model.predict(X, verbose=0), atol=1e-6)


def test_a_file_that_is_not_vgg16_weights_is_one_line(tmp_path, monkeypatch):
    text = tmp_path / "notes.h5"
    text.write_text("not weights")
    with pytest.raises(WeightsError, match=r"notes.h5 is not a Keras weights or model file") as e:
        Vgg16(weights=str(text), size=SIZE, verbose=False)
    assert "\n" not in str(e.value)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    other.save_weights(tmp_path / "other.weights.h5")
    monkeypatch.setenv("DL1_WEIGHTS", str(tmp_path / "other.weights.h5"))
    with pytest.raises(WeightsError, match=r"other.weights.h5 is a Keras 3 weights file that does not fit Vgg16 .*block1_conv1.*Expected VGG16"):
        Vgg16(size=SIZE, verbose=False)


def test_another_size_keeps_the_conv_weights_and_says_the_head_starts_random(tmp_path, source, capsys):
    vgg, _ = source
    path = tmp_path / "at32.h5"
    vgg.model.save_weights(path)
    bigger = Vgg16(weights=str(path), size=64, verbose=True)
    assert "the layers fc1 start with random weights" in capsys.readouterr().out
    np.testing.assert_array_equal(bigger.model.get_layer("block1_conv1").get_weights()[0],
                                  vgg.model.get_layer("block1_conv1").get_weights()[0])
    # the layers the file fills were built without random draws; fc1, which it cannot fill, drew its start
    fc1 = bigger.model.get_layer("fc1").get_weights()[0]
    limit = np.sqrt(6 / sum(fc1.shape))  # Glorot's uniform range
    assert np.isfinite(fc1).all() and 0.9 * limit < np.abs(fc1).max() <= limit and abs(fc1.std() - limit / np.sqrt(3)) < 1e-3
    configs = [bigger.model.get_layer(name).get_config()["kernel_initializer"]["class_name"]
               for name in ("block1_conv1", "fc1", "fc2")]
    assert configs == ["GlorotUniform"] * 3  # the settings a copy of the model draws with are Keras' own


def test_a_network_without_its_head_uses_the_notop_file(tmp_path, monkeypatch, source):
    home = tmp_path / "keras"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    vgg, _ = source
    conv = Vgg16BN(weights=None, size=SIZE, include_top=False, verbose=False)
    for layer in conv.model.layers:
        if layer.weights:
            layer.set_weights(vgg.model.get_layer(layer.name).get_weights())
    save_legacy_h5(conv.model, str(home / "models" / VGG16_WEIGHTS_NO_TOP.fname))
    loaded = Vgg16BN(size=SIZE, include_top=False, verbose=False)  # offline: only the notop file is there
    np.testing.assert_allclose(loaded.model.predict(X, verbose=0), conv.model.predict(X, verbose=0), atol=1e-5)
    assert not (home / "models" / VGG16_WEIGHTS.fname).exists()
    os.remove(home / "models" / VGG16_WEIGHTS_NO_TOP.fname)
    with pytest.raises(WeightsError, match=VGG16_WEIGHTS_NO_TOP.fname):
        Vgg16BN(size=SIZE, include_top=False, verbose=False)


def test_vgg_preprocess_takes_arrays_and_tensors_under_autograd():
    import torch

    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    expected = (x - vgg_mean)[..., ::-1]
    np.testing.assert_allclose(vgg_preprocess(x), expected, rtol=1e-6)
    t = torch.tensor(x, requires_grad=True)
    out = vgg_preprocess(t)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-6)
    out[..., 0].sum().backward()  # channel 0 of the output is input channel 2 (BGR)
    assert t.grad[..., 2].sum().item() == pytest.approx(2 * 4 * 4) and t.grad[..., :2].abs().sum().item() == 0
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Lambda(vgg_preprocess),
                              keras.layers.Conv2D(2, 3, padding="same")])
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               model.layers[-1](keras.ops.convert_to_tensor(expected.copy())).detach().numpy(),
                               rtol=1e-5, atol=1e-4)
