"""The PyTorch backend: every piece of dl1 that calls torch directly (see ``dl1.backend.base``).

- Convolution and max pooling on *views*: Keras' torch backend turns every channels-last (NHWC) activation
  into a contiguous NCHW copy and then into a channels-last-memory copy, and re-lays out the kernel, for every
  convolution. PyTorch convolves a permuted view of the NHWC tensor directly (a permuted view is exactly its
  "channels_last memory format"): same numbers, no copies, VGG16's forward pass ~50% faster on CPU. A forward
  pass that autograd need not follow (the frozen layers' feature pass) fuses the ReLU into oneDNN's convolution
  and keeps each kernel in oneDNN's layout until it changes: ~19% faster again.
- Augmentation as one ``grid_sample`` call per batch, on the GPU when there is one.
- ``torch.autograd`` for the hand-written RNNs of lesson 6.
- A stateful LSTM/GRU starts from copies of its state variables: Keras 3.15's fused path on torch reads the
  variables' storage and then assigns the new state into it, which breaks backward ("modified by an inplace
  operation"); copies hold the same values, so the results are the same.
- Data parallel training over ``torchrun`` processes with ``torch.distributed`` (NCCL on CUDA, gloo on CPU):
  ``TorchProcessGroup``. Gradients are averaged in one collective per step, inside the optimizer's public
  ``apply``, so Keras' own ``fit`` (its metrics, callbacks, history and compiled step) drives the training.
- The compile policy: ``jit_compile='auto'`` compiles Keras' train step (``torch.compile``) for a run long enough
  to pay for the compile (``BREAK_EVEN``), into a per-user cache folder kept across processes
  (``compile_cache``).
- ONNX export through ``torch.export`` (``torch.onnx.export(dynamo=True)``) with the batch dimension dynamic:
  Keras' own ``model.export(format='onnx')`` takes the older TorchScript exporter whenever a dimension is
  dynamic, which cannot export ConvNeXt's LayerNormalization.
"""

import contextlib
import logging
import os
import warnings

import numpy as np

from dl1.backend.base import IDENTITY, Backend, ProcessGroup, launched
from dl1.io.log import note

_PADDING = {"nearest": "border", "reflect": "reflection", "constant": "zeros", "wrap": "border"}
_JIT_ENV = {"auto": "auto", "on": True, "1": True, "true": True, "off": False, "0": False, "false": False}

# Training steps after which torch.compile of Keras' train step pays for its cold compile, by model kind
# (``dl1.nn.model.model_kind``): compile seconds / (eager - compiled seconds a step), the largest of the kind's
# cases rounded up; None: the compiled step is not faster, so 'auto' never compiles. Measured with
# ``python bench/bench_compile.py --policy`` on the 2-core CPU machine, quiet (load average ~1; bench/RESULTS.md
# (g)): dense from lesson 4's dot model (45 s to compile, 9.1 -> 3.9 ms a step: 8,600 steps) and the recipe's
# head (36 s, 5,200 steps); conv from lesson 5's conv sentiment model, whose compiled step is slower than eager
# (graph breaks around the convolutions); fused_lstm from char-rnn's LSTM(512) x2 on torch.nn.LSTM's kernel,
# eager 0.86x plain PyTorch, compiled (Keras' loop) 0.70x; recurrent from the same network through Keras'
# step-by-step loop (``use_cudnn=False``; SimpleRNN and an LSTM with recurrent dropout take it too): 37 graph
# breaks and dynamo's recompile limit, compiled slower than eager.
# CUDA: the CPU figures until ``bench/gpu.sh`` (bench_compile.py --full) measures them on a GPU box, except
# conv, where fusing VGG16's convolutions and activations in bfloat16 pays.
BREAK_EVEN = {"cpu": {"fused_lstm": None, "recurrent": None, "conv": None, "dense": 8600},
              "cuda": {"fused_lstm": None, "recurrent": None, "conv": 2000, "dense": 8600}}


