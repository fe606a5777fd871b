"""The 2017 notebooks' own cells, typed into a fresh Python after ``from utils import *``, run on the stand-in.

Each test runs the cells of one 2017 notebook (fastai/courses, deeplearning1/nbs) in a new process, one after
the other in one namespace as a kernel would, on a synthetic dogs/cats set in ``data/dogscats/`` (``sample/``
is the same set). The cells are the course's text in Python 3, with only these changes, all in ``_prepare``:
IPython lines (``%matplotlib inline``, ``??vgg.finetune``) are left out as IPython would run them, and
``reload(...)`` (a Python 2 builtin) is dropped; one stand-in cell after the imports makes ``get_batches`` and
``get_data`` read 64-pixel images, and ``Vgg16()``, ``Vgg16BN()`` and ``vgg_ft(2)`` are given the 64-pixel
stand-in weights (the course: 224 pixels and the ImageNet file, which is out of reach here); mnist's
``mnist.load_data()`` (a download) is replaced by scikit-learn's digits. Cells that need what no longer exists
(bcolz, Theano) are not typed: ``utils`` gives ``save_array``/``load_array``.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUNNER = textwrap.dedent("""
    import ast, json, sys
    cells, report = json.load(open(sys.argv[1]))
    ns = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        try:  # one statement at a time, as IPython runs a cell (so a late __future__ import is fine)
            for node in ast.parse(cell).body:
                exec(compile(ast.Module([node], []), f"<cell {i}>", "exec"), ns)
        except BaseException as e:
            print("\\nREPLAY " + json.dumps({"failed": i, "cell": cell, "error": f"{type(e).__name__}: {e}"}))
            sys.exit(1)
    plain = lambda v: getattr(v, "tolist", lambda: repr(v))()  # numpy values as numbers, the rest as text
    print("\\nREPLAY " + json.dumps({k: eval(e, ns) for k, e in report.items()}, default=plain))
