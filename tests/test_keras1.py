"""Keras 1 spellings on Keras 3: layer arguments, 2017 cells run unchanged after `from utils import *`, the
Keras 1 module paths, SciPy's removed image functions, and the one-line refusals."""

import importlib.util
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
from keras.regularizers import l2
from PIL import Image

import utils
from dl1.compat import keras1 as K1
from dl1.compat.modules import ADDITIONS, MODULES, Keras1ImportError
from dl1.compat.scipyimage import imread, imresize, misc, ndimage

L = keras.layers


def _config(layer):
    config = layer.get_config()
    config.pop("name")
    return config


def _run(cell, strict=True):
    """Execute a 2017 cell after `from utils import *`; return its namespace. ``strict``: our layers must
    not trigger Keras' input_shape / input_length warnings."""
    ns = {}
    exec("from utils import *", ns)
    with warnings.catch_warnings():
        if strict:
            warnings.filterwarnings("error", message=".*(input_shape|input_length).*")
        exec(textwrap.dedent(cell), ns)
    return ns


# --- each Keras 1 spelling builds the Keras 3 layer configuration --------------------------------------

SPELLINGS = [
    (lambda: K1.Dense(10, W_regularizer=l2(0.01), b_regularizer=l2(0.1), init="uniform", activation="relu",
                      input_dim=5),
     lambda: L.Dense(10, kernel_regularizer=l2(0.01), bias_regularizer=l2(0.1),
                     kernel_initializer="random_uniform", activation="relu")),
    (lambda: K1.Dense(output_dim=4, init="identity", bias=False),
     lambda: L.Dense(4, kernel_initializer="identity", use_bias=False)),
    (lambda: K1.Embedding(5000, 32, input_length=500, W_regularizer=l2(1e-4), init="normal"),
     lambda: L.Embedding(5000, 32, embeddings_regularizer=l2(1e-4), embeddings_initializer="random_normal")),
    (lambda: K1.Convolution1D(64, 5, border_mode="same", activation="relu", subsample_length=2),
     lambda: L.Conv1D(64, 5, padding="same", activation="relu", strides=2)),
    (lambda: K1.MaxPooling1D(pool_length=3, stride=1, border_mode="same"),
     lambda: L.MaxPooling1D(3, strides=1, padding="same")),
    (lambda: K1.LSTM(100, consume_less="gpu", dropout_W=0.2, dropout_U=0.3, init="he_normal",
                     inner_init="orthogonal", activation="tanh", inner_activation="hard_sigmoid",
                     return_sequences=True, unroll=True, input_dim=8, input_length=10),
     lambda: L.LSTM(100, dropout=0.2, recurrent_dropout=0.3, kernel_initializer="he_normal",
                    recurrent_initializer="orthogonal", activation="tanh", recurrent_activation="hard_sigmoid",
                    return_sequences=True, unroll=True)),
    (lambda: K1.GRU(20, dropout_W=0.1, U_regularizer=l2(0.01), consume_less="mem"),
     lambda: L.GRU(20, dropout=0.1, recurrent_regularizer=l2(0.01))),
    (lambda: K1.SimpleRNN(256, init="identity", inner_init="identity", activation="relu"),
     lambda: L.SimpleRNN(256, kernel_initializer="identity", recurrent_initializer="identity",
                         activation="relu")),
    (lambda: K1.LSTM(8, stateful=True, batch_input_shape=(4, 5, 3)), lambda: L.LSTM(8, stateful=True)),
    (lambda: K1.BatchNormalization(mode=0, axis=-1, beta_init="ones"),
     lambda: L.BatchNormalization(axis=-1, beta_initializer="ones")),
    (lambda: K1.Dropout(p=0.3), lambda: L.Dropout(0.3)),
    (lambda: K1.Dropout(0.3), lambda: L.Dropout(rate=0.3)),
    (lambda: K1.Flatten(input_shape=(3, 4)), lambda: L.Flatten()),
    (lambda: K1.Activation("softmax"), lambda: L.Activation("softmax")),
    (lambda: K1.Reshape((2, 6), input_shape=(12,)), lambda: L.Reshape((2, 6))),
    (lambda: K1.ZeroPadding2D((1, 1), dim_ordering="tf"), lambda: L.ZeroPadding2D((1, 1))),
    (lambda: K1.MaxPooling2D((2, 2), strides=(2, 2), border_mode="same"),
     lambda: L.MaxPooling2D((2, 2), strides=(2, 2), padding="same")),
    (lambda: K1.Convolution2D(8, 3, 3, border_mode="same", subsample=(2, 2), activation="relu"),
     lambda: L.Conv2D(8, (3, 3), padding="same", strides=(2, 2), activation="relu")),
    (lambda: K1.LeakyReLU(alpha=0.1), lambda: L.LeakyReLU(negative_slope=0.1)),
    (lambda: K1.GaussianNoise(sigma=0.5), lambda: L.GaussianNoise(0.5)),
    (lambda: K1.GaussianDropout(p=0.5), lambda: L.GaussianDropout(0.5)),
    (lambda: K1.TimeDistributed(K1.Dense(5, activation="softmax")),
     lambda: L.TimeDistributed(L.Dense(5, activation="softmax"))),
]


