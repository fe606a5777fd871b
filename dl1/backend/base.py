"""``Backend``: what dl1 needs from a Keras backend beyond Keras' public API, in one small interface.

This class is the interface and its plain implementation, correct on every backend: no shortcut layers,
augmentation with SciPy on the CPU, one process. A backend's module overrides what it does faster or
differently (``torch_impl.TorchBackend``, ``jax_impl.JaxBackend``). The groups:

- fast layers: ``supports_fast_conv2d``/``conv2d`` and ``supports_fast_max_pool2d``/``max_pool2d``, which
  ``dl1.nn.layers`` calls when Keras' own layer would copy memory around, ``dense`` (a faster product where
  the backend has one), and ``supports_fast_lstm``/``lstm``, an LSTM layer's whole sequence in one fused
  kernel where Keras would loop over the time steps in Python;
- precision: ``gpu()`` and ``mixed_precision_policy``;
- device augmentation: ``augment_device`` and ``warp_images`` (``dl1.data.augment`` draws the random
  transforms, the backend applies them to a batch);
- automatic differentiation of hand-written models: ``value_and_grad`` (``dl1.models.rnn``);
- recurrent state: ``stateful_initial_state`` (``dl1.nn.layers``' LSTM/GRU/SimpleRNN);
- data parallel: ``process_group`` (several processes started by ``torchrun``) and ``device_parallel`` (one
  process, several devices), used by ``dl1.train.fit``;
- the compile policy: ``jit_compile``, the value given to ``model.compile(jit_compile=...)``;
- export: ``onnx_program``, a Keras model as an ONNX program with a dynamic batch dimension.
"""

import contextlib
import os

import numpy as np

IDENTITY = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)
_SCIPY_MODES = {"nearest": "nearest", "reflect": "reflect", "constant": "grid-constant", "wrap": "grid-wrap"}


