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

import keras
import numpy as np
from keras import layers as L

from dl1.data.batches import get_batches as _get_batches
from dl1.io.errors import WeightsError
from dl1.models.aids import TrainingAids
from dl1.models.weights import imagenet_weights_path, load_class_index
from dl1.nn.layers import Conv2D, MaxPooling2D
from dl1.nn.model import Sequential
from dl1.nn.optimizers import Adam, LossScaleOptimizer, mixed_precision_policy
from dl1.nn.weightfiles import is_legacy_h5, read_legacy_h5
from dl1.train.fit import fit_model, predict_batches

# ImageNet RGB means, channels-last (the 2017 array was (3, 1, 1) for channels-first).
vgg_mean = np.array([123.68, 116.779, 103.939], dtype=np.float32).reshape((1, 1, 3))

CONV_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def vgg_preprocess(x):
    """Subtract the ImageNet mean and turn RGB into BGR (numpy arrays, last axis = channels)."""
    x = np.asarray(x, dtype=np.float32) - vgg_mean
    return x[..., ::-1]


@keras.saving.register_keras_serializable(package="dl1")
class VggPreprocess(L.Layer):
    """Caffe-style preprocessing inside the model: raw 0-255 RGB in, mean-free BGR out."""

    def call(self, x):
        x = keras.ops.cast(x, self.compute_dtype) - keras.ops.convert_to_tensor(
            vgg_mean.reshape(3), dtype=self.compute_dtype)
        return keras.ops.flip(x, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape


def _size_pair(size):
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
        self.size = _size_pair(size)
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
        if self.verbose:
            print(message, flush=True)

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
            num_classes = _saved_num_classes(weights) or 1000
        self.model = Sequential(self._layers(1000), name="vgg16")
        if weights is None:
            pass
        elif weights == "imagenet":
            self._load_imagenet()
        else:
            if num_classes != 1000:
                self.ft(num_classes)  # a fine-tuned model's file: rebuild its head first
            self.model.load_weights(weights)
        return self.model

    def _load_imagenet(self):
        path = imagenet_weights_path()
        report = self.model.load_weights(path, skip_mismatch=True)
        if report.skipped:
            self._say(f"Note: at size {self.size} the layers {', '.join(report.skipped)} start with random "
                      "weights: the ImageNet dense-layer weights fit 224x224 inputs only.")

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
        return self.model.fit(trn, labels, epochs=epochs, nb_epoch=nb_epoch if epochs is None else None,
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


def _saved_num_classes(path):
    """Number of outputs of the last layer stored in a weights file, when it can be read."""
    try:
        if is_legacy_h5(path):
            saved = read_legacy_h5(path)
            return int(saved[-1][1][-1].shape[-1]) if saved else None
        import re

        import h5py

        with h5py.File(path, "r") as f:  # Keras 3 layout: layers/dense, layers/dense_1, ... in model order
            dense = sorted((int(m.group(1) or 0), name) for name in f.get("layers", {})
                           if (m := re.fullmatch(r"dense(?:_(\d+))?", name)))
            return int(f["layers"][dense[-1][1]]["vars"]["0"].shape[-1]) if dense else None
    except (OSError, KeyError, IndexError):
        return None


class Vgg16BN(Vgg16):
    """VGG16 with BatchNormalization after each dense layer (2017 ``Vgg16BN``).

    The 2017 ``vgg16_bn.h5`` file is gone; with ``weights='imagenet'`` the Oxford weights are loaded and
    the BatchNormalization layers start as the identity (mean 0, variance 1, scale 1, offset 0), so the
    network predicts as VGG16 does until it is trained.
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
