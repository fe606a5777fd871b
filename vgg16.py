"""The 2017 ``vgg16`` face: ``from vgg16 import Vgg16`` as in lesson 1 (a re-export of ``dl1.models.vgg16``)."""

from dl1.models.vgg16 import Vgg16, Vgg16BN, vgg_mean, vgg_preprocess

__all__ = ["Vgg16", "Vgg16BN", "vgg_mean", "vgg_preprocess"]
