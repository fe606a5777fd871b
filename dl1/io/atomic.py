"""Writes that cannot half-happen: write to a temporary name in the same folder, then rename.

A crash, a full disk or a killed spot instance leaves either the old file or the new one under the
real name, never a truncated file (``os.replace`` is atomic on POSIX and Windows).
"""

import contextlib
import os
import re
import secrets

_TEMP = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}")


def temp_name(path, suffix=""):
    """A hidden temporary name beside ``path`` (hidden, so it is never taken for an image or class)."""
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{base}.tmp-{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _fsync(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path to write; on success it is synced and renamed to ``path``, on error removed.

    ``suffix`` lets libraries that check file endings (Keras' ``.weights.h5``, blosc2's ``.b2nd``)
    write the temporary file.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temp_name(path, suffix)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path, data):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(root):
    """Delete temporary files that a killed process of ours left under ``root``; returns how many."""
    removed = 0
    for folder, _, files in os.walk(root):
        for name in files:
            m = _TEMP.match(name)
            if m and not _alive(int(m.group(1))):  # a live PID may still be writing it
                try:
                    os.remove(os.path.join(folder, name))
                    removed += 1
                except OSError:
                    pass
    return removed