def compile_cache():
    """Point torch's inductor/FX-graph caches at a stable per-user folder before anything compiles, so a
    re-run or another notebook finds the compiled graphs: ``DL1_COMPILE_CACHE``, else
    ``$XDG_CACHE_HOME/dl1/torch-compile`` (``~/.cache/dl1/torch-compile``); a ``TORCHINDUCTOR_CACHE_DIR`` the
    user set is kept. Returns the folder."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    folder = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not folder or folder == default_cache_dir():  # unset, or set by torch itself to its /tmp default
        folder = os.environ.get("DL1_COMPILE_CACHE") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dl1",
            "torch-compile")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    os.makedirs(folder, exist_ok=True)
    return folder


_FUSED_CONV = {"usable": True}  # False once oneDNN's fused operator failed in this process
_FUSED_LINEAR = {"usable": True}  # the same for oneDNN's linear operator


def _fusable(x, kernel, bias):
    """Whether oneDNN's convolution or linear operator (ReLU fused) can run: float32 on the CPU, eager, and
    nothing that autograd must follow (the fused operators have no backward; a forward pass, e.g. the frozen
    layers' feature pass or their part of the head's training step, is where it counts)."""
    import torch

    if torch.compiler.is_compiling():
        return False
    tensors = (x, kernel) if bias is None else (x, kernel, bias)
    return (x.device.type == "cpu" and all(t.dtype == torch.float32 for t in tensors)
            and torch.backends.mkldnn.is_available()
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)))


def _onednn_kernel(kernel):
    """``kernel`` (kh, kw, in, out) as oneDNN convolves fastest, (out, in, kh, kw) in channels-last memory,
    kept on the tensor until it changes (torch counts every in-place change: an optimizer step, ``assign``,
    ``load_weights``), so a forward pass does not reorder VGG16's 58 MB of kernels at every batch."""
    import torch

    cached = getattr(kernel, "_dl1_onednn", None)
    if cached is not None and cached[0] == kernel._version:
        return cached[1]
    with torch.no_grad():
        packed = kernel.detach().permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    kernel._dl1_onednn = (kernel._version, packed)
    return packed


