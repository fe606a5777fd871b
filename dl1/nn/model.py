"""Keras models as this toolkit uses them: weight files under any name, and training that follows changes.

``Sequential``/``Model``: ``save_weights('ft1.h5')`` and ``load_weights`` of such a file work (plain Keras 3
insists on ``.weights.h5``), as does loading the Keras-2 format ImageNet files by layer name; weight files
are written to a temporary name and renamed, so a crash never leaves a truncated file under the real name.
A change of ``layer.trainable`` after compiling takes effect at the next ``fit``/``train_on_batch`` (the
optimizer is re-synced, ``dl1.nn.kprivate.sync_optimizer``), ``fit`` takes a batches object together
with a ``batch_size`` (which the batches already have), ``reset_states()`` resets every stateful layer, and
``compile`` asks the backend whether to compile the training step (``jit_compile``, its compile policy): with
'auto' (the default) each ``fit`` decides from its number of steps (``choose_jit``), only the training step is
compiled, and a compile that fails trains eager with one warning.

The 2017 methods (``fit(nb_epoch=)``, ``fit_generator``, ``predict_classes``, ``Model(input=, output=)``,
...) are not here: ``dl1.compat`` adds them while a 2017 face (``utils``, ``vgg16``) is imported.
"""

import contextlib
import math
import os
import warnings

import keras
import numpy as np

from dl1 import backend
from dl1.io.atomic import atomic_path, write_bytes
from dl1.io.errors import WeightsError
from dl1.io.log import warn
from dl1.nn import kprivate, weightfiles
from dl1.nn.kprivate import sync_optimizer
from dl1.nn.weightfiles import load_legacy_h5

__all__ = ["Model", "ModelMixin", "Sequential", "choose_jit", "model_kind", "reset_states", "steps_per_epoch",
           "sync_optimizer"]


class ModelMixin:
    """Weight files under any name, written atomically, and re-synced training (see the module)."""

    def compile(self, *args, jit_compile="auto", **kwargs):
        """Keras' ``compile``; whether to compile the training step is the backend's policy for
        ``jit_compile`` ('auto', True or False, kept as ``dl1_jit``): with 'auto' each ``fit`` decides from
        its number of steps (``choose_jit``)."""
        result = super().compile(*args, jit_compile=backend.current().jit_compile(jit_compile), **kwargs)
        self.dl1_jit = jit_compile
        return result

    def make_train_function(self, force=False):
        """Keras' train function; a compiled one falls back to eager, with one warning, where compiling fails."""
        made = super().make_train_function(force)
        step = self.train_function
        if self.jit_compile and step is not None and not getattr(step, "dl1_guarded", False):
            self.train_function = _guarded(self, step)
        return made

    def make_test_function(self, force=False):
        """Keras' test function, eager when the policy (not the user) chose to compile the training step."""
        with _eager_unless_forced(self):
            return super().make_test_function(force)

    def make_predict_function(self, force=False):
        """Keras' predict function, eager when the policy (not the user) chose to compile the training step."""
        with _eager_unless_forced(self):
            return super().make_predict_function(force)

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
        if info.kind == "keras2-h5":  # matched by layer name; NaN/inf refused as the arrays are read
            return load_legacy_h5(self, filepath, skip_mismatch=skip_mismatch)
        weightfiles.check_finite(filepath)
        if not skip_mismatch:
            weightfiles.check_fits(self, info)
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
        epochs = args[0] if args else kwargs.get("epochs", 1)
        per_epoch = kwargs.get("steps_per_epoch") or steps_per_epoch(x, batch_size)
        choose_jit(self, None if per_epoch is None else (epochs - kwargs.get("initial_epoch", 0)) * per_epoch)
        return super().fit(x, y, batch_size, *args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        sync_optimizer(self)
        return super().train_on_batch(*args, **kwargs)

    def reset_states(self):
        """Reset the state of every stateful layer (Keras 3 models lost ``reset_states``)."""
        reset_states(self)


def model_kind(model):
    """'fused_lstm' (RNN layers, all of them LSTMs on the backend's fused kernel: ``dl1.nn.layers.LSTM``),
    'recurrent' (other RNN layers: Keras' step-by-step loop), 'conv' (any convolution) or 'dense': what the
    compile policy's break-even depends on."""
    layers = kprivate.flat_layers(model)
    rnns = [layer for layer in layers if isinstance(layer, keras.layers.RNN)]
    if rnns:
        fused = all(hasattr(layer, "on_fast_path") and layer.on_fast_path(None) for layer in rnns)
        return "fused_lstm" if fused else "recurrent"
    if any("Conv" in type(layer).__name__ for layer in layers):
        return "conv"
    return "dense"


def steps_per_epoch(x, batch_size=None):
    """Batches in one epoch over ``x`` (arrays, a dict/list of them, or anything with a length such as a
    ``PyDataset``), or None when that cannot be known (a generator)."""
    if x is None:
        return None
    leaves = keras.tree.flatten(x) if isinstance(x, (dict, list, tuple)) else [x]
    first = leaves[0] if leaves else None
    if hasattr(first, "shape") and len(getattr(first, "shape", ())) > 0:
        return max(1, math.ceil(int(first.shape[0]) / (batch_size or 32)))
    try:
        return max(1, len(x))
    except TypeError:
        return None


def choose_jit(model, steps):
    """Before a training run of ``steps`` steps (None: unknown), set whether Keras compiles the training step
    of ``model`` as the backend's policy says for the ``jit_compile`` it was compiled with (``dl1_jit``). Only
    'auto' decides here; a step compiled already is kept (its compile is paid). "running eager" is said at a
    model's first fit only (a loop of short fits says it once); "compiling" whenever it happens."""
    if getattr(model, "dl1_jit", None) != "auto" or steps is None:
        return
    if model.jit_compile and model.train_function is not None:
        return
    said = getattr(model, "dl1_jit_said", False)  # "running eager" once a model, not at every fit of a loop
    chosen = bool(backend.current().jit_compile("auto", steps=int(steps), kind=model_kind(model), say=not said))
    model.dl1_jit_said = True
    if chosen != bool(model.jit_compile):
        model.jit_compile = chosen
        model.train_function = None


def _guarded(model, step):
    """``step`` (a compiled train function) that, where compiling fails, warns once and trains eager."""
    failures = backend.current().compile_failures()

    def run(data):
        try:
            return step(data)
        except failures as e:
            cause = getattr(e, "inner_exception", None) or e.__cause__ or e  # the compiler's own error
            model.jit_compile = False
            model.dl1_jit = False
            model.make_train_function(force=True)
            # the step eager first: an error of the model or the data (dynamo wraps those too) is raised as it
            # is, without a word about compiling; only a step that runs eager was the compiler's failure
            logs = model.train_function(data)
            first = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
            warn("compiling the training step failed (%s%s); training eager", type(cause).__name__,
                 f": {first[:200]}" if first else "")
            return logs

    run.dl1_guarded = True
    return run


@contextlib.contextmanager
def _eager_unless_forced(model):
    chosen = getattr(model, "dl1_jit", None) == "auto" and model.jit_compile
    if chosen:
        model.jit_compile = False
    try:
        yield
    finally:
        if chosen:
            model.jit_compile = True


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
