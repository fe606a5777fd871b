"""BatchNormalization calibration: the moving statistics become the measured mean/variance of each BN layer's
input, the model's predictions do not change, and Vgg16BN(weights=FILE) loads the calibrated weights."""

import numpy as np
import pytest


def _probe(model, layers, x):
    import keras

    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    return [keras.ops.convert_to_numpy(a).astype(np.float64) for a in probe([x], training=False)]


def _assert_stats_match(model, x, rtol=1e-5):
    from dl1.models.bn_calibrate import bn_layers

    layers = bn_layers(model)
    for layer, act in zip(layers, _probe(model, layers, x), strict=True):
        axes = tuple(range(act.ndim - 1))
        _, _, moving_mean, moving_var = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
        scale = np.abs(act).max()
        np.testing.assert_allclose(moving_mean, act.mean(axis=axes), rtol=rtol, atol=rtol * scale,
                                   err_msg=layer.name)
        np.testing.assert_allclose(moving_var, act.var(axis=axes), rtol=rtol, atol=rtol * scale ** 2,
                                   err_msg=layer.name)


def _small_cnn():
    import keras

    from dl1.nn.model import Sequential

    L = keras.layers
    return Sequential([keras.Input(shape=(12, 12, 3)), L.Conv2D(6, 3, activation="relu"),
                       L.BatchNormalization(), L.MaxPooling2D(), L.Flatten(), L.Dense(16, activation="relu"),
                       L.BatchNormalization(epsilon=1e-6), L.Dropout(0.5), L.Dense(4, activation="softmax")])


def test_conv_and_dense_bn_statistics_match_the_measured_activations(seeded):
    from dl1.models.bn_calibrate import bn_layers, calibrate_bn

    rng = np.random.default_rng(0)
    model = _small_cnn()
    # start from statistics and scales that are neither the identity nor right
    for layer in bn_layers(model):
        c = layer.get_weights()[0].shape[0]
        layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 1, c), rng.normal(0, 1, c), rng.uniform(0.5, 3, c)])
    x = (rng.uniform(0, 1, (70, 12, 12, 3)) * rng.uniform(0.5, 4, 3) + 2).astype("float32")
    before = model.predict(x, verbose=0)
    stats = calibrate_bn(model, x, batch_size=16, verbose=False)  # 16 does not divide 70: a short last batch
    assert set(stats) == {layer.name for layer in bn_layers(model)}
    _assert_stats_match(model, x)
    # every BN layer computes the same function as before, so the predictions do not move
    np.testing.assert_allclose(model.predict(x, verbose=0), before, atol=1e-5)


def test_without_preserve_outputs_gamma_and_beta_stay(seeded):
    from dl1.models.bn_calibrate import bn_layers, calibrate_bn

    model = _small_cnn()
    x = np.random.default_rng(1).uniform(0, 1, (20, 12, 12, 3)).astype("float32")
    calibrate_bn(model, x, preserve_outputs=False, verbose=False)
    for layer in bn_layers(model):
        gamma, beta, _, var = layer.get_weights()
        np.testing.assert_array_equal(gamma, 1) and np.testing.assert_array_equal(beta, 0)
        assert not np.allclose(var, 1)
    _assert_stats_match(model, x)


def test_no_bn_layer_is_an_error():
    import keras

    from dl1.models.bn_calibrate import calibrate_bn
    from dl1.nn.model import Sequential

    model = Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no BatchNormalization layer"):
        calibrate_bn(model, np.zeros((2, 4), "float32"))


def test_vgg16bn_calibrated_on_a_folder_round_trips_through_a_weights_file(small_images, tmp_path, seeded):
    from dl1.data.batches import get_data
    from dl1.models.bn_calibrate import bn_layers
    from dl1.models.vgg16 import Vgg16BN

    vgg = Vgg16BN(weights=None, size=32, verbose=False)
    x = get_data(str(small_images), target_size=(32, 32))
    before = vgg.model.predict(x, verbose=0)
    for layer in bn_layers(vgg.model):  # the identity Vgg16BN starts from
        np.testing.assert_array_equal(layer.get_weights()[3], 1)
    path = tmp_path / "vgg16bn_calibrated.h5"
    stats = vgg.calibrate_bn(str(small_images), batch_size=8, save=str(path))
    assert sorted(stats) == ["fc1_bn", "fc2_bn"]
    _assert_stats_match(vgg.model, x)
    np.testing.assert_allclose(vgg.model.predict(x, verbose=0), before, rtol=1e-4, atol=1e-7)
    # real statistics now, not the identity
    assert not np.allclose(bn_layers(vgg.model)[0].get_weights()[3], 1)

    back = Vgg16BN(weights=str(path), size=32, verbose=False)
    for a, b in zip(bn_layers(vgg.model), bn_layers(back.model), strict=True):
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(wa, wb)
    np.testing.assert_allclose(back.model.predict(x, verbose=0), vgg.model.predict(x, verbose=0), atol=1e-7)


@pytest.fixture
def small_images(tmp_path):
    """24 synthetic photos in class folders (any folder of images will do)."""
    from dl1.data.sample import write_sample

    path = tmp_path / "imgs"
    write_sample(str(path), n=24, layout="course", seed=2, max_side=64, progress=False)
    return path / "train"
