"""Downloads that survive being killed: resumable, checksummed, atomic, with a progress bar.

``fetch_url(url, dest, sha256=...)`` writes into ``dest + '.part'`` and asks the server for the rest
(HTTP ``Range``) when a part is already there, so a killed download continues where it stopped. Only a
complete file whose checksum matches is renamed to ``dest``: a half file never sits under the real name.
``DL1_OFFLINE=1`` refuses to download, with one line that says where to put the file by hand.
"""

import hashlib
import os
import shutil
import urllib.error
import urllib.request

from dl1.io.errors import DL1Error

CHUNK = 1 << 20


class DownloadError(DL1Error, OSError):
    """A download that failed or gave a file with the wrong checksum."""


def offline():
    return os.environ.get("DL1_OFFLINE", "").lower() in ("1", "true", "yes")


def file_digest(path, algorithm="sha256"):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _check(path, sha256, md5, size=None):
    if size is not None and os.path.getsize(path) != size:
        return f"{os.path.getsize(path)} bytes, expected {size}"
    for algorithm, want in (("sha256", sha256), ("md5", md5)):
        if want:
            got = file_digest(path, algorithm)
            if got != want.lower():
                return f"{algorithm} {got}, expected {want}"
    return None


def fetch_url(url, dest, sha256=None, md5=None, what=None, verbose=True, timeout=60, size=None):
    """``dest``, downloaded from ``url`` unless a file with the right checksum is already there.

    Resumes a previous partial download (``dest.part``); verifies ``sha256``/``md5`` when given; renames
    only a complete, verified file to ``dest``. ``size`` (bytes) is checked too, for files whose publisher
    gives no checksum. Raises ``DownloadError`` with one line on failure.
    """
    dest = os.fspath(dest)
    what = what or os.path.basename(dest)
    if os.path.exists(dest):
        problem = _check(dest, sha256, md5, size)
        if problem is None:
            return dest
        raise DownloadError(f"{dest} exists but is not the expected {what} ({problem}); delete it to download "
                            "again")
    if offline():
        raise DownloadError(f"{what} is not here and DL1_OFFLINE is set: download {url} and save it as {dest}")
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    have = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"User-Agent": "dl1"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (URLs from our registry)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part is already complete
            response = None
        else:
            raise DownloadError(f"cannot download {what} from {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"cannot download {what} from {url} ({reason}); on a machine with internet "
                            f"download it and save it as {dest}") from None
    if response is not None:
        with response:
            resumed = have and response.status == 206
            total = response.headers.get("Content-Length")
            total = int(total) + (have if resumed else 0) if total else None
            _copy(response, part, have if resumed else 0, total, what, verbose)
    problem = _check(part, sha256, md5, size)
    if problem is not None:
        bad = dest + ".bad"
        os.replace(part, bad)
        raise DownloadError(f"downloaded {what} does not match its checksum ({problem}); kept as {bad}, "
                            "run again to download afresh")
    os.replace(part, dest)
    return dest


def _copy(response, part, offset, total, what, verbose):
    from tqdm.auto import tqdm

    mode = "r+b" if offset else "wb"
    if offset and not os.path.exists(part):
        mode = "wb"
    with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=what,
                                     disable=not verbose) as bar:
        f.seek(offset)
        f.truncate()
        # read1: what has arrived (up to CHUNK), so that a slow or killed transfer leaves its bytes in the part
        read = getattr(response, "read1", response.read)
        while chunk := read(CHUNK):
            f.write(chunk)
            bar.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())


def copy_file(src, dest):
    """Copy ``src`` to ``dest`` atomically (a local file given instead of a URL)."""
    part = os.fspath(dest) + ".part"
    shutil.copyfile(src, part)
    os.replace(part, dest)
    return dest
