"""Calibrate BatchNormalization layers on data: real statistics without changing what the model computes.

The course's ``imagenet_batchnorm`` notebook inserted BatchNormalization after VGG16's dense layers and set
each layer's statistics to the mean and variance of its input activations over ImageNet images, with
scale and offset chosen so that the network's outputs stay what they were. Fine-tuning can then start
from pretrained dense weights *and* meaningful batch-norm statistics.

``calibrate_bn(model, data)`` does that for every ``BatchNormalization`` layer of a Keras model:

* it runs ``data`` through the model once (inference mode) and measures, per channel, the mean and the
  (population) variance of each BN layer's *input* over all images (and all positions, for conv maps);
* it sets ``moving_mean`` and ``moving_variance`` to them;
* with ``preserve_outputs=True`` (the default) it changes ``gamma``/``beta`` so that the layer computes in
  inference the same function as before: from the identity Vgg16BN starts with, ``gamma = sqrt(var + eps)``,
  ``beta = mean``. (The 2017 notebook set ``gamma = var``, because Keras 1's slot named ``running_std`` held
  the variance; that scaled every activation and raised the loss from 1.52 to 4.76.)

Because every layer keeps its function, the inputs of later BN layers do not move when earlier ones are
recalibrated, so one pass measures them all (``preserve_outputs=False`` takes one pass per layer). Sums are accumulated in float64 with Chan's pairwise update,
so the statistics match ``np.mean``/``np.var`` of the full activations to ~1e-6.
"""

import keras
import numpy as np

from dl1.io.log import note


def bn_layers(model):
    """The BatchNormalization layers of ``model``, in order (nested models included)."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            out.append(layer)
        elif isinstance(layer, keras.Model):
            out += bn_layers(layer)
    return out


class _Moments:
    """Running per-channel count, mean and sum of squared deviations (float64, Chan et al.)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, x, axis):
        x = np.asarray(x, dtype=np.float64)
        x = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
        n = x.shape[0]
        if n == 0:
            return
        mean = x.mean(axis=0)
        m2 = ((x - mean) ** 2).sum(axis=0)
        if self.mean is None:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.n * n / total)
        self.n = total

    @property
    def var(self):
        return self.m2 / self.n


def _batches_of(data, batch_size, size, limit):
    """Yield input batches (arrays) from a folder, an array or an iterator/PyDataset of (x[, y])."""
    import os

    if isinstance(data, (str, os.PathLike)):
        from dl1.data.batches import get_batches

        data = get_batches(os.fspath(data), shuffle=False, batch_size=batch_size, class_mode=None,
                           target_size=size, verbose=False)
    if isinstance(data, np.ndarray):
        data = data[:limit] if limit else data
        for i in range(0, len(data), batch_size):
            yield data[i:i + batch_size]
        return
    seen = 0
    if isinstance(data, keras.utils.PyDataset):
        items = (data[i] for i in range(len(data)))
    else:
        items = iter(data)
        n = getattr(data, "n", None)
        if n is not None and getattr(data, "batch_size", None):  # an endless 2017-style iterator
            import math
            items = (next(items) for _ in range(math.ceil(n / data.batch_size)))
    for item in items:
        x = item[0] if isinstance(item, (tuple, list)) else item
        if limit:
            x = x[:limit - seen]
        seen += len(x)
        yield np.asarray(x)
        if limit and seen >= limit:
            return


def measure_bn_inputs(model, data, batch_size=32, limit=None, layers=None):
    """``{layer name: (mean, variance, count)}`` of the inputs of ``model``'s BN layers over ``data``."""
    return _measure(model, data, batch_size, limit, layers)[0]


def _measure(model, data, batch_size, limit, layers):
    layers = bn_layers(model) if layers is None else list(layers)
    if not layers:
        return {}, 0
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    size = tuple(model.inputs[0].shape[1:3])
    moments = [_Moments() for _ in layers]
    images = 0
    for x in _batches_of(data, batch_size, size, limit):
        images += len(x)
        outs = probe([keras.ops.convert_to_tensor(np.asarray(x, dtype="float32"))], training=False)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        for m, layer, out in zip(moments, layers, outs, strict=True):
            m.add(keras.ops.convert_to_numpy(out), layer.axis if isinstance(layer.axis, int) else -1)
    if moments[0].n == 0:
        raise ValueError("calibrate_bn: no images in the data given")
    return {layer.name: (m.mean, m.var, m.n) for layer, m in zip(layers, moments, strict=True)}, images


def calibrate_bn(model, data, batch_size=32, limit=None, preserve_outputs=True, verbose=True):
    """Set every BatchNormalization layer's moving mean/variance to its input's measured statistics.

    ``model``: a Keras model (or anything with ``.model``, such as ``Vgg16BN``). ``data``: a folder of
    images (class sub-folders or loose images, resized to the model's input), an array of images, or
    batches (``get_batches(..., shuffle=False)`` or any iterator of ``x`` or ``(x, y)``). ``limit``: use at
    most that many images. ``preserve_outputs``: adjust gamma/beta so the model's predictions are unchanged
    (otherwise they are left as they are). Returns ``{layer name: (mean, variance)}``.
    """
    model = getattr(model, "model", model)
    layers = bn_layers(model)
    if not layers:
        raise ValueError(f"{model.name} has no BatchNormalization layer to calibrate")
    if preserve_outputs:  # no layer changes its function, so one pass measures every layer's input
        stats, n = _measure(model, data, batch_size, limit, layers)
        for layer in layers:
            mean, var, _ = stats[layer.name]
            set_bn_statistics(layer, mean, var, preserve_outputs=True)
    else:  # each recalibrated layer changes what the later ones see: one pass per layer, in order
        stats = {}
        for layer in layers:
            one, n = _measure(model, data, batch_size, limit, [layer])
            stats.update(one)
            mean, var, _ = one[layer.name]
            set_bn_statistics(layer, mean, var, preserve_outputs=False)
    if verbose:
        note(f"calibrated {len(layers)} BatchNormalization layer(s) on {n} images: "
             + ", ".join(layer.name for layer in layers))
    return {name: (mean, var) for name, (mean, var, _) in stats.items()}


def set_bn_statistics(layer, mean, var, preserve_outputs=True):
    """Give BN ``layer`` the statistics ``mean``/``var``; with ``preserve_outputs`` re-derive gamma and
    beta so that ``gamma * (x - mean) / sqrt(var + eps) + beta`` equals the layer's previous function."""
    weights = {w.path.rsplit("/", 1)[-1]: w for w in layer.weights}
    eps = layer.epsilon
    mean = np.asarray(mean, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    old_mean = _value(weights["moving_mean"])
    old_var = _value(weights["moving_variance"])
    gamma = _value(weights["gamma"]) if "gamma" in weights else np.ones_like(mean)
    beta = _value(weights["beta"]) if "beta" in weights else np.zeros_like(mean)
    if preserve_outputs:
        if not (layer.scale and layer.center):
            raise ValueError(f"{layer.name}: preserve_outputs needs a BatchNormalization with scale and center")
        old_scale = gamma / np.sqrt(old_var + eps)  # y = old_scale * (x - old_mean) + beta
        gamma = old_scale * np.sqrt(var + eps)
        beta = beta + old_scale * (mean - old_mean)
        weights["gamma"].assign(gamma.astype(weights["gamma"].dtype))
        weights["beta"].assign(beta.astype(weights["beta"].dtype))
    weights["moving_mean"].assign(mean.astype(weights["moving_mean"].dtype))
    weights["moving_variance"].assign(var.astype(weights["moving_variance"].dtype))


def _value(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)
