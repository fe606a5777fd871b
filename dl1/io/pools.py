"""The process-wide thread pools, created on first use (no Keras import, so data preparation can use
them): ``decode_pool`` decodes and checks images, ``prefetch_pool`` (one thread) prepares the next
batch or chunk while the current one is used. Pillow releases the GIL while it decodes and resizes."""

import collections
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


def bounded_map(fn, items, pool=None, window=None):
    """``fn(item)`` for each of ``items`` on ``pool`` (``decode_pool``), the results in order, with at most
    ``window`` (4 per worker) submitted and not yet taken. ``pool.map`` submits every item first: for
    ``dl1 sample --n 100000`` the main thread spent its first second queueing 125,000 items, where a Ctrl-C
    could leave the pool's lock held, and what it had queued ran on at exit. Leaving the loop early (an
    error, Ctrl-C) cancels what is still queued."""
    pool = pool or decode_pool()
    window = window or 4 * decode_workers()
    queued = collections.deque()
    try:
        for item in items:
            queued.append(pool.submit(fn, item))
            if len(queued) >= window:
                yield queued.popleft().result()
        while queued:
            yield queued.popleft().result()
    finally:
        for future in queued:
            future.cancel()


def cancel_pending(timeout=2.0):
    """Drop the work queued on every pool (the running items finish): after Ctrl-C, so that the process
    exits now instead of working through the queue at interpreter exit. Later use makes new pools. Never
    waits more than ``timeout`` seconds (a pool whose lock an interrupted thread still holds is left)."""
    with _LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    if not pools:
        return

    def shut():
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)

    helper = threading.Thread(target=shut, name="dl1-cancel", daemon=True)
    helper.start()
    helper.join(timeout)