class TorchBackend(Backend):
    def __init__(self):
        super().__init__("torch")

    # ---- fast layers ---------------------------------------------------------------------------------
    def supports_fast_conv2d(self, kernel_size, strides, padding):
        if padding == "valid":
            return True
        return padding == "same" and tuple(strides) == (1, 1) and all(k % 2 for k in kernel_size)

    def conv2d(self, x, kernel, bias, strides, padding, relu=False):
        import torch
        import torch.nn.functional as F

        kh, kw = kernel.shape[:2]
        pad = (kh // 2, kw // 2) if padding == "same" else 0
        nchw = x.permute(0, 3, 1, 2)  # NCHW view of NHWC memory: no copy
        if relu and _FUSED_CONV["usable"] and _fusable(nchw, kernel, bias):
            try:
                out = torch.ops.mkldnn._convolution_pointwise(
                    nchw, _onednn_kernel(kernel), bias, list(pad) if pad else [0, 0], list(strides), [1, 1], 1,
                    "relu", [None], "")
                return out.permute(0, 2, 3, 1)
            except (RuntimeError, NotImplementedError) as e:  # a CPU or build without it: the plain path
                _FUSED_CONV["usable"] = False
                logging.getLogger("dl1").debug("fused convolution unavailable (%s); using F.conv2d", e)
        out = F.conv2d(nchw, kernel.permute(3, 2, 0, 1),  # (kh, kw, in, out) -> (out, in, kh, kw), a view
                       bias, stride=tuple(strides), padding=pad)
        out = out.permute(0, 2, 3, 1)  # back to NHWC; contiguous when torch kept channels_last memory
        return torch.relu(out) if relu else out

    def dense(self, x, kernel, bias, relu=False):
        # oneDNN's matrix product where autograd need not follow: 1.3-1.5x MKL's for VGG16's fc layers on this
        # project's CPUs (fc2, 64 x 4096 x 4096: 11.8 ms against 17.4); Keras' (in, out) kernel goes as a
        # transposed view, which oneDNN reads without a copy
        import torch

        if x.ndim == 2 and _FUSED_LINEAR["usable"] and _fusable(x, kernel, bias):
            try:
                return torch.ops.mkldnn._linear_pointwise(x, kernel.t(), bias, "relu" if relu else "none", [], "")
            except (RuntimeError, NotImplementedError) as e:
                _FUSED_LINEAR["usable"] = False
                logging.getLogger("dl1").debug("oneDNN linear unavailable (%s); using matmul", e)
        out = torch.matmul(x, kernel)
        out = out if bias is None else out + bias
        return torch.relu(out) if relu else out

    def supports_fast_max_pool2d(self, padding):
        return padding == "valid"

    def max_pool2d(self, x, pool_size, strides):
        import torch.nn.functional as F

        out = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=tuple(pool_size), stride=tuple(strides))
        return out.permute(0, 2, 3, 1)

    def supports_fast_lstm(self):
        # eager only: traced by torch.compile, torch.export or TorchScript, Keras' own loop is what the
        # compiler fuses (the fused kernel would be decomposed into the same loop anyway)
        import torch

        return not torch.compiler.is_compiling() and not torch.jit.is_tracing()

    def lstm(self, inputs, h, c, kernel, recurrent_kernel, bias, return_sequences, go_backwards):
        # torch.nn.LSTM's own kernel (cuDNN on a GPU, ATen's fused loop on the CPU): Keras 3.15 takes it only
        # on CUDA and otherwise loops over the time steps in Python, 2.7x slower than torch.nn.LSTM for
        # char-rnn's LSTM(512) x2 on 2 CPU cores (bench/bench_compile.py --cases char_rnn). Keras' kernel is
        # (input, 4 units) with the gates in torch's order (i, f, c/g, o): its transpose is torch's weight_ih.
        import torch

        dtype = kernel.dtype
        x = inputs.to(dtype)
        if go_backwards:
            x = torch.flip(x, dims=[1])
        hx = (h.to(dtype).unsqueeze(0), c.to(dtype).unsqueeze(0))
        params = [kernel.t(), recurrent_kernel.t(), bias, torch.zeros_like(bias)]
        outputs, h_n, c_n = torch._VF.lstm(x, hx, params, True, 1, 0.0, torch.is_grad_enabled(), False, True)
        last = outputs[:, -1]
        return last, outputs if return_sequences else last.unsqueeze(1), [h_n[0], c_n[0]]

    # ---- precision -----------------------------------------------------------------------------------
    def gpu(self):
        import torch

        if not torch.cuda.is_available():
            return False, True
        return True, bool(torch.cuda.is_bf16_supported())  # False e.g. on the T4 of a g4dn instance

    # ---- device augmentation -------------------------------------------------------------------------
    def augment_device(self):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def warp_images(self, x, mats, hflip, vflip, shifts, fill_mode="nearest", cval=0.0,
                    interpolation="bilinear", device="cpu", as_numpy=True):
        import torch

        t = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device).permute(0, 3, 1, 2)
        if not np.allclose(mats, IDENTITY):
            lo, hi = t.amin(dim=(1, 2, 3), keepdim=True), t.amax(dim=(1, 2, 3), keepdim=True)
            theta = torch.as_tensor(mats, device=device)
            grid = torch.nn.functional.affine_grid(theta, list(t.shape), align_corners=False)
            if fill_mode == "wrap":  # tile the image: coordinates modulo its size ([-1, 1) in grid units)
                grid = torch.remainder(grid + 1, 2) - 1
            fill = fill_mode == "constant" and cval != 0
            src = t - cval if fill else t
            t = torch.nn.functional.grid_sample(src, grid, mode=interpolation, padding_mode=_PADDING[fill_mode],
                                                align_corners=False)
            if fill:
                t = t + cval
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
            return np.ascontiguousarray(t.cpu().numpy())
        return t

    # ---- automatic differentiation -------------------------------------------------------------------
    def value_and_grad(self, fn):
        import keras
        import torch

        def g(weights):
            ws = [keras.ops.convert_to_tensor(w).detach().requires_grad_(True) for w in weights]
            with torch.enable_grad():
                value = fn(ws)
                grads = torch.autograd.grad(value, ws)
            return value.detach(), list(grads)

        return g

    # ---- recurrent state -----------------------------------------------------------------------------
    def stateful_initial_state(self, layer):
        import keras

        return [keras.ops.copy(state) for state in layer.states]

    # ---- data parallel -------------------------------------------------------------------------------
    def pin_device(self):
        """``torch.cuda.set_device(LOCAL_RANK)`` under torchrun on a CUDA box."""
        if launched():
            import torch

            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))

    def process_group(self):
        """The torchrun process group (joined on first use), or None without torchrun."""
        if not launched():
            return None
        return TorchProcessGroup.joined()

    # ---- compile policy ------------------------------------------------------------------------------
    def jit_compile(self, requested, steps=None, kind=None, say=True):
        """True/False force; 'auto' is eager at ``model.compile`` (``steps`` None) and for a training run
        compiles when its ``steps`` reach the break-even of ``kind`` on this device (``break_even``), saying
        which in one line (the eager one only when ``say``). ``DL1_JIT`` (auto, on, off) overrides 'auto'."""
        if requested is not True and requested is not False:
            requested = _JIT_ENV.get(os.environ.get("DL1_JIT", "auto").strip().lower(), "auto")
        if requested is not True and requested is not False and steps is None:
            return False
        if requested is True:
            compile_cache()
            return True
        if requested is False:
            return False
        pays_after = self.break_even(kind)
        if pays_after is None:
            if say:
                note("running eager: compiling does not pay for this kind of model (%s) here", kind)
            return False
        if steps >= pays_after:
            compile_cache()
            note("compiling the training step (about %d steps; pays after ~%d)", steps, pays_after)
            return True
        if say:
            note("running eager: %d steps do not pay for a compile (pays after ~%d)", steps, pays_after)
        return False

    def break_even(self, kind):
        """Training steps after which compiling pays for a model of ``kind`` (``BREAK_EVEN``; on CUDA its
        'cuda' row), None where it never does."""
        import torch

        row = BREAK_EVEN["cuda" if torch.cuda.is_available() else "cpu"]
        return row.get(kind, row["dense"])

    def outside_compiled(self, fn):
        """``torch.compiler.disable(fn)``: a graph break around it, so that dynamo neither traces nor guards on
        the floats it reads (each new value would be a recompile)."""
        import torch

        return torch.compiler.disable(fn)

    def compile_failures(self):
        import torch._dynamo.exc

        return (torch._dynamo.exc.TorchDynamoException,)

    def onnx_program(self, model, size, input_name, output_name):
        import torch

        class Forward(torch.nn.Module):  # one named positional input, inference mode
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, image):
                return self.inner(image, training=False)

        example = torch.from_numpy(np.zeros((2,) + tuple(size) + (3,), dtype=np.float32))
        batch = torch.export.Dim("batch", min=1, max=65536)
        quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")]
        levels = [log.level for log in quiet]
        try:
            for log in quiet:
                log.setLevel(logging.ERROR)
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(Forward(model).eval(), (example,), input_names=[input_name],
                                            output_names=[output_name], dynamo=True, verbose=False,
                                            dynamic_shapes=({0: batch},))
                program.optimize()
        finally:
            for log, level in zip(quiet, levels, strict=True):
                log.setLevel(level)
        return program