@pytest.mark.parametrize("old, new", SPELLINGS, ids=[f"spelling{i}" for i in range(len(SPELLINGS))])
def test_keras1_spelling_builds_the_keras3_configuration(old, new):
    layer, reference = old(), new()
    assert isinstance(layer, type(reference))
    config, expected = _config(layer), _config(reference)
    if "layer" in config:  # TimeDistributed: the inner layer is named too
        config["layer"]["config"].pop("name"), expected["layer"]["config"].pop("name")
        assert config["layer"]["config"] == expected["layer"]["config"]
        config.pop("layer"), expected.pop("layer")
    assert config == expected
    type(layer).from_config(layer.get_config())  # the Keras 3 config builds the class again


def test_keras3_spellings_are_accepted_too():
    assert _config(K1.Dense(3, kernel_initializer="zeros")) == _config(L.Dense(3, kernel_initializer="zeros"))
    assert _config(K1.Conv1D(4, 3, padding="same")) == _config(L.Conv1D(4, 3, padding="same"))
    assert _config(K1.LSTM(4, dropout=0.1, recurrent_dropout=0.2)) == _config(L.LSTM(4, dropout=0.1,
                                                                                   recurrent_dropout=0.2))


def test_first_layer_input_shapes_without_keras_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        m = K1.Sequential([K1.Dense(3, input_dim=4), K1.Dense(1)])
        assert m.input_shape == (None, 4)
        m = K1.Sequential([K1.LSTM(6, input_dim=3, input_length=7)])
        assert m.input_shape == (None, 7, 3)
        m = K1.Sequential([K1.Embedding(50, 4, input_length=10), K1.Flatten()])
        assert m.output_shape == (None, 40)
        m = K1.Sequential([K1.Embedding(50, 4, batch_input_shape=(8, 10))])
        assert m.input_shape == (8, 10) and m.output_shape == (8, 10, 4)
    plain = keras.Sequential([K1.Dense(2, input_shape=(5,))])  # plain Keras gets the shape too
    assert plain.input_shape == (None, 5)


def test_keras1_weights_argument_sets_the_initial_weights():
    w, b = np.arange(6, dtype="float32").reshape(3, 2), np.array([1.0, -1.0], dtype="float32")
    m = K1.Sequential([K1.Dense(2, input_dim=3, weights=[w, b])])
    np.testing.assert_array_equal(m.predict(np.eye(3, dtype="float32"), verbose=0), w + b)
    emb = np.random.default_rng(0).random((10, 4)).astype("float32")
    e = K1.Embedding(10, 4, input_length=3, weights=[emb], trainable=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(e(np.array([[1, 2, 3]]))), emb[None, [1, 2, 3]])
    assert not e.trainable


