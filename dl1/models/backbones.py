"""The recipe on modern ``keras.applications`` backbones, with the ``Vgg16`` API.

    model = Backbone.named('resnet50')()        # or Resnet50(), EfficientNetV2B0(), ConvNeXtTiny(), ...
    batches = model.get_batches(path + 'train', batch_size=64)
    model.finetune(batches)
    model.fit(batches, val_batches, nb_epoch=1)

The network is ``input (raw 0-255 RGB) -> preprocessing -> FrozenBase(application) -> head``: the
application's own preprocessing is inside the model (caffe-style BGR minus the ImageNet mean for
ResNet50, the built-in rescaling/normalisation layers of EfficientNetV2 and ConvNeXt), the pretrained
base always runs in inference mode (``dl1.nn.frozen.FrozenBase``: its BatchNormalization statistics never
move, even when it is unfrozen for fine-tuning), and the head is ``Dense(classes, softmax,
name='predictions')`` on the pooled features (ImageNet's 1000-way layer until ``finetune``). The model is a
straight chain of layers, so the frozen base's outputs are cached per image exactly as for VGG16.

Weights: ``'imagenet'`` (Keras' own file for that application, from ``DL1_WEIGHTS_<ARCH>``, ``DL1_WEIGHTS``,
the Keras cache or a download; offline, one line saying where to put it), ``None`` (random, same
network) or a file saved from such a model (``model.save_weights``). The global-pooled head fits any
input size, so ImageNet's classifier loads at every size (the base needs at least 32 pixels).
"""

import os

import keras
import numpy as np
from keras import layers as L

from dl1.io.errors import WeightsError
from dl1.models.vgg16 import Vgg16, Vgg16BN, VggPreprocess, size_pair, vgg_mean
from dl1.models.weights import backbone_weights_path
from dl1.nn import kprivate
from dl1.nn.frozen import FrozenBase, with_fast_convs
from dl1.nn.model import Model
from dl1.nn.weightfiles import saved_num_classes

# name on the command line -> (keras.applications function, extra arguments, caffe preprocessing outside)
_APPLICATIONS = {
    "resnet50": ("ResNet50", {}, True),
    "efficientnetv2b0": ("EfficientNetV2B0", {"include_preprocessing": True}, False),
    "efficientnetv2s": ("EfficientNetV2S", {"include_preprocessing": True}, False),
    "convnext_tiny": ("ConvNeXtTiny", {"include_preprocessing": True}, False),
}

# From Keras' documentation (keras.io/api/applications): ImageNet top-1 accuracy, parameters (millions)
IMAGENET_FACTS = {
    "vgg16": (0.713, 138.4), "vgg16bn": (None, 138.4), "resnet50": (0.749, 25.6),
    "efficientnetv2b0": (0.787, 7.2), "efficientnetv2s": (0.839, 21.6), "convnext_tiny": (0.813, 28.6),
}


class _Policy:
    """Build layers under a dtype policy (keras.applications take no ``dtype`` argument)."""

    def __init__(self, policy):
        self.policy = policy

    def __enter__(self):
        self.old = keras.config.dtype_policy()
        if self.policy:
            keras.config.set_dtype_policy(self.policy)

    def __exit__(self, *exc):
        keras.config.set_dtype_policy(self.old)


