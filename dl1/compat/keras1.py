"""Keras 1 spellings of Keras' own classes, with today's meaning, for 2017 cells typed from the videos.

The names here are the classes the library builds with (Keras' own, and ``dl1.nn``'s: ``Convolution2D`` is
``dl1.nn.layers.Conv2D`` itself, so ``type(layer) is Convolution2D`` holds for ``Vgg16().model``'s layers, as
``type(layer) is Dense`` does for its dense layers, and ``BatchNormalization`` is Keras', so ``isinstance``
holds for ``Vgg16BN``'s). While the spellings are
installed (``dl1.compat.spellings.install()``: importing ``utils`` or ``vgg16`` does it) those classes also
take the Keras 1 arguments a 2017 cell uses: ``Dense(10, W_regularizer=l2(0.01), init='uniform')``,
``Convolution2D(64, 3, 3, border_mode='same')``, ``LSTM(100, dropout_W=0.2, dropout_U=0.2,
consume_less='gpu')``, ``BatchNormalization(mode=0)``, ... (``LAYERS``, one ``Spelling`` per class). They are
translated before Keras sees them, so ``get_config`` has only Keras 3 names and a saved model needs no dl1.

The first layer of a model may say ``input_shape=``, ``input_dim=`` (plus ``input_length=`` for sequences) or
``batch_input_shape=``, as in 2017: the shape is recorded without Keras' "Do not pass an `input_shape`"
warning, and a ``Sequential`` starts with the matching ``keras.Input`` (with the batch size for
``batch_input_shape``, which a stateful RNN needs). ``weights=[W, b]`` sets the initial weights once the
layer is built.

Only what Keras 3 cannot do at all is a class or a function of this module: ``Embedding`` with Keras 1's
``dropout=`` (whole word rows dropped), ``merge``/``Merge`` and ``Input``. A spelling with no Keras 3
equivalent raises ``Keras1Error`` (a ``DL1Error`` and a ``TypeError``) with one line saying what to write.
"""

import functools
import warnings
from dataclasses import dataclass, field

import keras

from dl1.io.errors import DL1Error
from dl1.nn.layers import GRU, LSTM, Conv2D, Dense, MaxPooling2D, SimpleRNN
from dl1.nn.model import Model, Sequential
from dl1.nn.optimizers import SGD, Adadelta, Adagrad, Adam, Adamax, Nadam, RMSprop

__all__ = ["Conv2D", "Convolution2D", "MaxPooling2D", "Dense", "Dropout", "Flatten", "Activation", "Reshape",
           "ZeroPadding2D", "BatchNormalization", "Embedding", "Conv1D", "Convolution1D", "MaxPooling1D",
           "SimpleRNN", "GRU", "LSTM", "TimeDistributed", "LeakyReLU", "PReLU", "GaussianNoise",
           "GaussianDropout", "Input", "merge", "Merge", "Keras1Error", "Model", "Sequential", "SGD", "Adadelta",
           "Adagrad", "Adam", "Adamax", "Nadam", "RMSprop", "LAYERS", "Spelling", "check_channels_last",
           "keras1_initializer", "translate"]

Convolution2D = Conv2D  # one class, both names: ``type(layer) is Convolution2D`` holds for Vgg16's layers
Dropout = keras.layers.Dropout
Flatten = keras.layers.Flatten
Activation = keras.layers.Activation
Reshape = keras.layers.Reshape
ZeroPadding2D = keras.layers.ZeroPadding2D
BatchNormalization = keras.layers.BatchNormalization
Conv1D = Convolution1D = keras.layers.Conv1D
MaxPooling1D = keras.layers.MaxPooling1D
TimeDistributed = keras.layers.TimeDistributed
LeakyReLU = keras.layers.LeakyReLU
PReLU = keras.layers.PReLU
GaussianNoise = keras.layers.GaussianNoise
GaussianDropout = keras.layers.GaussianDropout


class Keras1Error(DL1Error, TypeError):
    """A Keras 1 spelling that has no Keras 3 equivalent; the message says what to write instead."""


