"""Data augmentation with the 2017 ``ImageDataGenerator`` options, applied to whole batches at once.

Keras 3 dropped ``ImageDataGenerator``. This one keeps its constructor arguments (rotation, shifts,
shear, zoom, channel shift, flips, fill mode) and its ``flow``/``flow_from_directory``/
``random_transform`` methods. It draws the random transforms here (numpy, one generator per image) and
the backend applies every geometric change of a batch as one affine warp (``dl1.backend``'s
``warp_images``: on PyTorch one ``grid_sample`` call per batch, on the GPU when there is one) instead of
one scipy call per channel per image as in 2017.
"""

import numpy as np

from dl1 import backend

FILL_MODES = ("nearest", "reflect", "constant", "wrap")


def default_device():
    """Where the backend augments by default ('cuda' when PyTorch sees a CUDA GPU, else 'cpu')."""
    return backend.current().augment_device()


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
        if fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {sorted(FILL_MODES)}, not {fill_mode!r}")
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
        n, h, w = x.shape[:3]
        mats, hflip, vflip, shifts = self.random_params(n, h, w, rng)
        out = backend.current().warp_images(np.asarray(x, dtype=np.float32), mats, hflip, vflip, shifts,
                                            fill_mode=self.fill_mode, cval=self.cval,
                                            interpolation=self.interpolation, device=self._resolve_device(),
                                            as_numpy=as_numpy)
        return self._finish(out, as_numpy)

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
