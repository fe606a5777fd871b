"""Keras models with the 2017 methods and weight-file names.

``Sequential``/``Model``: ``save_weights('ft1.h5')`` and ``load_weights`` of such a file work (plain Keras 3
insists on ``.weights.h5``), as does loading the Keras-2 format ImageNet files by layer name;
``fit(nb_epoch=...)``, ``fit_generator``, ``predict_generator``, ``evaluate_generator``,
``predict_classes`` and ``predict_proba`` are back, and a change of ``layer.trainable`` after compiling
takes effect. Weight files are written to a temporary name and renamed, so a crash never leaves a
truncated file under the real name.
"""

import math
import os

import keras

from dl1.io.atomic import atomic_path
from dl1.io.errors import WeightsError
from dl1.nn import kprivate
from dl1.nn.kprivate import sync_optimizer
from dl1.nn.optimizers import get_optimizer
from dl1.nn.weightfiles import is_legacy_h5, load_legacy_h5

__all__ = ["CompatModelMixin", "Model", "Sequential", "sync_optimizer"]


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
            raise WeightsError(f"weights file not found: {filepath}")
        if is_legacy_h5(filepath):
            return load_legacy_h5(self, filepath, skip_mismatch=skip_mismatch)
        if filepath.endswith((".weights.h5", ".keras")):
            return super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
        return kprivate.load_weights_any_name(self, filepath, super().load_weights, skip_mismatch=skip_mismatch,
                                              **kwargs)

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

    def reset_states(self):
        """Reset the state of every stateful layer (Keras 1/2 ``model.reset_states()``)."""
        for layer in self._flatten_layers(include_self=False):
            if getattr(layer, "stateful", False) and hasattr(layer, "reset_states"):
                layer.reset_states()


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
    """``keras.Sequential`` with the 2017 methods and weight-file names (see ``CompatModelMixin``).

    A first layer given ``batch_input_shape=(bs, ...)`` (Keras 1, e.g. for a stateful RNN) starts the
    model with ``keras.Input(batch_shape=(bs, ...))``; ``input_shape=`` works as in Keras."""

    def add(self, layer, rebuild=True):
        batch = getattr(layer, "_batch_input_shape_arg", None)
        if not self._layers and batch is not None:
            super().add(keras.layers.InputLayer(batch_shape=batch), rebuild=False)
        return super().add(layer, rebuild=rebuild)


@keras.saving.register_keras_serializable(package="dl1")
class Model(CompatModelMixin, keras.Model):
    """``keras.Model`` (functional API) with the 2017 methods and weight-file names; also the Keras 1
    ``Model(input=, output=)``."""

    def __new__(cls, *args, **kwargs):
        return super().__new__(cls, *args, **_io_kwargs(kwargs))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **_io_kwargs(kwargs))


def _io_kwargs(kwargs):
    """Keras 1 ``input=``/``output=`` as ``inputs=``/``outputs=``."""
    kwargs = dict(kwargs)
    for old, new in (("input", "inputs"), ("output", "outputs")):
        if old in kwargs:
            if new in kwargs:
                raise TypeError(f"Model: give either {old}= (Keras 1) or {new}=, not both")
            kwargs[new] = kwargs.pop(old)
    return kwargs
