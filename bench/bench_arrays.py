"""(c) ``save_array``/``load_array`` (blosc2, LZ4 + shuffle) against ``np.save``/``np.load``: time and bytes.

Arrays (all float32), made in the run:
- ``conv``: real ReLU convolutional features, the kind lesson 3 saves (``conv_feat``): the ``block5_conv3``
  output of a stand-in VGG16 (LSUV-scaled random weights, dl1.models.standin; no ImageNet weights offline) on
  synthetic photos at 112 px, i.e. 7x7x512 per image (``--full``: ``block5_pool`` at 224 px, also 7x7x512).
- ``fc``: the same images' ``fc1`` outputs (4096 ReLU values each), what the feature cache of ``Vgg16.fit``
  stores.
- ``images``: a batch of decoded images (0-255 floats at 224 px), what ``get_data`` returns.

Write and read times are medians of ``--repeats`` (after one warm-up), on a local temporary folder, through
the page cache (no fsync, same for both). Figures: seconds with ratio = np seconds / ours, bytes with
ratio = np bytes / ours; higher is better in both.

    python bench/bench_arrays.py           # CPU size: 512 images
    python bench/bench_arrays.py --full    # 2000 images at 224 px
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

import dl1  # noqa: F401  (picks the Keras backend before Keras is imported)


def real_features(work, n, size, conv_layer, batch_size, seed=0, max_side=320):
    """``(conv, fc, images)`` arrays from a stand-in VGG16 on ``n`` synthetic images at ``size`` px."""
    import keras

    from dl1.data.batches import get_batches
    from dl1.models.standin import make_standin_weights
    from dl1.models.vgg16 import Vgg16

    data = C.make_images(os.path.join(work, f"data{n}"), n, max_side, seed=seed)
    weights = os.path.join(work, f"standin{size}.h5")
    t0 = time.perf_counter()
    if not os.path.exists(weights):
        make_standin_weights(weights, os.path.join(data, "train"), size=size, n=min(64, n), seed=seed,
                             verbose=False)
    model = Vgg16(weights=weights, size=size, verbose=False).model
    probe = keras.Model(model.inputs[0], [model.get_layer(conv_layer).output, model.get_layer("fc1").output])
    batches = get_batches(os.path.join(data, "train"), shuffle=False, batch_size=batch_size, class_mode=None,
                          target_size=(size, size), verbose=False)
    conv, fc = [], []
    for i in range(len(batches)):
        x = batches[i]
        x = x[0] if isinstance(x, tuple) else x  # unlabelled batches: a bare array (a 1-tuple before)
        a, b = probe.predict_on_batch(x)
        conv.append(keras.ops.convert_to_numpy(a))
        fc.append(keras.ops.convert_to_numpy(b))
    C.say(f"features of {n} images at {size} px computed in {time.perf_counter() - t0:.1f} s")
    return np.concatenate(conv), np.concatenate(fc), data


def images_array(data, n, size):
    from dl1.data.batches import get_data

    x = get_data(os.path.join(data, "train"), target_size=(size, size), verbose=False)
    return x[:n]


def np_save_fsync(path, arr):
    with open(path, "wb") as f:
        np.save(f, arr)
        f.flush()
        os.fsync(f.fileno())


def compare(name, arr, work, repeats):
    import blosc2

    from dl1.io.arrays import CPARAMS, load_array, save_array

    ALT = {"codec": blosc2.Codec.LZ4, "clevel": 1, "filters": [blosc2.Filter.BITSHUFFLE]}  # noqa: N806

    ours_path = os.path.join(work, f"{name}.b2nd")
    np_path = os.path.join(work, f"{name}.npy")
    zstd_path = os.path.join(work, f"{name}-default.b2nd")
    t_save, _ = C.timed(lambda: save_array(ours_path, arr), repeats)
    t_npsave, _ = C.timed(lambda: np.save(np_path, arr), repeats)
    t_load, _ = C.timed(lambda: load_array(ours_path), repeats)
    t_npload, _ = C.timed(lambda: np.load(np_path), repeats)
    t_zstd, _ = C.timed(lambda: blosc2.asarray(arr, urlpath=zstd_path, mode="w"), repeats)
    raw_path = os.path.join(work, f"{name}-raw.b2nd")
    t_raw, _ = C.timed(lambda: blosc2.asarray(arr, urlpath=raw_path, mode="w", cparams=CPARAMS), repeats)
    os.remove(raw_path)
    t_npsync, _ = C.timed(lambda: np_save_fsync(np_path, arr), repeats)
    alt_path = os.path.join(work, f"{name}-alt.b2nd")
    t_alt, _ = C.timed(lambda: blosc2.asarray(arr, urlpath=alt_path, mode="w", cparams=ALT), repeats)
    t_alt_load, _ = C.timed(lambda: blosc2.open(alt_path)[:], repeats)
    b_alt = os.path.getsize(alt_path)
    os.remove(alt_path)
    back = load_array(ours_path)
    if not np.array_equal(back, arr):
        raise SystemExit(f"load_array gave back a different {name} array")
    b_ours, b_np, b_zstd = (os.path.getsize(p) for p in (ours_path, np_path, zstd_path))
    mb = arr.nbytes / 1e6
    C.say(f"-- {name}: shape {arr.shape} {arr.dtype}, {mb:.1f} MB, {np.mean(arr == 0):.0%} zeros --")
    C.say(f"  save_array {t_save:7.3f} s ({mb / t_save:6.0f} MB/s)   np.save {t_npsave:7.3f} s ({mb / t_npsave:6.0f} MB/s)")
    C.say(f"  load_array {t_load:7.3f} s ({mb / t_load:6.0f} MB/s)   np.load {t_npload:7.3f} s ({mb / t_npload:6.0f} MB/s)")
    C.say(f"  bytes: ours {b_ours / 1e6:.1f} MB ({b_np / b_ours:.2f}x smaller), np.save {b_np / 1e6:.1f} MB")
    C.say(f"  for reference: save_array = blosc2 write {t_raw:.3f} s + atomic rename and fsync; np.save + fsync "
          f"{t_npsync:.3f} s; blosc2 defaults (ZSTD) write {t_zstd:.3f} s, {b_zstd / 1e6:.1f} MB; "
          f"LZ4 clevel 1 + BITSHUFFLE write {t_alt:.3f} s, read {t_alt_load:.3f} s, {b_alt / 1e6:.1f} MB")
    for p in (ours_path, np_path, zstd_path):
        os.remove(p)
    return t_save, t_npsave, t_load, t_npload, b_ours, b_np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="2000 images at 224 px (block5_pool features)")
    p.add_argument("--tiny", action="store_true", help="smoke-test size")
    p.add_argument("--n", type=int, help="images (default 512; --full 2000)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="folder for data and files (kept); default a temporary folder")
    args = p.parse_args(argv)
    if args.tiny:
        n, size, conv_layer, n_img, img_size = 16, 32, "block5_conv3", 8, 64
    elif args.full:
        n, size, conv_layer, n_img, img_size = 2000, 224, "block5_pool", 256, 224
    else:
        n, size, conv_layer, n_img, img_size = 512, 112, "block5_conv3", 128, 224
    n = args.n or n

    C.machine_info("bench_arrays: save_array/load_array against np.save/np.load")
    import blosc2

    from dl1.io.arrays import CPARAMS

    C.say(f"blosc2 {blosc2.__version__}, {blosc2.nthreads} threads; our parameters: {CPARAMS}")
    results = []
    with C.workdir(args.out) as work:
        conv, fc, data = real_features(work, n, size, conv_layer, batch_size=32)
        conv = conv.reshape(len(conv), -1)  # lesson 3 keeps them 4-d; the layout does not change the bytes
        images = images_array(data, n_img, img_size)
        C.say()
        for name, arr in (("conv", conv), ("fc", fc), ("images", images)):
            results.append((name, compare(name, arr, work, args.repeats)))
    C.say()
    C.say(f"load average at the end: {C.load_average()}")
    C.say("seconds: ratio = np seconds / ours; bytes: ratio = np.save bytes / ours (higher is better)")
    for name, (t_save, t_npsave, t_load, t_npload, b_ours, b_np) in results:
        suffix = "" if name == "conv" else f"_{name}"
        C.result(f"save_array_write_vs_np_save{suffix}", t_save, t_npsave, lower_is_better=True)
        C.result(f"load_array_vs_np_load{suffix}", t_load, t_npload, lower_is_better=True)
        C.result(f"save_array_bytes_vs_np_save{suffix}", b_ours, b_np, lower_is_better=True)


if __name__ == "__main__":
    main()
