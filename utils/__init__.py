"""The 2017 ``utils`` face: ``from utils import *`` gives a notebook what it gave in 2017.

Only a re-export of ``dl1.compat.star`` (new code imports ``dl1``); importing it also installs the 2017
spellings (``dl1.compat.spellings.install()``): the Keras 1 arguments on the Keras classes a cell builds
with, ``fit(nb_epoch=)`` and the other 2017 model methods, ``lr=`` on the optimizers, and the Keras 1
module paths (``keras.layers.core``, ``keras.utils.data_utils``, ...). ``import dl1`` alone does none of it.
"""

from dl1.compat import spellings as _spellings
from dl1.compat import star as _star

_spellings.install()

__all__ = list(_star.__all__)


def __getattr__(name):
    return getattr(_star, name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
