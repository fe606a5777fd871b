"""Keras 3 with the 2017 spellings: models, optimizers and a few layers that accept Keras 1 arguments.

- ``Sequential``/``Model``: ``save_weights('ft1.h5')`` and ``load_weights`` of such a file work (plain
  Keras 3 insists on ``.weights.h5``), as does loading the Keras-2 format ImageNet files by layer name;
  ``fit(nb_epoch=...)``, ``fit_generator``, ``predict_generator``, ``evaluate_generator``,
  ``predict_classes`` and ``predict_proba`` are back. Weight files are written to a temporary name and
  renamed, so a crash never leaves a truncated file under the real name.
- ``SGD``/``RMSprop``/``Adam``/...: take ``lr=`` and ``decay=``, and ``opt.lr`` reads and *sets* the
  live learning rate (in 2017, assigning ``model.optimizer.lr`` after training silently did nothing).
- ``Convolution2D(64, 3, 3, border_mode='same', subsample=(1, 1))`` means what it meant in Keras 1.
"""

import math
import os
import shutil
import tempfile
import warnings

import numpy as np

from .backend import configure_backend

configure_backend()
import keras  # noqa: E402

from . import fastconv  # noqa: E402
from .atomic import atomic_path  # noqa: E402
from .weightfiles import is_legacy_h5, load_legacy_h5  # noqa: E402

# Keras 3 warns on every `Dense(..., input_shape=...)`, the idiom of every 2017 notebook.
warnings.filterwarnings("ignore", message=r"Do not pass an `input_shape`")
warnings.filterwarnings("ignore", message=r"Your `PyDataset` class should call")
# Loading weights into a model whose optimizer has not run yet: the optimizer state is rebuilt on the
# first step anyway (checkpoints carry it separately), so Keras' warning only confuses learners.
warnings.filterwarnings("ignore", message=r"Skipping variable loading for optimizer")


# ---- optimizers --------------------------------------------------------------------------------------
def _compat_optimizer(base):
    """A subclass of Keras optimizer ``base`` that accepts ``lr``/``decay`` and exposes ``.lr``."""

    class Optimizer(base):
        def __init__(self, learning_rate=None, *args, lr=None, decay=None, **kwargs):
            if lr is not None:
                learning_rate = lr
            if learning_rate is None:
                learning_rate = _default_learning_rate(base)
            if isinstance(learning_rate, (int, np.floating, np.integer)):
                learning_rate = float(learning_rate)
            if decay:  # Keras 1 time-based decay: lr / (1 + decay * iterations)
                learning_rate = keras.optimizers.schedules.InverseTimeDecay(
                    float(learning_rate), decay_steps=1, decay_rate=float(decay))
            super().__init__(learning_rate, *args, **kwargs)

        @property
        def lr(self):
            """The learning-rate variable (``K.set_value(opt.lr, 0.01)`` and ``opt.lr = 0.01`` both work)."""
            return self._learning_rate

        @lr.setter
        def lr(self, value):
            self.learning_rate = float(value) if isinstance(value, (int, float, np.number)) else value

    Optimizer.__name__ = Optimizer.__qualname__ = base.__name__
    Optimizer.__doc__ = f"Keras {base.__name__}, also accepting the Keras 1 ``lr=`` and ``decay=`` arguments."
    return keras.saving.register_keras_serializable(package="dl1", name=base.__name__)(Optimizer)


def _default_learning_rate(base):
    import inspect

    return float(inspect.signature(base.__init__).parameters["learning_rate"].default)


SGD = _compat_optimizer(keras.optimizers.SGD)
RMSprop = _compat_optimizer(keras.optimizers.RMSprop)
Adam = _compat_optimizer(keras.optimizers.Adam)
Adagrad = _compat_optimizer(keras.optimizers.Adagrad)
Adadelta = _compat_optimizer(keras.optimizers.Adadelta)
Adamax = _compat_optimizer(keras.optimizers.Adamax)
Nadam = _compat_optimizer(keras.optimizers.Nadam)
_BY_NAME = {c.__name__.lower(): c for c in (SGD, RMSprop, Adam, Adagrad, Adadelta, Adamax, Nadam)}


def get_optimizer(optimizer):
    """Our optimizer for a name like ``'adam'``; instances are returned unchanged."""
    if isinstance(optimizer, str) and optimizer.lower() in _BY_NAME:
        return _BY_NAME[optimizer.lower()]()
    return optimizer


