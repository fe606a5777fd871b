"""(a) Decode-and-batch throughput: our directory batches against what a user has without us.

Ours: ``dl1.data.batches.get_batches(dir, shuffle=False, batch_size=64, target_size=(224, 224))`` with its
defaults (JPEG draft-mode decoding, then a nearest resize as Keras 1/2 did), every batch read with
``batches[i]`` (what ``model.fit`` does; the figure we report) and with ``next(batches)`` (the 2017
spelling, with prefetch). Baselines, on the same files in the same order, same batch size:

- ``pil_loop``: one image at a time, as Keras 1/2 ``flow_from_directory`` did (``load_img`` +
  ``img_to_array``): ``Image.open(p).convert('RGB').resize(size, NEAREST)`` (their default
  interpolation), ``np.asarray(img, float32)`` into a preallocated batch, one-hot labels.
- ``torch_dataloader``: ``torch.utils.data.DataLoader`` (default collate, default settings) over a
  Dataset doing the same per-image work as the loop, ``num_workers`` = our thread count. (``persistent_workers=True`` is not raced: its idle forked workers slow every other contender
  in this process through copy-on-write faults; raced with them it was 4-11% faster than the default.)

Also ours with ``interpolation='bilinear'`` (smoother, and what Keras 3's ``image_dataset_from_directory``
does; it costs a resize about as expensive as the decode itself).

Figures are images per second (higher is better). Also: ours with one decode thread (as with
``DL1_WORKERS=1``) to separate what threads bring from what draft-mode decoding brings, a sweep over
thread counts (``--scaling``; 1,2,4,... up to the CPU count with ``--full``), and a per-stage profile of
one image. Thread counts other than ours' own are measured by swapping the library's decode pool, in
turn with the other contenders (a subprocess with ``DL1_WORKERS`` if that pool ever goes away).

    python bench/bench_pipeline.py            # CPU size: 640 images of <=500 px, plus 256 of <=1000 px
    python bench/bench_pipeline.py --full     # GPU-box size: 5000 + 2000 images, thread sweep
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

import dl1  # noqa: F401  (picks the Keras backend before Keras is imported)


# ---- the contenders -------------------------------------------------------------------------------------
def ours_factory(directory, size, batch_size, interpolation=None):
    from dl1.data.batches import get_batches

    t0 = time.perf_counter()
    kw = {"interpolation": interpolation} if interpolation else {}  # None: the library's default
    batches = get_batches(directory, shuffle=False, batch_size=batch_size, target_size=(size, size),
                          verbose=False, **kw)
    setup_s = time.perf_counter() - t0

    def by_index():
        for i in range(len(batches)):
            x, y = batches[i]
        return x

    def by_next():
        batches.reset()
        for _ in range(len(batches)):
            x, y = next(batches)
        return x

    def settle():
        # next() has started decoding the next epoch's first batch in the background: a steady-state
        # epoch would use it, so it is not counted, but it must finish before anything else is timed
        pending = getattr(batches, "_prefetched", None)
        if pending is not None:
            pending[1].result()

    by_next.settle = settle
    return batches, setup_s, by_index, by_next


def pil_loop_factory(filepaths, labels, num_classes, size, batch_size):
    """The 2017 Keras iterator's work, one image at a time: load_img(target_size) + img_to_array."""
    from PIL import Image

    def run():
        for start in range(0, len(filepaths), batch_size):
            chunk = filepaths[start:start + batch_size]
            x = np.zeros((len(chunk), size, size, 3), dtype=np.float32)
            for i, path in enumerate(chunk):
                img = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.NEAREST)
                x[i] = np.asarray(img, dtype=np.float32)
            y = np.zeros((len(chunk), num_classes), dtype=np.float32)
            y[np.arange(len(chunk)), labels[start:start + batch_size]] = 1.0
        return x

    return run


class PilDataset:
    """A torch Dataset doing the same per-image work as the loop (what a DataLoader user writes)."""

    def __init__(self, filepaths, labels, size):
        self.filepaths, self.labels, self.size = filepaths, labels, size

    def __len__(self):
        return len(self.filepaths)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.open(self.filepaths[i]).convert("RGB").resize((self.size, self.size),
                                                                  Image.Resampling.NEAREST)
        return np.asarray(img, dtype=np.float32), int(self.labels[i])


