"""Keras models as this toolkit uses them: weight files under any name, and training that follows changes.

``Sequential``/``Model``: ``save_weights('ft1.h5')`` and ``load_weights`` of such a file work (plain Keras 3
insists on ``.weights.h5``), as does loading the Keras-2 format ImageNet files by layer name; weight files
are written to a temporary name and renamed, so a crash never leaves a truncated file under the real name.
A change of ``layer.trainable`` after compiling takes effect at the next ``fit``/``train_on_batch`` (the
optimizer is re-synced, ``dl1.nn.kprivate.sync_optimizer``), ``fit`` takes a batches object together
with a ``batch_size`` (which the batches already have), ``reset_states()`` resets every stateful layer, and
``compile`` asks the backend whether to compile the training step (``jit_compile``, its compile policy).

The 2017 methods (``fit(nb_epoch=)``, ``fit_generator``, ``predict_classes``, ``Model(input=, output=)``,
...) are not here: ``dl1.compat`` adds them while a 2017 face (``utils``, ``vgg16``) is imported.
"""

import os
import warnings

import keras
import numpy as np

from dl1 import backend
from dl1.io.atomic import atomic_path, write_bytes
from dl1.io.errors import WeightsError
from dl1.nn import kprivate, weightfiles
from dl1.nn.kprivate import sync_optimizer
from dl1.nn.weightfiles import load_legacy_h5

__all__ = ["Model", "ModelMixin", "Sequential", "reset_states", "sync_optimizer"]


class ModelMixin:
    """Weight files under any name, written atomically, and re-synced training (see the module)."""

    def compile(self, *args, jit_compile="auto", **kwargs):
        """Keras' ``compile``; whether to compile the training step is the backend's policy for
        ``jit_compile`` (``dl1.backend``: 'auto', True or False)."""
        return super().compile(*args, jit_compile=backend.current().jit_compile(jit_compile), **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Save weights under any name (``ft1.h5`` as in the course), atomically."""
        filepath = os.fspath(filepath)
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath} exists and overwrite=False")
        data = None if kwargs else kprivate.weights_h5_bytes(self)
        if data is not None:  # serialised in memory, then one plain write: a full disk cannot crash HDF5
            write_bytes(filepath, data, what=f"the weights {os.path.basename(filepath)}")
            return
        needed = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in self.weights)
        with atomic_path(filepath, suffix=".weights.h5", needed=needed,
                         what=f"the weights {os.path.basename(filepath)}") as tmp:
            super().save_weights(tmp, **kwargs)

    def load_weights(self, filepath, skip_mismatch=False, by_name=None, **kwargs):
        """Load weights saved by ``save_weights`` (any name), a ``.keras`` model file, or a Keras-2 ``.h5``
        file such as Keras' own ImageNet weights (matched by layer name, else by order). Returns a
        ``LoadReport`` for Keras-2 files, else None. Through the one loader of ``dl1.nn.weightfiles``: a
        file that is none of these, damaged, out of bounds, holding NaN/inf, or (unless ``skip_mismatch``)
        of another class count, size or architecture is one ``WeightsError`` line naming it, before any
        weight is set."""
        filepath = os.fspath(filepath)
        info = weightfiles.describe(filepath)
        weightfiles.check_finite(filepath)
        if not skip_mismatch and info.kind != "keras2-h5":  # Keras-2 files are matched by layer name
            weightfiles.check_fits(self, info)
        if info.kind == "keras2-h5":
            return load_legacy_h5(self, filepath, skip_mismatch=skip_mismatch)
        suffix = ".keras" if info.kind == "keras-archive" else ".weights.h5"
        try:
            with warnings.catch_warnings():  # the optimizer's state is rebuilt on its first step anyway
                warnings.filterwarnings("ignore", message=r"Skipping variable loading for optimizer")
                if filepath.endswith(suffix):
                    return super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
                return kprivate.load_weights_any_name(filepath, super().load_weights, suffix,
                                                      skip_mismatch=skip_mismatch, **kwargs)
        except (ValueError, KeyError) as e:  # Keras' many-line mismatch report: its first line, with the file
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise WeightsError(f"{filepath} does not fit this model: {first}") from None

    def fit(self, x=None, y=None, batch_size=None, *args, **kwargs):
        if isinstance(x, keras.utils.PyDataset):
            batch_size = None
        sync_optimizer(self)
        return super().fit(x, y, batch_size, *args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        sync_optimizer(self)
        return super().train_on_batch(*args, **kwargs)

    def reset_states(self):
        """Reset the state of every stateful layer (Keras 3 models lost ``reset_states``)."""
        reset_states(self)


def reset_states(model):
    """Reset the state of every stateful layer inside ``model`` (a stateful RNN starts again from zeros)."""
    for layer in kprivate.flat_layers(model):
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_states"):
            layer.reset_states()


@keras.saving.register_keras_serializable(package="dl1")
class Sequential(ModelMixin, keras.Sequential):
    """``keras.Sequential`` with weight files under any name and re-synced training (see the module)."""


@keras.saving.register_keras_serializable(package="dl1")
class Model(ModelMixin, keras.Model):
    """``keras.Model`` (functional API) with weight files under any name and re-synced training."""
