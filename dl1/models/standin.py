"""Stand-in VGG16 weights for machines that cannot download the ImageNet ones (offline, CI).

Random weights, rescaled layer by layer on a batch of real images so that every unit's pre-activation
has zero mean and unit variance over the data ("layer-sequential unit-variance" initialisation,
Mishkin & Matas 2015). No training: it takes seconds, and gives features that a fine-tuned softmax can
learn from, unlike plain random weights whose signal all but vanishes through 15 layers. It is *not*
ImageNet: expect ~80% instead of ~98% on cats vs dogs. Saved in the layout of Keras' ImageNet file, so
it loads through exactly the code path of the real weights.
"""

import keras
import numpy as np

from dl1.io.log import note


def lsuv_init(model, x, eps=1e-6):
    """Rescale each Conv2D/Dense layer of a Sequential ``model`` in place so that its pre-activations on
    ``x`` (a batch of raw images) have zero mean and unit variance per unit."""
    h = keras.ops.convert_to_tensor(np.asarray(x, dtype="float32"))
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.use_bias:
            activation, layer.activation = layer.activation, keras.activations.linear
            try:
                z = keras.ops.convert_to_numpy(layer(h))
            finally:
                layer.activation = activation
            axes = tuple(range(z.ndim - 1))
            if layer is model.layers[-1]:  # the softmax layer: one common scale keeps logits comparable
                mean, std = np.zeros(z.shape[-1]), np.full(z.shape[-1], z.std() + eps)
            else:
                mean, std = z.mean(axis=axes), z.std(axis=axes) + eps
            kernel, bias = layer.get_weights()
            layer.set_weights([(kernel / std).astype("float32"), ((bias - mean) / std).astype("float32")])
        h = layer(h, training=False)
    return model


def make_standin_weights(path, data_dir, size=64, n=64, seed=0, verbose=True):
    """Build VGG16 at ``size``, LSUV-initialise it on up to ``n`` images of ``data_dir`` (class
    folders or loose images) and save it to ``path`` in the Keras ImageNet-file layout."""
    from dl1.data.batches import get_batches
    from dl1.models.vgg16 import Vgg16
    from dl1.nn.weightfiles import save_legacy_h5

    keras.utils.set_random_seed(seed)
    vgg = Vgg16(weights=None, size=size, verbose=False)
    batches = get_batches(data_dir, shuffle=True, seed=seed, batch_size=n, class_mode=None,
                          target_size=vgg.size, verbose=False)
    x, _ = batches.load_images(batches.index_array[:n])
    lsuv_init(vgg.model, x)
    save_legacy_h5(vgg.model, path)
    if verbose:
        note("stand-in VGG16 weights (%spx, scaled on %d images of %s) saved to %s", size, len(x), data_dir, path)
    return path
