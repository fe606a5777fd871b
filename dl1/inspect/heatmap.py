"""Class heat maps from a fully convolutional network (lesson 7's ``get_cm``/``get_cm2``).

A fully convolutional head ends in a convolution with one output map per class, then global average
pooling and a softmax: map ``c`` says where in the image the network sees class ``c``. ``class_heatmap``
reads that layer's output for one input and resizes the map for class ``label`` to the image's size, so it
can be drawn over the picture (``show_heatmap``).
"""

import numpy as np


def conv_output_fn(model, layer):
    """A function ``f(x) -> layer's output`` in inference mode (the 2017 ``K.function([model.input,
    K.learning_phase()], layer.output)`` called with learning phase 0). ``layer``: a layer, its name, or an
    index into ``model.layers`` (e.g. -4)."""
    import keras

    if isinstance(layer, int):
        layer = model.layers[layer]
    elif isinstance(layer, str):
        layer = model.get_layer(layer)
    sub = keras.Model(model.inputs, layer.output)

    def fn(x):
        return np.asarray(sub.predict(x, verbose=0))
    return fn


def class_heatmap(model, x, label, layer=None, size=None, interp="nearest"):
    """The class-``label`` map of ``layer``'s output (default: the last convolution) for input ``x`` (one
    sample, with or without its batch axis), resized to ``size`` = (rows, cols) with ``interp``
    ('nearest' as ``get_cm``, 'bilinear' as ``get_cm2``); a float32 (rows, cols) array."""
    from PIL import Image

    if layer is None:
        convs = [i for i, ly in enumerate(model.layers) if "conv" in type(ly).__name__.lower()]
        if not convs:
            raise ValueError("the model has no convolution layer; give layer=")
        layer = convs[-1]
    x = np.asarray(x)
    if x.ndim == len(model.inputs[0].shape) - 1:
        x = x[None]
    maps = conv_output_fn(model, layer)(x[:1])[0]  # (h, w, classes), channels last
    cm = maps[..., int(label)].astype(np.float32)
    if size is None:
        return cm
    rows, cols = size
    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interp]
    return np.asarray(Image.fromarray(cm, mode="F").resize((int(cols), int(rows)), resample), dtype=np.float32)


def show_heatmap(img, cm, alpha=0.5, cmap="cool", figsize=(10, 10), ax=None):
    """Draw ``img`` with the heat map ``cm`` over it (lesson 7's overlay); returns the axes."""
    import matplotlib.pyplot as plt

    from dl1.data.imageops import to_plot

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    ax.imshow(to_plot(img))
    ax.imshow(cm, cmap=cmap, alpha=alpha, extent=(-0.5, to_plot(img).shape[1] - 0.5,
                                                  to_plot(img).shape[0] - 0.5, -0.5))
    ax.axis("off")
    return ax
