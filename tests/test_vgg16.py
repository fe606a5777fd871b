"""The Vgg16 wrapper: the 2017 API, the recipe learning, weights round trips, the offline message."""

import inspect
import os
import shutil

import keras
import numpy as np
import pytest

import dl1  # noqa: F401  (conftest set KERAS_BACKEND; dl1 keeps it for direct runs)
from dl1.io.errors import WeightsError
from dl1.models.vgg16 import Vgg16, Vgg16BN, vgg_mean, vgg_preprocess
from dl1.models.weights import VGG16_WEIGHTS


def test_every_2017_method_exists_with_its_2017_arguments():
    expected = {
        "create": [], "get_classes": [], "predict": ["imgs", "details"],
        "get_batches": ["path", "gen", "shuffle", "batch_size", "class_mode"],
        "ft": ["num"], "finetune": ["batches"], "compile": ["lr"],
        "fit_data": ["trn", "labels", "val", "val_labels", "nb_epoch", "batch_size"],
        "fit": ["batches", "val_batches", "nb_epoch"], "test": ["path", "batch_size"],
    }
    for name, args in expected.items():
        params = list(inspect.signature(getattr(Vgg16, name)).parameters)[1:]
        assert params[:len(args)] == args, name
    defaults = inspect.signature(Vgg16.get_batches).parameters
    assert defaults["batch_size"].default == 8 and defaults["shuffle"].default is True
    assert inspect.signature(Vgg16.compile).parameters["lr"].default == 0.001
    assert inspect.signature(Vgg16.test).parameters["batch_size"].default == 8


def test_network_is_keras_vgg16_with_fastai_dropout_and_preprocessing():
    vgg = Vgg16(weights=None, size=32, verbose=False)
    names = [layer.name for layer in vgg.model.layers]
    assert names[0] == "vgg_preprocess" and names[-6:] == [
        "flatten", "fc1", "fc1_dropout", "fc2", "fc2_dropout", "predictions"]
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in vgg.model.layers) == 13
    assert vgg.model.get_layer("fc1_dropout").rate == 0.5
    assert vgg.model.output_shape == (None, 1000)
    assert len(vgg.classes) == 1000  # placeholders without the class index file offline
    # caffe-style preprocessing inside the model equals keras.applications' preprocess_input
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    inside = keras.ops.convert_to_numpy(vgg.model.layers[0](x))
    np.testing.assert_allclose(inside, keras.applications.vgg16.preprocess_input(x.copy()), atol=1e-4)
    np.testing.assert_allclose(vgg_preprocess(x), inside, atol=1e-4)
    assert vgg_mean.shape == (1, 1, 3)


def test_predict_returns_probs_indices_and_names():
    vgg = Vgg16(weights=None, size=32, verbose=False)
    imgs = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3))
    probs, idxs, names = vgg.predict(imgs, True)
    assert probs.shape == (3,) and idxs.shape == (3,) and len(names) == 3
    assert names[0] == vgg.classes[idxs[0]] and np.all((probs > 0) & (probs <= 1))


def test_ft_freezes_everything_but_the_new_softmax():
    vgg = Vgg16(weights=None, size=32, verbose=False)
    vgg.ft(3)
    trainable = [layer.name for layer in vgg.model.layers if layer.trainable_weights]
    assert trainable == ["predictions"] and vgg.model.output_shape == (None, 3)
    assert vgg.model.get_layer("fc2").trainable is False


def test_the_7_line_recipe_learns(course_data, standin_weights, seeded):
    path = str(course_data) + "/"
    vgg = Vgg16(weights=str(standin_weights), size=64, verbose=False)
    batches = vgg.get_batches(path + "train", batch_size=16, seed=0)
    val_batches = vgg.get_batches(path + "valid", batch_size=32, shuffle=False)
    vgg.finetune(batches)
    history = vgg.fit(batches, val_batches, nb_epoch=5, verbose=0)
    assert vgg.classes == ["cats", "dogs"]
    assert len(history.history["val_accuracy"]) == 5
    assert max(history.history["val_accuracy"][-2:]) >= 0.7  # chance is 0.5 (48 validation images)

    test_batches, preds = vgg.test(path + "test", batch_size=16)
    assert preds.shape == (test_batches.n, 2)
    np.testing.assert_allclose(preds.sum(axis=1), 1, atol=1e-5)
    # rows follow test_batches.filenames: predicting images one by one, in that order, agrees
    ordered = vgg.get_batches(path + "test", shuffle=False, batch_size=1, class_mode=None, verbose=False)
    one_by_one = np.concatenate([vgg.model.predict(ordered[i], verbose=0) for i in range(5)])
    np.testing.assert_allclose(preds[:5], one_by_one, atol=1e-4)


