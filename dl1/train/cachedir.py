"""Where the frozen-feature cache of a data folder lives, and how a caller hands its folder down.

``cache_dir_for(DIR)`` is the one rule (``$DL1_CACHE_DIR``, else ``DIR/.dl1-cache``); ``dl1.workflow.
results.Results.cache_dir`` and ``ImageClassifier`` use it and pass the folder down as an argument
(``fit_model(..., cache_dir=F)``, ``predict_batches(..., cache_dir=F)``).
No Keras here: ``dl1 cache`` and the results folder use it without loading a model.
"""

import os


def cache_dir_for(root):
    """The feature-cache folder of the data folder ``root`` (the one holding train/ and valid/):
    ``$DL1_CACHE_DIR``, else ``root/.dl1-cache``, else ``~/.cache/dl1/features`` when ``root`` is read-only."""
    env = os.environ.get("DL1_CACHE_DIR")
    if env:
        return env
    root = os.path.abspath(os.fspath(root or "."))
    if os.access(root, os.W_OK):
        return os.path.join(root, ".dl1-cache")
    return os.path.join(os.path.expanduser("~"), ".cache", "dl1", "features")


def cache_files(folder):
    """``[(path, size, last used)]`` of the feature files in ``folder``, least recently used first."""
    try:
        entries = [e for e in os.scandir(folder) if e.is_file() and e.name.endswith(".b2nd")]
    except FileNotFoundError:
        return []
    return sorted(((e.path, e.stat().st_size, e.stat().st_mtime) for e in entries), key=lambda t: t[2])
