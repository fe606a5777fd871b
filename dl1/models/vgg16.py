"""The course's ``Vgg16`` wrapper on Keras 3: the 7-line recipe of lesson 1, with the 2017 API.

    vgg = Vgg16()
    batches = vgg.get_batches(path + 'train', batch_size=64)
    val_batches = vgg.get_batches(path + 'valid', batch_size=64)
    vgg.finetune(batches)
    vgg.fit(batches, val_batches, nb_epoch=1)

The network (``VggNetwork``) is ``keras.applications.VGG16``'s (same layer names, same Oxford ImageNet
weights) with the fast.ai topology: a ``Dropout(0.5)`` after fc1 and after fc2, and the caffe-style
preprocessing (RGB->BGR, ImageNet mean subtracted) inside the model, so it takes raw 0-255 RGB images.
``weights='imagenet'`` (Keras cache, downloaded when online), ``None`` (random, same network) or a
file path. ``size`` other than 224 keeps the convolutional weights but starts the dense head random:
the ImageNet head weights only fit 224-pixel inputs. ``mixed_precision`` (True, 'auto' = on a GPU only,
or a Keras policy name) computes in bfloat16 (float16 with loss scaling on GPUs without bfloat16) and
keeps the softmax in float32; ``jit_compile`` goes to Keras ('auto': XLA on JAX, none on PyTorch;
True: also ``torch.compile``, which pays off on long GPU runs after a slow first step).

``Vgg16`` and ``Vgg16BN`` are the ``vgg16`` and ``vgg16bn`` entries of ``dl1.models.archs`` with their
2017 signatures; every method comes from ``dl1.models.classifier.ImageClassifier``.
"""

import re
import warnings

import keras
import numpy as np
from keras import layers as L

from dl1.io.errors import WeightsError
from dl1.models.classifier import ImageClassifier
from dl1.models.preprocess import VggPreprocess, vgg_mean, vgg_preprocess
from dl1.models.weights import imagenet_weights_path
from dl1.nn.layers import Conv2D, Dense, MaxPooling2D, without_random_init
from dl1.nn.model import Sequential
from dl1.nn.weightfiles import KIND_TEXT, file_kind

__all__ = ["CONV_BLOCKS", "Vgg16", "Vgg16BN", "VggNetwork", "VggPreprocess", "vgg_mean", "vgg_preprocess"]

CONV_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
SIZE_DEPENDENT = ("fc1",)  # the first dense layer's input is the flattened conv output: size-dependent


