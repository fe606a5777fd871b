"""The Keras names a 2017 cell imports itself (``from keras.optimizers import SGD``, ``from keras.layers import
Convolution2D``, ``from keras import backend as K``, ``from keras.models import Model``) take the 2017 spellings
once a face is imported, and only then: ``import dl1`` changes nothing, ``uninstall()`` puts it all back."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import utils  # noqa: F401  (the face: installs the spellings in this process)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# each probe: True when the 2017 spelling works, False when Keras 3 refuses it
PROBES = textwrap.dedent("""
    import json, keras, numpy as np
    def works(f):
        try:
            f()
            return True
        except (TypeError, ValueError, AttributeError):
            return False
    def probes():
        from keras import backend as K
        from keras.layers import Dense, Convolution2D, MaxPooling2D, BatchNormalization
        from keras.models import Sequential, Model
        from keras.optimizers import SGD, Adam
        model = Sequential([Dense(3, input_shape=(4,)), Dense(2)])
        inp = keras.Input((4,))
        return {
            "SGD(lr=)": works(lambda: SGD(lr=0.1)),
            "Adam(lr=, epsilon=)": works(lambda: Adam(lr=0.1, epsilon=1e-3)),
            "Convolution2D(64, 3, 3, border_mode=)": works(lambda: Convolution2D(64, 3, 3, border_mode='same')),
            "MaxPooling2D(border_mode=)": works(lambda: MaxPooling2D(border_mode='same')),
            "Dense(init=, W_regularizer=)": works(lambda: Dense(2, init='uniform', W_regularizer=None)),
            "BatchNormalization(mode=0)": works(lambda: BatchNormalization(mode=0, axis=-1)),
            "K.set_value": works(lambda: K.set_value(keras.Variable(1.0), 2.0)),
            "K.get_value": works(lambda: K.get_value(keras.Variable(1.0))),
            "K.mean": works(lambda: K.mean(np.ones(3))),
            "variable.set_value": works(lambda: keras.Variable(1.0).set_value(2.0)),
            "layer.output_shape": works(lambda: model.layers[0].output_shape),
            "fit(nb_epoch=)": works(lambda: (model.compile('sgd', 'mse'),
                                             model.fit(np.ones((2, 4)), np.ones((2, 2)), nb_epoch=1, verbose=0))),
            "predict_classes": works(lambda: model.predict_classes(np.ones((2, 4)))),
            "Model(input=, output=)": works(lambda: Model(input=inp, output=Dense(2)(inp))),
        }
