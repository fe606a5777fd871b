"""The Keras 1 module paths the 2017 notebooks import (``from keras.layers.core import Dense``,
``from keras.utils.data_utils import get_file``, ``from keras.preprocessing import image``, ...), on Keras 3.

``install()`` appends a finder to the *end* of ``sys.meta_path``: Python's own finders run first, so a
module that Keras 3 has (``keras.preprocessing.sequence``, ``keras.applications.resnet50``, ...) is always
Keras' own and only the paths Keras 3 lacks (``keras.layers.core``, ``keras.engine.topology``, ...) come
from here. Their contents are the Keras 1 spellings of ``dl1.compat.keras1`` and the Keras 3 objects
under their 2017 names; names removed without an equivalent (``MaxoutDense``, ``TimeDistributedDense``,
...) raise ``Keras1ImportError`` with one line saying what to write instead.

A few 2017 imports name objects that a module Keras 3 *does* have no longer defines: ``from
keras.layers import merge, Merge``, ``image.ImageDataGenerator`` (after ``from keras.preprocessing import
image``), ``from keras.regularizers import activity_l2``. ``install()`` adds those names to the Keras
module, and only where the module has no attribute of that name: nothing Keras defines is replaced.

It is installed with the other 2017 spellings (``dl1.compat.spellings.install()``, which ``import utils``
and ``import vgg16`` do), never by ``import dl1``: importing the library has no process-wide side effects.
``uninstall()`` removes the finder and the names added to Keras' modules (modules already imported stay).
"""

import importlib
import importlib.abc
import importlib.machinery
import sys

from dl1.io.errors import DL1Error

__all__ = ["install", "uninstall", "installed", "MODULES", "ADDITIONS", "Keras1ImportError"]


class Keras1ImportError(DL1Error, ImportError):
    """A name a Keras 1 module had and Keras 3 has no equivalent for; the message says what to write."""


_K1 = "dl1.compat.keras1"
_L = "keras.layers"

# module -> [(source module, "names" or "name=source_name ...")]; a package has "__path__" in its entry
MODULES = {
    "keras.layers.core": [(_K1, "Dense Dropout Activation Flatten Reshape Merge merge"),
                          (_L, "Lambda Permute RepeatVector Masking ActivityRegularization SpatialDropout1D "
                               "SpatialDropout2D SpatialDropout3D Layer InputSpec")],
    "keras.layers.convolutional": [(_K1, "Convolution1D Convolution2D Conv1D Conv2D MaxPooling1D MaxPooling2D "
                                         "ZeroPadding2D"),
                                   (_L, "Conv3D AveragePooling1D AveragePooling2D AveragePooling3D MaxPooling3D "
                                        "ZeroPadding1D ZeroPadding3D UpSampling1D UpSampling2D UpSampling3D "
                                        "Cropping1D Cropping2D Cropping3D SeparableConv2D Conv2DTranspose "
                                        "Convolution3D=Conv3D SeparableConvolution2D=SeparableConv2D")],
    "keras.layers.pooling": [(_K1, "MaxPooling1D MaxPooling2D"),
                             (_L, "MaxPooling3D AveragePooling1D AveragePooling2D AveragePooling3D "
                                  "GlobalAveragePooling1D GlobalAveragePooling2D GlobalMaxPooling1D "
                                  "GlobalMaxPooling2D GlobalAveragePooling3D GlobalMaxPooling3D")],
    "keras.layers.normalization": [(_K1, "BatchNormalization")],
    "keras.layers.embeddings": [(_K1, "Embedding")],
    "keras.layers.recurrent": [(_K1, "SimpleRNN GRU LSTM"), (_L, "Recurrent=RNN RNN")],
    "keras.layers.wrappers": [(_K1, "TimeDistributed"), (_L, "Bidirectional Wrapper")],
    "keras.layers.advanced_activations": [(_K1, "LeakyReLU PReLU"), (_L, "ELU ReLU Softmax")],
    "keras.layers.noise": [(_K1, "GaussianNoise GaussianDropout"), (_L, "AlphaDropout")],
    "keras.layers.merge": [(_K1, "merge Merge"),
                           (_L, "Add Multiply Average Maximum Minimum Subtract Concatenate Dot add multiply "
                                "average maximum minimum subtract concatenate dot")],
    "keras.engine": [("__path__", ""), (_K1, "Input Merge merge Model"), (_L, "Layer InputLayer InputSpec")],
    "keras.engine.topology": [(_K1, "Input Merge merge Model Container=Model"),
                              (_L, "Layer InputLayer InputSpec")],
    "keras.engine.training": [(_K1, "Model")],
    "keras.utils.data_utils": [("keras.utils", "get_file Sequence=PyDataset")],
    "keras.utils.np_utils": [("keras.utils", "to_categorical normalize")],
    "keras.utils.layer_utils": [("dl1.compat.modules", "layer_from_config convert_all_kernels_in_model "
                                                       "print_summary count_total_params")],
    "keras.utils.generic_utils": [("keras.utils", "Progbar get_custom_objects CustomObjectScope "
                                                  "serialize_keras_object deserialize_keras_object")],
    "keras.preprocessing.text": [("dl1.data.text?", "Tokenizer text_to_word_sequence one_hot")],
    "keras.objectives": [("keras.losses", "*")],
}

