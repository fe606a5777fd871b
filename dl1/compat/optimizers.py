"""Keras 1 spellings of Keras' optimizers: ``SGD(lr=0.1, decay=1e-6)``, ``Adam(lr=0.001)``, and ``opt.lr``.

While installed (``dl1.compat.spellings``): each optimizer class takes ``lr=`` (the learning rate; an
int is fine, as it was in 2017) and ``decay=`` (Keras 1 time-based decay, ``lr / (1 + decay * iterations)``,
as ``keras.optimizers.schedules.InverseTimeDecay``), and every optimizer has ``lr``, which reads and *sets*
the live learning rate (``K.set_value(opt.lr, 0.01)`` and ``opt.lr = 0.01`` both take effect at the next
step; in 2017, assigning ``model.optimizer.lr`` after compiling silently did nothing); every Keras variable
has Theano's ``set_value``/``get_value`` (``model.optimizer.lr.set_value(0.01)``, lesson 6).
"""

import functools
import inspect

import keras
import numpy as np

OPTIMIZERS = (keras.optimizers.SGD, keras.optimizers.RMSprop, keras.optimizers.Adam, keras.optimizers.Adagrad,
              keras.optimizers.Adadelta, keras.optimizers.Adamax, keras.optimizers.Nadam)


def _spelled_init(cls):
    def make(original):
        default = inspect.signature(original).parameters["learning_rate"].default

        @functools.wraps(original)
        def __init__(self, *args, lr=None, decay=None, **kwargs):
            if args:
                kwargs["learning_rate"], args = args[0], args[1:]
            if lr is not None:
                if "learning_rate" in kwargs:
                    from dl1.compat.keras1 import Keras1Error

                    raise Keras1Error(f"{cls.__name__}: give either lr= (Keras 1) or learning_rate=, not both")
                kwargs["learning_rate"] = lr
            rate = kwargs.get("learning_rate")
            if isinstance(rate, (int, np.integer, np.floating)) and not isinstance(rate, bool):
                kwargs["learning_rate"] = float(rate)
            if decay:
                base = float(kwargs.get("learning_rate", default))
                kwargs["learning_rate"] = keras.optimizers.schedules.InverseTimeDecay(
                    base, decay_steps=1, decay_rate=float(decay))
            original(self, *args, **kwargs)

        return __init__

    return make


def _get_lr(self):
    return self.learning_rate


def _set_lr(self, value):
    self.learning_rate = float(value) if isinstance(value, (int, float, np.number)) else value


LR = property(_get_lr, _set_lr, doc="The learning rate (Keras 1 name of ``learning_rate``; with ``decay`` the "
                                    "current, decayed rate), which can be set.")


def set_value(self, value):
    """Theano's ``shared.set_value`` (2017: ``model.optimizer.lr.set_value(0.01)``): ``assign``."""
    self.assign(value)


def get_value(self):
    """Theano's ``shared.get_value()``: the value as a numpy array."""
    return keras.ops.convert_to_numpy(self)


def add_patches(patches):
    """Plan ``lr=``/``decay=`` on each class of ``OPTIMIZERS``, ``lr`` on every optimizer and
    ``set_value``/``get_value`` on every ``keras.Variable``."""
    for cls in OPTIMIZERS:
        patches.wrap(cls, "__init__", _spelled_init(cls))
    patches.set(keras.optimizers.Optimizer, "lr", LR)
    for name, fn in (("set_value", set_value), ("get_value", get_value)):
        if not hasattr(keras.Variable, name):
            patches.set(keras.Variable, name, fn)
