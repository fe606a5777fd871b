"""Test-time augmentation: predict each image as it is and in ``n - 1`` altered versions, and average.

The versions, in order: the original, its mirror image (horizontal flip), then shifted copies (by
``shift`` of the side, edges repeated: a small crop moved about the image), each also mirrored:

    0 original, 1 flipped, 2 shifted down-right, 3 flipped + shifted up-left, 4 shifted up-right,
    5 flipped + shifted down-left, ...

So ``n=1`` is plain prediction and ``n=2`` the mean over the image and its mirror. The transforms are
fixed (not random), so results are reproducible, and rows follow ``batches.filenames`` as without TTA.
"""

import numpy as np

from dl1.io.console import keras_verbose

_SHIFTS = ((1, 1), (-1, -1), (-1, 1), (1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))


def tta_transforms(n, shift=0.08):
    """``n`` descriptions ``(flip, dy, dx)`` (shifts as fractions of the height/width)."""
    if n < 1:
        raise ValueError(f"tta must be 1 or more (1 = no augmentation), not {n}")
    out = [(False, 0.0, 0.0), (True, 0.0, 0.0)]
    k = 0
    while len(out) < n:
        sy, sx = _SHIFTS[k % len(_SHIFTS)]
        scale = 1 + k // len(_SHIFTS)
        out.append((k % 2 == 1, sy * shift * scale, sx * shift * scale))
        k += 1
    return out[:n]


def _shifted(x, dy, dx):
    """``x`` (N, H, W, C) moved by ``dy``/``dx`` pixels, the uncovered border filled with edge pixels."""
    if not dy and not dx:
        return x
    h, w = x.shape[1:3]
    py, px = abs(dy), abs(dx)
    padded = np.pad(x, ((0, 0), (py, py), (px, px), (0, 0)), mode="edge")
    top, left = py - dy, px - dx
    return padded[:, top:top + h, left:left + w]


def apply_transform(x, transform):
    """One fixed TTA version of the batch ``x`` (N, H, W, C)."""
    flip, fy, fx = transform
    h, w = x.shape[1:3]
    out = _shifted(x, int(round(fy * h)), int(round(fx * w)))
    if flip:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out, dtype=np.float32)


def predict_tta(model, batches, n=4, shift=0.08, verbose=1):
    """Mean probabilities over ``tta_transforms(n, shift)`` for every image of ``batches`` (which must not
    shuffle), rows in ``batches.filenames`` order; ``n=1`` is ``model.predict(batches)``."""
    if getattr(batches, "shuffle", False):
        raise ValueError("test-time augmentation needs batches with shuffle=False (rows must follow filenames)")
    transforms = tta_transforms(n, shift)
    if n == 1:
        return model.predict(batches, verbose=keras_verbose(verbose))
    from dl1.io.console import tqdm
    from dl1.io.pools import prefetch_pool

    outs = []
    pool = prefetch_pool()
    pending = pool.submit(batches.__getitem__, 0) if len(batches) else None
    for i in tqdm(range(len(batches)), desc=f"TTA x{n}", unit="batch", disable=not verbose):
        item = pending.result()
        if i + 1 < len(batches):
            pending = pool.submit(batches.__getitem__, i + 1)
        x = item[0] if isinstance(item, tuple) else item
        total = None
        for t in transforms:
            p = np.asarray(model.predict_on_batch(apply_transform(x, t)), dtype=np.float64)
            total = p if total is None else total + p
        outs.append((total / len(transforms)).astype(np.float32))
    return np.concatenate(outs) if outs else np.zeros((0,) + tuple(model.output_shape[1:]), np.float32)