def dataloader_factory(filepaths, labels, size, batch_size, workers, persistent=False):
    import torch

    loader = torch.utils.data.DataLoader(PilDataset(filepaths, labels, size), batch_size=batch_size,
                                         shuffle=False, num_workers=workers,
                                         persistent_workers=persistent and workers > 0)

    def run():
        last = None
        for batch in loader:
            last = batch
        return last

    return run


# ---- measuring ------------------------------------------------------------------------------------------
def race(contenders, n, repeats):
    """Images/s of each contender: one untimed warm-up each, then ``repeats`` rounds taken in turn (so
    that load from other processes spreads over all of them); median per contender."""
    for fn in contenders.values():
        fn()
        getattr(fn, "settle", lambda: None)()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            getattr(fn, "settle", lambda: None)()
    return {name: n / C.median(ts) for name, ts in times.items()}, times


def in_process_pools_ok():
    import dl1.io.pools as up

    return isinstance(getattr(up, "_POOLS", None), dict) and callable(getattr(up, "decode_pool", None))


def with_pool(fn, pool):
    """``fn`` run with ``pool`` as the library's decode pool: the same as a process started with
    ``DL1_WORKERS=<pool size>`` (the pool is the only thing that variable sets), but measured in turn with
    the other contenders instead of minutes apart."""
    import dl1.io.pools as up

    def run():
        saved = up._POOLS.get("decode")
        up._POOLS["decode"] = pool
        try:
            return fn()
        finally:
            if saved is None:
                up._POOLS.pop("decode", None)
            else:
                up._POOLS["decode"] = saved

    return run


def probe(directory, size, batch_size, repeats):
    """Subprocess mode: ours only, with whatever DL1_WORKERS the parent set; prints one JSON line."""
    batches, _, by_index, _ = ours_factory(directory, size, batch_size)
    rates, _ = race({"ours": by_index}, batches.n, repeats)
    from dl1.io.pools import decode_workers

    print("PROBE " + json.dumps({"workers": decode_workers(), "img_s": rates["ours"]}), flush=True)


def probe_workers(directory, size, batch_size, repeats, workers):
    env = dict(os.environ, DL1_WORKERS=str(workers))
    cmd = [sys.executable, os.path.abspath(__file__), "--probe", directory, "--size", str(size),
           "--batch-size", str(batch_size), "--repeats", str(repeats)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("PROBE "))
    return json.loads(line[len("PROBE "):])["img_s"]


def profile_stages(filepaths, size, limit=128, repeats=3):
    """Microseconds per image of each step, one thread, on the first ``limit`` files."""
    import torch
    from PIL import Image, ImageOps

    from dl1.data.images import _to_rgb, load_resized

    paths = filepaths[:limit]
    slot = np.zeros((size, size, 3), dtype=np.float32)
    bilinear, nearest = Image.Resampling.BILINEAR, Image.Resampling.NEAREST

    def per_image(items, fn):  # best of `repeats`: the intrinsic cost, least disturbed by other load
        def run():
            for item in items:
                fn(item)  # results dropped at once, as the pipeline does (keeping them costs page faults)

        _, times = C.timed(run, repeats=repeats)
        return 1e6 * min(times) / len(items)

    def drafted(p):
        img = Image.open(p)
        img.draft("RGB", (size, size))
        img.load()
        return img

    def torch_resize(im):
        t = torch.from_numpy(np.array(im)).permute(2, 0, 1).unsqueeze(0)
        return torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True)

    pre_draft = [drafted(p) for p in paths]
    pre_full = [Image.open(p).convert("RGB") for p in paths]
    resized = [im.resize((size, size), bilinear) for im in pre_draft]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = [
        ("ours: open + draft decode", per_image(paths, drafted)),
        ("ours: to RGB (EXIF turned only when rotated)", per_image(pre_draft, _to_rgb)),
        ("ours: nearest resize of the drafted image", per_image(pre_draft, lambda im: im.resize((size, size),
                                                                                               nearest))),
        ("ours: uint8 image -> float32 batch slot", per_image(resized, lambda im: slot.__setitem__(
            Ellipsis, np.asarray(im)))),
        ("ours: load_resized, all of the above", per_image(paths, lambda p: load_resized(p, (size, size),
                                                                                          out=slot))),
        ("loop: open + full-size decode", per_image(paths, lambda p: Image.open(p).convert("RGB"))),
        ("loop: nearest resize of the full image", per_image(pre_full, lambda im: im.resize((size, size),
                                                                                             nearest))),
        ("loop: asarray(float32) of the resized image", per_image(resized, lambda im: np.asarray(
            im, dtype=np.float32))),
        ("other: bilinear resize of the full image", per_image(pre_full, lambda im: im.resize((size, size),
                                                                                               bilinear))),
        ("other: exif_transpose (a copy, even when nothing turns)", per_image(
            pre_draft, ImageOps.exif_transpose)),
        ("other: bilinear resize of the drafted image", per_image(pre_draft, lambda im: im.resize(
            (size, size), bilinear))),
        ("other: box resize of the drafted image", per_image(pre_draft, lambda im: im.resize(
            (size, size), Image.Resampling.BOX))),
        ("other: torch uint8 bilinear+antialias of the drafted image", per_image(pre_draft, torch_resize)),
    ]
    torch.set_num_threads(threads)
    C.say(f"per-image profile, one thread, {len(paths)} files, {size} px (microseconds per image, best of "
          f"{repeats}):")
    for name, us in rows:
        C.say(f"  {name:58s} {us:8.0f} us")
    C.say()


