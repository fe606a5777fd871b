"""Unpack a downloaded archive losslessly and atomically: all of it or nothing under the real names.

``unpack_archive(archive, dest)`` extracts a ``.zip`` or ``.tar(.gz|.bz2|.xz)`` into a hidden temporary
folder beside ``dest``, checks that every regular member came out with the size the archive records (and
that no member would land outside ``dest``), then moves the result into place with renames. A marker file
``dest/.dl1-unpacked-<archive name>.json`` is written last: while it is missing the unpack is redone from
the start, so a process killed at any point leaves either nothing, the finished tree, or a tree that the
next run replaces cleanly. Temporary folders of killed runs are removed by the next one.

``strip`` drops leading path components (``strip=1`` turns ``aclImdb/train/pos/0_9.txt`` into
``train/pos/0_9.txt``), like ``tar --strip-components``. No Keras here.

Limits, checked on the archive's listing before anything is written (each adjustable by an environment
variable): at most ``DL1_UNPACK_MAX_FILES`` files (1,000,000), ``DL1_UNPACK_MAX_GB`` unpacked (100), and
an unpacked size at most ``DL1_UNPACK_MAX_RATIO`` (200) times the archive's once past 100 MB (a "zip bomb";
the course's archives unpack to 1-6 times their size). The unpacked size must also fit the free space of
the destination. A truncated archive is refused for every format: a zip without its directory, a
compressed stream without its end, and a plain ``.tar`` that stops without its end-of-archive blocks (even
at a block boundary). A full disk is reported as such (the archive is fine: free space, run again).
"""

import errno
import json
import os
import re
import shutil
import tarfile
import zipfile
import zlib

from dl1.io.atomic import temp_name, write_text
from dl1.io.errors import DataError
from dl1.io.log import note

__all__ = ["UnpackError", "archive_members", "check_limits", "is_unpacked", "limits", "unpack_archive"]

_STAGING = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}\.unpack$")
DEFAULT_LIMITS = {"DL1_UNPACK_MAX_FILES": 1_000_000, "DL1_UNPACK_MAX_GB": 100.0, "DL1_UNPACK_MAX_RATIO": 200.0}
RATIO_FLOOR = 100 * 2**20  # below this unpacked size, any ratio is fine


class UnpackError(DataError):
    """An archive that cannot be read, or whose extracted files do not match what it lists."""


def _marker(dest, archive):
    return os.path.join(dest, f".dl1-unpacked-{os.path.basename(archive)}.json")


def _strip(name, strip):
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    parts = parts[strip:]
    return "/".join(parts) if parts else None


def archive_members(archive, strip=0):
    """``{relative path: size}`` of the regular files in ``archive`` after ``strip`` (directories left out).

    Raises ``UnpackError`` for an unreadable archive or a member whose path leaves the destination.
    """
    members = {}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    if info.is_dir():
                        continue
                    _add(members, archive, info.filename, strip, info.file_size)
        else:
            with tarfile.open(archive) as t:
                for info in t:
                    if info.isdir():
                        continue
                    if not info.isfile():  # links, devices: not part of the data sets we unpack
                        continue
                    _add(members, archive, info.name, strip, info.size)
                _check_tar_end(archive, t)
    except UnpackError:
        raise
    except OSError as e:
        if e.errno is not None:  # the file itself: permission, a folder, an I/O error
            raise UnpackError(f"{archive}: cannot read it ({e.strerror})") from None
        raise UnpackError(f"{archive}: cannot read the archive ({_first_line(e)}); delete it and download "
                          "again") from None
    except (EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error, ValueError) as e:
        raise UnpackError(f"{archive}: cannot read the archive ({_first_line(e)}); delete it and download "
                          "again") from None
    if not members:
        raise UnpackError(f"{archive}: the archive holds no files")
    return members


_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _first_line(e):
    return (str(e).splitlines() or [type(e).__name__])[0] or type(e).__name__


