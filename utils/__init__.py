"""The 2017 ``utils`` face: ``from utils import *`` gives a notebook what it gave in 2017.

Only a re-export of ``dl1.compat.star`` (new code imports ``dl1``); importing it also makes the Keras 1
module paths (``keras.layers.core``, ...) importable, as the 2017 notebooks expect.
"""

from dl1.compat import star as _star

__all__ = list(_star.__all__)


def __getattr__(name):
    return getattr(_star, name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