# ---- one data set ---------------------------------------------------------------------------------------
def bench_setting(directory, size, batch_size, repeats, workers, suffix, with_extras, sweep):
    batches, setup_s, by_index, by_next = ours_factory(directory, size, batch_size)
    n = batches.n
    files_mb = C.dir_bytes(directory) / 1e6
    C.say(f"-- {n} images in {directory} ({files_mb:.1f} MB of JPEG), target {size}x{size}, batch "
          f"{batch_size}, {workers} decode threads/workers, {repeats} timed rounds --")
    C.say(f"ours: get_batches (scan + header check of every file) took {setup_s:.2f} s ({n / setup_s:.0f} "
          "files/s), once per iterator, not in the figures below")
    labels = batches.classes
    contenders = {
        "ours_index": by_index,
        "pil_loop": pil_loop_factory(batches.filepaths, labels, batches.num_classes, size, batch_size),
        "torch_dataloader": dataloader_factory(batches.filepaths, labels, size, batch_size, workers),
    }
    if with_extras:
        contenders["ours_next"] = by_next
        contenders["ours_index_bilinear"] = ours_factory(directory, size, batch_size, "bilinear")[2]
    from dl1.io.pools import decode_workers

    own = decode_workers()  # what ours_index runs with (DL1_WORKERS or the CPU count)
    counts = sorted({1, *sweep}) if sweep else []
    pools = {}
    if counts and in_process_pools_ok():
        for w in counts:
            if w != own:
                pools[w] = ThreadPoolExecutor(max_workers=w, thread_name_prefix=f"bench-decode{w}")
                contenders[f"ours_{w}_threads"] = with_pool(by_index, pools[w])
    rates, times = race(contenders, n, repeats)
    for pool in pools.values():
        pool.shutdown()
    for name, rate in rates.items():
        C.say(f"  {name:30s} {rate:8.1f} images/s   (rounds: {', '.join(f'{t:.2f}' for t in times[name])} s)")
    C.say()

    single = None
    if counts:
        sweep_rates = {}
        for w in counts:
            if w == own:
                sweep_rates[w] = rates["ours_index"]
            elif w in pools:
                sweep_rates[w] = rates[f"ours_{w}_threads"]
            else:  # the library no longer has the pool this bench swaps: one process per thread count
                sweep_rates[w] = probe_workers(directory, size, batch_size, repeats, w)
        for w in counts:
            C.say(f"  ours with {w:3d} decode threads {sweep_rates[w]:8.1f} images/s"
                  + (f"   ({sweep_rates[w] / (w * sweep_rates[1]):.0%} of linear)" if w > 1 else ""))
        single = sweep_rates[1]
        C.say()
    lines = [("decode_vs_pil_loop" + suffix, rates["ours_index"], rates["pil_loop"]),
             ("decode_vs_torch_dataloader" + suffix, rates["ours_index"], rates["torch_dataloader"])]
    if with_extras:
        lines.append(("decode_next_vs_pil_loop" + suffix, rates["ours_next"], rates["pil_loop"]))
        lines.append(("decode_bilinear_vs_pil_loop" + suffix, rates["ours_index_bilinear"], rates["pil_loop"]))
    if single is not None:
        lines.append(("decode_1thread_vs_pil_loop" + suffix, single, rates["pil_loop"]))
        lines += [(f"decode_scaling_{w}_workers{suffix}", sweep_rates[w], w * single)
                  for w in counts if w > 1]
    return lines, batches.filepaths


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="GPU-box size: 5000 + 2000 images, 224 px, thread sweep")
    p.add_argument("--tiny", action="store_true", help="smoke-test size (a few seconds)")
    p.add_argument("--n", type=int, help="images in the main set (default 640; --full 5000)")
    p.add_argument("--max-side", type=int, default=500, help="longest side of the main set's JPEGs (500, "
                   "like Kaggle's dogs-vs-cats photos)")
    p.add_argument("--extra-max-side", type=int, help="a second set with bigger photos (default 1000; 0: none)")
    p.add_argument("--extra-n", type=int, help="images in the second set (default 256; --full 2000)")
    p.add_argument("--size", type=int, default=224, help="target size (default 224)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, help="timed rounds per contender (default 5; --full 3)")
    p.add_argument("--workers", type=int, default=C.usable_cpus(),
                   help="DataLoader workers (ours uses DL1_WORKERS or the CPU count; default the CPU count)")
    p.add_argument("--scaling", default=None,
                   help="comma-separated decode thread counts to measure ours with (default '1,<cpus>'; "
                        "--full: 1,2,4,... up to the CPU count; 'none' to skip)")
    p.add_argument("--no-profile", action="store_true", help="skip the per-stage profile")
    p.add_argument("--out", help="folder for the generated images (kept); default a temporary folder")
    p.add_argument("--probe", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cpus = C.usable_cpus()
    if args.probe:
        return probe(args.probe, args.size, args.batch_size, args.repeats or 3)

    if args.tiny:
        n, extra_side, extra_n, size, bs, repeats, max_side = 48, 0, 0, 64, 16, 1, 160
    elif args.full:
        n, extra_side, extra_n, size, bs, repeats, max_side = 5000, 1000, 2000, args.size, args.batch_size, 3, \
            args.max_side
    else:
        n, extra_side, extra_n, size, bs, repeats, max_side = 640, 1000, 256, args.size, args.batch_size, 5, \
            args.max_side
    n = args.n or n
    extra_side = extra_side if args.extra_max_side is None else args.extra_max_side
    extra_n = args.extra_n or extra_n
    repeats = args.repeats or repeats
    if args.scaling == "none":
        sweep = []
    elif args.scaling:
        sweep = [int(s) for s in args.scaling.split(",")]
    elif args.full:
        sweep = sorted({min(2 ** k, cpus) for k in range(0, 8)} | {cpus})
    elif args.tiny:
        sweep = [1]
    else:
        sweep = [1, cpus]
    if os.environ.get("DL1_WORKERS") and int(os.environ["DL1_WORKERS"]) != args.workers:
        C.say(f"Note: DL1_WORKERS={os.environ['DL1_WORKERS']} but DataLoader gets {args.workers} workers")

    C.machine_info("bench_pipeline: decode and batch throughput (images/s)")
    import torch

    C.say(f"torch intra-op threads {torch.get_num_threads()}; ours decodes with "
          f"{os.environ.get('DL1_WORKERS') or cpus} threads; DataLoader uses {args.workers} worker processes")
    lines = []
    with C.workdir(args.out) as work:
        main_dir = C.make_images(os.path.join(work, f"jpeg{max_side}"), n, max_side)
        got, paths = bench_setting(os.path.join(main_dir, "train"), size, bs, repeats, args.workers, "",
                                   with_extras=True, sweep=sweep)
        lines += got
        if not args.no_profile:
            profile_stages(paths, size, limit=32 if args.tiny else 128, repeats=1 if args.tiny else 5)
        if extra_side and extra_n:
            extra_dir = C.make_images(os.path.join(work, f"jpeg{extra_side}"), extra_n, extra_side)
            got, _ = bench_setting(os.path.join(extra_dir, "train"), size, bs, repeats, args.workers,
                                   f"_{extra_side}px", with_extras=False, sweep=[])
            lines += got
    C.say(f"load average at the end: {C.load_average()}")
    for name, ours, base in lines:
        C.result(name, ours, base)


if __name__ == "__main__":
    main()