def test_embedding_dropout_drops_whole_words_while_training_only():
    e = K1.Embedding(6, 5, dropout=0.5, embeddings_initializer="ones")
    x = np.array([[1, 1, 1, 2, 2, 2]] * 40)
    assert np.all(keras.ops.convert_to_numpy(e(x)) == 1)  # inference: unchanged
    out = keras.ops.convert_to_numpy(e(x, training=True))
    assert set(np.unique(out)) <= {0.0, 2.0}  # dropped (0) or scaled by 1/(1-p)
    per_batch = out.reshape(40, 6, 5)
    # the same word type gets the same fate everywhere in a batch: rows 0-2 equal, rows 3-5 equal
    assert np.all(per_batch[:, :3] == per_batch[:, :1]) and np.all(per_batch[:, 3:] == per_batch[:, 3:4])
    fates = {float(e(np.array([[1]]), training=True)[0, 0, 0]) for _ in range(40)}
    assert fates == {0.0, 2.0}
    assert e.get_config()["dropout"] == 0.5 and "dropout" not in K1.Embedding(6, 5).get_config()


def test_merge_modes():
    a, b = K1.Input(shape=(1, 3)), K1.Input(shape=(1, 3))
    va = np.array([[[1.0, 2.0, 3.0]]], dtype="float32")
    vb = np.array([[[4.0, 5.0, 6.0]]], dtype="float32")
    expect = {"dot": [[[32.0]]], "sum": va + vb, "mul": va * vb, "ave": (va + vb) / 2, "max": vb,
              "concat": np.concatenate([va, vb], -1),
              "cos": [[[32.0 / np.sqrt(14 * 77)]]]}
    for mode, value in expect.items():
        out = K1.merge([a, b], mode=mode)
        got = K1.Model(input=[a, b], output=out).predict([va, vb], verbose=0)
        np.testing.assert_allclose(got, value, rtol=1e-5, err_msg=mode)
    out = K1.Merge(mode="concat", concat_axis=1)([a, b])
    assert tuple(out.shape) == (None, 2, 3)
    assert tuple(K1.merge([a, b], mode=lambda xs: xs[0] - xs[1], output_shape=(1, 3)).shape) == (None, 1, 3)


# --- 2017 cells, typed from the videos, after `from utils import *` ---------------------------------------

def test_lesson4_dot_product_model_cell(tmp_path):
    ns = _run("""
        n_users, n_movies, n_factors = 30, 40, 5
        user_in = Input(shape=(1,), dtype='int64', name='user_in')
        u = Embedding(n_users, n_factors, input_length=1, W_regularizer=l2(1e-4))(user_in)
        movie_in = Input(shape=(1,), dtype='int64', name='movie_in')
        m = Embedding(n_movies, n_factors, input_length=1, W_regularizer=l2(1e-4))(movie_in)
        x = merge([u, m], mode='dot')
        x = Flatten()(x)
        model = Model([user_in, movie_in], x)
        model.compile(Adam(0.001), loss='mse')
        ub = Flatten()(Embedding(n_users, 1, input_length=1)(user_in))
        mb = Flatten()(Embedding(n_movies, 1, input_length=1)(movie_in))
        y = merge([merge([x, ub], mode='sum'), mb], mode='sum')
        bias_model = Model([user_in, movie_in], y)
        bias_model.compile(Adam(0.001), loss='mse')
        users = np.random.randint(0, n_users, 200); movies = np.random.randint(0, n_movies, 200)
        bias_model.fit([users, movies], np.random.rand(200) * 5, batch_size=64, nb_epoch=1, verbose=0)
        pred = bias_model.predict([np.array([3]), np.array([6])], verbose=0)
        get_movie_bias = Model(movie_in, mb)
    """)
    assert ns["model"].output_shape == (None, 1) and ns["pred"].shape == (1, 1)
    assert ns["get_movie_bias"].predict(np.arange(5), verbose=0).shape == (5, 1)


