"""``K``: the Keras backend functions 2017 notebooks call, on Keras 3.

Keras 3's ``keras.backend`` lost ``set_value``/``get_value`` and the image-ordering calls; lesson 2
uses ``K.set_value(opt.lr, 0.01)``. Everything else falls through to ``keras.backend`` and then to
``keras.ops`` (``K.mean``, ``K.sum``, ...).
"""

import warnings

import keras


def set_value(x, value):
    """Assign ``value`` to the variable ``x`` (e.g. an optimizer's ``lr``)."""
    x.assign(value)


def get_value(x):
    return keras.ops.convert_to_numpy(x)


def image_dim_ordering():
    """'tf': images are channels-last here (Keras 1 name)."""
    return "tf"


def set_image_dim_ordering(ordering):
    """Kept for 2017 code; only channels-last ('tf') is used, 'th' is ignored with a warning."""
    if ordering == "th":
        warnings.warn("set_image_dim_ordering('th') ignored: images are channels-last here", stacklevel=2)


def int_shape(x):
    return tuple(x.shape)


def variable(value, dtype=None, name=None):
    return keras.Variable(value, dtype=dtype, name=name)


def __getattr__(name):
    for source in (keras.backend, keras.ops):
        if hasattr(source, name):
            return getattr(source, name)
    raise AttributeError(f"K has no attribute {name!r}")


def ops_fallback(name):
    """``keras.backend``'s module ``__getattr__`` while the spellings are installed: the 2017 ``K.mean``,
    ``K.sum``, ``K.square``, ... are ``keras.ops``' functions."""
    if not name.startswith("__") and hasattr(keras.ops, name):
        return getattr(keras.ops, name)
    raise AttributeError(f"module 'keras.backend' has no attribute {name!r}")
