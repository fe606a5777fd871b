"""(e) ``lr_find`` on the head with cached frozen features against the same range test recomputing the
frozen layers every step (what fastai's ``lr_find`` and a plain Keras LR-finder callback do).

Both run the same exponential range test (same steps, same rates, divergence stop off so that both do
every step) on a VGG16 after ``finetune`` (only the softmax trains), on synthetic images, in this run:

- ours: ``Vgg16.lr_find(batches)`` (cache 'auto'): cold, with an empty feature cache (each image through
  the convolutional layers once, then the steps on the cached rows), and warm (the cache on disk);
- baseline: ``lr_find(..., cache=False)``: every step pushes its batch through the whole network.

Figures: seconds, ratio = baseline / ours (higher is better).

    python bench/bench_lr_find.py            # CPU size: 64 images at 96 px, 100 steps of 32
    python bench/bench_lr_find.py --quick    # smoke test (also --tiny)
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

import dl1  # noqa: F401  (picks the Keras backend before Keras is imported)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", "--tiny", dest="quick", action="store_true", help="smoke-test size")
    p.add_argument("--n", type=int, default=None, help="training images (default 64; --quick 16)")
    p.add_argument("--size", type=int, default=None, help="image side (default 96; --quick 32)")
    p.add_argument("--steps", type=int, default=None, help="range-test steps (default 100; --quick 12)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default 32; --quick 8)")
    p.add_argument("--out", default=None, help="keep the data here (default: a temporary folder)")
    args = p.parse_args(argv)
    n = args.n or (16 if args.quick else 64)
    size = args.size or (32 if args.quick else 96)
    steps = args.steps or (12 if args.quick else 100)
    bs = args.batch_size or (8 if args.quick else 32)

    import keras

    from dl1.models.vgg16 import Vgg16

    C.machine_info("bench_lr_find: range test on cached features vs recomputing the frozen layers")
    with C.workdir(args.out) as work:
        data = C.make_images(os.path.join(work, f"data{n}"), n, 160 if args.quick else 320)
        os.environ["DL1_CACHE_DIR"] = os.path.join(work, "cache")
        keras.utils.set_random_seed(0)
        vgg = Vgg16(weights=None, size=size, verbose=False)
        batches = vgg.get_batches(os.path.join(data, "train"), batch_size=bs, seed=0)
        vgg.finetune(batches)
        opts = {"num_steps": steps, "stop_div": False, "fname": None, "verbose": 0}
        C.say(f"{batches.n} images at {size} px, {steps} steps of {bs}")

        def run(cache):
            t0 = time.perf_counter()
            found = vgg.lr_find(batches, cache=cache, **opts)
            return time.perf_counter() - t0, found

        cold, found = run("auto")
        warm, _ = run("auto")
        base, found_base = run(False)
        C.say(f"cached: cold {cold:.2f} s, warm {warm:.2f} s; recomputing: {base:.2f} s "
              f"({len(found_base.lrs)} steps each; cached={found.cached}, baseline cached={found_base.cached})")
        C.result("lr_find_cold_seconds", cold, base, lower_is_better=True)
        C.result("lr_find_warm_seconds", warm, base, lower_is_better=True)


if __name__ == "__main__":
    main()
