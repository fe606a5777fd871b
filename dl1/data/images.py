"""Find image files and decode them fast and safely into RGB arrays of a fixed size.

Decoding is the bottleneck of the recipe on a GPU box, so this module:
- asks Pillow's JPEG decoder for a reduced scale first (``draft``), then resizes;
- honours EXIF orientation, converts every colour mode (grayscale, palette, alpha, CMYK, 16-bit) to RGB;
- writes straight into a slot of a preallocated batch array;
- turns every decoding failure into :class:`UnreadableImage` naming the file.
"""

import os
import re
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps

# Keras 1/2 accepted these extensions in flow_from_directory; we add webp and gif.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif")
# Files that operating systems and tools drop into folders; never data.
JUNK_FILES = {"thumbs.db", "desktop.ini", ".ds_store"}

# A 'decompression bomb' guard that still admits big real photos (Pillow's default warns at ~89 MP).
Image.MAX_IMAGE_PIXELS = 300_000_000
ImageFile.LOAD_TRUNCATED_IMAGES = False

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


class UnreadableImage(Exception):
    """A file with an image extension that Pillow cannot decode (empty, truncated, not an image)."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def natural_key(name):
    """Sort key so that ``cat.2.jpg`` comes before ``cat.10.jpg``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def is_hidden_or_junk(name):
    return name.startswith(".") or name.lower() in JUNK_FILES


def is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not is_hidden_or_junk(name)


def list_images(folder, follow_links=False):
    """Image files under ``folder`` (recursively), as paths relative to it, in natural order.

    Returns ``(images, skipped)`` where ``skipped`` lists relative paths of files that are not images
    (other extensions, dangling or looping symlinks); hidden and junk files are ignored silently.
    """
    images, skipped = [], []
    seen_dirs = set()
    for root, dirs, files in os.walk(folder, followlinks=follow_links):
        if follow_links:  # guard against symlink loops when following links
            real = os.path.realpath(root)
            if real in seen_dirs:
                dirs[:] = []
                continue
            seen_dirs.add(real)
        dirs[:] = sorted((d for d in dirs if not is_hidden_or_junk(d)), key=natural_key)
        rel_root = os.path.relpath(root, folder)
        for name in sorted(files, key=natural_key):
            if is_hidden_or_junk(name):
                continue
            rel = name if rel_root == "." else os.path.join(rel_root, name)
            full = os.path.join(root, name)
            if is_image_name(name) and os.path.isfile(full):
                images.append(rel)
            else:
                skipped.append(rel)
        if not follow_links:
            # directories that are symlinks are listed in dirs but not entered; report them
            for d in list(dirs):
                if os.path.islink(os.path.join(root, d)):
                    skipped.append(d if rel_root == "." else os.path.join(rel_root, d))
    return images, skipped


def _to_rgb(img):
    """Convert any Pillow mode to 8-bit RGB; transparent areas become white, 16-bit is rescaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
        arr = ((arr - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def open_image(path, target_size=None):
    """Open an image as an upright RGB Pillow image; with ``target_size`` (h, w) the JPEG decoder works
    at the smallest scale that is still at least that big (Pillow draft mode), which is much faster.

    Raises :class:`UnreadableImage` naming the file for anything Pillow cannot read.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            # JPEG keeps EXIF in info["exif"]; other formats (TIFF tags, PNG eXIf) are asked directly
            has_exif = img.format != "JPEG" or "exif" in img.info
            orientation = img.getexif().get(0x0112, 1) if has_exif else 1
            if target_size is not None and img.format == "JPEG":
                h, w = target_size
                if orientation in (5, 6, 7, 8):  # rotated 90 degrees: width and height swap after transpose
                    h, w = w, h
                img.draft("RGB", (w, h))
            img.load()
            if orientation != 1:  # exif_transpose copies the image even when there is nothing to turn
                img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as e:
        raise UnreadableImage(path, f"image too large to decode safely ({e})") from None
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError, EOFError) as e:
        reason = "empty file" if _is_empty(path) else _short_reason(e)
        raise UnreadableImage(path, reason) from None


def _is_empty(path):
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def _short_reason(exc):
    text = str(exc).strip() or type(exc).__name__
    if "cannot identify image file" in text:
        return "not an image file (Pillow cannot identify it)"
    if "truncated" in text:
        return "truncated image (incomplete download?)"
    return text.splitlines()[0][:200]


def header_problem(path):
    """Why ``path`` is not a readable image judging from its header (cheap), or None if it looks fine.

    Catches empty files, text files named ``.jpg`` and other non-images without decoding pixels;
    truncated files are only found when decoded (see :func:`open_image`).
    """
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path):
                return None
    except Image.DecompressionBombError as e:  # not an OSError: a header claiming billions of pixels
        return f"image too large to decode safely ({e})"
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        return _short_reason(e)


def resample_filter(interpolation):
    try:
        return _RESAMPLE[interpolation]
    except KeyError:
        raise ValueError(
            f"interpolation must be one of {sorted(_RESAMPLE)}, not {interpolation!r}"
        ) from None


def load_resized(path, target_size, interpolation="nearest", out=None, transform=None):
    """Decode ``path`` to a (h, w, 3) array of 0-255 values, resized to ``target_size`` = (h, w).

    With ``out`` (a float32 or uint8 array slot of that shape) the pixels are written there and no
    other array is allocated. ``transform``, if given, is called with the resized Pillow image and
    returns another Pillow image of the same size (CPU augmentation).
    """
    h, w = target_size
    img = open_image(path, target_size)
    if img.size != (w, h):
        img = img.resize((w, h), resample_filter(interpolation))
    if transform is not None:
        img = transform(img)
    if out is None:
        return np.asarray(img, dtype=np.float32)
    out[...] = np.asarray(img)
    return out