def _check_tar_end(archive, t):
    """A tar ends with zero blocks: one that stops without them was cut (tarfile itself takes the end of
    the data, even at a block boundary, for the end of the archive); a compressed one must also reach the
    end of its compressed stream (its checksum trailer)."""
    t.fileobj.seek(t.offset)
    end = t.fileobj.read(tarfile.BLOCKSIZE)
    if len(end) < tarfile.BLOCKSIZE or end.count(0) != tarfile.BLOCKSIZE:
        raise UnpackError(f"{archive}: the archive is cut short (it stops after {t.offset} bytes of tar data "
                          "without its end marker); delete it and download again")
    while t.fileobj.read(1 << 20):  # to the end of a gzip/bz2/xz stream: raises if it was cut
        pass


def limits():
    """``{variable: value}`` of the unpack limits in force (the environment, else the defaults)."""
    out = {}
    for name, default in DEFAULT_LIMITS.items():
        raw = os.environ.get(name, "").strip()
        try:
            value = type(default)(raw) if raw else default
        except ValueError:
            raise UnpackError(f"{name}={raw!r} is not a number") from None
        if value <= 0:
            raise UnpackError(f"{name} must be above 0, not {raw}")
        out[name] = value
    return out


def check_limits(archive, members, dest=None):
    """Refuse, in one line naming the variable to raise, an archive whose listing exceeds ``limits()``, or
    (with ``dest``) whose unpacked size does not fit the free space there."""
    lim = limits()
    total = sum(members.values())
    size = os.path.getsize(archive)
    if len(members) > lim["DL1_UNPACK_MAX_FILES"]:
        raise UnpackError(f"{archive}: {len(members)} files, more than the limit of "
                          f"{lim['DL1_UNPACK_MAX_FILES']} (DL1_UNPACK_MAX_FILES raises it)")
    if total > lim["DL1_UNPACK_MAX_GB"] * 2**30:
        raise UnpackError(f"{archive}: unpacks to {total / 2**30:.1f} GB, more than the limit of "
                          f"{lim['DL1_UNPACK_MAX_GB']:g} GB (DL1_UNPACK_MAX_GB raises it)")
    if total > RATIO_FLOOR and total > lim["DL1_UNPACK_MAX_RATIO"] * max(size, 1):
        raise UnpackError(f"{archive}: {size} bytes that unpack to {total / 2**20:.0f} MB, {total / max(size, 1):.0f} "
                          f"times their size (a zip bomb?); limit {lim['DL1_UNPACK_MAX_RATIO']:g} times "
                          "(DL1_UNPACK_MAX_RATIO raises it)")
    if dest is not None:
        folder = dest
        while folder and not os.path.isdir(folder):
            folder = os.path.dirname(folder)
        try:
            free = shutil.disk_usage(folder or ".").free
        except OSError:
            return
        if total > free:
            raise UnpackError(f"{archive}: unpacks to {total / 2**20:.0f} MB but {folder or '.'} has "
                              f"{free / 2**20:.0f} MB free; free some space and run again (the archive is fine)")


def _add(members, archive, name, strip, size):
    rel = _strip(name, strip)
    if rel is None:
        if ".." in name.replace("\\", "/").split("/"):
            raise UnpackError(f"{archive}: member {name!r} points outside the destination; refusing to unpack")
        return
    if os.path.isabs(name):
        raise UnpackError(f"{archive}: member {name!r} has an absolute path; refusing to unpack")
    members[rel] = size


def is_unpacked(archive, dest):
    """Whether ``dest`` holds a finished unpack of ``archive`` (its marker matches the archive's size)."""
    try:
        with open(_marker(dest, archive), encoding="utf-8") as f:
            info = json.load(f)
        return info.get("archive_size") == os.path.getsize(archive)
    except (OSError, ValueError, AttributeError):
        return False


