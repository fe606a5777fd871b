"""The SciPy image functions the 2017 notebooks call and SciPy removed, on Pillow, with their 2017 meaning.

``ndimage`` and ``misc`` are the names ``from utils import *`` gave in 2017 (``scipy.ndimage``,
``scipy.misc``): ``ndimage.imread(path)``, ``misc.imread(path)``, ``misc.imresize(arr, size,
interp='bilinear', mode=None)`` and ``misc.imsave`` work as in SciPy 0.19; every other attribute falls
through to ``scipy.ndimage`` / ``scipy.misc`` (``ndimage.zoom``, ``ndimage.correlate``, ...).

2017 details kept on purpose: ``imresize`` returns ``uint8`` and, like SciPy's ``toimage``, rescales a
non-``uint8`` array so that its minimum becomes 0 and its maximum 255 (``mode='F'`` keeps float values);
``size`` is an int percentage, a float fraction or a ``(height, width)`` tuple; ``interp`` is
``'nearest'``, ``'lanczos'``, ``'bilinear'``, ``'bicubic'`` or ``'cubic'``.
"""

import importlib
import os
import types

import numpy as np
from PIL import Image

from dl1.io.errors import DataError

__all__ = ["imread", "imresize", "imsave", "toimage", "fromimage", "bytescale", "ndimage", "misc"]

_INTERP = {"nearest": Image.NEAREST, "lanczos": Image.LANCZOS, "bilinear": Image.BILINEAR,
           "bicubic": Image.BICUBIC, "cubic": Image.BICUBIC}


def bytescale(data, cmin=None, cmax=None, high=255, low=0):
    """SciPy's ``bytescale``: ``uint8`` stays as it is; anything else maps [cmin, cmax] onto [low, high]."""
    data = np.asarray(data)
    if data.dtype == np.uint8:
        return data
    cmin = data.min() if cmin is None else cmin
    cmax = data.max() if cmax is None else cmax
    scale = float(high - low) / ((cmax - cmin) or 1)
    return (np.clip((data * 1.0 - cmin) * scale + low, low, high) + 0.5).astype(np.uint8)


def toimage(arr, high=255, low=0, cmin=None, cmax=None, mode=None, channel_axis=None):
    """SciPy's ``toimage``: a Pillow image from a 2-D array (``mode`` None/'L', 'F', 'I') or a 3-D array
    with a channel axis of 3 (RGB) or 4 (RGBA), channels-last or channels-first."""
    data = np.asarray(arr)
    if np.iscomplexobj(data):
        raise ValueError("imresize/toimage: cannot convert a complex array to an image")
    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        if mode == "F":
            return Image.fromarray(data.astype(np.float32), mode="F")
        if mode in (None, "L", "P"):
            return Image.fromarray(bytescale(data, cmin, cmax, high, low), mode="L")
        if mode == "I":
            return Image.fromarray(data.astype(np.int32), mode="I")
        raise ValueError(f"imresize/toimage: mode={mode!r} is not supported for a 2-D array (None, 'L', 'F', 'I')")
    if data.ndim != 3:
        raise ValueError(f"imresize/toimage: expected a 2-D or 3-D image array, got shape {data.shape}")
    if channel_axis is None:
        candidates = [i for i in (2, 0, 1) if data.shape[i] in (3, 4)]
        if not candidates:
            raise ValueError(f"imresize/toimage: a 3-D array needs 3 or 4 channels, got shape {data.shape}")
        channel_axis = candidates[0]
    data = np.moveaxis(data, channel_axis, -1)
    mode = mode or ("RGB" if data.shape[-1] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(bytescale(data, cmin, cmax, high, low)), mode=mode)


def fromimage(im, flatten=False, mode=None):
    """SciPy's ``fromimage``: the array of a Pillow image (``mode`` converts first; ``flatten``: float gray)."""
    if mode is not None:
        im = im.convert(mode)
    elif im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if flatten:
        im = im.convert("F")
    return np.array(im)


def imread(name, flatten=False, mode=None):
    """SciPy's ``imread`` (``scipy.ndimage.imread``, ``scipy.misc.imread``): the image file as an array,
    ``uint8`` (H, W, 3) for an RGB JPEG; ``flatten=True`` gives float32 grayscale, ``mode`` a Pillow mode."""
    try:
        with Image.open(name) as im:
            return fromimage(im, flatten=flatten, mode=mode)
    except FileNotFoundError:
        raise DataError(f"{os.fspath(name)}: no such image file") from None
    except (OSError, SyntaxError) as e:
        raise DataError(f"{os.fspath(name)}: not a readable image ({e})") from None


def imresize(arr, size, interp="bilinear", mode=None):
    """SciPy's ``imresize``: ``size`` an int (percent), a float (fraction) or ``(height, width)``; returns
    ``uint8`` (rescaled to 0-255 unless it already was ``uint8``; ``mode='F'`` keeps float32)."""
    if interp not in _INTERP:
        raise ValueError(f"imresize: interp={interp!r}; use one of {', '.join(_INTERP)}")
    im = toimage(arr, mode=mode)
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        new = tuple((np.array(im.size) * (size / 100.0)).astype(int))
    elif isinstance(size, (float, np.floating)):
        new = tuple((np.array(im.size) * size).astype(int))
    else:
        new = (int(size[1]), int(size[0]))
    if min(new) < 1:
        raise ValueError(f"imresize: size {size!r} gives an empty image from {im.size[1]}x{im.size[0]}")
    return fromimage(im.resize(new, resample=_INTERP[interp]))


def imsave(name, arr, format=None):
    """SciPy's ``imsave``: write an array as an image file (``bytescale``d as ``toimage`` does)."""
    toimage(arr).save(name, format=format)


class _ScipyFace(types.ModuleType):
    """``ndimage``/``misc``: the removed functions here, everything else from the SciPy module."""

    def __init__(self, name, target, functions):
        super().__init__(name, f"``{target}`` with the image functions SciPy removed (dl1.compat.scipyimage)")
        self._target = target
        for fn in functions:
            setattr(self, fn.__name__, fn)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        module = importlib.import_module(self._target)
        try:
            return getattr(module, name)
        except AttributeError:
            raise AttributeError(f"{self._target} has no attribute {name!r} (SciPy removed it or never had "
                                 "it)") from None

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(dir(importlib.import_module(self._target))))


ndimage = _ScipyFace("ndimage", "scipy.ndimage", [imread])
misc = _ScipyFace("misc", "scipy.misc", [imread, imresize, imsave, toimage, fromimage, bytescale])