def test_lesson5_conv1d_sentiment_cell():
    ns = _run("""
        vocab_size, seq_len = 100, 20
        conv1 = Sequential([
            Embedding(vocab_size, 32, input_length=seq_len, dropout=0.2),
            Dropout(0.2),
            Convolution1D(64, 5, border_mode='same', activation='relu'),
            Dropout(0.2),
            MaxPooling1D(),
            Flatten(),
            Dense(100, activation='relu'),
            Dropout(0.7),
            Dense(1, activation='sigmoid')])
        conv1.compile(loss='binary_crossentropy', optimizer=Adam(), metrics=['accuracy'])
        trn = np.random.randint(0, vocab_size, (64, seq_len)); labels = np.random.randint(0, 2, 64)
        conv1.fit(trn, labels, validation_data=(trn, labels), nb_epoch=1, batch_size=32, verbose=0)
        graph_in = Input((seq_len, 32))
        convs = []
        for fsz in range(3, 6):
            x = Convolution1D(8, fsz, border_mode='same', activation='relu')(graph_in)
            x = MaxPooling1D()(x)
            x = Flatten()(x)
            convs.append(x)
        out = Merge(mode="concat")(convs)
        graph = Model(graph_in, out)
        lstm = Sequential([
            Embedding(vocab_size, 32, input_length=seq_len, mask_zero=True, W_regularizer=l2(1e-6), dropout=0.2),
            LSTM(10, consume_less='gpu'),
            Dense(1, activation='sigmoid')])
        lstm.compile(loss='binary_crossentropy', optimizer='adam', metrics=['accuracy'])
    """)
    assert ns["conv1"].output_shape == (None, 1)
    assert ns["graph"].output_shape == (None, 3 * 8 * 10)
    assert ns["lstm"].predict(ns["trn"][:2], verbose=0).shape == (2, 1)


def test_lesson6_stateful_lstm_cell_carries_and_resets_state():
    ns = _run("""
        bs, cs, vocab_size, n_fac, n_hidden = 4, 8, 12, 6, 16
        model = Sequential([
            Embedding(vocab_size, n_fac, input_length=cs, batch_input_shape=(bs, 8)),
            BatchNormalization(),
            LSTM(n_hidden, return_sequences=True, stateful=True),
            TimeDistributed(Dense(vocab_size, activation='softmax')),
        ])
        model.compile(loss='sparse_categorical_crossentropy', optimizer=Adam())
        x = np.random.randint(0, vocab_size, (bs, cs))
    """)
    model, x = ns["model"], ns["x"]
    assert model.input_shape == (4, 8) and model.output_shape == (4, 8, 12)
    first = model.predict(x, batch_size=4, verbose=0)
    second = model.predict(x, batch_size=4, verbose=0)
    assert not np.allclose(first, second)  # the state carried over from the first call
    model.reset_states()
    np.testing.assert_allclose(model.predict(x, batch_size=4, verbose=0), first, rtol=1e-5, atol=1e-6)
    model.fit(x, x, batch_size=4, nb_epoch=1, shuffle=False, verbose=0)


def test_lesson6_simple_rnn_identity_and_shared_dense_cells():
    ns = _run("""
        n_fac, n_hidden, vocab_size, cs = 4, 8, 10, 3
        model = Sequential([
            Embedding(vocab_size, n_fac, input_length=cs),
            SimpleRNN(n_hidden, activation='relu', inner_init='identity'),
            Dense(vocab_size, activation='softmax')])
        seq = Sequential([
            Embedding(vocab_size, n_fac, input_length=cs),
            SimpleRNN(n_hidden, return_sequences=True, activation='relu', inner_init='identity'),
            TimeDistributed(Dense(vocab_size, activation='softmax'))])
        gru = Sequential([Embedding(vocab_size, n_fac, input_length=cs),
                          GRU(n_hidden, return_sequences=True, dropout_U=0.1, dropout_W=0.1, consume_less='gpu',
                              inner_init='identity'),
                          TimeDistributed(Dense(vocab_size, activation='softmax'))])
        c1 = Input(shape=(n_fac,)); c2 = Input(shape=(n_fac,))
        dense_in = Dense(n_hidden, activation='relu')
        dense_hidden = Dense(n_hidden, activation='tanh', init='identity')
        hidden = merge([dense_in(c2), dense_hidden(dense_in(c1))])
    """)
    rnn = ns["model"].layers[1]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(rnn.cell.recurrent_kernel), np.eye(8))
    assert ns["seq"].output_shape == (None, 3, 10) and ns["gru"].output_shape == (None, 3, 10)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ns["dense_hidden"].kernel), np.eye(8))
    assert tuple(ns["hidden"].shape) == (None, 8)


