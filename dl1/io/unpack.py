"""Unpack a downloaded archive losslessly and atomically: all of it or nothing under the real names.

``unpack_archive(archive, dest)`` extracts a ``.zip`` or ``.tar(.gz|.bz2|.xz)`` into a hidden temporary
folder beside ``dest``, checks that every regular member came out with the size the archive records (and
that no member would land outside ``dest``), then moves the result into place with renames. A marker file
``dest/.dl1-unpacked-<archive name>.json`` is written last: while it is missing the unpack is redone from
the start, so a process killed at any point leaves either nothing, the finished tree, or a tree that the
next run replaces cleanly. Temporary folders of killed runs are removed by the next one.

``strip`` drops leading path components (``strip=1`` turns ``aclImdb/train/pos/0_9.txt`` into
``train/pos/0_9.txt``), like ``tar --strip-components``. No Keras here.
"""

import json
import os
import re
import shutil
import tarfile
import zipfile

from dl1.io.atomic import temp_name, write_text
from dl1.io.errors import DataError
from dl1.io.log import note

__all__ = ["UnpackError", "archive_members", "is_unpacked", "unpack_archive"]

_STAGING = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}\.unpack$")


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
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as e:
        raise UnpackError(f"{archive}: cannot read the archive ({e}); delete it and download again") from None
    if not members:
        raise UnpackError(f"{archive}: the archive holds no files")
    return members


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
    os.makedirs(dest, exist_ok=True)
    parent = os.path.dirname(os.path.abspath(dest))
    _sweep(parent)
    staging = temp_name(dest, ".unpack")
    try:
        os.makedirs(staging)
        if verbose:
            note("unpacking %s (%d files) into %s", os.path.basename(archive), len(members), dest)
        try:
            _extract(archive, staging, strip)
        except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as e:
            raise UnpackError(f"{archive}: unpacking failed ({e}); delete it and download again") from None
        _verify(archive, staging, members)
        for top in sorted(counts):
            target = os.path.join(dest, top)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)  # left by an earlier run killed between renames
            os.replace(os.path.join(staging, top), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_text(_marker(dest, archive), json.dumps({"archive": os.path.basename(archive),
                                                   "archive_size": os.path.getsize(archive),
                                                   "files": len(members)}))
    return counts