# Keras 1 initializer names that Keras 3 spells differently (same distributions: uniform is
# U(-0.05, 0.05), normal is N(0, 0.05), as in Keras 1)
_INITIALIZERS = {"uniform": "random_uniform", "normal": "random_normal", "zero": "zeros", "one": "ones"}
_INITIALIZER_ARGS = {"kernel_initializer", "recurrent_initializer", "bias_initializer", "embeddings_initializer",
                     "beta_initializer", "gamma_initializer", "moving_mean_initializer",
                     "moving_variance_initializer", "alpha_initializer"}


def keras1_initializer(init):
    """The Keras 3 name of a Keras 1 initializer name (``'uniform'`` -> ``'random_uniform'``)."""
    return _INITIALIZERS.get(init, init) if isinstance(init, str) else init


@dataclass(frozen=True)
class Spelling:
    """How one Keras class takes its Keras 1 arguments.

    ``renames``: old keyword -> new; ``dropped``: keywords that no longer mean anything; ``input``: how
    ``input_dim``/``input_length`` make a first layer's shape (``dim`` | ``sequence`` | ``embedding``);
    ``weights``: takes ``weights=[...]`` (False where Keras 3 takes it itself); ``image``: a 2-D image layer
    (a channels-first input shape is refused in one line); ``adapt``: a function ``(class name, args,
    kwargs) -> (args, kwargs)`` for what a rename cannot say (positional arguments, refused values)."""

    renames: dict = field(default_factory=dict)
    dropped: tuple = ()
    input: str = "dim"
    weights: bool = True
    image: bool = False
    adapt: object = None


def translate(name, spelling, kwargs):
    """Rename the Keras 1 keyword arguments of class ``name`` in ``kwargs`` (in place) and take out the
    first-layer arguments: returns ``(input shape, batch input shape, initial weights)``."""
    for old, new in spelling.renames.items():
        if old in kwargs:
            value = kwargs.pop(old)
            if new in kwargs:
                raise Keras1Error(f"{name}: give either {old}= (Keras 1) or {new}=, not both")
            kwargs[new] = value
    for key in spelling.dropped:
        kwargs.pop(key, None)
    for key in _INITIALIZER_ARGS & set(kwargs):
        kwargs[key] = keras1_initializer(kwargs[key])
    if kwargs.pop("dim_ordering", None) == "th":
        warnings.warn("dim_ordering='th' (channels first) is ignored: images are channels-last", stacklevel=4)
    batch = kwargs.pop("batch_input_shape", None)
    shape = kwargs.pop("input_shape", None)
    dim = kwargs.pop("input_dim", None) if spelling.input != "embedding" else None
    length = kwargs.pop("input_length", None)
    if shape is None and (dim is not None or length is not None):
        shape = {"sequence": (length, dim), "embedding": (length,)}.get(spelling.input, (dim,))
    if batch is not None:
        batch = tuple(batch)
        shape = batch[1:]
    weights = kwargs.pop("weights", None) if spelling.weights else None
    return (tuple(shape) if shape is not None else None), batch, weights


def check_channels_last(layer, input_shape):
    """Refuse a 2017 channels-first image shape such as ``(None, 3, 224, 224)``, which would otherwise fail
    layers later with a negative dimension."""
    shape = tuple(input_shape or ())
    if (len(shape) == 4 and shape[1] in (1, 3) and shape[-1] not in (1, 3)
            and min(shape[2] or 0, shape[3] or 0) >= 16):
        raise Keras1Error(f"{type(layer).__name__} got a channels-first input {shape[1:]} (Theano order): images "
                          f"are channels-last here, write input_shape=({shape[2]}, {shape[3]}, {shape[1]})")


