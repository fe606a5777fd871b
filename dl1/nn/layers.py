"""Keras layers as this toolkit runs them: convolution and max pooling without layout copies, and recurrent
layers whose stateful form trains on every backend.

``Conv2D``/``MaxPooling2D`` hand channels-last 2-D work with plain settings to the backend's fast path
(``dl1.backend.current().conv2d``: on PyTorch a convolution of a *view* of the NHWC tensor instead of
Keras' two copies per call, ~50% faster VGG16 on CPU); for other settings, other backends, or a Keras
whose internals were not verified (``dl1.nn.kprivate``) they are Keras' own layers. Same weights, same
inputs and outputs, same results.

The classes keep Keras' names because Keras 3 names a layer's group in a weights file after its class
(``conv2d``, ``conv2d_1``, ...): weight files stay interchangeable with models built from
``keras.layers.Conv2D``, and ``isinstance(layer, keras.layers.Conv2D)`` holds. Each names its plain Keras
class in ``keras_class`` (``layer_class``), so an export or a type check can find it without walking
class hierarchies.
"""

import keras

from dl1 import backend
from dl1.nn import kprivate


@keras.saving.register_keras_serializable(package="dl1")
class Conv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` that runs on the backend's copy-free path where it can (see the module)."""

    keras_class = keras.layers.Conv2D

    def on_fast_path(self):
        """True when ``call`` goes through the backend's fast convolution."""
        return (self.data_format == "channels_last" and self.rank == 2 and self.groups == 1
                and tuple(self.dilation_rate) == (1, 1) and kprivate.fast_layers()
                and backend.current().supports_fast_conv2d(self.kernel_size, self.strides, self.padding))

    def call(self, inputs):
        if not self.on_fast_path():
            return super().call(inputs)
        out = backend.current().conv2d(keras.ops.convert_to_tensor(inputs), self.kernel.value,
                                       self.bias.value if self.use_bias else None, self.strides, self.padding)
        return self.activation(out) if self.activation is not None else out


@keras.saving.register_keras_serializable(package="dl1")
class MaxPooling2D(keras.layers.MaxPooling2D):
    """``keras.layers.MaxPooling2D`` (channels-last, 'valid') on the backend's copy-free path."""

    keras_class = keras.layers.MaxPooling2D

    def on_fast_path(self):
        return (self.data_format == "channels_last" and kprivate.fast_layers()
                and backend.current().supports_fast_max_pool2d(self.padding))

    def call(self, inputs):
        if not self.on_fast_path():
            return super().call(inputs)
        return backend.current().max_pool2d(keras.ops.convert_to_tensor(inputs), self.pool_size, self.strides)


class _StatefulStart:
    """A stateful recurrent layer starts each call from the state the backend asks for (on PyTorch, copies
    of the state variables; see ``dl1.backend.torch_impl``)."""

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if initial_state is None and self.stateful:
            initial_state = backend.current().stateful_initial_state(self)
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)


@keras.saving.register_keras_serializable(package="dl1")
class SimpleRNN(_StatefulStart, keras.layers.SimpleRNN):
    """``keras.layers.SimpleRNN`` whose stateful form trains on every backend."""

    keras_class = keras.layers.SimpleRNN


@keras.saving.register_keras_serializable(package="dl1")
class GRU(_StatefulStart, keras.layers.GRU):
    """``keras.layers.GRU`` whose stateful form trains on every backend."""

    keras_class = keras.layers.GRU


@keras.saving.register_keras_serializable(package="dl1")
class LSTM(_StatefulStart, keras.layers.LSTM):
    """``keras.layers.LSTM`` whose stateful form trains on every backend."""

    keras_class = keras.layers.LSTM


def layer_class(layer_type):
    """The plain Keras class that ``layer_type`` stands for (``dl1.nn.layers.Conv2D`` ->
    ``keras.layers.Conv2D``), so that type checks find layers however they were made."""
    return getattr(layer_type, "keras_class", layer_type)
