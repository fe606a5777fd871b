"""The course's ``Vgg16`` wrapper on Keras 3: the 7-line recipe of lesson 1, with the 2017 API.

    vgg = Vgg16()
    batches = vgg.get_batches(path + 'train', batch_size=64)
    val_batches = vgg.get_batches(path + 'valid', batch_size=64)
    vgg.finetune(batches)
    vgg.fit(batches, val_batches, nb_epoch=1)

The network is ``keras.applications.VGG16``'s (same layer names, same Oxford ImageNet weights) with
the fast.ai topology: a ``Dropout(0.5)`` after fc1 and after fc2, and the caffe-style preprocessing
(RGB->BGR, ImageNet mean subtracted) inside the model, so it takes raw 0-255 RGB images.
``weights='imagenet'`` (Keras cache, downloaded when online), ``None`` (random, same network) or a
file path. ``size`` other than 224 keeps the convolutional weights but starts the dense head random:
the ImageNet head weights only fit 224-pixel inputs. ``mixed_precision`` (True, 'auto' = on a GPU only,
or a Keras policy name) computes in bfloat16 (float16 with loss scaling on GPUs without bfloat16) and
keeps the softmax in float32; ``jit_compile`` goes to Keras ('auto': XLA on JAX, none on PyTorch;
True: also ``torch.compile``, which pays off on long GPU runs after a slow first step).
"""

import os
import warnings

import keras
import numpy as np
from keras import layers as L

from dl1.data.batches import get_batches as _get_batches
from dl1.io.errors import WeightsError
from dl1.io.log import note
from dl1.models.aids import TrainingAids
from dl1.models.weights import imagenet_weights_path, load_class_index
from dl1.nn.layers import Conv2D, MaxPooling2D
from dl1.nn.model import Sequential
from dl1.nn.optimizers import Adam, LossScaleOptimizer, mixed_precision_policy
from dl1.nn.weightfiles import KIND_TEXT, file_kind, saved_num_classes
from dl1.train.fit import fit_model, predict_batches

# ImageNet RGB means, channels-last (the 2017 array was (3, 1, 1) for channels-first).
vgg_mean = np.array([123.68, 116.779, 103.939], dtype=np.float32).reshape((1, 1, 3))

CONV_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def vgg_preprocess(x):
    """Subtract the ImageNet mean and turn RGB into BGR (last axis = channels). Takes numpy arrays
    (gives numpy) and any backend's tensors on any device, symbolic ones too (``keras.ops``), so
    ``Lambda(vgg_preprocess)`` works on a GPU and under autograd."""
    if isinstance(x, (np.ndarray, list, tuple, int, float, np.number)):
        return (np.asarray(x, dtype=np.float32) - vgg_mean)[..., ::-1]
    dtype = keras.backend.standardize_dtype(x.dtype)
    if not dtype.startswith(("float", "bfloat")):
        x, dtype = keras.ops.cast(x, "float32"), "float32"
    return keras.ops.flip(x - keras.ops.convert_to_tensor(vgg_mean.reshape(3), dtype=dtype), axis=-1)