def _sweep(parent):
    """Remove staging folders left by killed unpacks (their process is gone)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        m = _STAGING.match(name)
        if m:
            try:
                os.kill(int(m.group(1)), 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _extract(archive, staging, strip):
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                rel = None if info.is_dir() else _strip(info.filename, strip)
                if rel is None:
                    continue
                out = os.path.join(staging, *rel.split("/"))
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with z.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    else:
        with tarfile.open(archive) as t:
            for info in t:
                rel = _strip(info.name, strip) if info.isfile() else None
                if rel is None:
                    continue
                out = os.path.join(staging, *rel.split("/"))
                os.makedirs(os.path.dirname(out), exist_ok=True)
                src = t.extractfile(info)
                with src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                if info.mtime:
                    os.utime(out, (info.mtime, info.mtime))


def _verify(archive, staging, members):
    found = {}
    for folder, _, files in os.walk(staging):
        for name in files:
            full = os.path.join(folder, name)
            found[os.path.relpath(full, staging).replace(os.sep, "/")] = os.path.getsize(full)
    if len(found) != len(members):
        raise UnpackError(f"{archive}: {len(found)} files came out of the archive, it lists {len(members)}")
    for rel, size in members.items():
        if found.get(rel) != size:
            raise UnpackError(f"{archive}: {rel} came out as {found.get(rel)} bytes, the archive says {size}")


def unpack_archive(archive, dest, strip=0, verbose=False):
    """Unpack ``archive`` into ``dest`` (see the module docstring); returns ``{top-level entry: files}``.

    Idempotent: a finished unpack (its marker present) is left alone. Entries of ``dest`` that the archive
    does not hold (the archive itself, the user's files) are kept; entries it holds are replaced whole.
    """
    archive, dest = os.fspath(archive), os.fspath(dest)
    members = archive_members(archive, strip)
    counts = {}
    for rel in members:
        top = rel.split("/", 1)[0]
        counts[top] = counts.get(top, 0) + 1
    if is_unpacked(archive, dest):
        return counts
    check_limits(archive, members, dest)
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise UnpackError(f"{dest} is a file, not a folder: move it away (or unpack elsewhere) and run again")
    _check_clashes(archive, dest, members)
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as e:
        raise _write_error(archive, dest, e, members) from None
    parent = os.path.dirname(os.path.abspath(dest))
    _sweep(parent)
    staging = temp_name(dest, ".unpack")
    try:
        os.makedirs(staging)
        if verbose:
            note("unpacking %s (%d files) into %s", os.path.basename(archive), len(members), dest)
        try:
            _extract(archive, staging, strip)
        except OSError as e:
            if e.errno in _DISK_ERRORS:
                raise _write_error(archive, dest, e, members) from None
            raise UnpackError(f"{archive}: unpacking failed ({_first_line(e)}); delete it and download "
                              "again") from None
        except (EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error, ValueError) as e:
            raise UnpackError(f"{archive}: unpacking failed ({_first_line(e)}); delete it and download "
                              "again") from None
        _verify(archive, staging, members)
        try:
            for top in sorted(counts):
                target = os.path.join(dest, top)
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)  # left by an earlier run killed between renames
                os.replace(os.path.join(staging, top), target)
            write_text(_marker(dest, archive), json.dumps({"archive": os.path.basename(archive),
                                                           "archive_size": os.path.getsize(archive),
                                                           "files": len(members)}))
        except OSError as e:
            raise _write_error(archive, dest, e, members) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def _check_clashes(archive, dest, members):
    """One line when something of another kind sits where the archive puts a folder or a file (a file
    where its top folder goes, a folder where its file goes, a link)."""
    tops = {}
    for rel in members:
        top, _, rest = rel.partition("/")
        tops[top] = tops.get(top, False) or bool(rest)
    for top, is_folder in sorted(tops.items()):
        target = os.path.join(dest, top)
        if os.path.islink(target):
            raise UnpackError(f"{target} is a link where {os.path.basename(archive)} puts a "
                              f"{'folder' if is_folder else 'file'}: move it away and run again")
        if is_folder and os.path.exists(target) and not os.path.isdir(target):
            raise UnpackError(f"{target} is a file where {os.path.basename(archive)} puts a folder: move it "
                              "away and run again")
        if not is_folder and os.path.isdir(target):
            raise UnpackError(f"{target} is a folder where {os.path.basename(archive)} puts a file: move it "
                              "away and run again")


def _write_error(archive, dest, e, members):
    """The one line for an unpack that cannot write: a full disk or a read-only / forbidden folder."""
    need = sum(members.values()) / 2**20
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return UnpackError(f"no space left on the device of {dest} while unpacking {os.path.basename(archive)} "
                           f"(it needs {need:.0f} MB); free some space and run again (the archive is fine)")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return UnpackError(f"cannot write into {dest} ({e.strerror}) to unpack {os.path.basename(archive)}; "
                           "unpack it into a folder you can write to")
    return UnpackError(f"cannot unpack {os.path.basename(archive)} into {dest} ({e.strerror or e})")
