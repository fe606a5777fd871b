"""Downloads that survive being killed, dropped connections and wrong files: resumable, verified, atomic.

``fetch(sources, dest, sha256=..., size=...)`` tries each source URL in turn and writes into
``dest + '.part'``. A connection that drops (or a server that sends fewer bytes than its ``Content-Length``
/ ``Content-Range`` promised, or a chunked transfer that ends early) is resumed with HTTP ``Range`` from
where it stopped, a few times; a killed process resumes on the next run. Only a complete file whose
length, checksum and ``check`` pass is renamed to ``dest``: a half file never sits under the real name. A
source that serves a wrong file (another checksum, an HTML page, a short file) has it moved aside
(``dest.bad``) and the next source is tried; when every source failed, one line lists what each did, so a
second run never loops on one bad source.

Mirrors: ``DL1_DOWNLOAD_MIRROR`` holds one or more base URLs (or local folders), separated by spaces; each
file is looked for there under its usual name (``BASE/glove.6B.zip``) before the official sources, and must
pass the same checks. ``dl1 download NAME DIR --url URL`` (repeatable) replaces a data set's sources; a URL
may end in ``#sha256=HEX`` (pip's convention) to verify a file other than the published one (a newer
release, a test file). ``DL1_OFFLINE=1`` refuses to download, with one line that says where to put the file.
"""

import errno
import hashlib
import http.client
import json
import os
import pathlib
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request

from dl1.io.errors import DL1Error
from dl1.io.log import note

__all__ = ["DownloadError", "copy_file", "fetch", "fetch_url", "file_digest", "mirror_sources", "offline",
           "split_hash"]

CHUNK = 1 << 20
MIRROR_ENV = "DL1_DOWNLOAD_MIRROR"
MAX_ATTEMPTS = 12  # per source and run: connections that drop are resumed this many times at most
MAX_STALLS = 3  # attempts in a row that add no byte end the source
_HASH = re.compile(r"^(sha256|md5)=([0-9a-fA-F]+)$")


class DownloadError(DL1Error, OSError):
    """A download that failed or gave a file with the wrong checksum."""


class _NoSpace(DownloadError):
    """The disk filled up: no other source can help (the part is kept and resumes)."""


class _WrongFile(Exception):
    """The source answered, but with a file that is not the one wanted (moved aside, next source)."""


class _Dropped(Exception):
    """The transfer stopped before the end; what arrived is kept in the part file and resumed."""


def offline():
    return os.environ.get("DL1_OFFLINE", "").lower() in ("1", "true", "yes")


def file_digest(path, algorithm="sha256"):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def split_hash(url):
    """``(url without its fragment, {'sha256': hex} or {'md5': hex} or {})`` for ``URL#sha256=HEX``."""
    base, _, fragment = url.partition("#")
    m = _HASH.match(fragment)
    if fragment and not m:
        raise DownloadError(f"{url}: the part after '#' must be sha256=HEX or md5=HEX")
    return base, ({m.group(1): m.group(2).lower()} if m else {})


def mirror_sources(filename):
    """The URLs of ``filename`` on the mirrors named by ``DL1_DOWNLOAD_MIRROR`` (none when it is unset)."""
    out = []
    for base in os.environ.get(MIRROR_ENV, "").split():
        if "://" not in base:  # a local folder
            base = pathlib.Path(base).expanduser().resolve().as_uri()
        out.append(base.rstrip("/") + "/" + urllib.parse.quote(filename))
    return out


def _looks_like_html(path):
    try:
        with open(path, "rb") as f:
            head = f.read(512).lstrip().lower()
    except OSError:
        return False
    return head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body"))


def _problem(path, sha256, md5, size, check):
    """Why the file at ``path`` is not the one wanted, or None."""
    have = os.path.getsize(path)
    html = " (an HTML page, not the file)" if _looks_like_html(path) else ""
    if size is not None and have != size:
        return f"{have} bytes, expected {size}{html}"
    for algorithm, want in (("sha256", sha256), ("md5", md5)):
        if want:
            got = file_digest(path, algorithm)
            if got != want.lower():
                return f"its {algorithm} checksum is {got}, expected {want}{html}"
    if html and not (sha256 or md5):
        return html.strip(" ()")
    return check(path) if check else None


def fetch_url(url, dest, sha256=None, md5=None, what=None, verbose=True, timeout=60, size=None, check=None):
    """``fetch([url], ...)``: one source (plus the mirrors of ``DL1_DOWNLOAD_MIRROR``)."""
    return fetch([url], dest, sha256=sha256, md5=md5, what=what, verbose=verbose, timeout=timeout, size=size,
                 check=check)


