"""Writes that cannot half-happen: write to a temporary name in the same folder, then rename.

A crash, a full disk or a killed spot instance leaves either the old file or the new one under the
real name, never a truncated file (``os.replace`` is atomic on POSIX and Windows).
"""

import contextlib
import os
import secrets


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
