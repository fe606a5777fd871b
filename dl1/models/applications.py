"""``ApplicationNetwork``: any ``keras.applications`` network of the architecture table, fine-tuned as VGG16 is.

The network is ``input (raw 0-255 RGB) -> preprocessing -> FrozenBase(application) -> head``: the
application's preprocessing (``Arch.preprocessing``: caffe-style BGR minus the ImageNet mean for
ResNet50, torch-style for DenseNet, the built-in rescaling/normalisation layers of EfficientNetV2 and
ConvNeXt) is inside the model, the pretrained base always runs in inference mode (``dl1.nn.frozen.
FrozenBase``: its BatchNormalization statistics never move, even when it is unfrozen for fine-tuning), and
the head is ``Dense(classes, softmax, name='predictions')`` on the pooled features (ImageNet's 1000-way
layer until ``finetune``). The model is a straight chain of layers, so the frozen base's outputs are
cached per image exactly as for VGG16.

Weights: ``'imagenet'`` (Keras' own file for that application, from ``DL1_WEIGHTS_<ARCH>``, ``DL1_WEIGHTS``,
the Keras cache or a download; offline, one line saying where to put it), ``None`` (random, same
network) or a file saved from such a model (``model.save_weights``). The global-pooled head fits any
input size, so ImageNet's classifier loads at every size.
"""

import keras
from keras import layers as L

from dl1.models.preprocess import preprocessing_layers
from dl1.models.weights import backbone_weights_path
from dl1.nn.frozen import FrozenBase, with_fast_convs
from dl1.nn.model import Model
from dl1.nn.precision import dtype_policy


def split_classifier(app):
    """``(features tensor, classifier layer)`` of an application built with its top: the classifier is the
    last layer, the features what feeds it (before any dropout in between)."""
    layers = list(app.layers)
    head = layers[-1]
    features, i = head.input, len(layers) - 2
    while i > 0 and isinstance(layers[i], L.Dropout) and layers[i].output is features:
        features, i = layers[i].input, i - 1
    return features, head


class ApplicationNetwork:
    """A ``keras.applications`` network (``spec.application``) as ``preprocessing -> FrozenBase -> head``:
    building it, loading weights, replacing the head, its layer groups (see the module docstring)."""

    def __init__(self, spec, size, policy=None, dropout=0.0, include_top=True, fast_convs=True, say=None):
        self.spec, self.size, self.policy, self.dropout = spec, tuple(size), policy, dropout
        self.include_top, self.fast_convs = include_top, fast_convs
        self.base = None
        self.features = None  # the base's output in the model: where a new head attaches

    def application(self):
        fn = getattr(keras.applications, self.spec.application)
        with dtype_policy(self.policy):
            return fn(include_top=self.include_top, weights=None, input_shape=self.size + (3,), classes=1000,
                      **dict(self.spec.application_args))

    def build(self, loading=False):
        """``self.base`` (the application without its classifier) inside the model, ImageNet's classifier
        on top (``include_top``) or the base's last map as the output; random weights until loaded
        (``loading`` is VggNetwork's: ``keras.applications`` builds and draws its layers itself)."""
        app = self.application()
        self._app = app
        head = None
        if self.include_top:  # split off the classifier: base = everything before it (and its dropout)
            features, head = split_classifier(app)
            base = keras.Model(app.input, features, name=f"{self.spec.name}_base")
        else:
            base = app
        if self.fast_convs:
            base = with_fast_convs(base)
        base.trainable = False
        self.base = base
        inp = keras.Input(shape=self.size + (3,), name="input")
        x = inp
        for layer in preprocessing_layers(self.spec.preprocessing, self.policy,
                                          name=f"{self.spec.preprocessing}_preprocess"):
            x = layer(x)
        self.features = FrozenBase(base, name="base", dtype=self.policy)(x)
        if head is None:
            return Model(inp, self.features, name=self.spec.name)
        model = Model(inp, self._head(1000)(self.features), name=self.spec.name)
        model.get_layer("predictions").set_weights(head.get_weights())
        self._imagenet_head = head
        return model

    def _head(self, num):
        """The head on the base's output: (global pooling when the base keeps its map,) optional dropout,
        then ``Dense(num, softmax, name='predictions')`` in float32."""
        layers = []
        if len(self.features.shape) == 4:
            layers.append(L.GlobalAveragePooling2D(name="avg_pool", dtype=self.policy))
        if self.dropout:
            layers.append(L.Dropout(self.dropout, name="head_dropout", dtype=self.policy))
        layers.append(L.Dense(num, activation="softmax", name="predictions", dtype="float32"))

        def apply(x):
            for layer in layers:
                x = layer(x)
            return x
        return apply

    def replace_head(self, model, num):
        """A model with a new ``num``-way head on the frozen base (the preprocessing and base are shared)."""
        self.base.trainable = False
        return Model(model.inputs[0], self._head(num)(self.features), name=self.spec.name)

    # ---- weights -------------------------------------------------------------------------------------
    def load_imagenet(self, model):
        self._app.load_weights(backbone_weights_path(self.spec.name, self.include_top))
        if self.fast_convs:  # the base is a copy of the application: give it the loaded weights
            source = keras.Model(self._app.input, split_classifier(self._app)[0]) if self.include_top else self._app
            self.base.set_weights(source.get_weights())
        if self.include_top:
            model.get_layer("predictions").set_weights(self._imagenet_head.get_weights())

    def load_file(self, model, path):
        model.load_weights(path)

    # ---- the blocks ----------------------------------------------------------------------------------
    def layer_groups(self, model):
        """The base's first half, its second half, then the head (earliest first)."""
        inner = [layer for layer in self.base.layers if layer.weights]
        half = len(inner) // 2
        head = [layer for layer in model.layers if layer.weights and not isinstance(layer, FrozenBase)]
        return [inner[:half], inner[half:], head]

    def unfreeze(self, model, n_groups=None):
        """Make the base trainable (all of it, or its last ``n_groups`` halves); BatchNormalization still
        runs in inference mode (see ``FrozenBase``)."""
        self.base.trainable = True
        if n_groups is not None:
            groups = self.layer_groups(model)[:2]
            for group in groups[:len(groups) - n_groups]:
                for layer in group:
                    layer.trainable = False
