"""``FrozenBase``: a pretrained base network that always runs in inference mode inside a larger model.

The classic Keras fine-tuning trap: a functional model passes ``training=True`` down to every layer
while it trains, so a base network's BatchNormalization layers normalise with the statistics of each
batch (and update their moving averages) and its dropout layers drop, even when the base is frozen or
only partly unfrozen. Keras 3 even overrides an explicit ``base(x, training=False)`` inside a functional
model (``Functional`` re-injects the outer ``training`` into every operation that takes one). This layer
takes no ``training`` argument, so nothing can be injected, and calls the base with ``training=False``:
BatchNormalization uses its moving statistics and never updates them, dropout is off, while the base's
weights still learn when it is unfrozen (``trainable = True``, for fine-tuning more than the head).
"""

import keras

from dl1.nn.layers import Conv2D


@keras.saving.register_keras_serializable(package="dl1")
class FrozenBase(keras.layers.Layer):
    """Wraps ``base`` (a Keras model) and always calls it with ``training=False`` (see the module)."""

    def __init__(self, base, **kwargs):
        super().__init__(**kwargs)
        self.base = base

    def build(self, input_shape):
        self.built = True

    def call(self, inputs):
        return self.base(inputs, training=False)

    def compute_output_shape(self, input_shape):
        return self.base.compute_output_shape(input_shape)

    def compute_output_spec(self, inputs):
        return self.base.compute_output_spec(inputs, training=False)


def with_fast_convs(model):
    """A copy of a functional ``model`` whose ``keras.layers.Conv2D`` layers are ``dl1.nn.layers.Conv2D``
    (no layout copies on PyTorch where their arguments allow it); same names, configs and weights. Any
    failure to clone returns ``model`` itself, which computes the same thing."""
    def clone(layer):
        if type(layer) is keras.layers.Conv2D:
            return Conv2D.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
        copy.set_weights(model.get_weights())
    except Exception:  # an unclonable custom layer: the plain model is just as right
        return model
    return copy


def count_fast_convs(model):
    """``(convolutions on dl1's copy-free path, all convolution-like layers)`` of a model."""
    fast = total = 0
    for layer in _walk(model):
        if isinstance(layer, keras.layers.Conv2D) or type(layer).__name__ in ("DepthwiseConv2D",
                                                                                "SeparableConv2D"):
            total += 1
            if isinstance(layer, Conv2D) and layer.on_fast_path():
                fast += 1
    return fast, total


def _walk(layer):
    for sub in getattr(layer, "layers", None) or []:
        yield sub
        yield from _walk(sub)
    if isinstance(layer, FrozenBase):
        yield layer.base
        yield from _walk(layer.base)
