"""The 2017 model methods, on every Keras model while the spellings are installed (``dl1.compat.spellings``).

``fit(nb_epoch=)``, ``fit_generator``/``predict_generator``/``evaluate_generator`` (a sample count or a step
count per epoch, both accepted), ``predict_classes``, ``predict_proba`` and ``reset_states`` on
``keras.Model`` (and so on ``dl1.nn.model``'s ``Sequential``/``Model`` and every model a lesson builds);
``Model(input=, output=)`` on the ``Model`` that ``from utils import *`` gives and on ``keras.models.Model``
(which then makes that one); ``layer.output_shape``/``layer.input_shape`` on every layer of a model (Keras 3
kept them on models only); and a ``Sequential`` whose first layer says ``batch_input_shape=(bs, ...)``
starts with ``keras.Input(batch_shape=(bs, ...))``.
"""

import functools
import math

import keras

from dl1.nn import kprivate
from dl1.nn.model import Model, reset_states


def epochs_of(epochs, nb_epoch):
    """The number of epochs from ``epochs`` and the Keras 1 ``nb_epoch`` (1 when neither is given)."""
    if nb_epoch is not None and epochs is not None and nb_epoch != epochs:
        raise TypeError(f"give either nb_epoch (Keras 1) or epochs, not both ({nb_epoch} and {epochs})")
    return epochs if epochs is not None else (nb_epoch if nb_epoch is not None else 1)


def steps_of(data, samples, steps):
    """Steps for ``samples`` images of ``data`` (None: the whole iterator)."""
    if steps is not None or samples is None or data is None:
        return steps
    n = getattr(data, "n", None)
    batch_size = getattr(data, "batch_size", None)
    if n is not None and samples >= n:
        return None
    return math.ceil(samples / batch_size) if batch_size else None


def _fit(original):
    @functools.wraps(original)
    def fit(self, x=None, y=None, batch_size=None, epochs=None, *args, nb_epoch=None, **kwargs):
        return original(self, x, y, batch_size, epochs_of(epochs, nb_epoch), *args, **kwargs)

    return fit


def fit_generator(self, generator, samples_per_epoch=None, nb_epoch=None, verbose=1, callbacks=None,
                  validation_data=None, nb_val_samples=None, steps_per_epoch=None, epochs=None,
                  validation_steps=None, initial_epoch=0, **ignored):
    """Keras 1/2 ``fit_generator``: a sample count or a step count per epoch, both accepted."""
    return self.fit(generator, epochs=epochs_of(epochs, nb_epoch), verbose=verbose, callbacks=callbacks,
                    validation_data=validation_data,
                    steps_per_epoch=steps_of(generator, samples_per_epoch, steps_per_epoch),
                    validation_steps=steps_of(validation_data, nb_val_samples, validation_steps),
                    initial_epoch=initial_epoch)


def predict_generator(self, generator, val_samples=None, steps=None, verbose=0, **ignored):
    return self.predict(generator, steps=steps_of(generator, val_samples, steps), verbose=verbose)


def evaluate_generator(self, generator, val_samples=None, steps=None, verbose=0, **ignored):
    return self.evaluate(generator, steps=steps_of(generator, val_samples, steps), verbose=verbose)


def predict_classes(self, x, batch_size=32, verbose=0):
    """Class indices (Keras 1/2 ``Sequential.predict_classes``)."""
    probs = self.predict(x, batch_size=batch_size, verbose=verbose)
    if probs.shape[-1] > 1:
        return probs.argmax(axis=-1)
    return (probs > 0.5).astype("int32").ravel()


def predict_proba(self, x, batch_size=32, verbose=0):
    return self.predict(x, batch_size=batch_size, verbose=verbose)


def io_kwargs(kwargs):
    """Keras 1 ``input=``/``output=`` as ``inputs=``/``outputs=``."""
    kwargs = dict(kwargs)
    for old, new in (("input", "inputs"), ("output", "outputs")):
        if old in kwargs:
            if new in kwargs:
                from dl1.compat.keras1 import Keras1Error

                raise Keras1Error(f"Model: give either {old}= (Keras 1) or {new}=, not both")
            kwargs[new] = kwargs.pop(old)
    return kwargs


def _model_new(inherited):
    def __new__(cls, *args, **kwargs):
        return super(Model, cls).__new__(cls, *args, **io_kwargs(kwargs))

    return staticmethod(__new__)


def _model_init(inherited):
    # resolved at each call, not the method inherited when installed: Keras puts ``Functional`` among the
    # class's bases the first time a functional model is made (calling ``keras.Model.__init__`` again after
    # that would make Keras inject it twice); no functools.wraps: Keras reads this signature (see keras1)
    def __init__(self, *args, **kwargs):
        super(Model, self).__init__(*args, **io_kwargs(kwargs))

    return __init__


def _keras_model_new(original):
    # ``keras.Model(input=, output=)`` (``from keras.models import Model``): Keras 3 would take those for
    # a subclassed model's arguments and refuse them; dl1's functional ``Model`` takes them
    def __new__(cls, *args, **kwargs):
        if cls is keras.Model and ("input" in kwargs or "output" in kwargs):
            return Model.__new__(Model, *args, **kwargs)  # then Python runs Model.__init__ with the same
        return original(cls, *args, **kwargs)

    return staticmethod(__new__)


def _layer_shape(which):
    """The Keras 1 ``layer.input_shape``/``output_shape``: the shape of the layer's first call in a model
    (``(None, 28, 28, 64)``), a list for several tensors; an ``AttributeError`` before any call. A layer
    that sets the attribute itself (Keras' ``TorchModuleWrapper`` does) keeps the value it set."""
    own = f"_keras1_own_{which}_shape"

    def get(self):
        if own in vars(self):
            return vars(self)[own]
        try:
            tensors = getattr(self, which)
        except (AttributeError, ValueError):
            raise AttributeError(f"{type(self).__name__} {self.name!r} has no {which} shape yet: it is in no model "
                                 "(add it to one, or call it on a tensor)") from None
        return keras.tree.map_structure(lambda t: tuple(t.shape), tensors)

    def set_(self, value):
        vars(self)[own] = value

    return property(get, set_, doc=f"The {which} shape of the layer's first call (Keras 1 ``{which}_shape``).")


def _sequential_add(original):
    @functools.wraps(original)
    def add(self, layer, rebuild=True):
        batch = getattr(layer, "keras1_batch_input_shape", None)
        if batch is not None and kprivate.sequential_is_empty(self):
            original(self, keras.layers.InputLayer(batch_shape=batch), rebuild=False)
        return original(self, layer, rebuild=rebuild)

    return add


METHODS = {"fit_generator": fit_generator, "predict_generator": predict_generator,
           "evaluate_generator": evaluate_generator, "predict_classes": predict_classes,
           "predict_proba": predict_proba, "reset_states": reset_states}


def add_patches(patches):
    """Plan the 2017 methods on ``keras.Model``, ``input=``/``output=`` on ``keras.Model`` and
    ``dl1.nn.model.Model``, the shapes on every layer and ``batch_input_shape=`` on ``keras.Sequential``."""
    patches.wrap(keras.Model, "fit", _fit)
    for name, fn in METHODS.items():
        patches.set(keras.Model, name, fn)
    patches.wrap(keras.Model, "__new__", _keras_model_new)
    patches.set(keras.layers.Layer, "input_shape", _layer_shape("input"))
    patches.set(keras.layers.Layer, "output_shape", _layer_shape("output"))
    patches.wrap(Model, "__new__", _model_new)
    patches.wrap(Model, "__init__", _model_init)
    patches.wrap(keras.Sequential, "add", _sequential_add)
