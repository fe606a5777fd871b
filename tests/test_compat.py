"""The 2017 surface on Keras 3: `from utils import *`, helper signatures, model and optimizer spellings."""

import inspect
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import utils
from dl1.compat.keras1 import SGD, Adam, Convolution2D, RMSprop, Sequential

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_star_import_gives_the_2017_names():
    namespace = {}
    exec("from utils import *", namespace)
    for name in ["np", "plt", "pd", "glob", "os", "permutation", "random", "image", "Sequential", "Model",
                 "Dense", "Dropout", "Flatten", "Lambda", "BatchNormalization", "Convolution2D",
                 "MaxPooling2D", "ZeroPadding2D", "SGD", "RMSprop", "Adam", "K", "l2", "confusion_matrix",
                 "FileLink", "to_categorical", "get_file", "Vgg16", "Vgg16BN", "vgg_mean", "vgg_preprocess",
                 "plots", "plot", "plot_confusion_matrix", "get_batches", "get_data", "onehot",
                 "get_classes", "save_array", "load_array", "split_at", "copy_weights", "copy_layers",
                 "copy_model", "insert_layer", "vgg_ft", "do_clip", "mk_square", "gray", "to_plot",
                 "ImageDataGenerator", "OneHotEncoder", "itemgetter", "OrderedDict", "chain"]:
        assert name in namespace, name
    assert namespace["image"].load_img and namespace["image"].ImageDataGenerator
    assert namespace["np"].__name__ == "numpy"