def fetch(sources, dest, sha256=None, md5=None, size=None, what=None, verbose=True, timeout=60, check=None,
          mirrors=True):
    """``dest``, downloaded from the first of ``sources`` that gives the right file (see the module
    docstring); a file already at ``dest`` that passes the checks is kept as it is.

    ``size`` (bytes), ``sha256``/``md5`` and ``check(path) -> problem or None`` decide whether a file is
    the right one; a source written ``URL#sha256=HEX`` replaces them by that checksum. ``mirrors``: put the
    ``DL1_DOWNLOAD_MIRROR`` sources first. Raises ``DownloadError`` with one line when no source works.
    """
    dest = os.fspath(dest)
    what = what or os.path.basename(dest)
    sources = [s for s in sources if s]
    if mirrors:
        sources = mirror_sources(os.path.basename(dest)) + sources
    if not sources:
        raise DownloadError(f"no source to download {what} from")
    plan = []
    for s in sources:
        url, override = split_hash(s)
        expect = (override.get("sha256"), override.get("md5"), None) if override else (sha256, md5, size)
        plan.append((url, expect))
    if os.path.exists(dest):
        problems = [_problem(dest, *expect, check) for expect in dict.fromkeys(e for _, e in plan)]
        if None in problems:
            return dest
        raise DownloadError(f"{dest} exists but is not the expected {what} ({problems[0]}); delete it to "
                            "download again")
    if offline():
        raise DownloadError(f"{what} is not here and DL1_OFFLINE is set: download {plan[-1][0]} and save it "
                            f"as {dest}")
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    state = _read_state(part)
    if state.get("url") in [u for u, _ in plan]:  # resume the part from the source that wrote it
        plan.sort(key=lambda p: p[0] != state["url"])
    failures = []
    for url, (want_sha, want_md5, want_size) in plan:
        try:
            _download(url, part, want_size, what, verbose, timeout, portable=bool(want_sha or want_md5))
            problem = _problem(part, want_sha, want_md5, want_size, check)
            if problem is not None:
                raise _WrongFile(problem)
        except _WrongFile as e:
            kept = ""
            if os.path.exists(part):
                os.replace(part, dest + ".bad")
                kept = f"; kept as {os.path.basename(dest)}.bad"
            _clear_state(part)
            failures.append(f"{url}: wrong file ({e}{kept})")
            continue
        except _NoSpace:
            raise
        except DownloadError as e:
            failures.append(f"{url}: {e}")
            continue
        _clear_state(part)
        os.replace(part, dest)
        return dest
    if len(failures) == 1:
        raise DownloadError(f"cannot download {what} from {failures[0]}; download it by hand and save it as "
                            f"{dest}")
    raise DownloadError(f"cannot download {what} from any of its {len(failures)} sources: "
                        + " | ".join(failures) + f"; download it by hand and save it as {dest}")


# ---- one source -------------------------------------------------------------------------------------------
def _state_path(part):
    return part + ".json"


def _read_state(part):
    if not os.path.exists(part):
        _clear_state(part)
        return {}
    try:
        with open(_state_path(part), encoding="utf-8") as f:
            state = json.load(f)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_state(part, state):
    from dl1.io.atomic import write_text

    write_text(_state_path(part), json.dumps(state))


def _clear_state(part):
    try:
        os.remove(_state_path(part))
    except OSError:
        pass


def _download(url, part, size, what, verbose, timeout, portable=False):
    """Bring ``part`` to the whole file at ``url``, resuming dropped transfers; ``_WrongFile`` when the
    server shows it has another file, ``DownloadError`` when it cannot be had from here. ``portable``: a
    checksum will verify the result, so a part begun from another source is continued here."""
    state = _read_state(part)
    if state.get("url") != url:
        if os.path.exists(part) and not portable:
            os.remove(part)  # bytes of another source, and nothing to verify the mix: start afresh
        state = {}
    if size is not None and os.path.exists(part) and os.path.getsize(part) > size:
        os.remove(part)  # longer than the file: not a part of it
    stalls = 0
    for attempt in range(MAX_ATTEMPTS):
        have = os.path.getsize(part) if os.path.exists(part) else 0
        try:
            total = _attempt(url, part, have, state, size, what, verbose, timeout)
        except _Dropped as e:
            now = os.path.getsize(part) if os.path.exists(part) else 0
            stalls = 0 if now > have else stalls + 1
            if stalls >= MAX_STALLS or attempt == MAX_ATTEMPTS - 1:
                raise DownloadError(f"the transfer keeps stopping early ({e}); {now} bytes kept in "
                                    f"{os.path.basename(part)}, a later run resumes there") from None
            if verbose:
                note("%s: %s; resuming at byte %d", what, e, now)
            time.sleep(min(0.2 * 2 ** stalls, 5) if stalls else 0)
            continue
        if total is None or os.path.getsize(part) == total:
            return
        raise _WrongFile(f"{os.path.getsize(part)} bytes where the server announced {total}")