""")

STAND_IN = """
import functools
import keras as _keras
_keras.utils.set_random_seed(0)  # the test's only addition to a 2017 session: the same random data every run
WEIGHTS = {weights!r}
get_batches = functools.partial(get_batches, target_size=(64, 64))
get_data = functools.partial(get_data, target_size=(64, 64))
"""
CALLS = {"Vgg16()": "Vgg16(weights=WEIGHTS, size=64)", "Vgg16BN()": "Vgg16BN(size=(64, 64), weights=WEIGHTS)",
         "vgg_ft(2)": "vgg_ft(2, weights=WEIGHTS, size=64)"}


def _prepare(cell):
    lines = [line for line in textwrap.dedent(cell).strip("\n").splitlines()
             if not line.lstrip().startswith(("%", "??"))]
    code = re.sub(r"; reload\(\w+\)", "", "\n".join(lines))
    for call, stand_in in CALLS.items():
        code = code.replace(call, stand_in)
    return code


def _replay(cwd, cells, report, weights, after_imports, stand_in=STAND_IN):
    """Run ``cells`` (``stand_in`` inserted after the first ``after_imports`` of them); returns ``report``
    (name -> expression) evaluated at the end, or fails naming the 2017 cell that did not run."""
    code = [_prepare(c) for c in cells]
    code.insert(after_imports, stand_in.format(weights=str(weights)))
    spec = cwd / "replay.json"
    spec.write_text(json.dumps([code, report]))
    out = subprocess.run([sys.executable, "-c", RUNNER, str(spec)], capture_output=True, text=True, cwd=cwd,
                         env={**os.environ, "PYTHONPATH": REPO}, timeout=900)
    lines = [line for line in out.stdout.splitlines() if line.startswith("REPLAY ")]
    assert lines, out.stderr[-3000:]
    result = json.loads(lines[-1][len("REPLAY "):])
    assert "failed" not in result, f"2017 cell {result.get('failed')} did not run: {result.get('error')}\n" \
                                   f"{result.get('cell')}\n{out.stderr[-2000:]}"
    assert out.returncode == 0, out.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def dogscats(module_tmp):
    """``data/dogscats/`` with 16 training and 8 validation images; ``sample/`` is the same folder."""
    from dl1.data.sample import write_sample

    root = module_tmp.mktemp("replay")
    data = root / "data" / "dogscats"
    write_sample(str(data), n=24, layout="course", seed=2, valid_fraction=0.3, max_side=96, progress=False)
    os.symlink(".", data / "sample")
    return root


LESSON2_LINEAR = [
    "from utils import *",
    """
    from numpy.random import random, permutation
    from scipy import misc, ndimage
    from scipy.ndimage.interpolation import zoom

    import keras
    from keras import backend as K
    from keras.utils.data_utils import get_file
    from keras.models import Sequential
    from keras.layers import Input
    from keras.layers.core import Flatten, Dense, Dropout, Lambda
    from keras.layers.convolutional import Convolution2D, MaxPooling2D, ZeroPadding2D
    from keras.optimizers import SGD, RMSprop
    from keras.preprocessing import image
    """,
    """
    x = random((30,2))
    y = np.dot(x, [2., 3.]) + 1.
    """,
    """
    lm = Sequential([ Dense(1, input_shape=(2,)) ])
    lm.compile(optimizer=SGD(lr=0.1), loss='mse')
    """,
    "before = lm.evaluate(x, y, verbose=0)",
    "lm.fit(x, y, nb_epoch=5, batch_size=1)",
    "lm.evaluate(x, y, verbose=0)",
    "lm.get_weights()",
]

LESSON2_VGG = [
    """
    path = "data/dogscats/sample/"
    # path = "data/dogscats/"
    model_path = path + 'models/'
    if not os.path.exists(model_path): os.mkdir(model_path)
    """,
    """
    # batch_size=100
    batch_size=4
    """,
    """
    from vgg16 import Vgg16
    vgg = Vgg16()
    model = vgg.model
    """,
    """
    # Use batch size of 1 since we're just doing preprocessing on the CPU
    val_batches = get_batches(path+'valid', shuffle=False, batch_size=1)
    batches = get_batches(path+'train', shuffle=False, batch_size=1)
    """,
    "val_data = get_data(path+'valid')",
    "trn_data = get_data(path+'train')",
    """
    save_array(model_path+'train_data.bc', trn_data)
    save_array(model_path+'valid_data.bc', val_data)
    """,
    """
    trn_data = load_array(model_path+'train_data.bc')
    val_data = load_array(model_path+'valid_data.bc')
    """,
    "def onehot(x): return np.array(OneHotEncoder().fit_transform(x.reshape(-1,1)).todense())",
    """
    val_classes = val_batches.classes
    trn_classes = batches.classes
    val_labels = onehot(val_classes)
    trn_labels = onehot(trn_classes)
    """,
    """
    trn_features = model.predict(trn_data, batch_size=batch_size)
    val_features = model.predict(val_data, batch_size=batch_size)
    """,
    """
    # 1000 inputs, since that's the saved features, and 2 outputs, for dog and cat
    lm = Sequential([ Dense(2, activation='softmax', input_shape=(1000,)) ])
    lm.compile(optimizer=RMSprop(lr=0.1), loss='categorical_crossentropy', metrics=['accuracy'])
    """,
    """
    lm.fit(trn_features, trn_labels, nb_epoch=3, batch_size=batch_size,
           validation_data=(val_features, val_labels))
    """,
    "lm.summary()",
    """
    # We want both the classes...
    preds = lm.predict_classes(val_features, batch_size=batch_size)
    # ...and the probabilities of being a cat
    probs = lm.predict_proba(val_features, batch_size=batch_size)[:,0]
    probs[:8]
    """,
    "filenames = val_batches.filenames",
    """
    # Number of images to view for each visualization task
    n_view = 4
    """,
    """
    def plots_idx(idx, titles=None):
        plots([image.load_img(path + 'valid/' + filenames[i]) for i in idx], titles=titles)
    """,
    """
    #1. A few correct labels at random
    correct = np.where(preds==val_labels[:,1])[0]
    idx = permutation(correct)[:n_view]
    plots_idx(idx, probs[idx])
    """,
    """
    #5. The most uncertain labels (ie those with probability closest to 0.5).
    most_uncertain = np.argsort(np.abs(probs-0.5))
    plots_idx(most_uncertain[:n_view], probs[most_uncertain])
    """,
    "cm = confusion_matrix(val_classes, preds)",
    "plot_confusion_matrix(cm, val_batches.class_indices)",
    # retraining the last layer: the fine-tuning cells
    "vgg.model.summary()",
    """
    model.pop()
    for layer in model.layers: layer.trainable=False
    """,
    "model.add(Dense(2, activation='softmax'))",
    "??vgg.finetune",
    """
    gen=image.ImageDataGenerator()
    batches = gen.flow(trn_data, trn_labels, batch_size=batch_size, shuffle=True)
    val_batches = gen.flow(val_data, val_labels, batch_size=batch_size, shuffle=False)
    """,
    """
    def fit_model(model, batches, val_batches, nb_epoch=1):
        model.fit_generator(batches, samples_per_epoch=batches.n, nb_epoch=nb_epoch,
                            validation_data=val_batches, nb_val_samples=val_batches.n)
    """,
    """
    opt = RMSprop(lr=0.1)
    model.compile(optimizer=opt, loss='categorical_crossentropy', metrics=['accuracy'])
    """,
    "fit_model(model, batches, val_batches, nb_epoch=2)",
    "model.save_weights(model_path+'finetune1.h5')",
    "model.load_weights(model_path+'finetune1.h5')",
    "model.evaluate(val_data, val_labels)",
    """
    preds = model.predict_classes(val_data, batch_size=batch_size)
    probs = model.predict_proba(val_data, batch_size=batch_size)[:,0]
    probs[:8]
    """,
    "cm = confusion_matrix(val_classes, preds)",
    "plot_confusion_matrix(cm, {'cat':0, 'dog':1})",
    """
    layers = model.layers
    # Get the index of the first dense layer...
    first_dense_idx = [index for index,layer in enumerate(layers) if type(layer) is Dense][0]
    # ...and set this and all subsequent layers to trainable
    for layer in layers[first_dense_idx:]: layer.trainable=True
    """,
    """
    K.set_value(opt.lr, 0.01)
    fit_model(model, batches, val_batches, 3)
    """,
    "lr_after_first_set = K.get_value(opt.lr)",
    "model.save_weights(model_path+'finetune2.h5')",
    """
    for layer in layers[12:]: layer.trainable=True
    K.set_value(opt.lr, 0.001)
    """,
    "fit_model(model, batches, val_batches, 4)",
    "model.save_weights(model_path+'finetune3.h5')",
    """
    model.load_weights(model_path+'finetune2.h5')
    scores = model.evaluate_generator(get_batches(path+'valid', gen, False, batch_size*2), val_batches.n)
    """,
]


def test_lesson2_linear_model_cells(dogscats):
    """``Sequential([Dense(1, input_shape=(2,))])`` with ``SGD(lr=0.1)`` and ``fit(nb_epoch=5)``, Keras
    imported the 2017 way: it finds the weights the data were made with (2, 3 and 1), as in 2017."""
    result = _replay(dogscats, LESSON2_LINEAR, {"before": "before", "after": "lm.evaluate(x, y, verbose=0)",
                                                "weights": "[w.ravel() for w in lm.get_weights()]",
                                                "lr": "float(lm.optimizer.learning_rate)"},
                     None, after_imports=2)
    (w1, w2), (b,) = result["weights"]
    assert result["lr"] == pytest.approx(0.1)
    assert result["after"] < result["before"] / 10 and result["after"] < 0.05
    assert abs(w1 - 2) < 0.3 and abs(w2 - 3) < 0.3 and abs(b - 1) < 0.3


@pytest.fixture(scope="module")
def lesson2(dogscats, standin_weights):
    return _replay(dogscats, LESSON2_LINEAR[:2] + LESSON2_VGG, {
        "n_val": "len(val_data)", "preds": "preds", "probs": "probs",
        "lm_preds_shape": "lm.predict_classes(val_features).shape",
        "last": "[type(model.layers[-1]).__name__, model.layers[-1].units]",
        "trainable": "[layer.trainable for layer in layers]", "first_dense_idx": "first_dense_idx",
        "lr_first": "float(lr_after_first_set)", "lr_now": "float(opt.learning_rate)",
        "scores": "scores", "files": "sorted(os.listdir(model_path))"}, standin_weights, after_imports=2)


@pytest.mark.slow
def test_lesson2_vgg_features_and_fine_tuning_cells(lesson2):
    """The lesson 2 cells from the VGG features to the last fine-tuning: ``vgg.model.pop()``, frozen layers,
    ``Dense(2, activation='softmax')``, ``RMSprop(lr=0.1)``, ``fit_generator(batches, samples_per_epoch=,
    nb_epoch=, validation_data=, nb_val_samples=)``, ``K.set_value(opt.lr, ...)``, ``predict_classes``,
    ``predict_proba``, ``evaluate_generator(batches, n)``."""
    n = lesson2["n_val"]
    assert n == 8 and len(lesson2["preds"]) == n and set(lesson2["preds"]) <= {0, 1}
    assert all(0 <= p <= 1 for p in lesson2["probs"]) and lesson2["lm_preds_shape"] == [n]
    assert lesson2["last"] == ["Dense", 2]
    # K.set_value took effect each time (in 2017 too: K.set_value, unlike assigning opt.lr)
    assert lesson2["lr_first"] == pytest.approx(0.01) and lesson2["lr_now"] == pytest.approx(0.001)
    trainable, first = lesson2["trainable"], lesson2["first_dense_idx"]
    assert all(trainable[first:]) and all(trainable[12:]) and not any(trainable[:min(first, 12)])
    loss, accuracy = lesson2["scores"]
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    assert {"finetune1.h5", "finetune2.h5", "finetune3.h5", "train_data.bc", "valid_data.bc"} <= \
        set(lesson2["files"])


LESSON3 = [
    """
    import utils; reload(utils)
    from utils import *
    from __future__ import division, print_function
    """,
    """
    #path = "data/dogscats/sample/"
    path = "data/dogscats/"
    model_path = path + 'models/'
    if not os.path.exists(model_path): os.mkdir(model_path)

    batch_size=64
    """,
    "model = vgg_ft(2)",
    "model.load_weights(model_path+'finetune3.h5')",
    "layers = model.layers",
    """
    last_conv_idx = [index for index,layer in enumerate(layers)
                         if type(layer) is Convolution2D][-1]
    """,
    """
    conv_layers = layers[:last_conv_idx+1]
    conv_model = Sequential(conv_layers)
    # Dense layers - also known as fully connected or 'FC' layers
    fc_layers = layers[last_conv_idx+1:]
    """,
    """
    batches = get_batches(path+'train', shuffle=False, batch_size=batch_size)
    val_batches = get_batches(path+'valid', shuffle=False, batch_size=batch_size)

    val_classes = val_batches.classes
    trn_classes = batches.classes
    val_labels = onehot(val_classes)
    trn_labels = onehot(trn_classes)
    """,
    "val_features = conv_model.predict_generator(val_batches, val_batches.nb_sample)",
    "trn_features = conv_model.predict_generator(batches, batches.nb_sample)",
    """
    # Copy the weights from the pre-trained model.
    # NB: Since we're removing dropout, we want to half the weights
    def proc_wgts(layer): return [o/2 for o in layer.get_weights()]
    """,
    """
    # Such a finely tuned model needs to be updated very slowly!
    opt = RMSprop(lr=0.00001, rho=0.7)
    """,
    """
    def get_fc_model():
        model = Sequential([
            MaxPooling2D(input_shape=conv_layers[-1].output_shape[1:]),
            Flatten(),
            Dense(4096, activation='relu'),
            Dropout(0.),
            Dense(4096, activation='relu'),
            Dropout(0.),
            Dense(2, activation='softmax')
            ])

        for l1,l2 in zip(model.layers, fc_layers): l1.set_weights(proc_wgts(l2))

        model.compile(optimizer=opt, loss='categorical_crossentropy', metrics=['accuracy'])
        return model
    """,
    "fc_model = get_fc_model()",
    """
    fc_model.fit(trn_features, trn_labels, nb_epoch=8,
                 batch_size=batch_size, validation_data=(val_features, val_labels))
    """,
    "conv_layers[-1].output_shape[1:]",
    """
    def get_bn_layers(p):
        return [
            MaxPooling2D(input_shape=conv_layers[-1].output_shape[1:]),
            Flatten(),
            Dense(4096, activation='relu'),
            BatchNormalization(),
            Dropout(p),
            Dense(4096, activation='relu'),
            BatchNormalization(),
            Dropout(p),
            Dense(1000, activation='softmax')
            ]
    """,
    '''
    def load_fc_weights_from_vgg16bn(model):
        "Load weights for model from the dense layers of the Vgg16BN model."
        # See imagenet_batchnorm.ipynb for info on how the weights for
        # Vgg16BN can be generated from the standard Vgg16 weights.
        from vgg16bn import Vgg16BN
        vgg16_bn = Vgg16BN()
        _, fc_layers = split_at(vgg16_bn.model, Convolution2D)
        copy_weights(fc_layers, model.layers)
    ''',
    "bn_model = Sequential(get_bn_layers(0.6))",
    "load_fc_weights_from_vgg16bn(bn_model)",
    """
    def proc_wgts(layer, prev_p, new_p):
        scal = (1-prev_p)/(1-new_p)
        return [o*scal for o in layer.get_weights()]
    """,
    """
    for l in bn_model.layers:
        if type(l)==Dense: l.set_weights(proc_wgts(l, 0.5, 0.6))
    """,
    """
    bn_model.pop()
    for layer in bn_model.layers: layer.trainable=False
    """,
    "bn_model.add(Dense(2,activation='softmax'))",
    "bn_model.compile(Adam(), 'categorical_crossentropy', metrics=['accuracy'])",
    "bn_model.fit(trn_features, trn_labels, nb_epoch=8, validation_data=(val_features, val_labels))",
    "bn_model.save_weights(model_path+'bn.h5')",
    "bn_model.load_weights(model_path+'bn.h5')",
    """
    gen = image.ImageDataGenerator(rotation_range=15, width_shift_range=0.1,
                                   height_shift_range=0.1, zoom_range=0.1, horizontal_flip=True)
    """,
    """
    batches = get_batches(path+'train', gen, batch_size=batch_size)
    # NB: We don't want to augment or shuffle the validation set
    val_batches = get_batches(path+'valid', shuffle=False, batch_size=batch_size)
    """,
    """
    bn_layers = get_bn_layers(0.6)
    bn_layers.pop()
    bn_layers.append(Dense(2,activation='softmax'))
    """,
    """
    final_model = Sequential(conv_layers)
    for layer in final_model.layers: layer.trainable = False
    for layer in bn_layers: final_model.add(layer)
    """,
    """
    for l1,l2 in zip(bn_model.layers, bn_layers):
        l2.set_weights(l1.get_weights())
    """,
    """
    final_model.compile(optimizer=Adam(),
                        loss='categorical_crossentropy', metrics=['accuracy'])
    """,
    """
    final_model.fit_generator(batches, samples_per_epoch=batches.nb_sample, nb_epoch=1,
                            validation_data=val_batches, nb_val_samples=val_batches.nb_sample)
    """,
    "final_model.save_weights(model_path + 'final1.h5')",
    "final_model.optimizer.lr=0.001",
]


@pytest.mark.slow
def test_lesson3_cells_conv_features_dense_heads_and_vgg16bn(lesson2, dogscats, standin_weights):
    """Lesson 3 after lesson 2 (its ``finetune3.h5``): the convolutional/dense split with ``type(layer) is
    Convolution2D``, ``predict_generator(batches, batches.nb_sample)``, dense heads built on
    ``conv_layers[-1].output_shape[1:]``, ``from vgg16bn import Vgg16BN``, ``BatchNormalization()`` heads and
    the final model's ``fit_generator`` and ``optimizer.lr=``."""
    result = _replay(dogscats, LESSON3, {
        "conv_shape": "conv_layers[-1].output_shape", "fc_in": "fc_model.layers[0].input_shape",
        "n_trn": "len(trn_features)", "features": "trn_features.shape",
        "bn_out": "bn_model.output_shape", "bn_types": "[type(l).__name__ for l in bn_model.layers]",
        "final_lr": "float(final_model.optimizer.learning_rate)", "final_out": "final_model.output_shape",
        "bn_face": "sys.modules['vgg16bn'].Vgg16BN is Vgg16BN"}, standin_weights, after_imports=1)
    assert result["conv_shape"] == [None, 4, 4, 512]  # 64 pixels after four poolings
    assert result["fc_in"] == [None, 4, 4, 512] and result["features"] == [16, 4, 4, 512]
    assert result["bn_out"] == [None, 2] and result["final_out"] == [None, 2]
    assert result["bn_types"].count("BatchNormalization") == 2 and result["bn_types"][-1] == "Dense"
    assert result["final_lr"] == pytest.approx(0.001) and result["bn_face"] is True


