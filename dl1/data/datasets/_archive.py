"""Shared by the data-set modules: fetch an archive from the first source that answers, then unpack it."""

import os

from dl1.io.download import DownloadError, fetch_url
from dl1.io.unpack import unpack_archive


def fetch_and_unpack(dest, sources, filename, sha256=None, md5=None, size=None, strip=0, verbose=True):
    """``dest/filename`` from the first of ``sources`` (URLs) that works, unpacked into ``dest``.

    The archive is kept beside what it unpacks to (a re-run then checks and reuses it instead of
    downloading again); returns ``{top-level entry: number of files}``.
    """
    os.makedirs(dest, exist_ok=True)
    archive = os.path.join(dest, filename)
    errors = []
    for url in sources:
        try:
            fetch_url(url, archive, sha256=sha256, md5=md5, size=size, what=filename, verbose=verbose)
            break
        except DownloadError as e:
            errors.append(str(e))
            if os.path.exists(archive + ".bad") or "DL1_OFFLINE" in str(e) or os.path.exists(archive):
                raise
    else:
        raise DownloadError(errors[-1] if len(errors) == 1 else
                            f"cannot download {filename} from any of its {len(sources)} sources: "
                            + " | ".join(errors))
    return unpack_archive(archive, dest, strip=strip, verbose=verbose)
