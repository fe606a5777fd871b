"""Writes that cannot half-happen: write to a temporary name in the same folder, then rename.

A crash, a full disk or a killed spot instance leaves either the old file or the new one under the
real name, never a truncated file (``os.replace`` is atomic on POSIX and Windows). Before writing, the
free space the file needs is checked when the caller knows it (``needed``), and a full, read-only or closed
folder becomes one ``DiskError`` line naming the folder and the space needed (``dl1.io.space``).
"""

import contextlib
import os
import re
import secrets

from dl1.io.errors import DL1Error
from dl1.io.space import check_free, disk_error, unwritable_reason

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
def atomic_path(path, suffix="", needed=None, what=None):
    """Yield a temporary path to write; on success it is synced and renamed to ``path``, on error removed.

    ``suffix`` lets libraries that check file endings (Keras' ``.weights.h5``, blosc2's ``.b2nd``)
    write the temporary file. ``needed``: the bytes about to be written (an estimate), checked against
    the free space first; ``what`` names the file in messages (default its name). A full disk, a
    read-only file system or a folder without write permission is one ``DiskError`` (also when a
    library hid the OS error behind its own exception), and the previous file stays as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    what = what or os.path.basename(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise (disk_error(e, folder, needed, what) or e) from None
    check_free(folder, needed, what)
    tmp = temp_name(path, suffix)
    try:
        try:
            yield tmp
            _fsync(tmp)
            os.replace(tmp, path)
        except DL1Error:
            raise
        except OSError as e:
            reason = disk_error(e, folder, needed, what) or unwritable_reason(folder, needed, what)
            if reason is None:
                raise
            raise reason from None
        except Exception:  # blosc2 and h5py hide ENOSPC/EROFS behind RuntimeError and friends
            reason = unwritable_reason(folder, needed, what)
            if reason is None:
                raise
            raise reason from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path, data, what=None):
    """Write ``data`` to ``path`` atomically, after checking that its size fits on the disk."""
    view = memoryview(data).cast("B")
    with atomic_path(path, needed=len(view), what=what) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            done = 0
            while done < len(view):  # plain system calls: a full disk is an OSError here, nothing else
                done += os.write(fd, view[done:done + (64 << 20)])
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path, text, what=None):
    write_bytes(path, text.encode("utf-8"), what=what)


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
