"""Keras 1 argument spellings on Keras 3 layers, with today's meaning.

Each class here is a subclass of the Keras 3 class of the same name (``isinstance`` holds), takes the
Keras 3 arguments as well as the Keras 1 ones a 2017 cell uses (``Dense(10, W_regularizer=l2(0.01),
init='uniform')``, ``LSTM(100, dropout_W=0.2, dropout_U=0.2, consume_less='gpu')``, ...), and
serialises with the Keras 3 configuration (``get_config`` has only Keras 3 names), registered under
the package ``dl1``.

The first layer of a model may say ``input_shape=``, ``input_dim=`` (plus ``input_length=`` for
sequences) or ``batch_input_shape=``, as in 2017. These layers take them without passing them to
Keras (so Keras' "Do not pass an `input_shape`" warning is not triggered) and record the shape;
``dl1.nn.model.Sequential`` then starts the model with the matching ``keras.Input`` (with the batch
size for ``batch_input_shape``, which a stateful RNN needs). A plain ``keras.Sequential`` still gets
the shape without the batch size.

A spelling with no Keras 3 equivalent raises ``Keras1Error`` (a ``DL1Error`` and a ``TypeError``) with
one line saying what to write instead.
"""

import warnings

import keras

from dl1.io.errors import DL1Error

__all__ = ["Keras1Error", "Keras1Layer", "keras1_initializer", "Dropout", "Flatten", "Activation", "Reshape",
           "ZeroPadding2D", "BatchNormalization", "Embedding", "Conv1D", "Convolution1D", "MaxPooling1D",
           "SimpleRNN", "GRU", "LSTM", "TimeDistributed", "LeakyReLU", "PReLU", "GaussianNoise", "GaussianDropout",
           "Input", "merge", "Merge", "check_channels_last"]


class Keras1Error(DL1Error, TypeError):
    """A Keras 1 spelling that has no Keras 3 equivalent; the message says what to write instead."""


# Keras 1 initializer names that Keras 3 spells differently (same distributions: uniform is
# U(-0.05, 0.05), normal is N(0, 0.05), as in Keras 1)
_INITIALIZERS = {"uniform": "random_uniform", "normal": "random_normal", "zero": "zeros", "one": "ones"}


def keras1_initializer(init):
    """The Keras 3 name of a Keras 1 initializer name (``'uniform'`` -> ``'random_uniform'``)."""
    return _INITIALIZERS.get(init, init) if isinstance(init, str) else init


_INITIALIZER_ARGS = {"kernel_initializer", "recurrent_initializer", "bias_initializer", "embeddings_initializer",
                     "beta_initializer", "gamma_initializer", "moving_mean_initializer",
                     "moving_variance_initializer", "alpha_initializer"}


def translate(cls, kwargs):
    """Rename ``cls``'s Keras 1 keyword arguments to Keras 3 ones (in place) and return the input shape
    arguments as ``(shape, batch_shape, weights)``, taken out of ``kwargs``."""
    for old, new in cls._keras1_renames.items():
        if old in kwargs:
            value = kwargs.pop(old)
            if new in kwargs:
                raise Keras1Error(f"{cls.__name__}: give either {old}= (Keras 1) or {new}=, not both")
            kwargs[new] = value
    for key in cls._keras1_dropped:
        kwargs.pop(key, None)
    for key in _INITIALIZER_ARGS & set(kwargs):
        kwargs[key] = keras1_initializer(kwargs[key])
    if kwargs.pop("dim_ordering", None) == "th":  # as dl1.nn.layers.Conv2D does
        warnings.warn("dim_ordering='th' (channels first) is ignored: images are channels-last", stacklevel=3)
    batch = kwargs.pop("batch_input_shape", None)
    shape = kwargs.pop("input_shape", None)
    dim = kwargs.pop("input_dim", None) if cls._keras1_input != "embedding" else None
    length = kwargs.pop("input_length", None)
    if shape is None and (dim is not None or length is not None):
        if cls._keras1_input == "sequence":
            shape = (length, dim)
        elif cls._keras1_input == "embedding":
            shape = (length,)
        else:
            shape = (dim,)
    if batch is not None:
        batch = tuple(batch)
        shape = batch[1:]
    weights = kwargs.pop("weights", None) if cls._keras1_weights else None
    return (tuple(shape) if shape is not None else None), batch, weights