def test_the_command_and_data_preparation_do_not_load_keras():
    code = ("import sys, dl1, dl1.cli, dl1.data.prepare, dl1.kaggle.submission, dl1.workflow.steps; "
            "print('keras' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_helper_signatures_are_the_2017_ones():
    sig = {name: list(inspect.signature(getattr(utils, name)).parameters) for name in [
        "plots", "get_batches", "plot_confusion_matrix", "save_array", "load_array", "split_at",
        "copy_weights", "insert_layer", "do_clip", "mk_square", "get_data", "get_classes", "vgg_ft"]}
    assert sig["plots"][:5] == ["ims", "figsize", "rows", "interp", "titles"]
    assert sig["get_batches"][:6] == ["dirname", "gen", "shuffle", "batch_size", "class_mode", "target_size"]
    assert inspect.signature(utils.get_batches).parameters["batch_size"].default == 4
    assert sig["plot_confusion_matrix"][:5] == ["cm", "classes", "normalize", "title", "cmap"]
    assert sig["save_array"][:2] == ["fname", "arr"] and sig["load_array"][:1] == ["fname"]
    assert sig["split_at"] == ["model", "layer_type"]
    assert sig["copy_weights"] == ["from_layers", "to_layers"]
    assert sig["insert_layer"] == ["model", "new_layer", "index"]
    assert sig["do_clip"] == ["arr", "mx"] and sig["mk_square"] == ["img"]
    assert sig["get_data"][:2] == ["path", "target_size"] and sig["get_classes"][:1] == ["path"]
    assert sig["vgg_ft"][:1] == ["out_dim"]


def test_optimizers_take_lr_and_decay():
    opt = RMSprop(lr=0.1, rho=0.7)
    assert float(opt.learning_rate) == pytest.approx(0.1) and opt.rho == 0.7
    assert float(SGD(lr=1).learning_rate) == 1.0  # an int is fine, as it was in 2017
    assert float(Adam().learning_rate) == pytest.approx(0.001)
    decayed = SGD(lr=0.1, decay=1.0)
    assert float(decayed.learning_rate) == pytest.approx(0.1)  # step 0: lr / (1 + decay * 0)


def test_linear_model_like_lesson_2_recovers_its_weights(seeded):
    from utils import Dense

    x = np.random.default_rng(0).random((30, 2)).astype("float32")
    y = x @ np.array([2.0, 3.0]) + 1
    lm = Sequential([Dense(1, input_shape=(2,))])
    lm.compile(optimizer=SGD(lr=0.1), loss="mse")
    lm.fit(x, y, nb_epoch=40, batch_size=1, verbose=0)
    w, b = lm.get_weights()
    np.testing.assert_allclose(w.ravel(), [2, 3], atol=0.15)
    np.testing.assert_allclose(b, [1], atol=0.15)


def test_2017_model_methods(seeded, tmp_path):
    from utils import Dense, ImageDataGenerator

    x = np.random.default_rng(1).random((8, 4)).astype("float32")
    y = np.eye(2, dtype="float32")[[0, 1] * 4]
    m = Sequential([Dense(2, activation="softmax", input_shape=(4,))])
    m.compile(RMSprop(lr=0.01), "categorical_crossentropy", metrics=["accuracy"])
    assert m.predict_classes(x).shape == (8,)
    assert m.predict_proba(x).shape == (8, 2)
    gen = ImageDataGenerator().flow(x, y, batch_size=4, shuffle=True, seed=0)
    h = m.fit_generator(gen, samples_per_epoch=gen.n, nb_epoch=2, validation_data=gen, nb_val_samples=gen.n,
                        verbose=0)
    assert len(h.history["loss"]) == 2
    assert m.predict_generator(gen, gen.n).shape == (8, 2)
    m.save_weights(str(tmp_path / "finetune1.h5"))  # the 2017 name, refused by plain Keras 3
    m2 = Sequential([Dense(2, activation="softmax", input_shape=(4,))])
    m2.load_weights(str(tmp_path / "finetune1.h5"))
    np.testing.assert_array_equal(m2.predict(x, verbose=0), m.predict(x, verbose=0))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_convolution2d_takes_keras1_arguments():
    layer = Convolution2D(8, 3, 3, border_mode="same", subsample=(2, 2), activation="relu")
    assert layer.kernel_size == (3, 3) and layer.padding == "same" and layer.strides == (2, 2)
    assert Convolution2D(4, (5, 5)).kernel_size == (5, 5)


def test_split_at_copy_model_and_insert_layer():
    import keras

    from dl1.nn.model import Sequential as S
    from utils import Dense, Dropout, Flatten, MaxPooling2D, copy_model, insert_layer, split_at

    m = S([keras.Input((8, 8, 3)), Convolution2D(4, 3, 3, border_mode="same"), MaxPooling2D(),
           keras.layers.Conv2D(4, 3, padding="same"), Flatten(), Dense(3)])
    conv, head = split_at(m, Convolution2D)  # the 2017 name finds Keras' Conv2D layers
    assert [type(layer).__name__ for layer in head] == ["Flatten", "Dense"] and len(conv) == 3
    x = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
    c = copy_model(m)
    np.testing.assert_allclose(c.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)
    d = insert_layer(m, Dropout(0.5), 4)
    assert isinstance(d.layers[4], keras.layers.Dropout) and len(d.layers) == len(m.layers) + 1
    np.testing.assert_allclose(d.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)


def test_do_clip_mk_square_and_k():
    from utils import K, do_clip, mk_square

    clipped = do_clip(np.array([[0.0, 1.0], [0.5, 0.5]]), 0.9)
    np.testing.assert_allclose(clipped.sum(axis=1), 1)
    assert clipped.min() > 0
    sq = mk_square(np.ones((4, 2, 3)))
    assert sq.shape == (4, 4, 3) and sq[:, 0].sum() == 0 and sq[:, 1].sum() == 12
    assert K.image_dim_ordering() == "tf"
    v = K.variable(1.0)
    K.set_value(v, 3.0)
    assert float(K.get_value(v)) == 3.0


def test_plots_and_confusion_matrix_save_pngs(tmp_path, capsys):
    from utils import plot_confusion_matrix, plots

    imgs = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3))
    plots(imgs, titles=np.eye(3), rows=2, fname=str(tmp_path / "p.png"))
    plot_confusion_matrix(np.array([[5, 1], [2, 7]]), {"cats": 0, "dogs": 1}, fname=str(tmp_path / "c.png"))
    assert "[[5 1]" in capsys.readouterr().out
    for name in ("p.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_copy_free_conv_and_pool_match_keras_and_share_weight_files(tmp_path):
    import keras
    import torch

    from dl1.nn import layers as fastconv

    def net(conv, pool):
        return Sequential([keras.Input((16, 12, 3)), conv(8, 3, padding="same", activation="relu"), pool(2),
                           conv(4, (3, 5), padding="valid"), conv(4, 3, strides=2, padding="same"),
                           keras.layers.Flatten(), keras.layers.Dense(2)])
    ours = net(fastconv.Conv2D, fastconv.MaxPooling2D)
    plain = net(keras.layers.Conv2D, keras.layers.MaxPooling2D)
    plain.set_weights(ours.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (3, 16, 12, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-5, atol=1e-4)
    grads = []
    for m in (ours, plain):
        out = m(torch.tensor(x)).sum()
        grads.append(torch.autograd.grad(out, [v.value for v in m.trainable_variables]))
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-3)
    plain.save_weights(str(tmp_path / "plain.h5"))  # a file from a model built with Keras' own layers
    fresh = net(fastconv.Conv2D, fastconv.MaxPooling2D)
    fresh.load_weights(str(tmp_path / "plain.h5"))
    np.testing.assert_allclose(fresh.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-5, atol=1e-4)
    assert isinstance(ours.layers[0], keras.layers.Conv2D)


def test_the_fused_relu_convolution_follows_every_change_of_its_weights(tmp_path):
    """A forward pass without autograd runs oneDNN's convolution with the ReLU fused and the kernel kept in
    oneDNN's layout: it must give Keras' numbers, and new ones after an optimizer step, ``set_weights`` or
    ``load_weights`` (a stale kernel would silently give the old model's features)."""
    import keras
    import torch

    from dl1.nn import layers as fastconv

    def net(conv):
        return Sequential([keras.Input((12, 12, 3)), conv(6, 3, padding="same", activation="relu"),
                           conv(5, 3, padding="valid", activation="relu"), keras.layers.Flatten(),
                           keras.layers.Dense(2, activation="softmax")])
    ours, plain = net(fastconv.Conv2D), net(keras.layers.Conv2D)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (8, 12, 12, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, 8)]

    def same():
        plain.set_weights(ours.get_weights())
        with torch.no_grad():
            got = ours.predict_on_batch(x)
        np.testing.assert_allclose(got, plain.predict_on_batch(x), rtol=1e-5, atol=1e-6)
        return got

    first = same()
    assert ours.layers[0].kernel.value._dl1_onednn is not None  # the fused path ran and kept the kernel
    ours.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")
    ours.train_on_batch(x, y)  # an optimizer step changes the kernels in place
    after_step = same()
    assert np.abs(after_step - first).max() > 1e-4
    ours.set_weights([w * 0.5 for w in ours.get_weights()])
    same()
    plain.set_weights([rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()])
    plain.save_weights(str(tmp_path / "w.weights.h5"))
    ours.load_weights(str(tmp_path / "w.weights.h5"))
    with torch.no_grad():
        np.testing.assert_allclose(ours.predict_on_batch(x), plain.predict_on_batch(x), rtol=1e-5, atol=1e-6)