def spelled_init(spelling):
    """``make`` for ``Patches.wrap(cls, '__init__', ...)``: the class's ``__init__`` taking ``spelling``."""
    from dl1.nn import kprivate

    def make(original):
        # a subclass (dl1's Conv2D) inheriting a spelled __init__ spells with its own, around Keras' one
        original = getattr(original, "keras1_original", original)

        @functools.wraps(original)
        def __init__(self, *args, **kwargs):
            name = type(self).__name__
            if spelling.adapt is not None:
                args, kwargs = spelling.adapt(name, args, kwargs)
            shape, batch, weights = translate(name, spelling, kwargs)
            original(self, *args, **kwargs)
            if shape is not None:
                kprivate.set_input_shape_argument(self, shape)
            if batch is not None:
                self.keras1_batch_input_shape = batch  # read by the spelled Sequential.add
            if weights is not None or spelling.image:
                _build_then(self, weights, spelling.image)

        __init__.keras1_original = original
        return _own_signature(__init__)

    return make


def _own_signature(init):
    """``init`` with the wrapper's own ``(self, *args, **kwargs)`` signature: Keras reads a layer's
    ``__init__`` signature to record its arguments, and the original's would not match the wrapper's."""
    del init.__wrapped__
    return init


def _build_then(layer, weights, image):
    """Wrap this layer's ``build``: refuse a channels-first image shape first, set ``weights`` after."""
    build = layer.build

    @functools.wraps(build)  # Keras maps shapes to build() by its parameter names: keep Keras' own
    def build_then(*args, **kwargs):
        if image:
            check_channels_last(layer, args[0] if args else kwargs.get("input_shape"))
        build(*args, **kwargs)
        if weights is not None:
            layer.set_weights(list(weights))

    layer.build = build_then


# ---- the spelling of each class ---------------------------------------------------------------------------
_DENSE = {"output_dim": "units", "init": "kernel_initializer", "W_regularizer": "kernel_regularizer",
          "b_regularizer": "bias_regularizer", "W_constraint": "kernel_constraint",
          "b_constraint": "bias_constraint", "bias": "use_bias"}
_CONV1D = {**{k: v for k, v in _DENSE.items() if k != "output_dim"}, "nb_filter": "filters",
           "filter_length": "kernel_size", "border_mode": "padding", "subsample_length": "strides"}
_CONV2D = {"border_mode": "padding", "subsample": "strides", "W_regularizer": "kernel_regularizer",
           "b_regularizer": "bias_regularizer", "init": "kernel_initializer"}
_RNN = {**_DENSE, "inner_init": "recurrent_initializer", "inner_activation": "recurrent_activation",
        "U_regularizer": "recurrent_regularizer", "U_constraint": "recurrent_constraint",
        "dropout_W": "dropout", "dropout_U": "recurrent_dropout"}


def _conv2d_positional(name, args, kwargs):
    """``Convolution2D(nb_filter, nb_row, nb_col)``: two integer sizes after the filter count are the
    kernel's rows and columns, as in 2017 (in Keras 3 a third positional argument would be the strides: a
    tuple there still is); ``nb_filter=``, ``nb_row=``, ``nb_col=`` by name too."""
    filters, rows, cols = (kwargs.pop(k, None) for k in ("nb_filter", "nb_row", "nb_col"))
    if filters is not None and not args:
        args = (filters,)
    if rows is not None and "kernel_size" not in kwargs and len(args) < 2:
        kwargs["kernel_size"] = rows if cols is None else (rows, cols)
    if len(args) >= 3 and isinstance(args[2], int) and "kernel_size" not in kwargs:
        args = (args[0], (args[1], args[2])) + tuple(args[3:])
    return args, kwargs


def _batchnorm_mode(name, args, kwargs):
    mode = kwargs.pop("mode", 0)
    if mode != 0:
        raise Keras1Error(f"BatchNormalization(mode={mode!r}) has no Keras 3 equivalent: only mode=0 (feature-wise) "
                          "exists; leave mode out (use LayerNormalization for per-sample normalisation)")
    return args, kwargs


def _recurrent(name, args, kwargs):
    forget = kwargs.pop("forget_bias_init", None)
    if forget is not None:
        if forget not in ("one", "ones"):
            raise Keras1Error(f"{name}(forget_bias_init={forget!r}): Keras 3 only has unit_forget_bias=True/False "
                              "(a forget-gate bias of one, or not)")
        kwargs.setdefault("unit_forget_bias", True)
    return args, kwargs


