"""The 2017 ``utils`` face: ``from utils import *`` gives a notebook what it gave in 2017.

Only a re-export of ``dl1.compat.star`` (new code imports ``dl1``); importing it also makes the Keras 1
module paths (``keras.layers.core``, ``keras.utils.data_utils``, ...) importable, as the 2017 notebooks
expect (``dl1.compat.modules.install()``; ``import dl1`` alone does not).
"""

from dl1.compat import modules as _modules
from dl1.compat import star as _star

_modules.install()

__all__ = list(_star.__all__)


def __getattr__(name):
    return getattr(_star, name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
