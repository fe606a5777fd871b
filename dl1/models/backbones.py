"""The recipe on modern ``keras.applications`` networks, under their published names, and the lookup of
every architecture by its ``--arch`` name.

    model = Resnet50()                    # or EfficientNetV2B0(), ConvNeXtTiny(), architecture('resnet50')()
    batches = model.get_batches(path + 'train', batch_size=64)
    model.finetune(batches)
    model.fit(batches, val_batches, nb_epoch=1)

Each class is its ``dl1.models.archs`` entry with a signature: the network is built by
``dl1.models.applications.ApplicationNetwork`` and every method comes from
``dl1.models.classifier.ImageClassifier``. An entry without a class of its own (``densenet121``) is
``ImageClassifier('densenet121')``.
"""

import functools

import numpy as np

from dl1.models import archs
from dl1.models.classifier import ImageClassifier, build_classifier, size_pair
from dl1.models.preprocess import vgg_mean


class Resnet50(ImageClassifier):
    """The 2017 ``Resnet50(size=(224, 224), include_top=True)`` wrapper on ``keras.applications.ResNet50``
    (caffe preprocessing: RGB->BGR minus the ImageNet mean, inside the model). Without the top, the model
    outputs the last convolutional map (2048 channels) as in 2017; ``finetune`` then adds global average
    pooling and the softmax."""

    FILE_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"

    def __init__(self, size=(224, 224), include_top=True, weights="imagenet", **kwargs):
        self.vgg_mean = vgg_mean.astype(np.float64)
        super().__init__("resnet50", weights=weights, size=size_pair(size), include_top=include_top, **kwargs)

    def vgg_preprocess(self, x):
        """Subtract the ImageNet mean and reverse the channels (RGB->BGR), as the 2017 method did."""
        x = np.asarray(x, dtype=np.float32) - self.vgg_mean.astype(np.float32)
        return x[..., ::-1]


class EfficientNetV2B0(ImageClassifier):
    """``keras.applications.EfficientNetV2B0`` with the recipe (its own preprocessing layers inside)."""

    def __init__(self, weights="imagenet", size=224, include_top=True, **kwargs):
        super().__init__("efficientnetv2b0", weights=weights, size=size, include_top=include_top, **kwargs)


class EfficientNetV2S(ImageClassifier):
    """``keras.applications.EfficientNetV2S`` with the recipe (its own preprocessing layers inside)."""

    def __init__(self, weights="imagenet", size=224, include_top=True, **kwargs):
        super().__init__("efficientnetv2s", weights=weights, size=size, include_top=include_top, **kwargs)


class ConvNeXtTiny(ImageClassifier):
    """``keras.applications.ConvNeXtTiny`` with the recipe (its own preprocessing layers inside)."""

    def __init__(self, weights="imagenet", size=224, include_top=True, **kwargs):
        super().__init__("convnext_tiny", weights=weights, size=size, include_top=include_top, **kwargs)


def architecture(name):
    """The class (or ``ImageClassifier`` bound to the name) for ``name`` (``vgg16``, ``resnet50``, ...;
    None: the default), or a ValueError listing the names."""
    spec = archs.get(name)
    return spec.load("face") or functools.partial(ImageClassifier, spec.name)


make_model = build_classifier  # the model of an --arch name: make_model('resnet50', weights=None, size=64)


ARCHITECTURES = {name: architecture(name) for name in archs.names()}
DEFAULT_ARCH = archs.DEFAULT_ARCH