def test_lesson1_vgg_by_hand_cells_run():
    imports = """
        from numpy.random import random, permutation
        from scipy import misc, ndimage
        from scipy.ndimage.interpolation import zoom

        import keras
        from keras import backend as K
        from keras.utils.data_utils import get_file
        from keras.models import Sequential, Model
        from keras.layers.core import Flatten, Dense, Dropout, Lambda
        from keras.layers import Input
        from keras.layers.convolutional import Convolution2D, MaxPooling2D, ZeroPadding2D
        from keras.optimizers import SGD, RMSprop
        from keras.preprocessing import image
    """
    cells = """
        def ConvBlock(layers, model, filters):
            for i in range(layers):
                model.add(ZeroPadding2D((1,1)))
                model.add(Convolution2D(filters, 3, 3, activation='relu'))
            model.add(MaxPooling2D((2,2), strides=(2,2)))

        def FCBlock(model):
            model.add(Dense(4096 // 64, activation='relu'))
            model.add(Dropout(0.5))

        vgg_mean = np.array([123.68, 116.779, 103.939]).reshape((1,1,3))
        def vgg_preprocess(x):
            return x - vgg_mean     # (2017 also reversed the channels with x[:, ::-1]; torch has no negative steps)

        def VGG_16():
            model = Sequential()
            model.add(Lambda(vgg_preprocess, input_shape=(32,32,3)))
            ConvBlock(2, model, 8)
            ConvBlock(2, model, 8)
            ConvBlock(3, model, 8)
            ConvBlock(3, model, 8)
            ConvBlock(3, model, 8)
            model.add(Flatten())
            FCBlock(model)
            FCBlock(model)
            model.add(Dense(1000, activation='softmax'))
            return model
        model = VGG_16()
        gen = image.ImageDataGenerator()
        preds = model.predict(np.random.rand(2, 32, 32, 3) * 255, verbose=0)
    """
    ns = _run(imports + cells, strict=False)  # Keras' own Lambda(input_shape=) warns: that is Keras' warning
    assert ns["preds"].shape == (2, 1000)
    assert callable(ns["get_file"]) and hasattr(ns["gen"], "flow_from_directory")
    with pytest.raises(K1.Keras1Error, match=r"channels-first .*write input_shape=\(224, 224, 3\)"):
        _run(textwrap.dedent(imports) + "model = Sequential([Lambda(lambda x: x, input_shape=(3,224,224)), "
                       "ZeroPadding2D((1,1)), Convolution2D(8, 3, 3)])", strict=False)


def test_lesson3_ndimage_imread_cell(tmp_path):
    path = tmp_path / "7.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(path)
    ns = _run(f"""
        gen = image.ImageDataGenerator(rotation_range=10, width_shift_range=0.1, height_shift_range=0.1,
                                       shear_range=0.15, zoom_range=0.1, channel_shift_range=10.,
                                       horizontal_flip=True)
        img = np.expand_dims(ndimage.imread({str(path)!r}), 0)
        small = misc.imresize(img[0], (10, 15), interp='nearest')
    """)
    assert ns["img"].shape == (1, 20, 30, 3) and ns["img"].dtype == np.uint8
    assert ns["small"].shape == (10, 15, 3)


# --- save and load ---------------------------------------------------------------------------------------