def test_cached_features_give_the_same_predictions_as_the_full_model(tmp_path, course_data, standin_weights):
    from dl1.train.fit import predict_batches

    vgg = Vgg16(weights=str(standin_weights), size=64, verbose=False)
    b = vgg.get_batches(str(course_data / "valid"), batch_size=16, shuffle=False, verbose=False)
    vgg.finetune(b)
    cached = predict_batches(vgg.model, b, cache=True, verbose=0, cache_dir=tmp_path / "cache")
    assert len(os.listdir(tmp_path / "cache")) == 1
    full = predict_batches(vgg.model, b, cache=False, verbose=0)
    np.testing.assert_allclose(cached, full, atol=1e-5)
    again = predict_batches(vgg.model, b, cache=True, verbose=0, cache_dir=tmp_path / "cache")  # from the file
    np.testing.assert_allclose(again, cached, atol=1e-6)


def test_feature_cache_is_invalidated_by_changed_images_and_weights(tmp_path, course_data, standin_weights):
    from dl1.train.features import FeatureCache, FrozenPrefix, frozen_prefix_length

    data = tmp_path / "valid"
    shutil.copytree(course_data / "valid", data)
    vgg = Vgg16(weights=str(standin_weights), size=64, verbose=False)
    b = vgg.get_batches(str(data), shuffle=False, verbose=False)
    vgg.finetune(b)
    prefix = FrozenPrefix(vgg.model, frozen_prefix_length(vgg.model))
    cache = FeatureCache(prefix, verbose=False, folder=tmp_path / "cache")
    f1, _ = cache.features(b)
    path = cache.path_for(b)
    assert os.path.exists(path)
    victim = data / b.filenames[3]
    shutil.copy(data / b.filenames[-1], victim)  # a changed image: same name, other pixels
    b2 = vgg.get_batches(str(data), shuffle=False, verbose=False)
    f2, _ = cache.features(b2)
    assert not np.allclose(f2[3], f1[3]) and np.allclose(f2[3], f2[-1], rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(f2[:3], f1[:3])
    vgg.model.get_layer("fc1").set_weights([w * 2 for w in vgg.model.get_layer("fc1").get_weights()])
    other = FeatureCache(FrozenPrefix(vgg.model, frozen_prefix_length(vgg.model)), verbose=False,
                         folder=tmp_path / "cache")
    assert other.path_for(b2) != path


def test_saved_weights_reload_through_the_imagenet_path_with_identical_predictions(
        tmp_path, monkeypatch, standin_weights):
    # The stand-in file has the layout of Keras' real ImageNet file: put it where Keras caches that file
    # and load it exactly as a user does, with weights='imagenet'.
    home = tmp_path / "keras"
    (home / "models").mkdir(parents=True)
    shutil.copy(standin_weights, home / "models" / VGG16_WEIGHTS.fname)
    monkeypatch.setenv("KERAS_HOME", str(home))
    vgg = Vgg16(weights="imagenet", size=64, verbose=False)
    ref = Vgg16(weights=str(standin_weights), size=64, verbose=False)
    x = np.random.default_rng(2).uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(vgg.model.predict(x, verbose=0), ref.model.predict(x, verbose=0))
    # and a fine-tuned model saved under a 2017 name reloads, its head size read from the file
    vgg.ft(2)
    vgg.model.save_weights(str(tmp_path / "ft1.h5"))
    again = Vgg16(weights=str(tmp_path / "ft1.h5"), size=64, verbose=False)
    assert again.model.output_shape == (None, 2)
    np.testing.assert_array_equal(again.model.predict(x, verbose=0), vgg.model.predict(x, verbose=0))


def test_imagenet_head_weights_need_224_px(tmp_path, monkeypatch, standin_weights, capsys):
    home = tmp_path / "keras"
    (home / "models").mkdir(parents=True)
    shutil.copy(standin_weights, home / "models" / VGG16_WEIGHTS.fname)  # made at 64 px
    monkeypatch.setenv("KERAS_HOME", str(home))
    vgg = Vgg16(weights="imagenet", size=32)
    out = capsys.readouterr().out
    assert "fc1" in out and "224" in out
    ref = Vgg16(weights=str(standin_weights), size=64, verbose=False)
    np.testing.assert_array_equal(vgg.model.get_layer("block5_conv3").get_weights()[0],
                                  ref.model.get_layer("block5_conv3").get_weights()[0])


def test_offline_without_cached_weights_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    with pytest.raises(WeightsError) as e:
        Vgg16()
    message = str(e.value)
    assert VGG16_WEIGHTS.fname in message
    assert str(tmp_path / "empty" / "models") in message
    assert "weights=None" in message and VGG16_WEIGHTS.origin in message
    assert "\n" not in message


def test_2017_channels_first_weight_file_is_recognised(tmp_path):
    import h5py

    path = tmp_path / "vgg16.h5"  # what files.fast.ai served in 2017: Theano kernels (out, in, h, w)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"convolution2d_1"]
        g = f.create_group("convolution2d_1")
        g.attrs["weight_names"] = [b"W", b"b"]
        g["W"] = np.zeros((64, 3, 3, 3), "float32")
        g["b"] = np.zeros((64,), "float32")
    from dl1.nn.model import Sequential

    model = Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(64, 3, name="c")])
    with pytest.raises(WeightsError, match="channels-first"):
        model.load_weights(str(path))


