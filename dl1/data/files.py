"""Any image files and folders, as a model reads them: ``dl1 classify``, ``predict_files`` and the app.

``find_images(paths)`` turns files and folders (searched recursively, as the batches search a class folder)
into a list of image files, naming in one line what it skips: files that are not images, and files whose
header Pillow cannot read (``header_problem``, checked in parallel as the batches do). ``load_images`` then
decodes them exactly as ``get_batches`` does (``load_resized``: JPEG draft mode, EXIF orientation, every
colour mode to RGB, ``nearest`` resize to the model's size) into one float32 array of raw 0-255 RGB, and
reports the files that only fail when decoded (a truncated JPEG). No Keras here: the app's ONNX path
imports this module and not the training stack.
"""

import os
import warnings

import numpy as np
from PIL import Image

from dl1.data.images import (
    UnreadableImage,
    header_problem,
    list_images,
    load_resized,
    open_image,
)
from dl1.io.errors import DataError
from dl1.io.log import warn_files
from dl1.io.pools import decode_pool

__all__ = ["describe_image", "find_images", "load_images", "report_skipped"]


def report_skipped(skipped, what):
    """One warning line: how many files ``skipped`` (``{path: reason}``) holds, as ``what`` (e.g. 'unreadable
    image(s)'), and the first three; nothing when it is empty."""
    warn_files(f"skipped {{count}} {what}", [f"{p} ({r})" for p, r in skipped.items()])


def _header_problem(path):
    """``header_problem``, with a decompression bomb (a header claiming over 600 million pixels) named as
    ``open_image`` names it instead of raised."""
    try:
        return header_problem(path)
    except Image.DecompressionBombError as e:
        return f"image too large to decode safely ({e})"


def find_images(paths):
    """``(files, skipped)``: the image files among ``paths`` (files, and folders searched recursively, in
    natural order; each file once), and ``{path: reason}`` for what is not a readable image, which is
    reported in one line. A path that does not exist, or no image at all, is a one-line ``DataError``."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    missing = [os.fspath(p) for p in paths if not os.path.exists(p)]
    if missing:
        raise DataError(f"not found: {', '.join(missing)}")
    files, skipped = [], {}
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            images, other = list_images(path)
            files += [os.path.join(path, f) for f in images]
            skipped.update((os.path.join(path, f), "not an image file name") for f in other)
        else:
            files.append(path)  # a file named explicitly is tried whatever its extension
    files = list(dict.fromkeys(files))
    reasons = list(decode_pool().map(_header_problem, files))
    unreadable = {f: r for f, r in zip(files, reasons, strict=True) if r is not None}
    skipped.update(unreadable)
    report_skipped(skipped, "file(s) that are not readable images")
    files = [f for f in files if f not in unreadable]
    if not files:
        raise DataError(f"no readable image in {', '.join(map(os.fspath, paths))}")
    return files, skipped


def load_images(files, size, interpolation="nearest"):
    """``(x, files_read, unreadable)``: the images ``files`` decoded as ``get_batches`` decodes them, at
    ``size`` = (height, width), as one float32 (n, h, w, 3) array of 0-255 RGB; ``files_read`` the files
    whose rows ``x`` holds, ``unreadable`` ``{path: reason}`` for the others (not reported here)."""
    size = tuple(int(s) for s in size)
    x = np.zeros((len(files),) + size + (3,), dtype=np.float32)

    def load(path, slot):
        try:
            load_resized(path, size, interpolation, out=slot)
            return None
        except UnreadableImage as e:
            return e.reason

    reasons = list(decode_pool().map(load, files, x))
    keep = [i for i, r in enumerate(reasons) if r is None]
    unreadable = {f: r for f, r in zip(files, reasons, strict=True) if r is not None}
    return x[keep], [files[i] for i in keep], unreadable


def describe_image(path):
    """What a file is, in words, for a person (``'6000x4000 JPEG, RGB'``; ``'512x512 PNG, 16-bit
    grayscale, converted to 8-bit RGB'``); an ``UnreadableImage`` when Pillow cannot read it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt, mode, (w, h) = img.format or "image", img.mode, img.size
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        open_image(path)  # raises UnreadableImage with the reason the batches give
        raise
    words = {"RGB": "RGB", "L": "grayscale", "LA": "grayscale with alpha", "RGBA": "RGB with alpha",
             "P": "palette", "CMYK": "CMYK", "1": "black and white", "I;16": "16-bit grayscale",
             "I;16B": "16-bit grayscale", "I;16L": "16-bit grayscale", "I": "32-bit grayscale",
             "F": "floating-point grayscale"}
    text = f"{w}x{h} {fmt}, {words.get(mode, mode)}"
    return text if mode == "RGB" else text + ", converted to 8-bit RGB"
