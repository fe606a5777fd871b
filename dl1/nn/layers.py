"""Conv2D and MaxPooling2D that run without layout copies on Keras' PyTorch backend, and accept the
Keras 1 arguments (``Convolution2D(64, 3, 3, border_mode='same')``): one class serves both names.

Keras' torch backend turns every channels-last (NHWC) activation into a contiguous NCHW copy and
then into a channels-last-memory copy, and re-lays out the kernel, for every convolution. PyTorch can
convolve a *view* of the NHWC tensor directly (a permuted view is exactly its "channels_last memory
format"), so these layers do that: same weights, same NHWC inputs and outputs, same results, no
copies. That makes VGG16's forward pass ~50% faster on CPU. On other backends, and for arguments the
fast path does not cover, they are plain Keras layers.

The classes keep Keras' names because Keras 3 names a layer's group in a weights file after its class
(``conv2d``, ``conv2d_1``, ...): so weight files stay interchangeable with models built from
``keras.layers.Conv2D``, and ``isinstance(layer, keras.layers.Conv2D)`` holds.
"""
import warnings

import keras

from dl1.nn import kprivate
from dl1.nn.keras1 import _DENSE_RENAMES, Keras1Layer


def _fast_path_ok(layer):
    return (layer.data_format == "channels_last" and layer.rank == 2 and layer.groups == 1
            and tuple(layer.dilation_rate) == (1, 1) and kprivate.fast_torch_layers())


def _warn_channels_first(dim_ordering):
    if dim_ordering == "th":
        warnings.warn("dim_ordering='th' (channels first) is ignored: images here are channels-last",
                      stacklevel=3)


def keras1_conv_args(nb_row, nb_col, kwargs, border_mode=None, subsample=None, W_regularizer=None,
                     b_regularizer=None, init=None, dim_ordering=None):
    """Keras 1 convolution arguments in Keras 3 terms: ``(kernel_size, kwargs)``."""
    kernel = kwargs.pop("kernel_size", None)
    if kernel is None:
        kernel = nb_row if nb_col is None else (nb_row, nb_col)
    _warn_channels_first(dim_ordering)
    for new, value in (("padding", border_mode), ("strides", subsample), ("kernel_regularizer", W_regularizer),
                       ("bias_regularizer", b_regularizer), ("kernel_initializer", init)):
        if value is not None:
            kwargs[new] = value
    return kernel, kwargs


@keras.saving.register_keras_serializable(package="dl1")
class Conv2D(Keras1Layer, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` (channels-last) that skips layout copies on the PyTorch backend.

    Also the Keras 1 ``Convolution2D(nb_filter, nb_row, nb_col, border_mode=, subsample=, W_regularizer=,
    init=)``: two integer sizes after the filter count are the kernel's rows and columns, as in 2017 (in
    Keras 3 a third positional argument would be the strides; pass ``strides=`` by name).
    """

    _keras1_image = True

    def __init__(self, filters=None, nb_row=None, nb_col=None, *args, nb_filter=None, **kwargs):
        keras1 = {k: kwargs.pop(k) for k in ("border_mode", "subsample", "W_regularizer", "b_regularizer",
                                             "init", "dim_ordering") if k in kwargs}
        filters = nb_filter if filters is None else filters
        if nb_col is not None and not isinstance(nb_col, int):  # Keras 3 ``Conv2D(f, k, strides)``
            kwargs["strides"], nb_col = nb_col, None
        kernel, kwargs = keras1_conv_args(nb_row, nb_col, kwargs, **keras1)
        super().__init__(filters, kernel, *args, **kwargs)

    def call(self, inputs):
        if not _fast_path_ok(self):
            return super().call(inputs)
        import torch.nn.functional as F

        x = keras.ops.convert_to_tensor(inputs).permute(0, 3, 1, 2)  # NCHW view of NHWC memory: no copy
        kernel = self.kernel.value.permute(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw), a view
        bias = self.bias.value if self.use_bias else None
        if self.padding == "same":
            kh, kw = self.kernel_size
            if tuple(self.strides) == (1, 1) and kh % 2 and kw % 2:
                padding = (kh // 2, kw // 2)
            else:
                return super().call(inputs)
        else:
            padding = 0
        out = F.conv2d(x, kernel, bias, stride=tuple(self.strides), padding=padding)
        out = out.permute(0, 2, 3, 1)  # back to NHWC; contiguous when torch kept channels_last memory
        return self.activation(out) if self.activation is not None else out


@keras.saving.register_keras_serializable(package="dl1")
class MaxPooling2D(Keras1Layer, keras.layers.MaxPooling2D):
    """``keras.layers.MaxPooling2D`` (channels-last, 'valid') without layout copies on PyTorch."""

    _keras1_image = True

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", *args, border_mode=None,
                 dim_ordering=None, **kwargs):
        _warn_channels_first(dim_ordering)
        super().__init__(pool_size, strides, border_mode or padding, *args, **kwargs)

    def call(self, inputs):
        if not (self.data_format == "channels_last" and self.padding == "valid"
                and kprivate.fast_torch_layers()):
            return super().call(inputs)
        import torch.nn.functional as F

        x = keras.ops.convert_to_tensor(inputs).permute(0, 3, 1, 2)
        out = F.max_pool2d(x, kernel_size=tuple(self.pool_size), stride=tuple(self.strides))
        return out.permute(0, 2, 3, 1)


@keras.saving.register_keras_serializable(package="dl1")
class Dense(Keras1Layer, keras.layers.Dense):
    """``keras.layers.Dense(units)``; also the Keras 1 ``Dense(output_dim, init=, W_regularizer=,
    b_regularizer=, bias=, weights=[W, b], input_dim=, input_shape=, batch_input_shape=)``, e.g.
    ``Dense(4096, activation='relu', init='identity')``. As a first layer it takes the input shape
    without Keras' "Do not pass an `input_shape`" warning (see ``dl1.nn.keras1``)."""

    _keras1_renames = _DENSE_RENAMES


Convolution2D = Conv2D  # the Keras 1 name: ``type(layer) is Convolution2D`` holds for Vgg16's layers


def layer_class(layer_type):
    """The Keras class that ``layer_type`` stands for (our ``Conv2D`` -> ``keras.layers.Conv2D``, our
    ``Dense`` -> ``keras.layers.Dense``), so that type checks find layers however they were made."""
    if isinstance(layer_type, type) and issubclass(layer_type, Keras1Layer):
        return next(base for base in layer_type.__mro__
                    if base.__module__.startswith("keras.") and issubclass(base, keras.layers.Layer))
    if isinstance(layer_type, type) and issubclass(layer_type, keras.layers.Conv2D):
        return keras.layers.Conv2D
    if isinstance(layer_type, type) and issubclass(layer_type, keras.layers.MaxPooling2D):
        return keras.layers.MaxPooling2D
    return layer_type
