"""Data augmentation with the 2017 ``ImageDataGenerator`` options, applied to whole batches at once.

Keras 3 dropped ``ImageDataGenerator``. This one keeps its constructor arguments (rotation, shifts,
shear, zoom, channel shift, flips, fill mode) and its ``flow``/``flow_from_directory``/
``random_transform`` methods, but applies every geometric change of a batch as one affine warp with
``torch.nn.functional.grid_sample``: on the GPU when there is one, else on the CPU, in one call per
batch instead of one scipy call per channel per image as in 2017.
"""

import numpy as np

_PADDING = {"nearest": "border", "reflect": "reflection", "constant": "zeros", "wrap": "border"}


def _torch():
    import torch  # imported lazily: data preparation must start quickly

    return torch


def default_device():
    """'cuda' when a CUDA GPU is visible to torch, else 'cpu'."""
    torch = _torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


class Augmentation:
    """Random augmentation settings, as in Keras 1/2's ``ImageDataGenerator`` (whose ``flow`` methods
    ``dl1.data.batches.ImageDataGenerator`` adds) (``dim_ordering``/``data_format`` are accepted
    and ignored: images are always channels-last).

    ``shear_range`` is in radians, as in Keras 1 and the 2017 notebooks (0.15 is about 8.6 degrees);
    ``rotation_range`` in degrees; shifts as fractions of width/height (or pixels when > 1);
    ``zoom_range`` a float r (zoom in [1-r, 1+r]) or a pair; ``channel_shift_range`` in 0-255 units.
    """

    def __init__(self, rotation_range=0.0, width_shift_range=0.0, height_shift_range=0.0,
                 shear_range=0.0, zoom_range=0.0, channel_shift_range=0.0, fill_mode="nearest",
                 cval=0.0, horizontal_flip=False, vertical_flip=False, rescale=None,
                 preprocessing_function=None, dim_ordering=None, data_format=None, device="auto",
                 featurewise_center=False, samplewise_center=False,
                 featurewise_std_normalization=False, samplewise_std_normalization=False,
                 zca_whitening=False, interpolation="bilinear"):
        if fill_mode not in _PADDING:
            raise ValueError(f"fill_mode must be one of {sorted(_PADDING)}, not {fill_mode!r}")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError("interpolation must be 'bilinear' or 'nearest'")
        unsupported = [name for name, value in [
            ("featurewise_center", featurewise_center), ("samplewise_center", samplewise_center),
            ("featurewise_std_normalization", featurewise_std_normalization),
            ("samplewise_std_normalization", samplewise_std_normalization),
            ("zca_whitening", zca_whitening)] if value]
        if unsupported:
            raise ValueError(
                f"{', '.join(unsupported)} not supported: the models here normalise inside the network "
                "(VGG's caffe-style preprocessing); use a BatchNormalization layer instead")
        if np.isscalar(zoom_range):
            zoom_range = (1 - zoom_range, 1 + zoom_range)
        if len(zoom_range) != 2:
            raise ValueError(f"zoom_range must be a float or a pair, not {zoom_range!r}")
        self.rotation_range = float(rotation_range)
        self.width_shift_range = float(width_shift_range)
        self.height_shift_range = float(height_shift_range)
        self.shear_range = float(shear_range)
        self.zoom_range = (float(zoom_range[0]), float(zoom_range[1]))
        self.channel_shift_range = float(channel_shift_range)
        self.fill_mode = fill_mode
        self.cval = float(cval)
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        self.rescale = rescale
        self.preprocessing_function = preprocessing_function
        self.device = device
        self.interpolation = interpolation

    def __repr__(self):
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"

    def options(self):
        """The non-default settings, for display and for cache keys."""
        defaults = Augmentation()
        keys = ["rotation_range", "width_shift_range", "height_shift_range", "shear_range",
                "zoom_range", "channel_shift_range", "fill_mode", "cval", "horizontal_flip",
                "vertical_flip", "rescale", "interpolation"]
        out = {k: getattr(self, k) for k in keys if getattr(self, k) != getattr(defaults, k)}
        if self.preprocessing_function is not None:
            out["preprocessing_function"] = getattr(self.preprocessing_function, "__name__", "fn")
        return out

    @property
    def is_random(self):
        """True when two passes over the same image can give different pixels."""
        return bool(self.rotation_range or self.width_shift_range or self.height_shift_range
                    or self.shear_range or self.zoom_range != (1.0, 1.0) or self.channel_shift_range
                    or self.horizontal_flip or self.vertical_flip)

    @property
    def is_identity(self):
        """True when the generator changes nothing (so features of its images can be cached)."""
        return not self.is_random and self.rescale is None and self.preprocessing_function is None

    # ---- the random parameters -------------------------------------------------------------------
    def _shift(self, rng, r, extent, n):
        if not r:
            return np.zeros(n)
        span = r * extent if r < 1 else r
        return rng.uniform(-span, span, n)

    def random_params(self, n, height, width, rng):
        """Draw ``n`` sets of parameters: (n, 2, 3) affine matrices in normalised coordinates for
        ``torch.affine_grid`` (output -> input), flip flags and channel shifts. ``rng`` is one numpy
        Generator for the batch, or a list of ``n`` (one per image: the batches use that, so an image's
        transform depends only on its seed, epoch and index)."""
        if isinstance(rng, (list, tuple)):
            if len(rng) != n:
                raise ValueError(f"{len(rng)} random generators for {n} images")
            parts = zip(*(self.random_params(1, height, width, r) for r in rng), strict=True)
            return tuple(None if p[0] is None else np.concatenate(p) for p in parts)
        theta = np.deg2rad(rng.uniform(-self.rotation_range, self.rotation_range, n)) \
            if self.rotation_range else np.zeros(n)
        shear = rng.uniform(-self.shear_range, self.shear_range, n) if self.shear_range else np.zeros(n)
        lo, hi = self.zoom_range
        zx, zy = (rng.uniform(lo, hi, (2, n)) if (lo, hi) != (1.0, 1.0) else np.ones((2, n)))
        tx = self._shift(rng, self.width_shift_range, width, n)
        ty = self._shift(rng, self.height_shift_range, height, n)
        cos, sin = np.cos(theta), np.sin(theta)
        # M = Rotation @ Shear @ Zoom in centred pixel coordinates (as Keras composed them)
        m = np.empty((n, 2, 2))
        m[:, 0, 0] = cos * zx
        m[:, 0, 1] = (-cos * np.sin(shear) - sin * np.cos(shear)) * zy
        m[:, 1, 0] = sin * zx
        m[:, 1, 1] = (-sin * np.sin(shear) + cos * np.cos(shear)) * zy
        # normalised coords: p_n = D^-1 p_pixel, D = diag(w/2, h/2)
        d = np.array([width / 2.0, height / 2.0])
        mats = np.empty((n, 2, 3), dtype=np.float32)
        mats[:, :, :2] = m * d[None, None, :] / d[None, :, None]
        mats[:, 0, 2] = tx / d[0]
        mats[:, 1, 2] = ty / d[1]
        hflip = rng.random(n) < 0.5 if self.horizontal_flip else np.zeros(n, bool)
        vflip = rng.random(n) < 0.5 if self.vertical_flip else np.zeros(n, bool)
        shifts = (rng.uniform(-self.channel_shift_range, self.channel_shift_range, (n, 3))
                  if self.channel_shift_range else None)
        return mats, hflip, vflip, shifts

    # ---- applying them ---------------------------------------------------------------------------
    def _resolve_device(self):
        return default_device() if self.device == "auto" else self.device

    def apply_batch(self, x, rng, as_numpy=True):
        """Augment a batch ``x`` (N, H, W, C) of 0-255 values with random parameters drawn from ``rng``
        (a Generator, or one per image)."""
        if not self.is_random:
            return self._finish(np.asarray(x, dtype=np.float32), as_numpy)
        torch = _torch()
        n, h, w = x.shape[:3]
        mats, hflip, vflip, shifts = self.random_params(n, h, w, rng)
        device = self._resolve_device()
        t = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device).permute(0, 3, 1, 2)
        geometric = not np.allclose(mats, np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
        if geometric:
            lo, hi = t.amin(dim=(1, 2, 3), keepdim=True), t.amax(dim=(1, 2, 3), keepdim=True)
            theta = torch.as_tensor(mats, device=device)
            grid = torch.nn.functional.affine_grid(theta, list(t.shape), align_corners=False)
            if self.fill_mode == "wrap":  # tile the image: coordinates modulo its size ([-1, 1) in grid units)
                grid = torch.remainder(grid + 1, 2) - 1
            fill = self.fill_mode == "constant" and self.cval != 0
            src = t - self.cval if fill else t
            t = torch.nn.functional.grid_sample(src, grid, mode=self.interpolation,
                                                padding_mode=_PADDING[self.fill_mode],
                                                align_corners=False)
            if fill:
                t = t + self.cval
            t = torch.minimum(torch.maximum(t, lo), hi) if not fill else t
        if shifts is not None:
            lo, hi = t.amin(dim=(1, 2, 3), keepdim=True), t.amax(dim=(1, 2, 3), keepdim=True)
            t = t + torch.as_tensor(shifts, dtype=t.dtype, device=device)[:, :, None, None]
            t = torch.minimum(torch.maximum(t, lo), hi)
        if hflip.any():
            idx = torch.as_tensor(np.flatnonzero(hflip), device=device)
            t[idx] = t[idx].flip(3)
        if vflip.any():
            idx = torch.as_tensor(np.flatnonzero(vflip), device=device)
            t[idx] = t[idx].flip(2)
        t = t.permute(0, 2, 3, 1)
        if as_numpy or device == "cpu":
            t = np.ascontiguousarray(t.cpu().numpy())
        return self._finish(t, as_numpy)

    def _finish(self, x, as_numpy):
        if self.rescale is not None:
            x = x * self.rescale
        if self.preprocessing_function is not None:
            x = np.stack([self.preprocessing_function(img) for img in np.asarray(x)])
        return x

    def random_transform(self, x, seed=None):
        """One randomly augmented copy of a single image ``x`` (H, W, C), as in Keras."""
        rng = np.random.default_rng(seed)
        return self.apply_batch(np.asarray(x, dtype=np.float32)[None], rng)[0]

    def standardize(self, x):
        """Kept for the 2017 API: rescale and preprocessing_function only."""
        return self._finish(np.asarray(x, dtype=np.float32), True)
