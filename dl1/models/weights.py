"""Find (or download) the VGG16 ImageNet weights and class index, with a clear error when offline.

The files are Keras' own (the same Oxford VGG16 weights the 2017 course converted to ``vgg16.h5``),
kept in the Keras cache ``$KERAS_HOME/models`` (default ``~/.keras/models``). ``DL1_WEIGHTS`` and
``DL1_CLASS_INDEX`` may point at copies elsewhere; ``DL1_OFFLINE=1`` skips download attempts.
"""

import json
import os

from dl1.io.errors import WeightsError
from dl1.models import archs
from dl1.models.archs import RemoteFile

__all__ = ["BACKBONE_WEIGHTS", "IMAGENET_CLASS_INDEX", "RemoteFile", "VGG16_WEIGHTS", "VGG16_WEIGHTS_NO_TOP",
           "backbone_env_var", "backbone_weights_path", "cached_path", "fetch", "have_backbone_weights",
           "have_imagenet_weights", "imagenet_weights_path", "keras_cache_dir", "load_class_index", "local_path",
           "offline"]


VGG16_WEIGHTS = archs.get("vgg16").weights
VGG16_WEIGHTS_NO_TOP = archs.get("vgg16").weights_notop
IMAGENET_CLASS_INDEX = RemoteFile(
    "imagenet_class_index.json",
    "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json",
    "c2c37ea517e94d9795004a39431a14cb",
)


def keras_cache_dir():
    """Where Keras keeps downloaded models: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def cached_path(remote):
    """The cached copy of ``remote`` if present, else None (never downloads)."""
    path = os.path.join(keras_cache_dir(), remote.fname)
    return path if os.path.isfile(path) and os.path.getsize(path) > 0 else None


def local_path(remote, env_var=None):
    """``remote`` on this machine, never downloaded: the file ``env_var`` names if it exists, else the
    Keras cache copy, else None."""
    env = os.environ.get(env_var) if env_var else None
    if env and os.path.isfile(os.path.expanduser(env)):
        return os.path.expanduser(env)
    return cached_path(remote)


def offline():
    return os.environ.get("DL1_OFFLINE", "").lower() in ("1", "true", "yes")


def fetch(remote, env_var=None, what="file"):
    """Path to ``remote``: from ``env_var``, the Keras cache, or a download. Raises WeightsError with
    the file name, the cache folder and the ways to fix it when none of these works."""
    if env_var and os.environ.get(env_var):
        path = os.path.expanduser(os.environ[env_var])
        if not os.path.isfile(path):
            raise WeightsError(f"{env_var}={path} but that file does not exist")
        return path
    path = local_path(remote)
    if path:
        return path
    reason = "DL1_OFFLINE is set"
    if not offline():
        try:
            import keras

            return keras.utils.get_file(remote.fname, remote.origin, cache_subdir="models",
                                        file_hash=remote.md5)
        except Exception as e:  # get_file raises a bare Exception for network errors
            reason = str(e).splitlines()[0][:200] or type(e).__name__
    cache = keras_cache_dir()
    hint = f" or set {env_var}=/path/to/{remote.fname}" if env_var else ""
    raise WeightsError(
        f"{what} {remote.fname} is not in the Keras cache ({cache}) and could not be downloaded "
        f"({reason}). Fix: on a machine with internet, download {remote.origin} and copy it to "
        f"{os.path.join(cache, remote.fname)}{hint}; or use weights=None (--weights none) for "
        "random weights.")


def imagenet_weights_path(include_top=True):
    """The VGG16 ImageNet weights file: the full one, or Keras' ``notop`` file (58 MB instead of 528 MB)
    for a network without its dense head. ``DL1_WEIGHTS`` (any VGG16 weights file) wins over both."""
    if include_top or os.environ.get("DL1_WEIGHTS"):
        return fetch(VGG16_WEIGHTS, "DL1_WEIGHTS", "VGG16 ImageNet weights")
    # a full file already here does as well (its head is ignored); else the small notop download
    return local_path(VGG16_WEIGHTS) or fetch(VGG16_WEIGHTS_NO_TOP, None,
                                              "VGG16 ImageNet weights without the dense head")


def have_imagenet_weights():
    """True when the ImageNet weights are on this machine already (no download attempted)."""
    return local_path(VGG16_WEIGHTS, "DL1_WEIGHTS") is not None


def load_class_index(path=None, download=True, notice=None):
    """The 1000 ImageNet class names, in index order, from ``imagenet_class_index.json``.

    ``path`` may name a local copy. When the file is not here and cannot be downloaded (or ``download``
    is false), placeholder names ``class_0`` ... ``class_999`` are returned and ``notice`` (a print
    function) is told why: the names are for display only, the weights work without them.
    """
    path = path or local_path(IMAGENET_CLASS_INDEX, "DL1_CLASS_INDEX")
    if path is None and download:
        try:
            path = fetch(IMAGENET_CLASS_INDEX, "DL1_CLASS_INDEX", "ImageNet class index")
        except WeightsError as e:
            if notice:
                notice(f"ImageNet class names unavailable, using class_0 ... class_999 ({e})")
    if path is None:
        return [f"class_{i}" for i in range(1000)]
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        return [index[str(i)][1] for i in range(len(index))]
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise WeightsError(f"cannot read the ImageNet class index {path}: {e}") from None


# ---- keras.applications backbones (ResNet50, EfficientNetV2, ConvNeXt, ...): Keras' own files and URLs -------
# arch: (file with the ImageNet top, file without it), as keras.applications names them (dl1.models.archs)
BACKBONE_WEIGHTS = {a.name: (a.weights, a.weights_notop) for a in archs.ARCHS.values() if a.application}


def backbone_env_var(arch):
    """``DL1_WEIGHTS_RESNET50``, ``DL1_WEIGHTS_CONVNEXT_TINY``, ...: a copy of that backbone's file."""
    return archs.get(arch).env_var


def backbone_weights_path(arch, include_top=True):
    """Path to ``arch``'s ImageNet file (with or without its top): ``DL1_WEIGHTS_<ARCH>``; else
    ``DL1_WEIGHTS`` when it is a folder holding Keras' file or a file of exactly that name (so a VGG16
    file there is never loaded into a ResNet); else the Keras cache; else a download. Offline and not
    here: one WeightsError naming the file, the cache folder and the fixes (as for VGG16)."""
    spec = archs.get(arch)
    remote = spec.remote(include_top)
    shared = os.path.expanduser(os.environ.get("DL1_WEIGHTS", ""))
    if shared and not os.environ.get(backbone_env_var(arch)):
        candidate = os.path.join(shared, remote.fname) if os.path.isdir(shared) else shared
        if os.path.basename(candidate) == remote.fname and os.path.isfile(candidate):
            return candidate
    return fetch(remote, spec.env_var, f"{spec.name} ImageNet weights")


def have_backbone_weights(arch, include_top=True):
    """True when ``arch``'s ImageNet file is on this machine already (no download attempted)."""
    spec = archs.get(arch)
    return local_path(spec.remote(include_top), spec.env_var) is not None
