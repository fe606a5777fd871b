"""Keras optimizers with the 2017 spellings, and the mixed-precision policy.

``SGD``/``RMSprop``/``Adam``/...: take ``lr=`` and ``decay=``, and ``opt.lr`` reads and *sets* the live
learning rate (in 2017, assigning ``model.optimizer.lr`` after training silently did nothing).
"""

import inspect

import keras
import numpy as np


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
            """The learning-rate variable (``K.set_value(opt.lr, 0.01)`` and ``opt.lr = 0.01`` both work;
            with ``decay`` it is the current, decayed rate)."""
            return self.learning_rate

        @lr.setter
        def lr(self, value):
            self.learning_rate = float(value) if isinstance(value, (int, float, np.number)) else value

    Optimizer.__name__ = Optimizer.__qualname__ = base.__name__
    Optimizer.__doc__ = f"Keras {base.__name__}, also accepting the Keras 1 ``lr=`` and ``decay=`` arguments."
    return keras.saving.register_keras_serializable(package="dl1", name=base.__name__)(Optimizer)


def _default_learning_rate(base):
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
