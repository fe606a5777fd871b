"""dl1: the 2017 fast.ai part 1 toolkit (``Vgg16``, the ``utils`` helpers, the lessons) on Keras 3.

Importing ``dl1`` picks the Keras backend (``dl1.backend``: ``KERAS_BACKEND``, else ``keras.json``, else
PyTorch) and does nothing else process-wide: Keras itself is imported only by the sub-packages that need
it, so ``dl1 prepare`` starts in a fraction of a second. See the README's "Architecture" section for
which sub-package holds what.
"""

from dl1.backend import configure_backend

__version__ = "0.2.0"

BACKEND = configure_backend()

def __getattr__(name):
    """``dl1.plot_history`` (the training curves of a results folder), imported on first use: ``import dl1``
    stays free of Keras and matplotlib."""
    if name == "plot_history":
        from dl1.inspect.history import plot_history

        return plot_history
    raise AttributeError(f"module 'dl1' has no attribute {name!r}")
