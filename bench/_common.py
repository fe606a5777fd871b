"""Shared helpers of the bench scripts: machine report, RESULT lines, timing, temporary data.

Every script prints the machine first, then human-readable figures, then one line per comparison:

    RESULT <name> ours=<figure> baseline=<figure> ratio=<ours over baseline, higher is better>

Figures are throughputs (higher is better), or seconds/bytes given with ``ratio = baseline / ours`` so that
a ratio above 1 always means "we are better". ``nan`` marks a figure that could not be measured (SKIP line).
"""

import contextlib
import datetime
import importlib.metadata
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

RESULT_FORMAT = "RESULT {name} ours={ours} baseline={baseline} ratio={ratio}"


def fmt(x):
    """A float as the RESULT lines write it (4 significant digits, 'nan' when unknown)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    x = float(x)
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) >= 1000:
        return str(int(x))  # bytes, counts
    if abs(x) < 1e-3:
        return f"{x:.4e}"
    return f"{x:.4g}" if abs(x) < 1000 else f"{x:.1f}"


def result(name, ours, baseline, lower_is_better=False):
    """Print one RESULT line; ``lower_is_better`` for seconds and bytes (ratio = baseline / ours)."""
    try:
        if lower_is_better:
            ratio = float(baseline) / float(ours)
        else:
            ratio = float(ours) / float(baseline)
    except (TypeError, ValueError, ZeroDivisionError):
        ratio = float("nan")
    print(RESULT_FORMAT.format(name=name, ours=fmt(ours), baseline=fmt(baseline), ratio=fmt(ratio)), flush=True)
    return ratio


def skip(name, why, ours=None):
    """A comparison that cannot run here: one SKIP line and a RESULT line whose baseline and ratio are nan
    (and ours too unless given)."""
    print(f"SKIP {name}: {why}", flush=True)
    print(RESULT_FORMAT.format(name=name, ours=fmt(ours), baseline="nan", ratio="nan"), flush=True)


def say(msg=""):
    print(msg, flush=True)


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib():
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def usable_cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_average():
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def gpu_name():
    """The GPU torch sees, without initialising CUDA when there is none."""
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    except Exception:  # noqa: BLE001 (a broken CUDA install must not stop a CPU bench)
        pass
    return "none"


def machine_info(title):
    """Print the machine and software versions (call this first)."""
    say(f"== {title} ==")
    say(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    say(f"cpu: {cpu_model()}; {os.cpu_count()} CPUs ({usable_cpus()} usable); RAM {ram_gib():.1f} GiB; "
        f"load average {load_average()}")
    say(f"python {platform.python_version()}; torch {_version('torch')}; keras {_version('keras')} "
        f"(backend {os.environ.get('KERAS_BACKEND', 'unset')}); jax {_version('jax')}; "
        f"numpy {_version('numpy')}; pillow {_version('pillow')}; blosc2 {_version('blosc2')}")
    say(f"gpu: {gpu_name()}")
    say(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    say()


def median(values):
    return statistics.median(values)


def timed(fn, repeats=3, warmup=1):
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` untimed ones, and all
    the times."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return median(times), times


@contextlib.contextmanager
def workdir(out=None, prefix="dl1-bench-"):
    """``out`` (created, kept) or a temporary folder removed at the end."""
    if out:
        os.makedirs(out, exist_ok=True)
        yield os.path.abspath(out)
        return
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_images(path, n, max_side, valid_fraction=0.0, seed=0):
    """Synthetic cats/dogs JPEGs in the course layout under ``path`` (reused when already there)."""
    from dl1.data.sample import write_sample

    marker = os.path.join(path, ".bench-sample.json")
    want = {"n": n, "max_side": max_side, "valid_fraction": valid_fraction, "seed": seed}
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == want:
                return path
        shutil.rmtree(path)
    t0 = time.perf_counter()
    write_sample(path, n=n, n_test=1, seed=seed, layout="course", valid_fraction=valid_fraction,
                 max_side=max_side, force=True, progress=False)
    with open(marker, "w", encoding="utf-8") as f:
        json.dump(want, f)
    say(f"wrote {n} synthetic JPEGs (max side {max_side} px) to {path} in {time.perf_counter() - t0:.1f} s")
    return path


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total