def launched():
    """True when ``torchrun`` (or ``torch.distributed.run``) started this process, even with one process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def pixel_matrix(theta, height, width):
    """The (row, column) pixel-coordinate affine map (3x3) of ``theta``, a 2x3 matrix in the normalised
    output-to-input coordinates of ``torch.nn.functional.affine_grid`` (``align_corners=False``)."""
    to_norm = np.array([[2.0 / width, 0, 1.0 / width - 1], [0, 2.0 / height, 1.0 / height - 1], [0, 0, 1]])
    full = np.vstack([np.asarray(theta, dtype=np.float64), [0, 0, 1]])
    xy = np.linalg.inv(to_norm) @ full @ to_norm  # (x, y) = (column, row)
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)
    return swap @ xy @ swap


class Backend:
    """The plain implementation (see the module docstring); ``name`` is Keras' name of the backend."""

    def __init__(self, name="keras"):
        self.name = name

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"

    # ---- fast layers ---------------------------------------------------------------------------------
    def supports_fast_conv2d(self, kernel_size, strides, padding):
        """Whether ``conv2d`` computes a channels-last convolution with these settings."""
        return False

    def conv2d(self, x, kernel, bias, strides, padding, relu=False):
        """NHWC ``x`` convolved with an HWIO ``kernel`` (Keras' layout), plus ``bias`` (or None); with ``relu``,
        max(0, .) of that, in the same pass where the backend can fuse it."""
        raise NotImplementedError(f"no fast conv2d on the {self.name} backend")

    def dense(self, x, kernel, bias, relu=False):
        """``x @ kernel + bias`` for a 2-D ``x`` (``bias`` may be None); with ``relu``, max(0, .) of that, in
        the same pass where the backend can fuse it."""
        from keras import ops

        out = ops.matmul(x, kernel)
        out = out if bias is None else ops.add(out, bias)
        return ops.relu(out) if relu else out

    def supports_fast_max_pool2d(self, padding):
        return False

    def max_pool2d(self, x, pool_size, strides):
        raise NotImplementedError(f"no fast max_pool2d on the {self.name} backend")

    def supports_fast_lstm(self):
        """Whether ``lstm`` can run now (e.g. not while a compiler traces the step)."""
        return False

    def lstm(self, inputs, h, c, kernel, recurrent_kernel, bias, return_sequences, go_backwards):
        """A tanh/sigmoid LSTM with bias over batch-first ``inputs`` from states ``h``, ``c`` with Keras'
        weights (gates i, f, c, o): ``(last output, outputs, [h, c])`` as Keras' ``backend.lstm`` returns."""
        raise NotImplementedError(f"no fast lstm on the {self.name} backend")

    # ---- precision -----------------------------------------------------------------------------------
    def gpu(self):
        """``(a GPU computes here, it computes bfloat16)``."""
        return False, True

    def mixed_precision_policy(self, setting):
        """The Keras dtype policy for ``setting``: False/None -> None (float32); True -> 'mixed_bfloat16'
        where the device computes bfloat16, else 'mixed_float16'; 'auto' -> like True on a GPU, None
        otherwise; a policy name is returned as it is."""
        if setting in (None, False):
            return None
        if isinstance(setting, str) and setting != "auto":
            return setting
        on_gpu, bfloat16 = self.gpu()
        if setting == "auto" and not on_gpu:
            return None
        return "mixed_bfloat16" if bfloat16 else "mixed_float16"

    # ---- device augmentation -------------------------------------------------------------------------
    def augment_device(self):
        """Where ``warp_images`` runs by default."""
        return "cpu"

    def warp_images(self, x, mats, hflip, vflip, shifts, fill_mode="nearest", cval=0.0,
                    interpolation="bilinear", device="cpu", as_numpy=True):
        """Apply one affine warp per image of ``x`` (N, H, W, C float32): ``mats`` (N, 2, 3) in
        ``affine_grid``'s normalised output-to-input coordinates, ``fill_mode`` for pixels from outside
        (nearest | reflect | constant with ``cval`` | wrap), values kept within each image's range; then
        the channel ``shifts`` (N, C) or None, and the horizontal/vertical flips (boolean arrays)."""
        from scipy import ndimage

        x = np.asarray(x, dtype=np.float32)
        out = x.copy()
        n, h, w = x.shape[:3]
        if not np.allclose(mats, IDENTITY):
            lo = x.min(axis=(1, 2, 3), keepdims=True)
            hi = x.max(axis=(1, 2, 3), keepdims=True)
            order = 1 if interpolation == "bilinear" else 0
            for i in range(n):
                m = pixel_matrix(mats[i], h, w)
                for c in range(x.shape[3]):
                    out[i, ..., c] = ndimage.affine_transform(
                        x[i, ..., c], m[:2, :2], offset=m[:2, 2], order=order, mode=_SCIPY_MODES[fill_mode],
                        cval=cval)
            if fill_mode != "constant" or cval == 0:
                out = np.clip(out, lo, hi)
        if shifts is not None:
            lo = out.min(axis=(1, 2, 3), keepdims=True)
            hi = out.max(axis=(1, 2, 3), keepdims=True)
            out = np.clip(out + np.asarray(shifts, dtype=np.float32)[:, None, None, :], lo, hi)
        out[hflip] = out[hflip][:, :, ::-1]
        out[vflip] = out[vflip][:, ::-1]
        return np.ascontiguousarray(out)

    # ---- automatic differentiation -------------------------------------------------------------------
    def value_and_grad(self, fn):
        """``fn(weights) -> scalar`` as ``g(weights) -> (value, [d value / d w for w in weights])``."""
        raise NotImplementedError(f"value_and_grad: no automatic differentiation for the {self.name} backend")

    # ---- recurrent state -----------------------------------------------------------------------------
    def stateful_initial_state(self, layer):
        """The initial state a stateful RNN ``layer`` should be called with, or None for its own."""
        return None

    # ---- data parallel -------------------------------------------------------------------------------
    def pin_device(self):
        """Under a multi-process launch, make this process's own device the default (before models are
        built); nothing here."""

    def process_group(self):
        """The ``ProcessGroup`` of a multi-process launch (``torchrun``), or None: one process."""
        return None

    def device_parallel(self):
        """A context manager under which one process trains on all its local devices (nothing here)."""
        return contextlib.nullcontext(False)

    # ---- compile policy ------------------------------------------------------------------------------
    def jit_compile(self, requested, steps=None, kind=None, say=True):
        """The ``jit_compile`` value for ``model.compile`` (``steps`` None) or for a training run of ``steps``
        steps of a model of ``kind`` (``model_kind``), saying which in one line (``say``: also when it is
        eager): ``requested`` ('auto', True, False) as it is here (Keras resolves 'auto' itself: XLA on JAX)."""
        return requested

    def outside_compiled(self, fn):
        """``fn`` run as it is even when a compiled step calls it: the Python numbers it reads (Adam's
        ``beta_1`` under one-cycle) may then change every step without compiling again."""
        return fn

    def compile_failures(self):
        """The exception classes that mean compiling the training step failed (it then runs eager)."""
        return ()

    # ---- export --------------------------------------------------------------------------------------
    def onnx_program(self, model, size, input_name, output_name):
        """``model`` (a built Keras model on raw ``size`` images) as an ONNX program with a ``save(path)``
        method and a ``model`` (``onnx.ModelProto``), its batch dimension dynamic."""
        raise NotImplementedError(f"ONNX export runs on the torch backend (KERAS_BACKEND=torch), not {self.name}")


class ProcessGroup:
    """One process of a data-parallel run: ``rank`` among ``world`` processes, and the collective operations
    each backend implements (every process calls each of them in the same order)."""

    rank = 0
    world = 1

    def barrier(self):
        """Wait until every process got here."""

    def close(self):
        """Leave the group together at the end of a run (every process calls it): no process exits while another
        still uses the group."""
        self.barrier()

    def all_sum(self, values):
        """Element-wise sum over the processes of a list of floats."""
        return [float(v) for v in values]

    def broadcast_weights(self, model):
        """Every variable of ``model`` takes the value it has in process 0."""

    def sum_variables(self, variables):
        """Replace each variable (e.g. a metric's totals and counts) by its sum over the processes."""

    def averaging_gradients(self, optimizer, scale):
        """A context manager under which every step of ``optimizer`` uses the mean over the processes of
        ``scale() * gradients`` (so that ``scale`` can weigh unequal local batches)."""
        return contextlib.nullcontext()
