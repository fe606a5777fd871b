"""Install and remove the 2017 spellings: what importing a 2017 face (``utils``, ``vgg16``) does.

``install()`` makes the classes the library and the lessons build with (Keras' own, and ``dl1.nn``'s) take
the Keras 1 arguments (``dl1.compat.keras1``), gives Keras' optimizers ``lr=``, ``decay=`` and ``opt.lr``
(``dl1.compat.optimizers``), gives every Keras model the 2017 methods (``dl1.compat.methods``), and makes
the Keras 1 module paths importable (``dl1.compat.modules``). Nothing Keras 3 code writes changes meaning:
only spellings Keras 3 refuses are translated, and methods it lacks added. ``uninstall()`` puts everything
back (modules already imported through the finder stay imported). ``import dl1`` never calls either.
"""

from dl1.compat import keras1, methods, modules, optimizers
from dl1.compat.patches import Patches

_state = {}


def _patches():
    if "patches" not in _state:
        patches = Patches()
        keras1.add_patches(patches)
        optimizers.add_patches(patches)
        methods.add_patches(patches)
        _state["patches"] = patches
    return _state["patches"]


def install():
    """Install the 2017 spellings (idempotent)."""
    _patches().apply()
    modules.install()


def uninstall():
    """Remove them: every class, method and module path as Keras and dl1 define them."""
    _patches().revert()
    modules.uninstall()


def installed():
    return _patches().applied


def targets():
    """``[(class, attribute)]`` that the spellings change while installed."""
    return _patches().targets()