def test_convolution2d_is_the_class_of_vgg16s_convolutions():
    from dl1.models.vgg16 import Vgg16
    from utils import Convolution2D, Dense  # noqa: F401

    model = Vgg16(weights=None, size=32, verbose=False).model
    convs = [i for i, layer in enumerate(model.layers) if type(layer) is Convolution2D]
    assert len(convs) == 13
    last_conv_idx = [index for index, layer in enumerate(model.layers) if type(layer) is Convolution2D][-1]
    assert model.layers[last_conv_idx].name == "block5_conv3"
    k1 = Convolution2D(8, 3, 3, border_mode="same", subsample=(2, 2))
    assert (k1.kernel_size, k1.padding, k1.strides) == ((3, 3), "same", (2, 2))


def test_what_2017_cells_check_holds_through_the_vgg16_face(tmp_path, seeded):
    from utils import BatchNormalization, get_batches  # noqa: F401
    from vgg16 import Vgg16, Vgg16BN

    bn = Vgg16BN(weights=None, size=32, verbose=False).model
    assert [layer.name for layer in bn.layers if isinstance(layer, BatchNormalization)] == ["fc1_bn", "fc2_bn"]
    vgg = Vgg16(weights=None, size=32, verbose=False)
    vgg.ft(2)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[[0, 1, 0, 1]]
    h = vgg.model.fit(x, y, nb_epoch=2, batch_size=2, verbose=0)
    assert len(h.history["loss"]) == 2
    assert vgg.model.predict_classes(x).shape == (4,)
    vgg.model.optimizer.lr = 0.01  # takes effect (it did not in 2017)
    assert float(vgg.model.optimizer.learning_rate) == pytest.approx(0.01)
    vgg.model.save_weights(str(tmp_path / "ft1.h5"))
    again = Vgg16(weights=str(tmp_path / "ft1.h5"), size=32, verbose=False)
    np.testing.assert_allclose(again.model.predict(x, verbose=0), vgg.model.predict(x, verbose=0), atol=1e-5)


