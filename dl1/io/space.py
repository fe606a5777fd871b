"""Free space and failed writes: one check before a big write, one line when the disk says no.

Every write of weights, checkpoints, feature caches, predictions, submissions and exports goes through
``dl1.io.atomic.atomic_path``, which calls ``check_free`` with the bytes it is about to write (estimated
from the arrays or weights) and turns a full disk (``ENOSPC``, ``EDQUOT``), a read-only file system
(``EROFS``) or a folder it may not write (``EACCES``, ``EPERM``) into a ``DiskError`` naming the folder
and the space needed. The previous file under the real name is never touched before the new one is
complete (temporary name, fsync, rename).
"""

import errno
import os
import shutil

from dl1.io.errors import DiskError

# what the file system keeps back besides the file itself (metadata, the temporary copy's directory entry)
MARGIN = 1 << 20

FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
READ_ONLY = {errno.EROFS}
DENIED = {errno.EACCES, errno.EPERM}
DISK_ERRNOS = FULL | READ_ONLY | DENIED


def human(n):
    """``528.0 MB``, ``20.0 GB``, ``312 bytes``: a size as a user reads it."""
    n = float(n)
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}"
    return f"{n:.1f} TB"  # pragma: no cover


def existing_folder(path):
    """The nearest folder of ``path`` that exists (the one whose file system a write would use)."""
    folder = os.path.abspath(os.fspath(path))
    while not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def free_bytes(folder):
    """Free bytes for an ordinary user on ``folder``'s file system, or None when it cannot be told."""
    try:
        return shutil.disk_usage(existing_folder(folder)).free
    except OSError:
        return None


def check_free(folder, needed, what=None):
    """Raise ``DiskError`` when ``folder`` (or the nearest existing folder above it) has less than
    ``needed`` bytes (plus a small margin) free. ``what`` names the file for the message."""
    if not needed:
        return
    free = free_bytes(folder)
    if free is not None and free < needed + MARGIN:
        raise DiskError(f"not enough free space in {folder}: {human(needed)} needed for {what or 'the file'}, "
                        f"{human(free)} free; free some space (or write elsewhere) and run again")


def disk_error(error, folder, needed=None, what=None):
    """A ``DiskError`` for an ``OSError`` a write raised on a full, read-only or closed folder, else None."""
    code = getattr(error, "errno", None)
    if code not in DISK_ERRNOS:
        return None
    what = what or "the file"
    size = human(needed) if needed else None
    if code == errno.EFBIG:
        return DiskError(f"cannot write {what} in {folder}{f' ({size})' if size else ''}: larger than this "
                         "process may write (the file size limit, 'ulimit -f'); raise the limit and run again "
                         "(the previous files are intact)")
    if code in FULL:
        free = free_bytes(folder)
        sizes = ", ".join(x for x in (f"{size} needed" if size else "",
                                      f"{human(free)} free" if free is not None else "") if x)
        return DiskError(f"the disk is full: cannot write {what} in {folder}{f' ({sizes})' if sizes else ''}; "
                         "free some space and run again (the previous files are intact)")
    if code in READ_ONLY:
        return DiskError(f"{folder} is on a read-only file system: cannot write {what}"
                         f"{f' ({size})' if size else ''}; use a writable folder")
    return DiskError(f"no permission to write {what} in {folder}: fix its permissions or use another folder")


def unwritable_reason(folder, needed=None, what=None, space=True):
    """A ``DiskError`` when ``folder`` cannot take a write now (full, read-only, no permission), else None:
    what a library that hides the OS error (blosc2, h5py) most likely met."""
    folder = existing_folder(folder)
    if not os.access(folder, os.W_OK):
        try:
            probe = os.statvfs(folder)
            read_only = bool(probe.f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            read_only = False
        return disk_error(OSError(errno.EROFS if read_only else errno.EACCES, ""), folder, needed, what)
    free = free_bytes(folder) if space else None
    if free is not None and free < (needed or 0) + MARGIN:
        return disk_error(OSError(errno.ENOSPC, ""), folder, needed, what)
    return None
