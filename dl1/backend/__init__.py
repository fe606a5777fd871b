"""The Keras backend: which one runs (``configure_backend``) and what dl1 does on it (``current()``).

``configure_backend`` picks the backend before Keras is imported: Keras 3 defaults to TensorFlow, which we do
not install. Order: the ``KERAS_BACKEND`` environment variable if set; otherwise the backend named in
``~/.keras/keras.json`` if its package is importable; otherwise PyTorch (the default, chosen by measurement
in ``bench/bench_backends.py``). It is the one thing ``import dl1`` does process-wide.

``current()`` is the ``Backend`` object for the running backend (``base.Backend``: the interface and its
plain-Keras implementation; ``torch_impl``, ``jax_impl``: what each does faster or differently). Every piece
of dl1 that depends on the backend goes through it: fast convolutions, mixed precision, device augmentation,
automatic differentiation of hand-written models, stateful RNN state, data parallel training and the
compile policy. A new backend is a new module with a subclass of ``Backend``. This package imports neither
Keras nor a backend until ``current()`` is called.
"""

import importlib
import importlib.util
import json
import os
import sys

DEFAULT_BACKEND = "torch"
BACKEND_PACKAGES = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow", "numpy": "numpy"}
IMPLEMENTATIONS = {"torch": "dl1.backend.torch_impl:TorchBackend", "jax": "dl1.backend.jax_impl:JaxBackend",
                   "tensorflow": "dl1.backend.tensorflow_impl:TensorflowBackend"}

_current = {}


def keras_json_backend():
    """The backend named in ``$KERAS_HOME/keras.json`` (``~/.keras/keras.json``), or None."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
            return json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def configure_backend():
    """Set ``KERAS_BACKEND`` (unless the user did) and return the backend name that Keras will use."""
    chosen = os.environ.get("KERAS_BACKEND")
    if not chosen:
        configured = keras_json_backend()
        package = BACKEND_PACKAGES.get(configured or "")
        chosen = configured if package and importlib.util.find_spec(package) else DEFAULT_BACKEND
        os.environ["KERAS_BACKEND"] = chosen
    return chosen


def name():
    """The running backend's name: Keras' own answer once Keras is imported, else ``KERAS_BACKEND``."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return keras.backend.backend()
    return configure_backend()


def current():
    """The ``Backend`` for the running Keras backend (one object per backend, made on first use)."""
    key = name()
    backend = _current.get(key)
    if backend is None:
        target = IMPLEMENTATIONS.get(key)
        if target is None:
            from dl1.backend.base import Backend

            backend = Backend(key)
        else:
            module, _, cls = target.partition(":")
            backend = getattr(importlib.import_module(module), cls)()
        _current[key] = backend
    return backend
