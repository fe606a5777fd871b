"""The 2017 ``vgg16bn`` face: ``from vgg16bn import Vgg16BN`` as in lesson 7 (a re-export of
``dl1.models.vgg16``).

Importing it installs the 2017 spellings (``dl1.compat.spellings``), as ``import utils`` and ``import vgg16``
do, so that ``bn_model.fit(..., nb_epoch=1)``, ``predict_classes`` and ``opt.lr`` work on what it builds.
"""

from dl1.compat import spellings as _spellings
from dl1.models.vgg16 import Vgg16BN, vgg_mean, vgg_preprocess

_spellings.install()

__all__ = ["Vgg16BN", "vgg_mean", "vgg_preprocess"]
