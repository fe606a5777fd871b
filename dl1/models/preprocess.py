"""Image preprocessing inside the model, so every network takes raw 0-255 RGB images (as ``get_batches``
gives them): the caffe style of VGG16 and ResNet50 (RGB->BGR, ImageNet mean subtracted), the torch style
(0-1, ImageNet mean and standard deviation) and none (applications that carry their own). An ``Arch``
names one of these (``dl1.models.archs.PREPROCESSING``); ``preprocessing_layers`` builds it.
"""

import keras
import numpy as np
from keras import layers as L

# ImageNet RGB means, channels-last (the 2017 array was (3, 1, 1) for channels-first).
vgg_mean = np.array([123.68, 116.779, 103.939], dtype=np.float32).reshape((1, 1, 3))
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


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


def torch_rescaling(name, dtype=None):
    """``keras.applications``' "torch" mode as one plain ``Rescaling`` layer: ``(x/255 - mean) / std``."""
    scale = [1.0 / (255.0 * s) for s in TORCH_STD]
    offset = [-m / s for m, s in zip(TORCH_MEAN, TORCH_STD, strict=True)]
    return L.Rescaling(scale=scale, offset=offset, name=name, dtype=dtype)


def preprocessing_layers(kind, policy=None, name="preprocess"):
    """The layers that turn raw RGB into what the network expects, for an ``Arch.preprocessing`` kind."""
    if kind == "caffe":
        return [VggPreprocess(name=name, dtype=policy)]
    if kind == "torch":
        return [torch_rescaling(name, dtype=policy)]
    if kind == "builtin":
        return []
    raise ValueError(f"unknown preprocessing {kind!r}")