def test_the_spellings_come_with_the_faces_and_go_back_when_removed():
    """In a fresh process: ``import dl1`` (and the library) installs nothing; ``import utils`` installs the
    spellings; ``uninstall()`` puts every class attribute back exactly as it was, and installing again
    works."""
    code = textwrap.dedent("""
        import keras
        import dl1, dl1.models.vgg16, dl1.train.fit
        from dl1.compat import spellings
        targets = spellings.targets()
        before = {(o, n): vars(o).get(n, 'MISSING') for o, n in targets}
        def plain_refuses():
            try:
                keras.layers.Dense(output_dim=3)
            except TypeError:
                return True
            return False
        print(spellings.installed(), plain_refuses(), hasattr(keras.Model, 'predict_classes'))
        import utils
        print(spellings.installed(), plain_refuses(), hasattr(keras.Model, 'predict_classes'),
              keras.optimizers.SGD(lr=0.5).lr.numpy() == 0.5)
        spellings.uninstall()
        after = {(o, n): vars(o).get(n, 'MISSING') for o, n in targets}
        import sys
        print(spellings.installed(), plain_refuses(), hasattr(keras.Model, 'predict_classes'), after == before,
              any(f.__class__.__name__ == '_Keras1Finder' for f in sys.meta_path),
              hasattr(keras.layers, 'merge'))
        spellings.install()
        print(keras.layers.Dense(output_dim=3).units, len(targets) > 25)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[:4] == ["False True False", "True False True True",
                                          "False True False True False False", "3 True"]


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_without_onednns_fused_operators_the_layers_take_the_plain_path(kind, monkeypatch):
    """A CPU or torch build whose oneDNN lacks the fused convolution or linear operator (it raises): the same
    numbers through F.conv2d / matmul, and the operator is not tried again."""
    import keras
    import torch

    from dl1.backend import torch_impl
    from dl1.nn import layers as fast

    op, flag, shape = {"conv": ("_convolution_pointwise", "_FUSED_CONV", (8, 8, 3)),
                       "dense": ("_linear_pointwise", "_FUSED_LINEAR", (6,))}[kind]
    calls = []

    def missing(*args):
        calls.append(1)
        raise RuntimeError(f"mkldnn{op}: not supported here")

    monkeypatch.setattr(torch_impl, flag, {"usable": True})
    monkeypatch.setattr(torch.ops.mkldnn, op, missing)

    def layer(module):
        return module.Conv2D(4, 3, padding="same", activation="relu") if kind == "conv" else \
            module.Dense(4, activation="relu")
    ours = Sequential([keras.Input(shape), layer(fast)])
    plain = Sequential([keras.Input(shape), layer(keras.layers)])
    plain.set_weights(ours.get_weights())
    x = np.random.default_rng(3).normal(size=(2,) + shape).astype("float32")
    for _ in range(2):
        np.testing.assert_allclose(ours.predict_on_batch(x), plain.predict_on_batch(x), rtol=1e-5, atol=1e-6)
    assert calls == [1]
