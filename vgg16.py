"""The 2017 ``vgg16`` face: ``from vgg16 import Vgg16`` as in lesson 1 (a re-export of ``dl1.models.vgg16``).

Importing it installs the 2017 spellings (``dl1.compat.spellings``), as ``import utils`` does, so that
``vgg.model.fit(..., nb_epoch=1)``, ``vgg.model.predict_classes`` and ``vgg.model.optimizer.lr`` work.
"""

from dl1.compat import spellings as _spellings
from dl1.models.vgg16 import Vgg16, Vgg16BN, vgg_mean, vgg_preprocess

_spellings.install()

__all__ = ["Vgg16", "Vgg16BN", "vgg_mean", "vgg_preprocess"]