def test_changing_lr_after_compile_takes_effect():
    from utils import K  # the 2017 face: it installs the Keras 1 spellings (opt.lr)

    vgg = Vgg16(weights=None, size=32, verbose=False)
    vgg.ft(2)
    opt = vgg.model.optimizer
    assert float(opt.learning_rate) == pytest.approx(0.001)
    vgg.model.optimizer.lr = 0.01  # the 2017 notebook idiom, silently ignored by Keras 1 after training
    assert float(opt.learning_rate) == pytest.approx(0.01)

    K.set_value(opt.lr, 0.0)  # the lesson 2 idiom
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical([0, 1, 0, 1], 2)
    before = vgg.model.get_layer("predictions").get_weights()[0].copy()
    vgg.model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    np.testing.assert_array_equal(before, vgg.model.get_layer("predictions").get_weights()[0])
    K.set_value(opt.lr, 0.01)
    vgg.model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert not np.allclose(before, vgg.model.get_layer("predictions").get_weights()[0])


def test_changing_trainable_after_compile_takes_effect(seeded):
    vgg = Vgg16(weights=None, size=32, verbose=False)
    vgg.ft(2)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical([0, 1, 0, 1], 2)
    fc2 = vgg.model.get_layer("fc2")
    before = fc2.get_weights()[0].copy()
    vgg.model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    np.testing.assert_array_equal(before, fc2.get_weights()[0])  # frozen
    fc2.trainable = True  # no recompile, as lesson 2 does it
    vgg.model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert not np.allclose(before, fc2.get_weights()[0])


def test_fit_data_and_todays_epochs_name(seeded):
    vgg = Vgg16(weights=None, size=32, verbose=False)
    vgg.ft(2)
    x = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical([0, 1, 0, 1, 0, 1], 2)
    h = vgg.fit_data(x, y, x, y, nb_epoch=2, batch_size=3, verbose=0)
    assert len(h.history["loss"]) == 2
    h = vgg.fit_data(x, y, x, y, epochs=1, batch_size=3, verbose=0)
    assert len(h.history["loss"]) == 1


def test_train_and_valid_with_different_classes_is_refused(tmp_path, course_data):
    from dl1.io.errors import DataError

    shutil.copytree(course_data / "train", tmp_path / "train")
    shutil.copytree(course_data / "valid", tmp_path / "valid")
    os.rename(tmp_path / "valid" / "dogs", tmp_path / "valid" / "puppies")
    vgg = Vgg16(weights=None, size=32, verbose=False)
    b = vgg.get_batches(str(tmp_path / "train"), verbose=False)
    v = vgg.get_batches(str(tmp_path / "valid"), verbose=False)
    vgg.finetune(b)
    with pytest.raises(DataError, match="puppies"):
        vgg.fit(b, v, nb_epoch=1, verbose=0)


def test_vgg16bn_has_batchnorm_in_the_head_and_predicts_like_vgg16(standin_weights):
    bn = Vgg16BN(size=(64, 64), weights=str(standin_weights), verbose=False)
    plain = Vgg16(weights=str(standin_weights), size=64, verbose=False)
    assert [layer.name for layer in bn.model.layers if "bn" in layer.name] == ["fc1_bn", "fc2_bn"]
    x = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(bn.model.predict(x, verbose=0), plain.model.predict(x, verbose=0),
                               atol=1e-4)
    conv_only = Vgg16BN(size=(64, 64), include_top=False, weights=None, verbose=False)
    assert conv_only.model.layers[-1].name == "block5_pool"


def test_bad_size_is_refused():
    with pytest.raises(ValueError, match="at least 32"):
        Vgg16(weights=None, size=16)


def test_mixed_precision_runs_and_keeps_the_softmax_in_float32(course_data):
    from dl1.nn.optimizers import mixed_precision_policy

    assert mixed_precision_policy(False) is None and mixed_precision_policy("mixed_float16") == "mixed_float16"
    assert mixed_precision_policy("auto") is None  # no GPU here: full precision
    vgg = Vgg16(weights=None, size=32, verbose=False, mixed_precision="mixed_bfloat16")
    assert vgg.model.get_layer("block3_conv1").compute_dtype == "bfloat16"
    b = vgg.get_batches(str(course_data / "valid"), batch_size=16, verbose=False)
    vgg.finetune(b)
    assert vgg.model.get_layer("predictions").compute_dtype == "float32"
    history = vgg.fit(b, b, nb_epoch=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    _, preds = vgg.test(str(course_data / "test"), batch_size=16)
    assert preds.dtype == np.float32 and np.allclose(preds.sum(axis=1), 1, atol=1e-3)