def test_model_with_keras1_layers_saves_and_loads(tmp_path):
    from utils import GRU, LSTM, Conv1D, Dense, Embedding, Flatten, MaxPooling1D, Sequential, TimeDistributed

    model = Sequential([Embedding(20, 4, input_length=6, dropout=0.2, W_regularizer=l2(1e-4)),
                        Conv1D(5, 3, border_mode="same"), MaxPooling1D(pool_length=2),
                        LSTM(6, dropout_W=0.1, return_sequences=True, consume_less="gpu"),
                        GRU(6, return_sequences=True), TimeDistributed(Dense(3)), Flatten(),
                        K1.BatchNormalization(), K1.Dropout(p=0.1), Dense(2, init="uniform")])
    x = np.random.default_rng(0).integers(0, 20, (3, 6))
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert loaded.layers[0].dropout == 0.2
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, rtol=1e-5, atol=1e-6)
    model.save_weights(tmp_path / "m.h5")
    model2 = type(model).from_config(model.get_config())
    model2.load_weights(tmp_path / "m.h5")
    np.testing.assert_allclose(model2.predict(x, verbose=0), before, rtol=1e-5, atol=1e-6)


def test_stateful_model_saves_and_loads(tmp_path):
    model = K1.Sequential([K1.Embedding(10, 3, batch_input_shape=(2, 4)), K1.LSTM(5, stateful=True)])
    model.save(tmp_path / "s.keras")
    loaded = keras.models.load_model(tmp_path / "s.keras")
    assert loaded.input_shape == (2, 4) and loaded.layers[-1].stateful
    loaded.reset_states()


# --- the Keras 1 module paths ----------------------------------------------------------------------------

def _fresh(code):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         cwd=utils.__path__[0] + "/..", timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_module_paths_absent_before_utils_and_keras_untouched():
    names = sorted(MODULES)
    code = f"""
        import importlib, importlib.util, json, sys
        import dl1, dl1.compat.star, keras, keras.layers, keras.preprocessing.image, keras.regularizers
        def found(name):
            try:
                return importlib.util.find_spec(name) is not None
            except ModuleNotFoundError:
                return False
        before = {{n: found(n) for n in {names!r}}}
        meta = list(sys.meta_path)
        own = {{m: dict(vars(sys.modules[m])) for m in {sorted(ADDITIONS)!r}}}
        import utils
        after = {{n: importlib.import_module(n).__name__ == n for n in {names!r}}}
        changed = [m + "." + k for m, d in own.items() for k, v in d.items() if vars(sys.modules[m]).get(k) is not v]
        added = {{m: sorted(set(vars(sys.modules[m])) - set(d)) for m, d in own.items()}}
        print(json.dumps([before, after, changed, added, len(sys.meta_path) - len(meta)]))
    """
    import json

    before, after, changed, added, new_finders = json.loads(_fresh(code).strip().splitlines()[-1])
    assert not any(before.values()), [n for n, v in before.items() if v]  # Keras 3 has none of them
    assert all(after.values())
    assert changed == [] and new_finders == 1  # nothing Keras defines is replaced; importing dl1 added nothing
    assert "merge" in added["keras.layers"] and "ImageDataGenerator" in added["keras.preprocessing.image"]


def test_existing_keras_modules_are_keras_own():
    for name in ["keras.preprocessing.sequence", "keras.preprocessing.image", "keras.applications.resnet50",
                 "keras.models", "keras.optimizers"]:
        module = importlib.import_module(name)
        assert module.__spec__.origin and "site-packages/keras" in module.__spec__.origin, name
    from keras.preprocessing.sequence import pad_sequences

    assert pad_sequences is keras.utils.pad_sequences