_REMOVED = {
    "keras.layers.core": {
        "TimeDistributedDense": "write TimeDistributed(Dense(...))",
        "MaxoutDense": "Keras 3 has no maxout layer: write Dense(k * n) then a Reshape and max over k",
        "Highway": "Keras 3 has no Highway layer: write it with Dense layers and keras.ops",
    },
    "keras.layers.convolutional": {
        "AtrousConvolution1D": "write Conv1D(..., dilation_rate=r)",
        "AtrousConvolution2D": "write Conv2D(..., dilation_rate=r)",
        "Deconvolution2D": "write Conv2DTranspose(filters, kernel_size, strides=...) (no output_shape=)",
    },
    "keras.utils.np_utils": {
        "probas_to_classes": "write y.argmax(axis=-1) (or (y > 0.5) for one column)",
        "categorical_probas_to_classes": "write y.argmax(axis=-1)",
    },
}

# names added to modules Keras 3 has, only where absent: module -> [(source, names)]
ADDITIONS = {
    "keras.layers": [(_K1, "merge Merge")],
    # ``from keras import backend as K``: the 2017 backend functions, and the rest from keras.ops (K.mean, ...)
    "keras.backend": [("dl1.compat.kbackend", "set_value get_value int_shape variable image_dim_ordering "
                                              "set_image_dim_ordering __getattr__=ops_fallback")],
    "keras.preprocessing.image": [("dl1.compat.image", "ImageDataGenerator DirectoryIterator NumpyArrayIterator "
                                                       "Iterator=ArrayIterator")],
    "keras.regularizers": [("keras.regularizers", "activity_l1=l1 activity_l2=l2 activity_l1l2=l1_l2 l1l2=l1_l2")],
}


def _pairs(names):
    for item in names.split():
        public, _, source = item.partition("=")
        yield public, source or public


# --- keras.utils.layer_utils ----------------------------------------------------------------------------

def layer_from_config(config, custom_objects=None):
    """Keras 1 ``layer_from_config({'class_name': ..., 'config': ...})``: a new layer of that class (ours
    where we have one, e.g. the Keras 1 ``Dense``), else ``keras.layers.deserialize``."""
    import keras

    if "module" in config:  # a full Keras 3 serialisation
        return keras.layers.deserialize(config, custom_objects=custom_objects)
    name = config["class_name"]
    cls = ((custom_objects or {}).get(name) or keras.saving.get_registered_object(f"dl1>{name}")
           or getattr(importlib.import_module(_K1), name, None) or getattr(keras.layers, name, None))
    if cls is None:
        raise Keras1ImportError(f"layer_from_config: no layer class named {name!r}")
    return cls.from_config(config["config"])