def _simple_rnn(name, args, kwargs):
    kwargs.pop("inner_activation", None)  # SimpleRNN never had a gate
    return _recurrent(name, args, kwargs)


LAYERS = {
    Conv2D: Spelling(_CONV2D, image=True, adapt=_conv2d_positional),
    MaxPooling2D: Spelling({"border_mode": "padding"}, image=True),
    Dense: Spelling(_DENSE),
    # Keras' own, for ``from keras.layers import Convolution2D, Dense, ...`` (dl1's subclasses above wrap
    # Keras' unspelled ``__init__``, so nothing is translated twice)
    keras.layers.Conv2D: Spelling(_CONV2D, image=True, adapt=_conv2d_positional),
    keras.layers.MaxPooling2D: Spelling({"border_mode": "padding"}, image=True),
    keras.layers.Dense: Spelling(_DENSE),
    keras.layers.Dropout: Spelling({"p": "rate"}),
    keras.layers.Flatten: Spelling(),
    keras.layers.Activation: Spelling(),
    keras.layers.Reshape: Spelling(),
    keras.layers.ZeroPadding2D: Spelling(image=True),
    keras.layers.BatchNormalization: Spelling({"beta_init": "beta_initializer", "gamma_init": "gamma_initializer"},
                                              adapt=_batchnorm_mode),
    keras.layers.Embedding: Spelling({"init": "embeddings_initializer", "W_regularizer": "embeddings_regularizer",
                                      "W_constraint": "embeddings_constraint"}, input="embedding", weights=False),
    keras.layers.Conv1D: Spelling(_CONV1D, input="sequence"),
    keras.layers.MaxPooling1D: Spelling({"pool_length": "pool_size", "stride": "strides", "border_mode": "padding"},
                                        input="sequence"),
    keras.layers.SimpleRNN: Spelling(_RNN, ("consume_less",), "sequence", adapt=_simple_rnn),
    keras.layers.GRU: Spelling(_RNN, ("consume_less",), "sequence", adapt=_recurrent),
    keras.layers.LSTM: Spelling(_RNN, ("consume_less",), "sequence", adapt=_recurrent),
    keras.layers.TimeDistributed: Spelling(weights=False),
    keras.layers.LeakyReLU: Spelling({"alpha": "negative_slope"}),
    keras.layers.PReLU: Spelling({"init": "alpha_initializer"}),
    keras.layers.GaussianNoise: Spelling({"sigma": "stddev"}),
    keras.layers.GaussianDropout: Spelling({"p": "rate"}),
}


def add_patches(patches):
    """Plan the Keras 1 ``__init__`` of every class in ``LAYERS`` on ``patches``."""
    for cls, spelling in LAYERS.items():
        patches.wrap(cls, "__init__", spelled_init(spelling))


# ---- what Keras 3 cannot do at all --------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="dl1")
class Embedding(keras.layers.Embedding):
    """``keras.layers.Embedding(input_dim, output_dim)`` and ``dropout=p`` with its Keras 1 meaning: while
    training, whole rows of the embedding matrix (word types, not single tokens) are zeroed with probability
    ``p`` for each batch and the rest scaled by ``1/(1-p)``. The other Keras 1 arguments (``input_length=``,
    ``W_regularizer=``, ``init=``, ``weights=[matrix]``, ``batch_input_shape=``) are those of Keras' class
    while the spellings are installed."""

    keras_class = keras.layers.Embedding

    def __init__(self, input_dim, output_dim, *args, dropout=0.0, **kwargs):
        if not 0 <= dropout < 1:
            raise Keras1Error(f"Embedding(dropout={dropout!r}): the dropout rate must be in [0, 1)")
        # Keras builds an Embedding given weights= inside its __init__; the dropout's seed generator must
        # exist before the layer is built, so the weights are set here, after it
        weights = kwargs.pop("weights", None)
        super().__init__(input_dim, output_dim, *args, **kwargs)
        self.dropout = float(dropout)
        if self.dropout:
            self.seed_generator = keras.random.SeedGenerator()
        if weights is not None:
            self.build()
            self.set_weights(weights if isinstance(weights, (list, tuple)) else [weights])

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