def _open(url, part, have, state, timeout):
    headers = {"User-Agent": "dl1", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        if state.get("validator"):
            headers["If-Range"] = state["validator"]
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s)/file URLs of data sets)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            m = re.match(r"bytes \*/(\d+)", e.headers.get("Content-Range", "") if e.headers else "")
            if m and int(m.group(1)) == have:
                return None  # the part is already whole
            os.remove(part)
            raise _Dropped(f"the server cannot resume at byte {have} (HTTP 416); starting again") from None
        raise DownloadError(f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{reason}") from None


def _attempt(url, part, have, state, size, what, verbose, timeout):
    """One request: append what arrives to ``part``; returns the file's total size when the server said
    it (None when it did not). Raises ``_Dropped`` when fewer bytes came than announced."""
    response = _open(url, part, have, state, timeout)
    if response is None:
        return have
    with response:
        status = getattr(response, "status", None) or 200
        headers = response.headers
        offset, total = 0, None
        if status == 206:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                os.remove(part)
                raise _Dropped(f"the server resumed at another byte than {have}; starting again")
            offset = have
            total = int(m.group(3)) if m.group(3) != "*" else None
        length = headers.get("Content-Length")
        if length is not None and length.strip().isdigit():
            if total is None:
                total = offset + int(length)
            elif offset + int(length) != total:
                raise _WrongFile(f"Content-Length {length} does not match Content-Range "
                                 f"{headers.get('Content-Range')}")
        if offset == 0 and "text/html" in headers.get("Content-Type", "") and not url.endswith((".html", ".htm")):
            raise _WrongFile("an HTML page, not the file")
        if size is not None and total is not None and total != size:
            raise _WrongFile(f"the server offers {total} bytes, expected {size}")
        _check_space(part, (total or 0) - offset)
        validator = headers.get("ETag") or headers.get("Last-Modified")
        state.update(url=url, validator=None if (validator or "").startswith("W/") else validator)
        _write_state(part, state)
        got = _copy(response, part, offset, total, what, verbose)
    if total is not None and offset + got < total:
        raise _Dropped(f"the connection ended after {offset + got} of {total} bytes")
    return total


def _check_space(part, need):
    folder = os.path.dirname(os.path.abspath(part))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if need > free:
        raise _NoSpace(f"no space left in {folder}: the download needs {need / 2**20:.0f} MB more, "
                            f"{free / 2**20:.0f} MB are free; free some space and run again (it resumes)")


def _copy(response, part, offset, total, what, verbose):
    """Append the response body to ``part`` from ``offset``; returns the bytes received. A read that fails
    mid-way (reset, timeout, a chunked body cut short) raises ``_Dropped`` after keeping what came."""
    from dl1.io.console import tqdm

    got = 0
    mode = "r+b" if offset and os.path.exists(part) else "wb"
    try:
        with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=what,
                                         disable=not verbose) as bar:
            f.seek(offset)
            f.truncate()
            # read1: what has arrived (up to CHUNK), so that a slow or killed transfer leaves its bytes in the part
            read = getattr(response, "read1", response.read)
            try:
                while chunk := read(CHUNK):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as e:
                if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise
                f.flush()
                os.fsync(f.fileno())
                raise _Dropped(f"the connection broke after {offset + got} bytes ({type(e).__name__})") from None
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _NoSpace(f"no space left on the device of {os.path.dirname(os.path.abspath(part))} "
                                f"after {offset + got} bytes; free some space and run again (it resumes)") from None
        raise DownloadError(f"cannot write {part}: {e.strerror or e}") from None
    return got


def copy_file(src, dest):
    """Copy ``src`` to ``dest`` atomically (a local file given instead of a URL)."""
    part = os.fspath(dest) + ".part"
    shutil.copyfile(src, part)
    os.replace(part, dest)
    return dest