def check_channels_last(layer, input_shape):
    """Refuse a 2017 channels-first image shape such as ``(None, 3, 224, 224)``, which would otherwise fail
    layers later with a negative dimension."""
    shape = tuple(input_shape or ())
    if (len(shape) == 4 and shape[1] in (1, 3) and shape[-1] not in (1, 3)
            and min(shape[2] or 0, shape[3] or 0) >= 16):
        raise Keras1Error(f"{type(layer).__name__} got a channels-first input {shape[1:]} (Theano order): images "
                          f"are channels-last here, write input_shape=({shape[2]}, {shape[3]}, {shape[1]})")


class Keras1Layer:
    """Mixin for a Keras 3 layer class: Keras 1 keyword arguments (``_keras1_renames``, old -> new),
    arguments that no longer mean anything (``_keras1_dropped``), the first-layer input shape arguments
    and Keras 1 ``weights=[...]`` (set once the layer is built)."""

    _keras1_renames = {}
    _keras1_dropped = ()
    _keras1_input = "dim"  # how input_dim/input_length make the shape: dim | sequence | embedding
    _keras1_weights = True  # take weights= (initial weights) here; False where Keras 3 takes it itself

    def __init__(self, *args, **kwargs):
        shape, batch, weights = translate(type(self), kwargs)
        super().__init__(*args, **kwargs)
        if shape is not None:
            self._input_shape_arg = shape  # what keras.Sequential.add looks for
        if batch is not None:
            self._batch_input_shape_arg = batch  # what dl1.nn.model.Sequential.add looks for
        if weights is not None:
            self._keras1_initial_weights = tuple(weights)

    _keras1_image = False  # a 2-D image layer: refuse a channels-first (3, H, W) input in one line

    def build(self, input_shape=None):  # Keras maps shapes to build() by its parameter names: keep Keras' own
        if self._keras1_image:
            check_channels_last(self, input_shape)
        super().build(input_shape)
        self._set_initial_weights()

    def _set_initial_weights(self):
        weights = getattr(self, "_keras1_initial_weights", None)
        if weights is not None:
            self._keras1_initial_weights = None
            self.set_weights(list(weights))


_DENSE_RENAMES = {"output_dim": "units", "init": "kernel_initializer", "W_regularizer": "kernel_regularizer",
                  "b_regularizer": "bias_regularizer", "W_constraint": "kernel_constraint",
                  "b_constraint": "bias_constraint", "bias": "use_bias"}


def _register(cls):
    return keras.saving.register_keras_serializable(package="dl1")(cls)


@_register
class Dropout(Keras1Layer, keras.layers.Dropout):
    """``Dropout(p)`` (Keras 1 ``p=``) = ``keras.layers.Dropout(rate)``."""

    _keras1_renames = {"p": "rate"}


@_register
class Flatten(Keras1Layer, keras.layers.Flatten):
    """``keras.layers.Flatten`` that takes ``input_shape=``/``batch_input_shape=`` as a first layer."""


@_register
class Activation(Keras1Layer, keras.layers.Activation):
    """``keras.layers.Activation`` that takes ``input_shape=``/``batch_input_shape=`` as a first layer."""


@_register
class Reshape(Keras1Layer, keras.layers.Reshape):
    """``keras.layers.Reshape(target_shape)`` that takes ``input_shape=`` as a first layer."""