@keras.saving.register_keras_serializable(package="dl1")
class VggPreprocess(L.Layer):
    """Caffe-style preprocessing inside the model: raw 0-255 RGB in, mean-free BGR out."""

    def call(self, x):
        x = keras.ops.cast(x, self.compute_dtype) - keras.ops.convert_to_tensor(
            vgg_mean.reshape(3), dtype=self.compute_dtype)
        return keras.ops.flip(x, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape


def size_pair(size):
    if size is None:
        return (224, 224)
    if np.isscalar(size):
        return (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f"size must be an int or (height, width), not {size!r}")
    return size


def _check_size(size):
    if min(size) < 32:
        raise ValueError(f"size {size} is too small: VGG16 halves the image five times, so use at least 32")


class Vgg16(TrainingAids):
    """The VGG16 ImageNet model with the 2017 ``Vgg16`` methods (see the module docstring)."""

    def __init__(self, weights="imagenet", size=224, class_index=None, dropout=0.5, verbose=True,
                 mixed_precision=False, jit_compile="auto"):
        self.size = size_pair(size)
        _check_size(self.size)
        self.policy = mixed_precision_policy(mixed_precision)
        self.jit_compile = jit_compile
        self.weights = weights
        self.class_index = class_index
        self.dropout = dropout
        self.verbose = verbose
        self.create()
        self.get_classes()

    def __repr__(self):
        w = self.weights if isinstance(self.weights, str) or self.weights is None else "custom"
        return f"{type(self).__name__}(weights={w!r}, size={self.size}, classes={len(self.classes)})"

    def _say(self, message):
        """A note for the user (the ``dl1`` logger), unless ``verbose=False``."""
        if self.verbose:
            note(message)

    # ---- building ------------------------------------------------------------------------------------
    def _fc_block(self, name):
        return [L.Dense(4096, activation="relu", name=name, dtype=self.policy),
                L.Dropout(self.dropout, name=f"{name}_dropout", dtype=self.policy)]

    def _softmax(self, num):
        return L.Dense(num, activation="softmax", name="predictions", dtype="float32")

    def _layers(self, num_classes):
        d = self.policy  # layer dtype policy: None (float32) or a mixed one; the softmax stays float32
        out = [keras.Input(shape=self.size + (3,), name="input"), VggPreprocess(name="vgg_preprocess", dtype=d)]
        for block, (n, filters) in enumerate(CONV_BLOCKS, start=1):
            out += [Conv2D(filters, 3, padding="same", activation="relu",
                           name=f"block{block}_conv{i}", dtype=d) for i in range(1, n + 1)]
            out.append(MaxPooling2D(2, strides=2, name=f"block{block}_pool", dtype=d))
        out.append(L.Flatten(name="flatten", dtype=d))
        out += self._fc_block("fc1") + self._fc_block("fc2")
        out.append(self._softmax(num_classes))
        return out

    def create(self):
        """Build the network and load its weights (``self.weights``)."""
        weights = self.weights
        num_classes = 1000
        if isinstance(weights, (str, os.PathLike)) and weights != "imagenet":
            weights = os.fspath(weights)
            if not os.path.isfile(weights):
                raise WeightsError(f"weights file not found: {weights}")
            num_classes = saved_num_classes(weights) or 1000
        self.model = Sequential(self._layers(1000), name="vgg16")
        if weights is None:
            pass
        elif weights == "imagenet":
            self._load_file(imagenet_weights_path(include_top=self._has_top), imagenet=True)
        else:
            if num_classes != 1000 and self._has_top:
                self.ft(num_classes)  # a fine-tuned model's file: rebuild its head first
            self._load_file(weights)
        return self.model

    @property
    def _has_top(self):
        return getattr(self, "include_top", True)

    def _load_file(self, path, imagenet=False):
        """Load any VGG16 weights file a user may hold: Keras' ImageNet ``.h5`` (Keras 2 layout), a
        Keras 3 ``.weights.h5``/``.keras`` of ``keras.applications.VGG16``, or a file saved by
        ``Vgg16(...).model.save_weights``. At another size than 224 the first dense layer cannot take
        the file's weights and starts random (with a note); a file that leaves any other layer without
        weights (Keras 3 skips missing layers silently) is refused in one line."""
        skip = self.size != (224, 224)
        # the layers every VGG16 file holds (Vgg16BN's BatchNormalization layers are in none of Keras')
        layers = [layer for layer in self.model.layers if isinstance(layer, (L.Conv2D, L.Dense))]
        kept = {}
        for layer in layers:  # mark every layer, so that one the file does not fill can be told
            first = layer.weights[0]
            if skip and layer.name in _SIZE_DEPENDENT:
                kept[layer.name] = keras.ops.convert_to_numpy(first)
            first.assign(np.full(first.shape, np.nan, dtype="float32"))
        try:
            with warnings.catch_warnings():
                if skip:  # Keras warns per skipped layer; the note below says it once, in words
                    warnings.simplefilter("ignore")
                self.model.load_weights(path, skip_mismatch=skip)
        except WeightsError:
            raise
        except (ValueError, KeyError, TypeError, OSError) as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise self._unfit(path, first) from None
        empty = [layer for layer in layers if _still_marked(layer)]
        for layer in empty:
            if layer.name in kept:
                layer.weights[0].assign(kept[layer.name])
        wrong = [layer.name for layer in empty if layer.name not in kept]
        if wrong:
            shown = ", ".join(wrong[:4]) + (f" and {len(wrong) - 4} more" if len(wrong) > 4 else "")
            raise self._unfit(path, f"it has no weights (or weights of another shape) for {shown}")
        if empty:
            why = "the ImageNet dense-layer weights fit 224x224 inputs only" if imagenet else \
                "their shapes in the file do not fit this size"
            self._say(f"at size {self.size} the layers {', '.join(layer.name for layer in empty)} start "
                      f"with random weights: {why}.")

    def _unfit(self, path, reason):
        return WeightsError(
            f"{path} is {KIND_TEXT[file_kind(path)]} that does not fit {type(self).__name__} (size "
            f"{self.size[0]}x{self.size[1]}): {reason}. Expected VGG16 weights: Keras' ImageNet .h5, a "
            ".weights.h5 or .keras file saved from keras.applications.VGG16, or a file saved with "
            "Vgg16(...).model.save_weights")

    def get_classes(self):
        """Set ``self.classes`` to the 1000 ImageNet class names (placeholders ``class_N`` when the model
        has another number of outputs, or without ImageNet weights and the class-index file)."""
        outputs = self.model.output_shape[-1] if len(self.model.output_shape) == 2 else None
        if outputs != 1000:
            self.classes = [f"class_{i}" for i in range(outputs or 0)]
        else:
            self.classes = load_class_index(self.class_index, download=self.weights == "imagenet",
                                            notice=self._say)
        return self.classes

    # ---- using it --------------------------------------------------------------------------------------
    def predict(self, imgs, details=False):
        """``(max probabilities, class indices, class names)`` for a batch of raw RGB images.

        ``details`` is accepted for 2017 code and ignored, as it was then.
        """
        all_preds = self.model.predict(np.asarray(imgs, dtype=np.float32), verbose=0)
        idxs = np.argmax(all_preds, axis=1)
        preds = all_preds[np.arange(len(idxs)), idxs]
        classes = [self.classes[i] for i in idxs]
        return np.array(preds), idxs, classes

    def get_batches(self, path, gen=None, shuffle=True, batch_size=8, class_mode="categorical", **kwargs):
        """Batches from ``path``'s class folders at this model's input size."""
        return _get_batches(path, gen, shuffle=shuffle, batch_size=batch_size, class_mode=class_mode,
                            target_size=self.size, **kwargs)

    def ft(self, num):
        """Replace the last layer by a ``num``-way softmax and freeze every other layer (2017 ``ft``)."""
        model = self.model
        model.pop()
        for layer in model.layers:
            layer.trainable = False
        model.add(self._softmax(num))
        self.compile()

    def finetune(self, batches):
        """``ft`` for the classes of ``batches``; ``self.classes`` become its folder names."""
        num = getattr(batches, "num_classes", None) or batches.nb_class
        self.ft(num)
        indices = batches.class_indices
        self.classes = sorted(indices, key=indices.get)

    def compile(self, lr=0.001):
        optimizer = Adam(learning_rate=float(lr))
        if self.policy == "mixed_float16":  # float16 gradients underflow without loss scaling
            optimizer = LossScaleOptimizer(optimizer)
        self.model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"],
                           jit_compile=self.jit_compile)

    def fit_data(self, trn, labels, val, val_labels, nb_epoch=1, batch_size=64, epochs=None, **kwargs):
        """Train on in-memory arrays."""
        return self.model.fit(trn, labels, epochs=epochs if epochs is not None else nb_epoch,
                              validation_data=(val, val_labels), batch_size=batch_size, **kwargs)

    def fit(self, batches, val_batches, nb_epoch=1, epochs=None, **kwargs):
        """Train on ``batches``, validating on ``val_batches``; returns the Keras History.

        When only the head is trainable (after ``finetune``) the frozen layers' outputs are computed once
        per image and cached next to the data, so later epochs and re-runs cost a fraction of the first.
        Keyword arguments: ``cache`` (True/False/'auto'), ``checkpoint`` (a file: resume from it and save
        to it), ``checkpoint_every`` (batches), ``callbacks``, ``verbose``.
        """
        return fit_model(self.model, batches, val_batches,
                         epochs=epochs if epochs is not None else nb_epoch, **kwargs)

    def test(self, path, batch_size=8, tta=1, **kwargs):
        """``(test_batches, probabilities)`` for the images in ``path`` (one sub-folder, e.g.
        ``test/unknown/``); rows follow ``test_batches.filenames``. ``tta=N``: the mean over the original
        and N-1 flipped/shifted versions (``predict_tta``)."""
        test_batches = self.get_batches(path, shuffle=False, batch_size=batch_size, class_mode=None)
        if tta and tta > 1:
            return test_batches, self.predict_tta(test_batches, n=tta, verbose=kwargs.get("verbose", 1))
        return test_batches, predict_batches(self.model, test_batches, **kwargs)