""")


def _fresh(code):
    out = subprocess.run([sys.executable, "-c", PROBES + textwrap.dedent(code)], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith(("{", "["))]


def test_import_dl1_alone_changes_nothing_and_uninstall_puts_everything_back():
    """In a fresh process: after ``import dl1`` (and the library) Keras refuses every 2017 spelling; after
    ``import utils`` each works; ``uninstall()`` makes Keras refuse them all again; ``install()`` works again;
    ``import vgg16bn`` installs them as ``utils`` does."""
    plain, faced, removed, again, via_vgg16bn = _fresh("""
        import dl1, dl1.models.vgg16, dl1.train.fit
        print(json.dumps(probes()))
        import utils
        print(json.dumps(probes()))
        from dl1.compat import spellings
        spellings.uninstall()
        print(json.dumps(probes()))
        spellings.install()
        print(json.dumps(probes()))
        spellings.uninstall()
        import vgg16bn
        print(json.dumps(probes()))
    """)
    assert len(plain) == 14
    assert not any(plain.values()), [k for k, v in plain.items() if v]
    assert all(faced.values()), [k for k, v in faced.items() if not v]
    assert removed == plain
    assert again == faced and via_vgg16bn == faced


def test_vgg16bn_face_is_a_re_export():
    import dl1.models.vgg16 as models_vgg16
    import vgg16bn

    assert vgg16bn.Vgg16BN is models_vgg16.Vgg16BN and vgg16bn.vgg_preprocess is models_vgg16.vgg_preprocess
    namespace = {}
    exec("from vgg16bn import Vgg16BN", namespace)
    assert namespace["Vgg16BN"] is models_vgg16.Vgg16BN


def test_keras_own_conv2d_takes_keras1_arguments_and_means_the_same():
    import keras
    from keras.layers import Convolution2D, MaxPooling2D

    conv = Convolution2D(8, 3, 3, border_mode='same', subsample=(2, 2), init='uniform', activation='relu')
    assert type(conv) is keras.layers.Conv2D  # Keras' own class, not a dl1 one
    assert (conv.filters, conv.kernel_size, conv.padding, conv.strides) == (8, (3, 3), 'same', (2, 2))
    assert conv.get_config()["kernel_initializer"]["class_name"] == "RandomUniform"
    pool = MaxPooling2D(border_mode='same')
    assert pool.padding == 'same'
    model = keras.Sequential([keras.Input((9, 9, 3)), conv, pool])
    assert model.output_shape == (None, 3, 3, 8)
    with pytest.raises(TypeError, match=r"channels-first input \(3, 32, 32\)"):
        keras.Sequential([keras.Input((3, 32, 32)), Convolution2D(8, 3, 3)])


def test_backend_and_variable_spellings_set_the_live_rate():
    """``K.set_value(opt.lr, x)`` and ``model.optimizer.lr.set_value(x)`` change the rate the next step uses."""
    import keras
    from keras import backend as K
    from keras.layers import Dense
    from keras.models import Sequential
    from keras.optimizers import SGD, Adam

    keras.utils.set_random_seed(0)
    x = np.random.rand(8, 3).astype("float32")
    y = x @ np.array([[1.0], [2.0], [3.0]], dtype="float32")
    model = Sequential([Dense(1, input_shape=(3,))])
    model.compile(optimizer=SGD(lr=0.1), loss='mse')
    K.set_value(model.optimizer.lr, 0.0)
    before = model.get_weights()
    model.fit(x, y, nb_epoch=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[0], before[0])  # rate 0: nothing moved
    model.optimizer.lr.set_value(0.05)
    assert K.get_value(model.optimizer.lr) == pytest.approx(0.05)
    assert model.optimizer.lr.get_value() == pytest.approx(0.05)
    model.fit(x, y, nb_epoch=1, batch_size=8, verbose=0)
    assert not np.array_equal(model.get_weights()[0], before[0])
    opt = Adam(lr=0.002, epsilon=1e-4)
    assert float(opt.learning_rate) == pytest.approx(0.002) and opt.epsilon == pytest.approx(1e-4)
    assert K.int_shape(x) == (8, 3) and float(K.mean(np.ones(3))) == 1.0
    assert K.image_dim_ordering() == "tf" and K.variable(np.ones(2)).get_value().tolist() == [1.0, 1.0]


def test_layer_shapes_and_functional_model_from_keras_models():
    import keras
    from keras.layers import BatchNormalization, Dense, Flatten
    from keras.models import Model

    inp = keras.Input((4, 4, 2))
    hidden = Dense(5, init='normal', W_regularizer=keras.regularizers.l2(0.01))(Flatten()(inp))
    out = Dense(2, activation='softmax')(BatchNormalization(mode=0, axis=-1)(hidden))
    model = Model(input=inp, output=out)
    assert isinstance(model, keras.Model) and model.output_shape == (None, 2)
    assert [layer.output_shape for layer in model.layers] == [(None, 4, 4, 2), (None, 32), (None, 5), (None, 5),
                                                            (None, 2)]
    assert model.layers[2].input_shape == (None, 32)
    assert model.layers[2].get_config()["kernel_regularizer"] is not None
    preds = model.predict_classes(np.ones((3, 4, 4, 2), "float32"))
    assert preds.shape == (3,)
    with pytest.raises(AttributeError):
        _ = Dense(3).output_shape  # in no model yet: no shape, as in Keras 1
    # a layer that sets the attribute itself keeps it (Keras' TorchModuleWrapper(module, output_shape=) does)
    import torch

    wrapper = keras.layers.TorchModuleWrapper(torch.nn.Linear(4, 3), output_shape=(None, 3))
    assert wrapper.output_shape == (None, 3)


def test_what_the_readme_says_utils_gives_it_gives():
    """Every plain name the README's two paragraphs on ``from utils import *`` list (``The library``, ``Library
    support by lesson``; modules named in full, such as ``dl1.data.boxes``, are not in it) is in the namespace."""
    import re

    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    start = text.index("`from utils import *` gives the notebooks what it gave in 2017")
    paragraphs = [text[start:text.index("\n\n", start)]]
    start = text.index("Library support by lesson")
    paragraphs.append(text[start:text.index("\n\n", start)])
    names = {m.group(1) for p in paragraphs for m in re.finditer(r"`([A-Za-z_][A-Za-z0-9_]*)[`(/]", p)}
    names -= {"utils", "dl1"}  # `from utils import *` itself; `dl1 prepare ...` is a command
    assert {"Resnet50", "Vgg16BN", "get_batches", "write_submission", "MixIterator", "K"} <= names
    namespace = {}
    exec("from utils import *", namespace)
    assert sorted(names - set(namespace)) == []
    from dl1.models.backbones import Resnet50

    assert namespace["Resnet50"] is Resnet50