@_register
class ZeroPadding2D(Keras1Layer, keras.layers.ZeroPadding2D):
    """``keras.layers.ZeroPadding2D`` (channels-last) that takes ``input_shape=`` and ``dim_ordering='tf'``."""

    _keras1_image = True


@_register
class BatchNormalization(Keras1Layer, keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization``; Keras 1 ``mode=0`` (the default, feature-wise) is today's
    layer. ``mode=1`` (per-sample) and ``mode=2`` (batch statistics at test time too) are refused.
    ``axis`` keeps today's meaning: images are channels-last here, so the channel axis is -1 (2017
    channels-first notebooks wrote ``axis=1``)."""

    _keras1_renames = {"beta_init": "beta_initializer", "gamma_init": "gamma_initializer"}

    def __init__(self, *args, mode=0, **kwargs):
        if mode != 0:
            raise Keras1Error(f"BatchNormalization(mode={mode!r}) has no Keras 3 equivalent: only mode=0 "
                              "(feature-wise) exists; leave mode out (use LayerNormalization for per-sample "
                              "normalisation)")
        super().__init__(*args, **kwargs)


@_register
class Embedding(Keras1Layer, keras.layers.Embedding):
    """``keras.layers.Embedding(input_dim, output_dim)`` with the Keras 1 arguments: ``input_length=``
    (the first layer's input shape ``(input_length,)``), ``W_regularizer=``, ``init=``,
    ``weights=[matrix]``, ``batch_input_shape=``, and ``dropout=p`` with its Keras 1 meaning: while
    training, whole rows of the embedding matrix (word types, not single tokens) are zeroed with
    probability ``p`` for each batch and the rest scaled by ``1/(1-p)``.
    """

    _keras1_renames = {"init": "embeddings_initializer", "W_regularizer": "embeddings_regularizer",
                       "W_constraint": "embeddings_constraint"}
    _keras1_input = "embedding"
    _keras1_weights = False  # keras.layers.Embedding takes weights= itself

    def __init__(self, input_dim, output_dim, *args, dropout=0.0, **kwargs):
        super().__init__(input_dim, output_dim, *args, **kwargs)
        if not 0 <= dropout < 1:
            raise Keras1Error(f"Embedding(dropout={dropout!r}): the dropout rate must be in [0, 1)")
        self.dropout = float(dropout)
        if self.dropout:
            self.seed_generator = keras.random.SeedGenerator()

    def call(self, inputs, training=None):
        if not (training and self.dropout):
            return super().call(inputs)
        keep = 1.0 - self.dropout
        rows = keras.random.uniform((self.input_dim, 1), seed=self.seed_generator) < keep
        matrix = self.embeddings * keras.ops.cast(rows, self.embeddings.dtype) / keep
        if inputs.dtype not in ("int32", "int64"):
            inputs = keras.ops.cast(inputs, "int32")
        return keras.ops.cast(keras.ops.take(matrix, inputs, axis=0), self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        if self.dropout:
            config["dropout"] = self.dropout
        return config


_CONV1D_RENAMES = dict(_DENSE_RENAMES, nb_filter="filters", filter_length="kernel_size", border_mode="padding",
                       subsample_length="strides")
del _CONV1D_RENAMES["output_dim"]


@_register
class Conv1D(Keras1Layer, keras.layers.Conv1D):
    """``keras.layers.Conv1D(filters, kernel_size)``; also the Keras 1 ``Convolution1D(nb_filter,
    filter_length, border_mode=, subsample_length=, init=, W_regularizer=, input_dim=, input_length=)``."""

    _keras1_renames = _CONV1D_RENAMES
    _keras1_input = "sequence"


Convolution1D = Conv1D  # one class, both names


@_register
class MaxPooling1D(Keras1Layer, keras.layers.MaxPooling1D):
    """``keras.layers.MaxPooling1D(pool_size)``; also Keras 1 ``pool_length=``, ``stride=``, ``border_mode=``."""

    _keras1_renames = {"pool_length": "pool_size", "stride": "strides", "border_mode": "padding"}
    _keras1_input = "sequence"


_RNN_RENAMES = dict(_DENSE_RENAMES, inner_init="recurrent_initializer", inner_activation="recurrent_activation",
                    U_regularizer="recurrent_regularizer", U_constraint="recurrent_constraint",
                    dropout_W="dropout", dropout_U="recurrent_dropout")


class _Keras1RNN(Keras1Layer):
    """The Keras 1 recurrent-layer arguments: ``output_dim``, ``init``, ``inner_init``, ``inner_activation``,
    ``W/U/b_regularizer``, ``dropout_W`` (-> ``dropout``), ``dropout_U`` (-> ``recurrent_dropout``);
    ``consume_less`` (how Theano should lay out the computation) no longer means anything and is
    dropped. ``stateful=True`` needs the batch size: give ``batch_input_shape=`` on the first layer."""

    _keras1_renames = _RNN_RENAMES
    _keras1_dropped = ("consume_less",)
    _keras1_input = "sequence"

    def __init__(self, *args, forget_bias_init=None, **kwargs):
        if forget_bias_init is not None:
            if forget_bias_init not in ("one", "ones"):
                raise Keras1Error(f"{type(self).__name__}(forget_bias_init={forget_bias_init!r}): Keras 3 only "
                                  "has unit_forget_bias=True/False (a forget-gate bias of one, or not)")
            kwargs.setdefault("unit_forget_bias", True)
        super().__init__(*args, **kwargs)

    def build(self, sequences_shape, initial_state_shape=None):
        keras.layers.RNN.build(self, sequences_shape, initial_state_shape)
        self._set_initial_weights()

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if initial_state is None and self.stateful and keras.backend.backend() == "torch":
            # Keras 3.15's fused LSTM/GRU path on torch reads the state variables' storage directly and
            # then assigns the new state into it, which breaks backward ("modified by an inplace
            # operation"); start from copies instead (same values, so the same results).
            initial_state = [keras.ops.copy(state) for state in self.states]
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)


@_register
class SimpleRNN(_Keras1RNN, keras.layers.SimpleRNN):
    __doc__ = "``keras.layers.SimpleRNN`` with " + _Keras1RNN.__doc__.split(": ", 1)[1]

    def __init__(self, *args, **kwargs):
        kwargs.pop("inner_activation", None)  # SimpleRNN never had a gate
        super().__init__(*args, **kwargs)


@_register
class GRU(_Keras1RNN, keras.layers.GRU):
    __doc__ = "``keras.layers.GRU`` with " + _Keras1RNN.__doc__.split(": ", 1)[1]


@_register
class LSTM(_Keras1RNN, keras.layers.LSTM):
    __doc__ = "``keras.layers.LSTM`` with " + _Keras1RNN.__doc__.split(": ", 1)[1]


@_register
class TimeDistributed(Keras1Layer, keras.layers.TimeDistributed):
    """``keras.layers.TimeDistributed(layer)`` that takes ``input_shape=``/``batch_input_shape=``."""

    _keras1_weights = False


@_register
class LeakyReLU(Keras1Layer, keras.layers.LeakyReLU):
    """``keras.layers.LeakyReLU(negative_slope)``; also Keras 1 ``alpha=``."""

    _keras1_renames = {"alpha": "negative_slope"}


@_register
class PReLU(Keras1Layer, keras.layers.PReLU):
    """``keras.layers.PReLU``; also Keras 1 ``init=``."""

    _keras1_renames = {"init": "alpha_initializer"}


@_register
class GaussianNoise(Keras1Layer, keras.layers.GaussianNoise):
    """``keras.layers.GaussianNoise(stddev)``; also Keras 1 ``sigma=``."""

    _keras1_renames = {"sigma": "stddev"}


@_register
class GaussianDropout(Keras1Layer, keras.layers.GaussianDropout):
    """``keras.layers.GaussianDropout(rate)``; also Keras 1 ``p=``."""

    _keras1_renames = {"p": "rate"}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None,
          **kwargs):
    """``keras.Input`` with the Keras 1 arguments (``Input(shape=(1,), dtype='int64')``,
    ``Input(batch_shape=(bs, 8))``); the rest is Keras 3's."""
    return keras.Input(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse, batch_shape=batch_shape,
                       name=name, tensor=tensor, **kwargs)


_MODES = ("sum", "mul", "ave", "max", "concat", "dot", "cos")


def _merge_layer(mode, concat_axis, dot_axes, output_shape, name):
    if callable(mode):
        return keras.layers.Lambda(mode, output_shape=output_shape, name=name)
    if mode == "sum":
        return keras.layers.Add(name=name)
    if mode == "mul":
        return keras.layers.Multiply(name=name)
    if mode == "ave":
        return keras.layers.Average(name=name)
    if mode == "max":
        return keras.layers.Maximum(name=name)
    if mode == "concat":
        return keras.layers.Concatenate(axis=concat_axis, name=name)
    if mode in ("dot", "cos"):
        axes = list(dot_axes) if isinstance(dot_axes, (list, tuple)) else dot_axes
        return keras.layers.Dot(axes=axes, normalize=mode == "cos", name=name)
    raise Keras1Error(f"merge(mode={mode!r}): the modes are {', '.join(map(repr, _MODES))} or a function")


def merge(inputs, mode="sum", concat_axis=-1, dot_axes=-1, output_shape=None, name=None, **ignored):
    """Keras 1 ``merge([a, b], mode=...)`` on tensors, with Keras 3's merge layers: ``'sum'`` -> ``Add``,
    ``'mul'`` -> ``Multiply``, ``'ave'`` -> ``Average``, ``'max'`` -> ``Maximum``, ``'concat'`` ->
    ``Concatenate(axis=concat_axis)``, ``'dot'`` -> ``Dot(axes=dot_axes)`` (on two ``(None, 1, k)``
    embeddings: ``(None, 1, 1)``, as in 2017), ``'cos'`` -> ``Dot(axes=dot_axes, normalize=True)``, a
    function -> ``Lambda(mode, output_shape=)``. Returns the merged tensor."""
    if not isinstance(inputs, (list, tuple)) or any(isinstance(x, keras.layers.Layer) for x in inputs):
        raise Keras1Error("merge() takes a list of tensors (layer outputs), e.g. merge([u, m], mode='dot'); "
                          "to join models, merge their outputs: merge([m1.output, m2.output], ...)")
    return _merge_layer(mode, concat_axis, dot_axes, output_shape, name)(list(inputs))


def Merge(layers=None, mode="sum", concat_axis=-1, dot_axes=-1, output_shape=None, name=None, **ignored):
    """Keras 1 ``Merge(mode=...)``: the Keras 3 merge layer for ``mode`` (see ``merge``), to be called on a
    list of tensors, as lesson 5 does (``Merge(mode='concat')(outputs)``). ``Merge([model1, model2])``
    as the first layer of a Sequential (branches merged inside a Sequential) does not exist in Keras 3:
    that raises ``Keras1Error`` saying to build a functional ``Model`` instead; ``Merge([t1, t2])`` of
    tensors returns the merged tensor."""
    if layers is not None:
        if any(isinstance(x, keras.layers.Layer) for x in layers):
            raise Keras1Error("Merge([model1, model2], ...) inside a Sequential is gone in Keras 3: build a "
                              "functional model, x = merge([model1.output, model2.output], mode=...); "
                              "Model([model1.input, model2.input], x)")
        return merge(layers, mode, concat_axis, dot_axes, output_shape, name)
    return _merge_layer(mode, concat_axis, dot_axes, output_shape, name)
