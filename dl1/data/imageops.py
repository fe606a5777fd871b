"""Small operations on image arrays from the 2017 ``utils.py`` (channels-last, 0-255 values)."""

import math

import numpy as np

to_bw = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma weights


def gray(img):
    """Grayscale (H, W) version of an (H, W, 3) image."""
    return np.asarray(img, dtype=np.float32) @ to_bw


def to_plot(img):
    """An image array as uint8 (H, W, C) for ``imshow`` (values clipped to 0-255)."""
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 0, -1)  # a channels-first image from 2017 code
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return np.clip(arr, 0, 255).astype(np.uint8)


def floor(x):
    return int(math.floor(x))


def ceil(x):
    return int(math.ceil(x))


def mk_size(img, r2c):
    """Zero-pad an (H, W, C) image, centred, to a rows/cols ratio of ``r2c``."""
    img = np.asarray(img, dtype=np.float32)
    r, c, ch = img.shape
    curr_r2c = r / c
    new_r, new_c = r, c
    if r2c > curr_r2c:
        new_r = floor(c * r2c)
    else:
        new_c = floor(r / r2c)
    arr = np.zeros((new_r, new_c, ch), dtype=np.float32)
    r2, c2 = (new_r - r) // 2, (new_c - c) // 2
    arr[r2:r2 + r, c2:c2 + c] = img
    return arr


def mk_square(img):
    """Zero-pad an (H, W, C) image, centred, to a square."""
    r, c = np.asarray(img).shape[:2]
    if r == c:
        return np.asarray(img, dtype=np.float32)
    return mk_size(img, 1.0)