def test_module_path_contents():
    from keras.engine.topology import Input, Layer, Merge, merge
    from keras.layers.convolutional import Convolution1D, Convolution2D, MaxPooling2D, ZeroPadding2D
    from keras.layers.core import Dense, Dropout, Flatten, Lambda
    from keras.layers.embeddings import Embedding
    from keras.layers.normalization import BatchNormalization
    from keras.layers.recurrent import GRU, LSTM, SimpleRNN
    from keras.layers.wrappers import TimeDistributed
    from keras.preprocessing import image, sequence
    from keras.utils import np_utils
    from keras.utils.data_utils import get_file
    from keras.utils.layer_utils import layer_from_config
    from keras.utils.np_utils import to_categorical

    assert Dense is K1.Dense and Convolution2D is K1.Conv2D and Embedding is K1.Embedding and LSTM is K1.LSTM
    assert Layer is keras.layers.Layer and get_file is keras.utils.get_file
    assert image.ImageDataGenerator is utils.ImageDataGenerator and image.load_img is keras.utils.load_img
    np.testing.assert_array_equal(to_categorical([0, 2]), [[1, 0, 0], [0, 0, 1]])
    assert np_utils.to_categorical is to_categorical and sequence.pad_sequences([[1]], maxlen=2).shape == (1, 2)
    copy = layer_from_config({"class_name": "Dense", "config": K1.Dense(3, init="zero").get_config()})
    assert type(copy) is K1.Dense and copy.units == 3
    assert type(layer_from_config({"class_name": "Permute", "config": L.Permute((2, 1)).get_config()})) is L.Permute
    assert all([Input, Merge, merge, Convolution1D, MaxPooling2D, ZeroPadding2D, Dropout, Flatten, Lambda,
                BatchNormalization, GRU, SimpleRNN, TimeDistributed])
    import keras.layers.core as core

    assert {"Dense", "Dropout", "Flatten", "Lambda"} <= set(dir(core))


@pytest.mark.skipif(importlib.util.find_spec("dl1.data.text") is None, reason="dl1.data.text not built yet")
def test_preprocessing_text_resolves_from_dl1_data_text():
    from keras.preprocessing.text import Tokenizer, one_hot, text_to_word_sequence

    import dl1.data.text as text

    assert Tokenizer is text.Tokenizer and one_hot is text.one_hot
    assert text_to_word_sequence is text.text_to_word_sequence


def test_preprocessing_text_without_dl1_data_text_names_the_module(monkeypatch):
    import keras.preprocessing.text as ktext

    monkeypatch.setitem(sys.modules, "dl1.data.text", None)  # as if the module did not exist
    monkeypatch.delitem(vars(ktext), "Tokenizer", raising=False)
    with pytest.raises(Keras1ImportError, match=r"^keras\.preprocessing\.text\.Tokenizer needs dl1\.data\.text"):
        from keras.preprocessing.text import Tokenizer  # noqa: F401


# --- SciPy's removed image functions ---------------------------------------------------------------------

@pytest.fixture
def rgb(tmp_path):
    arr = np.random.default_rng(1).integers(0, 255, (24, 36, 3), dtype=np.uint8)
    path = tmp_path / "im.png"
    Image.fromarray(arr).save(path)
    return arr, path


def test_imread_matches_pillow(rgb, tmp_path):
    arr, path = rgb
    np.testing.assert_array_equal(ndimage.imread(path), arr)
    np.testing.assert_array_equal(misc.imread(str(path)), arr)
    gray = imread(path, flatten=True)
    assert gray.dtype == np.float32
    np.testing.assert_allclose(gray, np.array(Image.open(path).convert("F")))
    np.testing.assert_array_equal(imread(path, mode="L"), np.array(Image.open(path).convert("L")))
    pal = tmp_path / "p.png"
    Image.fromarray(arr).convert("P").save(pal)
    assert imread(pal).shape == (24, 36, 3)  # palette images come back as RGB, as in SciPy


def test_imresize_matches_pillow(rgb):
    arr, _ = rgb
    im = Image.fromarray(arr)
    for interp, resample in [("nearest", Image.NEAREST), ("bilinear", Image.BILINEAR),
                             ("bicubic", Image.BICUBIC), ("lanczos", Image.LANCZOS)]:
        np.testing.assert_array_equal(imresize(arr, (12, 9), interp=interp), np.array(im.resize((9, 12), resample)))
    np.testing.assert_array_equal(imresize(arr, 50), np.array(im.resize((18, 12), Image.BILINEAR)))  # percent
    np.testing.assert_array_equal(imresize(arr, 0.25), np.array(im.resize((9, 6), Image.BILINEAR)))  # fraction
    chw = np.moveaxis(arr, -1, 0)
    np.testing.assert_array_equal(imresize(chw, (12, 9)), imresize(arr, (12, 9)))  # channels-first too
    floats = arr.astype("float32") / 2 + 10  # 2017: a non-uint8 array is rescaled to 0-255 first
    out = imresize(floats, 100, interp="nearest")
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    f = imresize(arr[..., 0].astype("float32") / 7, (6, 9), mode="F")
    assert f.dtype == np.float32 and f.shape == (6, 9)
    np.testing.assert_allclose(f, np.array(Image.fromarray(arr[..., 0].astype("float32") / 7, "F")
                                           .resize((9, 6), Image.BILINEAR)))


