"""Shared by the data-set modules: fetch an archive from the first source that gives the right file, then
unpack it."""

import os

from dl1.io.download import fetch
from dl1.io.unpack import UnpackError, archive_members, unpack_archive


def readable_archive(path):
    """``check`` for ``fetch``: why ``path`` is not a whole, readable archive (a zip without its
    directory, a tar cut short, an HTML page), or None."""
    try:
        archive_members(path)
    except UnpackError as e:
        return str(e).removeprefix(f"{path}: ").split("; delete it")[0]
    return None


def fetch_and_unpack(dest, sources, filename, sha256=None, md5=None, size=None, strip=0, verbose=True, urls=None):
    """``dest/filename`` from the first of ``sources`` (URLs, after the ``DL1_DOWNLOAD_MIRROR`` mirrors) that
    gives the right file, unpacked into ``dest``; ``urls`` (``dl1 download --url``) replace ``sources``.

    The archive is kept beside what it unpacks to (a re-run then checks and reuses it instead of
    downloading again); returns ``{top-level entry: number of files}``.
    """
    dest = os.fspath(dest)
    os.makedirs(dest, exist_ok=True)
    archive = os.path.join(dest, filename)
    fetch(list(urls) if urls else sources, archive, sha256=sha256, md5=md5, size=size, what=filename,
          verbose=verbose, check=readable_archive, mirrors=not urls)
    return unpack_archive(archive, dest, strip=strip, verbose=verbose)