def sync_optimizer(model):
    """Let a compiled model train after ``layer.trainable`` changed, as the lessons do without
    recompiling. Keras 3's optimizer refuses variables it was not built with; when the trainable set
    differs, its per-variable state (e.g. Adam's moments) is dropped and rebuilt on the next step, while
    the optimizer object, its learning rate and its step count stay (what recompiling did in Keras 1).
    Returns True when it had to rebuild."""
    opt = getattr(model, "optimizer", None)
    built_for = getattr(opt, "_trainable_variables", None)
    if opt is None or not getattr(opt, "built", False) or built_for is None:
        return False
    if [id(v) for v in built_for] == [id(v) for v in model.trainable_variables]:
        return False
    for o in (opt, getattr(opt, "inner_optimizer", None)):  # a LossScaleOptimizer wraps another
        if o is None:
            continue
        keep = {id(v) for v in (getattr(o, "_iterations", None), getattr(o, "_learning_rate", None))
                if v is not None}
        if hasattr(o, "step_counter"):
            keep |= {id(o.step_counter), id(o.dynamic_scale)}
        o._variables[:] = [v for v in o._variables if id(v) in keep]
        o._trainable_variables = []
        o._trainable_variables_indices = {}
        o.built = False
    return True


@keras.saving.register_keras_serializable(package="dl1")
class LossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Keras' loss scaling for float16 training, with the wrapped optimizer's ``lr`` reachable."""

    @property
    def lr(self):
        return self.inner_optimizer.lr

    @lr.setter
    def lr(self, value):
        self.inner_optimizer.lr = value


def mixed_precision_policy(setting):
    """The Keras dtype policy for ``setting``: False/None -> None (float32); True -> 'mixed_bfloat16'
    where the GPU (or CPU) computes bfloat16, else 'mixed_float16'; 'auto' -> like True on a CUDA GPU,
    None otherwise; a policy name is returned as it is."""
    if setting in (None, False):
        return None
    if isinstance(setting, str) and setting not in ("auto",):
        return setting
    import torch

    on_gpu = torch.cuda.is_available()
    if setting == "auto" and not on_gpu:
        return None
    if on_gpu and not torch.cuda.is_bf16_supported():
        return "mixed_float16"  # e.g. the T4 of a g4dn instance
    return "mixed_bfloat16"


# ---- models ------------------------------------------------------------------------------------------
class CompatModelMixin:
    """The 2017 model methods on top of a Keras 3 model (see the module docstring)."""

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, *args, **kwargs):
        return super().compile(get_optimizer(optimizer), loss, *args, metrics=metrics, **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Save weights under any name (``ft1.h5`` as in the course), atomically."""
        filepath = os.fspath(filepath)
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath} exists and overwrite=False")
        folder = os.path.dirname(os.path.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        with atomic_path(filepath, suffix=".weights.h5") as tmp:
            super().save_weights(tmp, **kwargs)

    def load_weights(self, filepath, skip_mismatch=False, by_name=None, **kwargs):
        """Load weights saved by ``save_weights`` (any name) or a Keras-2 ``.h5`` file such as Keras'
        own ImageNet weights (matched by layer name, else by order)."""
        filepath = os.fspath(filepath)
        if not os.path.isfile(filepath):
            from .errors import WeightsError

            raise WeightsError(f"weights file not found: {filepath}")
        if is_legacy_h5(filepath):
            return load_legacy_h5(self, filepath, skip_mismatch=skip_mismatch)
        if filepath.endswith((".weights.h5", ".keras")):
            return super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
        with tempfile.TemporaryDirectory(prefix="dl1-weights-") as tmp:
            link = os.path.join(tmp, "w.weights.h5")
            try:
                os.symlink(os.path.abspath(filepath), link)
            except OSError:
                shutil.copyfile(filepath, link)
            return super().load_weights(link, skip_mismatch=skip_mismatch, **kwargs)

    def fit(self, x=None, y=None, batch_size=None, epochs=None, *args, nb_epoch=None, **kwargs):
        epochs = _epochs(epochs, nb_epoch)
        if isinstance(x, keras.utils.PyDataset):
            batch_size = None
        sync_optimizer(self)
        return super().fit(x, y, batch_size, epochs, *args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        sync_optimizer(self)
        return super().train_on_batch(*args, **kwargs)

    def fit_generator(self, generator, samples_per_epoch=None, nb_epoch=None, verbose=1, callbacks=None,
                      validation_data=None, nb_val_samples=None, steps_per_epoch=None, epochs=None,
                      validation_steps=None, initial_epoch=0, **ignored):
        """Keras 1/2 ``fit_generator``: a sample count or a step count per epoch, both accepted."""
        steps_per_epoch = _steps(generator, samples_per_epoch, steps_per_epoch)
        validation_steps = _steps(validation_data, nb_val_samples, validation_steps)
        return self.fit(generator, epochs=_epochs(epochs, nb_epoch), verbose=verbose, callbacks=callbacks,
                        validation_data=validation_data, steps_per_epoch=steps_per_epoch,
                        validation_steps=validation_steps, initial_epoch=initial_epoch)

    def predict_generator(self, generator, val_samples=None, steps=None, verbose=0, **ignored):
        return self.predict(generator, steps=_steps(generator, val_samples, steps), verbose=verbose)

    def evaluate_generator(self, generator, val_samples=None, steps=None, verbose=0, **ignored):
        return self.evaluate(generator, steps=_steps(generator, val_samples, steps), verbose=verbose)

    def predict_classes(self, x, batch_size=32, verbose=0):
        """Class indices (Keras 1/2 ``Sequential.predict_classes``)."""
        probs = self.predict(x, batch_size=batch_size, verbose=verbose)
        if probs.shape[-1] > 1:
            return probs.argmax(axis=-1)
        return (probs > 0.5).astype("int32").ravel()

    def predict_proba(self, x, batch_size=32, verbose=0):
        return self.predict(x, batch_size=batch_size, verbose=verbose)


def _epochs(epochs, nb_epoch):
    if nb_epoch is not None and epochs is not None and nb_epoch != epochs:
        raise TypeError(f"give either nb_epoch (Keras 1) or epochs, not both ({nb_epoch} and {epochs})")
    return epochs if epochs is not None else (nb_epoch if nb_epoch is not None else 1)


def _steps(data, samples, steps):
    """Steps for ``samples`` images of ``data`` (None: the whole iterator)."""
    if steps is not None or samples is None or data is None:
        return steps
    n = getattr(data, "n", None)
    batch_size = getattr(data, "batch_size", None)
    if n is not None and samples >= n:
        return None
    return math.ceil(samples / batch_size) if batch_size else None


@keras.saving.register_keras_serializable(package="dl1")
class Sequential(CompatModelMixin, keras.Sequential):
    """``keras.Sequential`` with the 2017 methods and weight-file names (see ``CompatModelMixin``)."""


@keras.saving.register_keras_serializable(package="dl1")
class Model(CompatModelMixin, keras.Model):
    """``keras.Model`` (functional API) with the 2017 methods and weight-file names."""


# ---- layers ------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="dl1")
class Convolution2D(fastconv.Conv2D):
    """Keras 1 ``Convolution2D(nb_filter, nb_row, nb_col, border_mode=, subsample=, W_regularizer=)``;
    the Keras 2/3 form ``Convolution2D(filters, (3, 3), padding=...)`` works too. ``isinstance`` checks
    and ``split_at`` treat it as ``Conv2D``."""

    def __init__(self, filters=None, nb_row=None, nb_col=None, *args, nb_filter=None, border_mode=None,
                 subsample=None, W_regularizer=None, b_regularizer=None, init=None, dim_ordering=None,
                 **kwargs):
        filters = nb_filter if filters is None else filters
        kernel = kwargs.pop("kernel_size", None)
        if kernel is None:
            kernel = nb_row if nb_col is None else (nb_row, nb_col)
        _warn_channels_first(dim_ordering)
        for new, value in (("padding", border_mode), ("strides", subsample),
                           ("kernel_regularizer", W_regularizer), ("bias_regularizer", b_regularizer),
                           ("kernel_initializer", init)):
            if value is not None:
                kwargs[new] = value
        super().__init__(filters, kernel, *args, **kwargs)


def _warn_channels_first(dim_ordering):
    if dim_ordering == "th":
        warnings.warn("dim_ordering='th' (channels first) is ignored: images here are channels-last",
                      stacklevel=3)


def layer_class(layer_type):
    """The Keras class that ``layer_type`` stands for (``Convolution2D`` and our fast ``Conv2D`` ->
    ``keras.layers.Conv2D``), so that type checks find layers however they were made."""
    if isinstance(layer_type, type) and issubclass(layer_type, keras.layers.Conv2D):
        return keras.layers.Conv2D
    if isinstance(layer_type, type) and issubclass(layer_type, keras.layers.MaxPooling2D):
        return keras.layers.MaxPooling2D
    return layer_type