def test_ndimage_and_misc_fall_through_to_scipy():
    import scipy.ndimage

    assert ndimage.zoom is scipy.ndimage.zoom and ndimage.correlate is scipy.ndimage.correlate
    ns = {}
    exec("from utils import *", ns)
    assert ns["ndimage"] is ndimage and ns["misc"] is misc and ns["zoom"] is scipy.ndimage.zoom
    with pytest.raises(AttributeError, match="scipy.ndimage has no attribute 'no_such'"):
        ndimage.no_such  # noqa: B018


# --- the one-line refusals --------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: K1.BatchNormalization(mode=2), r"BatchNormalization\(mode=2\) has no Keras 3 equivalent"),
    (lambda: K1.Merge([K1.Sequential([K1.Dense(2)]), K1.Sequential([K1.Dense(2)])], mode="concat"),
     r"build a functional model"),
    (lambda: K1.merge([K1.Input((2,)), K1.Input((2,))], mode="weird"), r"merge\(mode='weird'\): the modes"),
    (lambda: K1.Dense(3, init="uniform", kernel_initializer="zeros"),
     r"Dense: give either init= \(Keras 1\) or kernel_initializer=, not both"),
    (lambda: K1.LSTM(4, forget_bias_init="zero"), r"unit_forget_bias"),
    (lambda: K1.Model(input=K1.Input((2,)), inputs=K1.Input((2,)), output=None), r"not both"),
])
def test_refusals_are_one_line(make, message):
    with pytest.raises(TypeError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_removed_names_in_module_paths_say_what_to_write():
    with pytest.raises(Keras1ImportError, match=r"write TimeDistributed\(Dense\(\.\.\.\)\)"):
        from keras.layers.core import TimeDistributedDense  # noqa: F401
    with pytest.raises(Keras1ImportError, match="dilation_rate"):
        from keras.layers.convolutional import AtrousConvolution2D  # noqa: F401
    from keras.utils.layer_utils import convert_all_kernels_in_model

    with pytest.raises(Keras1ImportError, match="leave the call out"):
        convert_all_kernels_in_model(None)
    with pytest.raises(Exception, match="no such image file"):
        imread("/nonexistent/x.jpg")


def test_preprocessing_text_names_resolve_lazily(monkeypatch):
    import types

    import keras.preprocessing.text as ktext

    fake = types.ModuleType("dl1.data.text")
    fake.Tokenizer, fake.one_hot, fake.text_to_word_sequence = object(), object(), object()
    monkeypatch.setitem(sys.modules, "dl1.data.text", fake)
    for name in ("Tokenizer", "one_hot", "text_to_word_sequence"):
        monkeypatch.delitem(vars(ktext), name, raising=False)
        assert getattr(ktext, name) is getattr(fake, name)


def test_embedding_dropout_with_pretrained_weights_as_lesson5_writes_it():
    """``Embedding(..., dropout=0.2, weights=[emb], trainable=False)``: Keras builds the layer inside its
    ``__init__`` when given weights, before the dropout's seed generator existed (it used to fail there)."""
    import numpy as np

    from dl1.compat.keras1 import Embedding

    emb = np.random.default_rng(0).normal(size=(50, 4)).astype("float32")
    layer = Embedding(50, 4, input_length=6, dropout=0.2, weights=[emb], trainable=False)
    np.testing.assert_array_equal(layer.get_weights()[0], emb)
    ids = np.arange(12).reshape(2, 6)
    np.testing.assert_allclose(np.asarray(layer(ids, training=False)), emb[ids], rtol=1e-6)
    assert layer.get_config()["dropout"] == 0.2
