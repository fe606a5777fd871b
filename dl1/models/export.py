"""One ``.keras`` file that runs anywhere Keras runs, without dl1: ``export_model(model, classes, path)``.

The network is rebuilt from plain Keras layers (``keras.layers.Conv2D`` for dl1's fast ``Conv2D``, and so
on; every layer in float32), so the saved configuration names no dl1 class and ``keras.saving.load_model``
needs nothing but Keras and its backend. The caffe-style preprocessing of VGG16 (RGB -> BGR, ImageNet mean
subtracted) becomes a fixed 1x1 ``Conv2D``: a channel permutation with the negated means as bias, which
gives the same numbers; so the file takes raw 0-255 RGB images, as ``Vgg16`` does. The class names are
written beside it (``model.keras.classes.json``) and inside the archive (``dl1_classes.json``, which
Keras ignores).

A layer type of another model that has no plain Keras base class can say how to export it: a
``plain_keras_layer()`` method returning ``(layer, weights)``, or ``register_plain_equivalent(cls, fn)``.
``FrozenBase`` (the pretrained base of a ``keras.applications`` network) becomes the plain base network, so
every architecture of the table exports.
"""

import json
import os
import warnings
import zipfile

import keras
import numpy as np

from dl1.io.atomic import atomic_path, write_text
from dl1.models.preprocess import VggPreprocess, vgg_mean
from dl1.nn.frozen import FrozenBase

CLASSES_SUFFIX = ".classes.json"
CLASSES_MEMBER = "dl1_classes.json"
_PLAIN = {}


def register_plain_equivalent(cls, fn):
    """Export layers of type ``cls`` as ``fn(layer) -> (plain Keras layer, weights list or None)``."""
    _PLAIN[cls] = fn


def _caffe_preprocess(layer):
    """VggPreprocess as a 1x1 convolution: out[c] = in[2 - c] - mean[2 - c]."""
    kernel = np.zeros((1, 1, 3, 3), dtype=np.float32)
    for c in range(3):
        kernel[0, 0, 2 - c, c] = 1.0
    bias = -vgg_mean.reshape(3)[::-1].astype(np.float32)
    conv = keras.layers.Conv2D(3, 1, use_bias=True, name=layer.name, dtype="float32")
    return conv, [kernel, bias]


register_plain_equivalent(VggPreprocess, _caffe_preprocess)


def _frozen_base(layer):
    """``FrozenBase`` (a pretrained base that runs in inference mode) as the plain base network itself: an
    exported model only predicts, where the two compute the same."""
    base = plain_model(layer.base)
    base.name = layer.name
    return base, base.get_weights()


register_plain_equivalent(FrozenBase, _frozen_base)


def _float32(config):
    if "dtype" in config:
        config["dtype"] = "float32"
    return config


def _plain_layer(layer):
    """``(plain layer, weights or None)``: None means copy the original layer's weights."""
    if hasattr(layer, "plain_keras_layer"):
        return layer.plain_keras_layer()
    if type(layer) in _PLAIN:
        return _PLAIN[type(layer)](layer)
    base = getattr(layer, "keras_class", type(layer))  # dl1.nn's layers name their plain Keras class
    if not base.__module__.startswith("keras."):
        raise TypeError(f"layer {layer.name} ({type(layer).__name__}) has no plain Keras equivalent; "
                        "give it a plain_keras_layer() method or use register_plain_equivalent")
    return base.from_config(_float32(layer.get_config())), None


def plain_model(model):
    """A copy of ``model`` made of plain Keras layers only, float32, with the same weights."""
    pairs = []

    def clone(layer):
        if not isinstance(layer, keras.layers.Layer):  # an operation in the graph (``x + y``): no weights
            return layer
        new, weights = _plain_layer(layer)
        pairs.append((layer, new, weights))
        return new

    if isinstance(model, keras.Sequential):
        shape = tuple(model.inputs[0].shape[1:])
        plain = keras.Sequential([keras.Input(shape=shape, name="image")] + [clone(layer) for layer in model.layers],
                                 name=model.name)
    else:
        with warnings.catch_warnings():  # the copy need not be compiled: an exported file only predicts
            warnings.filterwarnings("ignore", message=r"`compile\(\)` was not called")
            plain = keras.models.clone_model(model, clone_function=clone, recursive=True)
        if type(plain) is not keras.Model:  # e.g. dl1.nn.model.Model: the same graph as a plain keras.Model
            plain = keras.Model(plain.inputs, plain.outputs, name=model.name)
    for old, new, weights in pairs:
        values = weights if weights is not None else [keras.ops.convert_to_numpy(w) for w in old.weights]
        if values:
            new.set_weights([np.asarray(v, dtype=np.float32) if np.issubdtype(np.asarray(v).dtype, np.floating)
                             else v for v in values])
    return plain


def export_model(model, classes, path):
    """Write ``path`` (a ``.keras`` file) and ``path.classes.json``; returns ``path``."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"the exported file's name must end in .keras (Keras requires it), not {path}")
    classes = [str(c) for c in classes]
    n_out = model.output_shape[-1]
    if len(classes) != n_out:
        raise ValueError(f"{len(classes)} class names for a model with {n_out} outputs")
    plain = plain_model(model)
    meta = json.dumps({"classes": classes, "input_shape": list(plain.inputs[0].shape[1:]),
                       "input": "raw RGB images, 0-255, channels last"}, indent=1)
    needed = sum(int(np.prod(w.shape)) * 4 for w in plain.weights)  # float32 on disk; the zip adds little
    with atomic_path(path, suffix=".keras", needed=needed, what=f"the export {os.path.basename(path)}") as tmp:
        plain.save(tmp)
        with zipfile.ZipFile(tmp, "a") as z:
            z.writestr(CLASSES_MEMBER, meta)
    write_text(path + CLASSES_SUFFIX, meta)
    return path


def load_classes(path):
    """The class names stored with an exported file (beside it, else inside the archive)."""
    side = os.fspath(path) + CLASSES_SUFFIX
    if os.path.exists(side):
        with open(side, encoding="utf-8") as f:
            return json.load(f)["classes"]
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read(CLASSES_MEMBER))["classes"]
