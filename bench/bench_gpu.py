"""GPU-box figures: the Dogs-vs-Cats recipe at course size, VGG16's forward pass against the GPU's bf16 peak,
and decoding against the forward pass.

    python bench/bench_gpu.py            # on a GPU box: 23,000 + 2,000 synthetic JPEGs at 224 px
    python bench/bench_gpu.py --quick    # any machine: a few hundred images at 64 px (checks the script)

Without a CUDA GPU the full run says so in one line and exits with status 1 before writing anything
(``--quick`` runs anywhere, the GPU-only figure then ``nan``).

RESULT lines:
- ``gpu_recipe_epoch_s``: one epoch of the 7-line recipe end to end from JPEG files (first epoch: the frozen
  features are computed from the images, then the head trains), ours against the 2017 figure of about 250 s
  on a Titan X (a constant, not measured here: ratio = 250 / ours); target under 15 s on an H200.
- ``gpu_vgg16_forward_tflops``: VGG16's forward pass in our pipeline (bf16, images already on the GPU) in
  TFLOP/s against the bf16 peak measured in the same run with a large matrix product (ratio = fraction of
  peak; target at least 0.4).
- ``gpu_decode_vs_forward``: JPEG decoding images/s of our batches against the forward pass's images/s
  (ratio above 1: decoding keeps the GPU busy).
"""

import argparse
import os
import sys
import time

import _common as C

import dl1  # noqa: F401  (picks the Keras backend before Keras is imported)

VGG16_FLOPS_224 = 2 * 15.47e9  # multiply-adds of one 224x224 forward pass, counted as 2 FLOPs each
TITAN_X_2017_EPOCH_S = 250.0


def matmul_peak_tflops(torch, n=8192, repeats=10):
    """The bf16 matrix-product throughput this GPU reaches (TFLOP/s), as the peak to compare with."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e12


def forward_images_per_s(size, batch_size, seconds=5.0):
    """VGG16 forward images/s in our pipeline, bf16, inputs already on the device."""
    import keras
    import numpy as np

    from dl1.models.vgg16 import Vgg16

    vgg = Vgg16(weights=None, size=size, verbose=False, mixed_precision=True)
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).uniform(0, 255, (batch_size, size, size, 3))
                                    .astype("float32"))
    forward = vgg.model.predict_on_batch
    for _ in range(3):
        forward(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        forward(x)
        n += batch_size
    return n / (time.perf_counter() - t0)


def decode_images_per_s(path, size, batch_size):
    from dl1.data.batches import get_batches

    batches = get_batches(path, shuffle=False, batch_size=batch_size, target_size=(size, size), verbose=False)
    steps = min(len(batches), 40)
    t0 = time.perf_counter()
    for i in range(steps):
        batches[i]
    return steps * batch_size / (time.perf_counter() - t0)


def recipe_epoch_seconds(path, size, batch_size, weights):
    """One epoch of the recipe from the JPEGs, cold feature cache: build, finetune, fit."""
    from dl1.models.vgg16 import Vgg16

    t0 = time.perf_counter()
    vgg = Vgg16(weights=weights, size=size, verbose=False, mixed_precision="auto")
    batches = vgg.get_batches(os.path.join(path, "train"), batch_size=batch_size, verbose=False)
    val = vgg.get_batches(os.path.join(path, "valid"), batch_size=batch_size * 2, shuffle=False, verbose=False)
    vgg.finetune(batches)
    history = vgg.fit(batches, val, nb_epoch=1, verbose=0)
    return time.perf_counter() - t0, float(history.history["val_accuracy"][-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a few hundred images at 64 px (any machine)")
    p.add_argument("--n", type=int, help="labelled images (default 25000: 23,000 train + 2,000 valid)")
    p.add_argument("--size", type=int, help="image side (default 224)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--forward-batch", type=int, default=256)
    p.add_argument("--out", help="folder for the data (kept); default a temporary folder")
    args = p.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.quick:
        print("bench_gpu.py: needs a CUDA GPU (torch.cuda.is_available() is False here); --quick checks the "
              "script on any machine", file=sys.stderr)
        return 1
    n = args.n or (300 if args.quick else 25000)
    size = args.size or (64 if args.quick else 224)
    C.machine_info("GPU box: recipe at course size, VGG16 forward vs bf16 peak, decode vs forward")
    with C.workdir(args.out) as work:
        os.environ.setdefault("DL1_CACHE_DIR", os.path.join(work, "cache"))
        data = C.make_images(os.path.join(work, "dogscats"), n, 500, valid_fraction=2000 / 25000)
        weights = os.path.join(work, f"standin{size}.h5")
        if not os.path.exists(weights):
            from dl1.models.standin import make_standin_weights

            make_standin_weights(weights, os.path.join(data, "train"), size=size, seed=0, verbose=False)
        seconds, acc = recipe_epoch_seconds(data, size, args.batch_size, weights)
        C.say(f"recipe, one epoch from {n} JPEGs at {size} px: {seconds:.1f} s (validation accuracy {acc:.3f})")
        C.result("gpu_recipe_epoch_s", seconds, TITAN_X_2017_EPOCH_S, lower_is_better=True)
        forward = forward_images_per_s(size, args.forward_batch, seconds=2.0 if args.quick else 5.0)
        decode = decode_images_per_s(os.path.join(data, "train"), size, args.batch_size)
        C.say(f"VGG16 forward: {forward:.0f} img/s; decode: {decode:.0f} img/s")
        C.result("gpu_decode_vs_forward", decode, forward)
        if cuda:
            peak = matmul_peak_tflops(torch)
            achieved = forward * VGG16_FLOPS_224 * (size / 224) ** 2 / 1e12
            C.say(f"bf16 matrix-product peak {peak:.0f} TFLOP/s; VGG16 forward {achieved:.0f} TFLOP/s")
            C.result("gpu_vgg16_forward_tflops", achieved, peak)
        else:
            C.skip("gpu_vgg16_forward_tflops", "no CUDA device")


if __name__ == "__main__":
    sys.exit(main())