_SIZE_DEPENDENT = ("fc1",)  # the first dense layer's input is the flattened conv output: size-dependent


def _still_marked(layer):
    """True when loading left the NaN mark in the layer's first weight (the file did not fill it)."""
    first = keras.ops.reshape(layer.weights[0], (-1,))[0]
    return bool(np.isnan(keras.ops.convert_to_numpy(first)))


class Vgg16BN(Vgg16):
    """VGG16 with BatchNormalization after each dense layer (2017 ``Vgg16BN``).

    The 2017 ``vgg16_bn.h5`` file is gone; with ``weights='imagenet'`` the Oxford weights are loaded and
    the BatchNormalization layers start as the identity (mean 0, variance 1, scale 1, offset 0), so the
    network predicts as VGG16 does until it is trained. ``calibrate_bn(folder, save=FILE)`` gives them
    real statistics measured on any folder of images (predictions unchanged); ``Vgg16BN(weights=FILE)``
    loads them back.
    """

    def __init__(self, size=(224, 224), include_top=True, weights="imagenet", **kwargs):
        self.include_top = include_top
        super().__init__(weights=weights, size=size, **kwargs)

    def _fc_block(self, name):
        return [L.Dense(4096, activation="relu", name=name, dtype=self.policy),
                L.BatchNormalization(name=f"{name}_bn", epsilon=1e-6, dtype=self.policy),
                L.Dropout(self.dropout, name=f"{name}_dropout", dtype=self.policy)]

    def _layers(self, num_classes):
        out = super()._layers(num_classes)
        if not self.include_top:
            return out[:out.index(next(layer for layer in out if getattr(layer, "name", "") == "flatten"))]
        return out

    def calibrate_bn(self, data, batch_size=32, limit=None, save=None, **kwargs):
        """Set the BatchNormalization statistics to those of their inputs over ``data`` (a folder of
        images, an array or batches), keeping the predictions (``dl1.models.bn_calibrate``); ``save``: a
        weights file to write. Returns ``{layer name: (mean, variance)}``."""
        from dl1.models.bn_calibrate import calibrate_bn

        stats = calibrate_bn(self.model, data, batch_size=batch_size, limit=limit, **kwargs)
        if save:
            self.model.save_weights(save)
        return stats