class Backbone(Vgg16):
    """A ``keras.applications`` network with the ``Vgg16`` methods (``get_batches``, ``finetune``, ``ft``,
    ``compile``, ``fit``, ``fit_data``, ``test``, ``predict``, ``classes``, ``model``). Subclasses set
    ``arch`` (one of ``ARCHITECTURES``)."""

    arch = None

    def __init__(self, weights="imagenet", size=224, include_top=True, class_index=None, dropout=0.0,
                 verbose=True, mixed_precision=False, jit_compile="auto", fast_convs=True):
        if self.arch not in _APPLICATIONS:
            raise TypeError("use a concrete backbone: " + ", ".join(sorted(_APPLICATIONS)))
        self.include_top = include_top
        self.fast_convs = fast_convs
        super().__init__(weights=weights, size=size, class_index=class_index, dropout=dropout,
                         verbose=verbose, mixed_precision=mixed_precision, jit_compile=jit_compile)

    # ---- building ------------------------------------------------------------------------------------
    def _application(self, include_top):
        fn_name, extra, _ = _APPLICATIONS[self.arch]
        fn = getattr(keras.applications, fn_name)
        with _Policy(self.policy):
            return fn(include_top=include_top, weights=None, input_shape=self.size + (3,), classes=1000,
                      **extra)

    def create(self):
        """Build ``self.model`` (and ``self.base``, the application without its classifier) and load
        ``self.weights``."""
        if min(self.size) < 32:
            raise ValueError(f"size {self.size} is too small: {self.arch} needs at least 32 pixels")
        weights = self.weights
        saved_classes = None
        if isinstance(weights, (str, os.PathLike)) and weights != "imagenet":
            weights = os.fspath(weights)
            if not os.path.isfile(weights):
                raise WeightsError(f"weights file not found: {weights}")
            saved_classes = saved_num_classes(weights)
        app = self._application(self.include_top)
        if weights == "imagenet":
            app.load_weights(backbone_weights_path(self.arch, self.include_top))
        head = None
        if self.include_top:  # split off the classifier: base = everything before it (and its dropout)
            last = app.layers[-1]
            features = last.input
            producer = kprivate.producing_layer(features)
            while isinstance(producer, L.Dropout):
                features = producer.input
                producer = kprivate.producing_layer(features)
            base = keras.Model(app.input, features, name=f"{self.arch}_base")
            head = last
        else:
            base = app
        if self.fast_convs:
            base = with_fast_convs(base)
        base.trainable = False
        self.base = base
        inp = keras.Input(shape=self.size + (3,), name="input")
        x = inp
        if _APPLICATIONS[self.arch][2]:
            x = VggPreprocess(name="caffe_preprocess", dtype=self.policy)(x)
        self._features = FrozenBase(base, name="base", dtype=self.policy)(x)
        out = self._features
        if head is not None:
            out = self._head(1000)(out)
            self.model = Model(inp, out, name=self.arch)
            self.model.get_layer("predictions").set_weights(head.get_weights())
        else:
            self.model = Model(inp, out, name=self.arch)
        if saved_classes is not None or (weights not in (None, "imagenet")):
            if saved_classes and saved_classes != self.model.output_shape[-1]:
                self.ft(saved_classes)
            self.model.load_weights(weights)
        return self.model

    def _head(self, num):
        """The head on the base's output: (global pooling when the base keeps its map,) optional dropout,
        then ``Dense(num, softmax, name='predictions')`` in float32."""
        layers = []
        if len(self._features.shape) == 4:
            layers.append(L.GlobalAveragePooling2D(name="avg_pool", dtype=self.policy))
        if self.dropout:
            layers.append(L.Dropout(self.dropout, name="head_dropout", dtype=self.policy))
        layers.append(self._softmax(num))

        def apply(x):
            for layer in layers:
                x = layer(x)
            return x
        return apply

    def ft(self, num):
        """Replace the classifier by a ``num``-way softmax and freeze the base (2017 ``ft``)."""
        self.base.trainable = False
        out = self._head(num)(self._features)
        self.model = Model(self.model.inputs[0], out, name=self.arch)
        self.compile()

    def layer_groups(self):
        """Layer groups for discriminative learning rates and gradual unfreezing, earliest first: the
        base's first half, its second half, then the head."""
        inner = [layer for layer in self.base.layers if layer.weights]
        half = len(inner) // 2
        head = [layer for layer in self.model.layers if layer.weights and not isinstance(layer, FrozenBase)]
        return [inner[:half], inner[half:], head]

    def unfreeze(self, n_groups=None):
        """Make the base trainable (all of it, or its last ``n_groups`` halves); BatchNormalization still
        runs in inference mode (see ``FrozenBase``). Call ``compile`` afterwards."""
        self.base.trainable = True
        if n_groups is not None:
            groups = self.layer_groups()[:2]
            for group in groups[:len(groups) - n_groups]:
                for layer in group:
                    layer.trainable = False


class Resnet50(Backbone):
    """The 2017 ``Resnet50(size=(224, 224), include_top=True)`` wrapper on ``keras.applications.ResNet50``
    (caffe preprocessing: RGB->BGR minus the ImageNet mean, inside the model). Without the top, the model
    outputs the last convolutional map (2048 channels) as in 2017; ``finetune`` then adds global average
    pooling and the softmax."""

    arch = "resnet50"
    FILE_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"

    def __init__(self, size=(224, 224), include_top=True, weights="imagenet", **kwargs):
        self.vgg_mean = vgg_mean.astype(np.float64)
        super().__init__(weights=weights, size=size_pair(size), include_top=include_top, **kwargs)

    def vgg_preprocess(self, x):
        """Subtract the ImageNet mean and reverse the channels (RGB->BGR), as the 2017 method did."""
        x = np.asarray(x, dtype=np.float32) - self.vgg_mean.astype(np.float32)
        return x[..., ::-1]


class EfficientNetV2B0(Backbone):
    arch = "efficientnetv2b0"


class EfficientNetV2S(Backbone):
    arch = "efficientnetv2s"


class ConvNeXtTiny(Backbone):
    arch = "convnext_tiny"


ARCHITECTURES = {
    "vgg16": Vgg16, "vgg16bn": Vgg16BN, "resnet50": Resnet50, "efficientnetv2b0": EfficientNetV2B0,
    "efficientnetv2s": EfficientNetV2S, "convnext_tiny": ConvNeXtTiny,
}
DEFAULT_ARCH = "vgg16"


def architecture(name):
    """The wrapper class for ``name`` (``vgg16``, ``resnet50``, ...), or a ValueError listing the names."""
    key = (name or DEFAULT_ARCH).lower()
    if key not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}: use one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[key]


def make_model(arch=DEFAULT_ARCH, **kwargs):
    """``architecture(arch)(**kwargs)``: ``weights``, ``size``, ``mixed_precision``, ... as for ``Vgg16``."""
    return architecture(arch)(**kwargs)