MNIST = [
    """
    import utils; reload(utils)
    from utils import *
    from __future__ import division, print_function
    """,
    "batch_size=64",
    # the stand-in for `from keras.datasets import mnist; mnist.load_data()` (a download): scikit-learn's
    # digits at 28 pixels, split as the course's arrays are
    """
    from sklearn.model_selection import train_test_split
    images, labels, _ = load_digits(None)
    X_train, X_test, y_train, y_test = train_test_split(images.astype(np.uint8), labels, test_size=1/6,
                                                        random_state=0)
    """,
    """
    X_test = np.expand_dims(X_test,1)
    X_train = np.expand_dims(X_train,1)
    """,
    "X_train.shape",
    "y_train[:5]",
    """
    y_train = onehot(y_train)
    y_test = onehot(y_test)
    """,
    """
    mean_px = X_train.mean().astype(np.float32)
    std_px = X_train.std().astype(np.float32)
    """,
    "def norm_input(x): return (x-mean_px)/std_px",
    """
    def get_lin_model():
        model = Sequential([
            Lambda(norm_input, input_shape=(1,28,28)),
            Flatten(),
            Dense(10, activation='softmax')
            ])
        model.compile(Adam(), loss='categorical_crossentropy', metrics=['accuracy'])
        return model
    """,
    "lm = get_lin_model()",
    """
    gen = image.ImageDataGenerator()
    batches = gen.flow(X_train, y_train, batch_size=64)
    test_batches = gen.flow(X_test, y_test, batch_size=64)
    """,
    """
    lm.fit_generator(batches, batches.N, nb_epoch=1,
                        validation_data=test_batches, nb_val_samples=test_batches.N)
    """,
    "lm.optimizer.lr=0.1",
    """
    lm.fit_generator(batches, batches.N, nb_epoch=1,
                        validation_data=test_batches, nb_val_samples=test_batches.N)
    """,
    "lm.optimizer.lr=0.01",
    """
    lm.fit_generator(batches, batches.N, nb_epoch=4,
                        validation_data=test_batches, nb_val_samples=test_batches.N)
    """,
    """
    def get_fc_model():
        model = Sequential([
            Lambda(norm_input, input_shape=(1,28,28)),
            Flatten(),
            Dense(512, activation='softmax'),
            Dense(10, activation='softmax')
            ])
        model.compile(Adam(), loss='categorical_crossentropy', metrics=['accuracy'])
        return model
    """,
    "fc = get_fc_model()",
    """
    fc.fit_generator(batches, batches.N, nb_epoch=1,
                        validation_data=test_batches, nb_val_samples=test_batches.N)
    """,
    "fc.optimizer.lr=0.1",
]