class TorchProcessGroup(ProcessGroup):
    """The ``torch.distributed`` group of a torchrun launch (env:// rendezvous)."""

    _joined = None

    @classmethod
    def joined(cls):
        """Join the process group once: pin this process to ``cuda:LOCAL_RANK`` on a CUDA box, then NCCL
        (gloo on a CPU)."""
        if cls._joined is None:
            import torch
            import torch.distributed as dist

            if not dist.is_initialized():
                if torch.cuda.is_available():
                    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
                dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
            cls._joined = cls()
        return cls._joined

    def __init__(self):
        import torch
        import torch.distributed as dist

        self.dist = dist
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        # NCCL reduces CUDA tensors only; gloo CPU ones
        self.device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        self.torch = torch

    def barrier(self):
        self.dist.barrier()

    def close(self):
        # a process that exited while another still drew its last plot left gloo's threads running at exit
        # ("terminate called without an active exception", exit -6 under torchrun)
        self.dist.barrier()
        self.dist.destroy_process_group()
        type(self)._joined = None

    def all_sum(self, values):
        t = self.torch.tensor([float(v) for v in values], dtype=self.torch.float64, device=self.device)
        self.dist.all_reduce(t)
        return t.cpu().tolist()

    def broadcast_weights(self, model):
        import keras

        for v in model.weights:
            t = keras.ops.convert_to_tensor(v).detach().clone().to(self.device)
            self.dist.broadcast(t, src=0)
            v.assign(t)

    def sum_variables(self, variables):
        import keras

        variables = list(variables)
        if not variables:
            return
        values = [keras.ops.convert_to_tensor(v).detach().to(self.device, self.torch.float64).reshape(-1)
                  for v in variables]
        flat = self.torch.cat(values)
        self.dist.all_reduce(flat)
        for v, part in zip(variables, self.torch.split(flat, [t.numel() for t in values]), strict=True):
            v.assign(keras.ops.cast(part.reshape(tuple(v.shape)), v.dtype))

    def _reduce(self, grads, scale):
        """The mean over processes of ``scale * g``, one all-reduce per dtype."""
        torch = self.torch
        out = list(grads)
        by_dtype = {}
        for i, g in enumerate(grads):
            if g is not None:
                by_dtype.setdefault(g.dtype, []).append(i)
        factor = float(scale) / self.world
        for idx in by_dtype.values():
            flat = torch.cat([grads[i].reshape(-1) for i in idx]) * factor
            self.dist.all_reduce(flat)
            for i, part in zip(idx, torch.split(flat, [grads[i].numel() for i in idx]), strict=True):
                out[i] = part.reshape(grads[i].shape)
        return out

    @contextlib.contextmanager
    def averaging_gradients(self, optimizer, scale):
        """``optimizer`` (Keras' or any subclass) steps with the averaged gradients while inside; its class
        is put back afterwards, its state (moments, step count) untouched."""
        original = type(optimizer)
        group = self

        def apply(self, grads, trainable_variables=None):
            return original.apply(self, group._reduce(list(grads), scale()), trainable_variables)

        optimizer.__class__ = type(original.__name__, (original,), {"apply": apply, "__module__": __name__})
        try:
            yield optimizer
        finally:
            optimizer.__class__ = original
