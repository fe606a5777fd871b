"""Keras layers as this toolkit runs them: convolution and max pooling without layout copies, dense layers on
the backend's faster product, recurrent layers whose stateful form trains on every backend, and an LSTM that
runs its sequence in one fused kernel.

``Conv2D``/``MaxPooling2D`` hand channels-last 2-D work with plain settings to the backend's fast path
(``dl1.backend.current().conv2d``: on PyTorch a convolution of a *view* of the NHWC tensor instead of
Keras' two copies per call, ~50% faster VGG16 on CPU); ``Dense`` hands a 2-D product to ``backend.dense``
(on PyTorch oneDNN's, where autograd need not follow: the frozen fc layers of the recipe); for other
settings, other backends, or a Keras whose internals were not verified (``dl1.nn.kprivate``) they are Keras'
own layers. Same weights, same inputs and outputs, same results.

The classes keep Keras' names because Keras 3 names a layer's group in a weights file after its class
(``conv2d``, ``conv2d_1``, ...): weight files stay interchangeable with models built from
``keras.layers.Conv2D``, and ``isinstance(layer, keras.layers.Conv2D)`` holds. Each names its plain Keras
class in ``keras_class`` (``layer_class``), so an export or a type check can find it without walking
class hierarchies.
"""

import contextlib

import keras

from dl1 import backend
from dl1.nn import kprivate

_INITIALIZERS = ("kernel_initializer", "bias_initializer", "depthwise_initializer", "pointwise_initializer")


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
        relu = self.activation is keras.activations.relu  # the backend may fuse it into the convolution
        out = backend.current().conv2d(keras.ops.convert_to_tensor(inputs), self.kernel.value,
                                       self.bias.value if self.use_bias else None, self.strides, self.padding,
                                       relu=relu)
        return self.activation(out) if self.activation is not None and not relu else out


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


@keras.saving.register_keras_serializable(package="dl1")
class Dense(keras.layers.Dense):
    """``keras.layers.Dense`` whose 2-D products (with a ReLU, fused where it can) go to ``backend.dense``."""

    keras_class = keras.layers.Dense

    def on_fast_path(self, inputs):
        """True when ``call`` hands ``inputs`` to the backend: a plain float layer (no LoRA, not quantized)
        with no activation or a ReLU, on 2-D inputs."""
        return (len(inputs.shape) == 2 and not self.lora_enabled and not getattr(self, "quantization_mode", None)
                and self.activation in (keras.activations.relu, keras.activations.linear)
                and kprivate.fast_layers())

    def call(self, inputs, training=None):
        if not self.on_fast_path(inputs):
            return super().call(inputs, training=training)
        return backend.current().dense(keras.ops.convert_to_tensor(inputs), self.kernel.value,
                                       self.bias.value if self.use_bias else None,
                                       relu=self.activation is keras.activations.relu)


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
    """``keras.layers.LSTM`` whose stateful form trains on every backend, and whose whole sequence runs in the
    backend's fused kernel where it can (on PyTorch: torch.nn.LSTM's, on the CPU too), not step by step."""

    keras_class = keras.layers.LSTM

    def on_fast_path(self, mask, training=True):
        """True when ``inner_loop`` hands the sequence to ``backend.current().lstm``: Keras' own fused-path
        conditions (tanh and sigmoid, a bias, no mask, not unrolled, ``use_cudnn`` not False) on a backend
        that has one, and no recurrent dropout while ``training`` (Keras' loop draws it at every step; out of
        training there is none, and Keras' loop would compute what the fused kernel does, step by step: char-rnn's
        sampling, one prediction per character, is ~4x faster fused)."""
        cell = self.cell
        return (mask is None and self.use_cudnn in ("auto", True) and not (training and self.recurrent_dropout)
                and not self.unroll and cell.use_bias and cell.activation is keras.activations.tanh
                and cell.recurrent_activation is keras.activations.sigmoid and kprivate.fast_layers()
                and backend.current().supports_fast_lstm())

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not self.on_fast_path(mask, training):
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        if training and self.dropout:  # the input dropout, one mask over all time steps, as Keras applies it
            mask_row = self.cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * keras.ops.broadcast_to(keras.ops.expand_dims(mask_row, 1),
                                                           keras.ops.shape(sequences))
        cell = self.cell
        return backend.current().lstm(keras.ops.convert_to_tensor(sequences),
                                      keras.ops.convert_to_tensor(initial_state[0]),
                                      keras.ops.convert_to_tensor(initial_state[1]),
                                      cell.kernel.value, cell.recurrent_kernel.value, cell.bias.value,
                                      self.return_sequences, self.go_backwards)


@contextlib.contextmanager
def without_random_init(layers):
    """Inside the block, building ``layers`` fills their weights with zeros instead of random draws, for
    weights that are loaded right after (the draws were 40% of building VGG16 from a file: 0.26 s of 0.6).
    The layers keep their initializer settings (configs, copies and ``clone_model`` draw as before)."""
    saved = []
    for layer in layers:
        for attr in _INITIALIZERS:
            if getattr(layer, attr, None) is not None:
                saved.append((layer, attr, getattr(layer, attr)))
                setattr(layer, attr, keras.initializers.Zeros())
    try:
        yield
    finally:
        for layer, attr, value in saved:
            setattr(layer, attr, value)


def layer_class(layer_type):
    """The plain Keras class that ``layer_type`` stands for (``dl1.nn.layers.Conv2D`` ->
    ``keras.layers.Conv2D``), so that type checks find layers however they were made."""
    return getattr(layer_type, "keras_class", layer_type)