class VggNetwork:
    """VGG16 as a ``Sequential`` of ``keras.applications.VGG16``'s layer names: building it, loading any
    VGG16 weights file, replacing its softmax, and its layer groups. ``batch_norm``: BatchNormalization
    after each dense layer (2017 ``Vgg16BN``); ``include_top=False``: the convolutional blocks only;
    ``fast_convs=False``: Keras' own ``Conv2D`` instead of dl1's copy-free one (a baseline for bench/)."""

    base = None  # no separate pretrained base: the frozen prefix is a run of the Sequential's layers

    def __init__(self, spec, size, policy=None, dropout=0.5, include_top=True, fast_convs=True, batch_norm=False,
                 say=None):
        self.spec, self.size, self.policy, self.dropout = spec, tuple(size), policy, dropout
        self.include_top, self.fast_convs, self.batch_norm = include_top, fast_convs, batch_norm
        self.say = say or (lambda message: None)

    # ---- building ------------------------------------------------------------------------------------
    def _fc_block(self, name):
        d = self.policy
        out = [Dense(4096, activation="relu", name=name, dtype=d)]
        if self.batch_norm:
            out.append(L.BatchNormalization(name=f"{name}_bn", epsilon=1e-6, dtype=d))
        return out + [L.Dropout(self.dropout, name=f"{name}_dropout", dtype=d)]

    def softmax(self, num):
        """The classifier: ``Dense(num, softmax, name='predictions')``, in float32 under mixed precision."""
        return Dense(num, activation="softmax", name="predictions", dtype="float32")

    def build(self, loading=False):
        """The network with ImageNet's 1000-way softmax (or without its dense head), random weights; with
        ``loading`` (a weights file is loaded next), zeros where ``load_file`` fills or refuses every weight."""
        d = self.policy  # layer dtype policy: None (float32) or a mixed one; the softmax stays float32
        conv = Conv2D if self.fast_convs else L.Conv2D
        out = [keras.Input(shape=self.size + (3,), name="input"), VggPreprocess(name="vgg_preprocess", dtype=d)]
        for block, (n, filters) in enumerate(CONV_BLOCKS, start=1):
            out += [conv(filters, 3, padding="same", activation="relu", name=f"block{block}_conv{i}", dtype=d)
                    for i in range(1, n + 1)]
            out.append(MaxPooling2D(2, strides=2, name=f"block{block}_pool", dtype=d))
        if self.include_top:
            out.append(L.Flatten(name="flatten", dtype=d))
            out += self._fc_block("fc1") + self._fc_block("fc2")
            out.append(self.softmax(1000))
        # at another size than 224 a file's fc1 may not fit: it keeps its random start (see load_file)
        skip = [layer for layer in out[1:] if isinstance(layer, (L.Conv2D, L.Dense))
                and not (self.size != (224, 224) and layer.name in SIZE_DEPENDENT)] if loading else []
        with without_random_init(skip):
            return Sequential(out, name="vgg16")

    def replace_head(self, model, num):
        """``model`` with its last layer replaced by a ``num``-way softmax, every other layer frozen."""
        model.pop()
        for layer in model.layers:
            layer.trainable = False
        model.add(self.softmax(num))
        return model

    # ---- weights -------------------------------------------------------------------------------------
    def load_imagenet(self, model):
        self.load_file(model, imagenet_weights_path(include_top=self.include_top), imagenet=True)

    def load_file(self, model, path, imagenet=False):
        """Load any VGG16 weights file a user may hold: Keras' ImageNet ``.h5`` (Keras 2 layout), a
        Keras 3 ``.weights.h5``/``.keras`` of ``keras.applications.VGG16``, or a file saved by
        ``Vgg16(...).model.save_weights``. At another size than 224 the first dense layer cannot take
        the file's weights and starts random (with a note); a file that leaves any other layer without
        weights (Keras 3 skips missing layers silently) is refused in one line."""
        skip = self.size != (224, 224)
        # the layers every VGG16 file holds (Vgg16BN's BatchNormalization layers are in none of Keras')
        layers = [layer for layer in model.layers if isinstance(layer, (L.Conv2D, L.Dense))]
        kept = {}
        for layer in layers:  # mark every layer, so that one the file does not fill can be told
            first = layer.weights[0]
            if skip and layer.name in SIZE_DEPENDENT:
                kept[layer.name] = keras.ops.convert_to_numpy(first)
            first.assign(keras.ops.full(first.shape, np.nan, dtype=first.dtype))
        try:
            with warnings.catch_warnings():
                if skip:  # Keras warns per skipped layer; the note below says it once, in words
                    warnings.simplefilter("ignore")
                model.load_weights(path, skip_mismatch=skip)
        except WeightsError:
            raise
        except (ValueError, KeyError, TypeError, OSError) as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise self.unfit(path, first) from None
        empty = [layer for layer in layers if _still_marked(layer)]
        for layer in empty:
            if layer.name in kept:
                layer.weights[0].assign(kept[layer.name])
        wrong = [layer.name for layer in empty if layer.name not in kept]
        if wrong:
            shown = ", ".join(wrong[:4]) + (f" and {len(wrong) - 4} more" if len(wrong) > 4 else "")
            raise self.unfit(path, f"it has no weights (or weights of another shape) for {shown}")
        if empty:
            why = "the ImageNet dense-layer weights fit 224x224 inputs only" if imagenet else \
                "their shapes in the file do not fit this size"
            self.say(f"at size {self.size} the layers {', '.join(layer.name for layer in empty)} start "
                     f"with random weights: {why}.")

    def unfit(self, path, reason):
        face = "Vgg16BN" if self.batch_norm else "Vgg16"
        return WeightsError(
            f"{path} is {KIND_TEXT[file_kind(path)]} that does not fit {face} (size "
            f"{self.size[0]}x{self.size[1]}): {reason}. Expected VGG16 weights: Keras' ImageNet .h5, a "
            ".weights.h5 or .keras file saved from keras.applications.VGG16, or a file saved with "
            "Vgg16(...).model.save_weights")

    # ---- the blocks ----------------------------------------------------------------------------------
    def layer_groups(self, model):
        """The five convolutional blocks (the preprocessing joins the first) and the head (flatten, the
        dense layers, the softmax), earliest first; a model rearranged by hand: the body and the last layer."""
        layers = list(model.layers)
        blocks, head, before = {}, [], []
        for layer in layers:
            m = re.match(r"block(\d+)_", layer.name)
            if m:
                if head:  # a block after the head started: not the layout this grouping knows
                    blocks = {}
                    break
                blocks.setdefault(int(m.group(1)), []).append(layer)
            elif blocks:
                head.append(layer)
            else:
                before.append(layer)
        if not blocks or not head:
            return [layers[:-1], layers[-1:]] if len(layers) > 1 else [layers]
        groups = [blocks[k] for k in sorted(blocks)]
        groups[0] = before + groups[0]
        return groups + [head]

    def unfreeze(self, model, n_groups=None):
        """Make every layer trainable, or only those of the last ``n_groups`` layer groups."""
        groups = self.layer_groups(model)
        keep = groups if n_groups is None else groups[len(groups) - n_groups:]
        train = {id(layer) for group in keep for layer in group}
        for layer in model.layers:
            layer.trainable = id(layer) in train


