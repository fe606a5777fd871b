"""The process-wide thread pools, created on first use (no Keras import, so data preparation can use
them): ``decode_pool`` decodes and checks images, ``prefetch_pool`` (one thread) prepares the next
batch or chunk while the current one is used. Pillow releases the GIL while it decodes and resizes."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_POOLS = {}
_LOCK = threading.Lock()


def decode_workers():
    """Threads used to decode images: ``DL1_WORKERS`` or the number of CPU cores."""
    env = os.environ.get("DL1_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _pool(name, workers):
    with _LOCK:
        if name not in _POOLS:
            _POOLS[name] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"dl1-{name}")
        return _POOLS[name]


def decode_pool():
    return _pool("decode", decode_workers())


def prefetch_pool():
    return _pool("prefetch", 1)


def cancel_pending():
    """Drop the work queued on every pool (the running items finish): after Ctrl-C, so that the process
    exits now instead of working through the queue at interpreter exit. Later use makes new pools."""
    with _LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=False, cancel_futures=True)
