"""Model surgery helpers of the 2017 ``utils.py``: split a model, copy layers and weights, insert a layer."""

import keras
import numpy as np

from dl1.nn.layers import layer_class
from dl1.nn.model import Sequential


def split_at(model, layer_type):
    """``(layers up to and including the last layer of layer_type, the layers after it)``.

    ``split_at(vgg.model, Conv2D)`` separates the convolutional part from the dense head (lesson 3).
    ``Convolution2D`` (the 2017 name) is accepted for ``Conv2D``.
    """
    cls = layer_class(layer_type)
    layers = model.layers
    idx = [i for i, layer in enumerate(layers) if isinstance(layer, cls)]
    if not idx:
        raise ValueError(f"{model.name} has no {cls.__name__} layer")
    last = idx[-1]
    return layers[:last + 1], layers[last + 1:]


def wrap_config(layer):
    return {"class_name": layer.__class__.__name__, "config": layer.get_config()}


def copy_layer(layer):
    """A new, unbuilt layer with the same configuration (and a fresh name)."""
    config = layer.get_config()
    config.pop("name", None)
    return layer.__class__.from_config(config)


def copy_layers(layers):
    return [copy_layer(layer) for layer in layers]


def copy_weights(from_layers, to_layers):
    """Copy weights layer by layer (the two lists are zipped, as in 2017)."""
    for src, dst in zip(from_layers, to_layers, strict=False):
        dst.set_weights(src.get_weights())


def _input_of(model):
    return keras.Input(shape=tuple(model.inputs[0].shape[1:]))


def copy_model(m):
    """A new Sequential model with copies of ``m``'s layers and weights."""
    res = Sequential([_input_of(m)] + copy_layers(m.layers))
    copy_weights(m.layers, res.layers)
    return res


def insert_layer(model, new_layer, index):
    """A copy of Sequential ``model`` with ``new_layer`` inserted before position ``index``."""
    res = Sequential([_input_of(model)])
    for i, layer in enumerate(model.layers):
        if i == index:
            res.add(new_layer)
        copied = copy_layer(layer)
        res.add(copied)
        copied.set_weights(layer.get_weights())
        copied.trainable = layer.trainable
    if index >= len(model.layers):
        res.add(new_layer)
    return res


def adjust_dropout(weights, prev_p, new_p):
    """2017 helper to rescale weights when changing dropout. Keras has always used *inverted* dropout
    (activations are scaled during training, not at test time), so the right factor is 1: kept for old
    code, it returns the weights unchanged and says why once."""
    import warnings

    if prev_p != new_p:
        warnings.warn("adjust_dropout: Keras uses inverted dropout, weights need no rescaling "
                      "(the 2017 (1-p)/(1-new_p) factor was a mistake); returning them unchanged",
                      stacklevel=2)
    return [np.array(w) for w in weights]


def vgg_ft(out_dim, **kwargs):
    """A VGG16 Keras model whose last layer is a new ``out_dim``-way softmax (others frozen)."""
    from dl1.models.vgg16 import Vgg16

    vgg = Vgg16(**kwargs)
    vgg.ft(out_dim)
    return vgg.model


def vgg_ft_bn(out_dim, **kwargs):
    """``vgg_ft`` with the BatchNorm variant of VGG16."""
    from dl1.models.vgg16 import Vgg16BN

    vgg = Vgg16BN(**kwargs)
    vgg.ft(out_dim)
    return vgg.model