def convert_all_kernels_in_model(model):
    """Keras 1 flipped convolution kernels between Theano and TensorFlow; Keras 3 weights need no flip."""
    raise Keras1ImportError("convert_all_kernels_in_model() is gone: it flipped Theano kernels, and Keras 3 "
                            "weight files need no conversion; leave the call out")


def print_summary(model, *args, **kwargs):
    """Keras 1 ``print_summary(model)``: ``model.summary()``."""
    return model.summary(*args, **kwargs)


def count_total_params(layers, *args):
    """Keras 1 ``count_total_params(layers)``: (trainable, non-trainable) parameter counts."""
    import numpy as np

    trainable = sum(int(np.prod(w.shape)) for layer in layers for w in layer.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for layer in layers for w in layer.non_trainable_weights)
    return trainable, frozen


# --- the finder -------------------------------------------------------------------------------------------

class _Keras1Module(type(sys)):
    """A Keras 1 module: its names resolve on first use (so a name whose source is missing fails alone)."""

    def __getattr__(self, name):
        spec = self.__dict__.get("_keras1_spec", {})
        if name in spec:
            source, attr = spec[name]
            optional = source.endswith("?")
            source = source.rstrip("?")
            try:
                module = importlib.import_module(source)
            except ModuleNotFoundError as e:
                if not optional or not (e.name == source or source.startswith(f"{e.name}.")):
                    raise
                raise Keras1ImportError(f"{self.__name__}.{name} needs {source}, which this installation "
                                        "does not have") from None
            value = getattr(module, attr)
            setattr(self, name, value)
            return value
        removed = _REMOVED.get(self.__name__, {})
        if name in removed:
            raise Keras1ImportError(f"{self.__name__}.{name} was removed from Keras: {removed[name]}")
        star = self.__dict__.get("_keras1_star")
        if star and not name.startswith("__"):
            return getattr(importlib.import_module(star), name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.__dict__.get("_keras1_spec", {})))


class _Keras1Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the module paths of ``MODULES`` that nothing earlier on ``sys.meta_path`` found."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MODULES:
            return None
        package = any(source == "__path__" for source, _ in MODULES[fullname])
        return importlib.machinery.ModuleSpec(fullname, self, is_package=package)

    def create_module(self, spec):
        return _Keras1Module(spec.name)

    def exec_module(self, module):
        spec = {}
        for source, names in MODULES[module.__name__]:
            if source == "__path__":
                module.__path__ = []
            elif names == "*":
                module._keras1_star = source
            else:
                spec.update((public, (source, attr)) for public, attr in _pairs(names))
        module._keras1_spec = spec
        module.__doc__ = f"Keras 1's {module.__name__} on Keras 3 (dl1.compat.modules)."
        module.__all__ = sorted(spec)


_FINDER = _Keras1Finder()


_ADDED = []  # (module, name) added by install(), removed by uninstall()


def _add_missing_names():
    for target, entries in ADDITIONS.items():
        module = importlib.import_module(target)
        for source, names in entries:
            for public, attr in _pairs(names):
                if not hasattr(module, public):
                    setattr(module, public, getattr(importlib.import_module(source), attr))
                    _ADDED.append((module, public))


def install():
    """Make the Keras 1 module paths importable and add the missing names (idempotent)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
    _add_missing_names()


def uninstall():
    """Remove the finder from ``sys.meta_path`` and the names added to Keras' modules (modules already
    imported through the finder stay in ``sys.modules``)."""
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    while _ADDED:
        module, name = _ADDED.pop()
        if hasattr(module, name):
            delattr(module, name)


def installed():
    return _FINDER in sys.meta_path