def _still_marked(layer):
    """True when loading left the NaN mark in the layer's first weight (the file did not fill it)."""
    first = keras.ops.reshape(layer.weights[0], (-1,))[0]
    return bool(np.isnan(keras.ops.convert_to_numpy(first)))


class Vgg16(ImageClassifier):
    """The VGG16 ImageNet model with the 2017 ``Vgg16`` methods (see the module docstring)."""

    def __init__(self, weights="imagenet", size=224, class_index=None, dropout=0.5, verbose=True,
                 mixed_precision=False, jit_compile="auto", fast_convs=True, cache_dir=None):
        super().__init__("vgg16", weights=weights, size=size, class_index=class_index, dropout=dropout,
                         verbose=verbose, mixed_precision=mixed_precision, jit_compile=jit_compile,
                         fast_convs=fast_convs, cache_dir=cache_dir)


class Vgg16BN(ImageClassifier):
    """VGG16 with BatchNormalization after each dense layer (2017 ``Vgg16BN``).

    The 2017 ``vgg16_bn.h5`` file is gone; with ``weights='imagenet'`` the Oxford weights are loaded and
    the BatchNormalization layers start as the identity (mean 0, variance 1, scale 1, offset 0), so the
    network predicts as VGG16 does until it is trained. ``calibrate_bn(folder, save=FILE)`` gives them
    real statistics measured on any folder of images (predictions unchanged); ``Vgg16BN(weights=FILE)``
    loads them back.
    """

    def __init__(self, size=(224, 224), include_top=True, weights="imagenet", **kwargs):
        super().__init__("vgg16bn", weights=weights, size=size, include_top=include_top, **kwargs)

    def calibrate_bn(self, data, batch_size=32, limit=None, save=None, **kwargs):
        """Set the BatchNormalization statistics to those of their inputs over ``data`` (a folder of
        images, an array or batches), keeping the predictions (``dl1.models.bn_calibrate``); ``save``: a
        weights file to write. Returns ``{layer name: (mean, variance)}``."""
        from dl1.models.bn_calibrate import calibrate_bn

        stats = calibrate_bn(self.model, data, batch_size=batch_size, limit=limit, **kwargs)
        if save:
            self.model.save_weights(save)
        return stats