def test_mnist_linear_and_dense_model_cells(dogscats):
    """The mnist notebook's linear and one-hidden-layer models (their ``(1, 28, 28)`` input is only flattened,
    so the 2017 channel order does no harm): ``fit_generator(batches, batches.N, nb_epoch=,
    nb_val_samples=)`` and ``optimizer.lr=`` (which takes effect here)."""
    result = _replay(dogscats, MNIST, {
        "accuracy": "lm.evaluate(X_test, y_test, verbose=0)[1]", "lm_lr": "float(lm.optimizer.learning_rate)",
        "fc_lr": "float(fc.optimizer.learning_rate)", "shape": "X_train.shape"}, None, after_imports=1)
    assert result["shape"] == [1497, 1, 28, 28]
    # 8x8 digits enlarged: the linear model learns them (chance is 0.1). The 2017 cells train it one epoch at
    # lr=0.1, hot for Adam, and the generator's shuffle is not seeded: full runs of the suite gave 0.797-0.86
    assert result["accuracy"] > 0.7
    assert result["lm_lr"] == pytest.approx(0.01) and result["fc_lr"] == pytest.approx(0.1)


LESSON1 = [
    """
    # path = "data/dogscats/"
    path = "data/dogscats/sample/"
    """,
    """
    from __future__ import division,print_function

    import os, json
    from glob import glob
    import numpy as np
    np.set_printoptions(precision=4, linewidth=100)
    from matplotlib import pyplot as plt
    """,
    """
    import utils; reload(utils)
    from utils import plots
    """,
    """
    # As large as you can, but no larger than 64 is recommended.
    # If you have an older or cheaper GPU, you'll run out of memory, so will have to decrease this.
    batch_size=64
    """,
    """
    # Import our class, and instantiate
    import vgg16; reload(vgg16)
    from vgg16 import Vgg16
    """,
    """
    vgg = Vgg16()
    # Grab a few images at a time for training and validation.
    # NB: They must be in subdirectories named based on their category
    batches = vgg.get_batches(path+'train', batch_size=batch_size)
    val_batches = vgg.get_batches(path+'valid', batch_size=batch_size*2)
    vgg.finetune(batches)
    vgg.fit(batches, val_batches, nb_epoch=1)
    """,
    "classes_after = vgg.classes",
    "vgg = Vgg16()",
    "batches = vgg.get_batches(path+'train', batch_size=4)",
    "imgs,labels = next(batches)",
    "plots(imgs, titles=labels)",
    "vgg.predict(imgs, True)",
    "vgg.classes[:4]",
]


@pytest.mark.slow
def test_lesson1_vgg16_cells(dogscats, standin_weights):
    """Lesson 1 as typed: ``vgg16``'s ``Vgg16``, ``get_batches``, ``finetune`` and ``fit(..., nb_epoch=1)``,
    then ``predict(imgs, True)`` on a batch."""
    result = _replay(dogscats, LESSON1, {
        "classes_after": "classes_after", "n_classes": "len(vgg.classes)", "imgs": "imgs.shape",
        "predicted": "[len(v) for v in vgg.predict(imgs, True)]"}, standin_weights, after_imports=5,
        stand_in="WEIGHTS = {weights!r}")
    assert result["classes_after"] == ["cats", "dogs"] and result["n_classes"] == 1000
    assert result["imgs"] == [4, 64, 64, 3] and result["predicted"] == [4, 4, 4]
