"""Pick the Keras backend before Keras is imported: Keras 3 defaults to TensorFlow, which we do not install.

Order: the ``KERAS_BACKEND`` environment variable if set; otherwise the backend named in
``~/.keras/keras.json`` if its package is importable; otherwise PyTorch (the default, chosen by
measurement in ``bench/bench_backends.py``).
"""

import importlib.util
import json
import os

DEFAULT_BACKEND = "torch"
_BACKEND_PACKAGES = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow", "numpy": "numpy"}


def _keras_json_backend():
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
        configured = _keras_json_backend()
        package = _BACKEND_PACKAGES.get(configured or "")
        chosen = configured if package and importlib.util.find_spec(package) else DEFAULT_BACKEND
        os.environ["KERAS_BACKEND"] = chosen
    return chosen



