"""Lessons 4-5 data: the MovieLens, IMDB and GloVe downloaders against a local HTTP server (Range, throttling),
resuming after a SIGKILL, checksums, and the atomic, verified unpack."""

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile

import pytest
import rangeserver

from dl1.data.datasets import glove as glove_ds
from dl1.data.datasets import imdb as imdb_ds
from dl1.data.datasets import movielens as movielens_ds
from dl1.io import download as dl1_download
from dl1.io.download import DownloadError
from dl1.io.unpack import UnpackError, unpack_archive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def server(tmp_path):
    """A local HTTP server serving tmp_path/www (Range, optional throttle): tests/rangeserver.py."""
    root = tmp_path / "www"
    root.mkdir()
    yield from rangeserver.serve_folder(root)


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    monkeypatch.delenv("DL1_OFFLINE", raising=False)
    monkeypatch.delenv("DL1_DOWNLOAD_MIRROR", raising=False)


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _tree(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            full = os.path.join(root, name)
            out[os.path.relpath(full, folder)] = hashlib.md5(open(full, "rb").read()).hexdigest()
    return out


def _imdb_archive(tmp_path, n=40, pad=0):
    """An ``aclImdb_v1.tar.gz`` in Stanford's layout (top folder ``aclImdb/``) from the synthetic reviews;
    ``pad`` adds an incompressible file so that a throttled transfer takes a while."""
    src = tmp_path / "src" / "aclImdb"
    imdb_ds.synthesize(str(src), seed=0, n=n)
    if pad:
        (src / "README").write_bytes(os.urandom(pad))
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname="aclImdb")
    return archive, src


# ---- unpack ------------------------------------------------------------------------------------------------
def test_unpack_tar_strips_the_top_folder_and_is_idempotent(tmp_path):
    archive, src = _imdb_archive(tmp_path)
    dest = tmp_path / "imdb"
    counts = unpack_archive(str(archive), str(dest), strip=1)
    assert counts["train"] == 40 and counts["test"] == 40 and counts["imdb.vocab"] == 1
    tree = {k: v for k, v in _tree(dest).items() if not k.startswith(".dl1-unpacked")}
    assert tree == _tree(src)
    before = os.stat(dest / "imdb.vocab").st_ino
    unpack_archive(str(archive), str(dest), strip=1)  # finished: left alone
    assert os.stat(dest / "imdb.vocab").st_ino == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".unpack")]


def test_unpack_zip_keeps_other_files_and_replaces_a_half_tree(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("glove.6B.50d.txt", "the 0.1 0.2\n")
        z.writestr("sub/x.txt", "x" * 1000)
    dest = tmp_path / "glove"
    (dest / "sub").mkdir(parents=True)
    (dest / "sub" / "stale.txt").write_text("from a killed run")  # no marker: the tree is replaced whole
    (dest / "mine.txt").write_text("the user's")
    unpack_archive(str(archive), str(dest))
    assert (dest / "glove.6B.50d.txt").read_text() == "the 0.1 0.2\n"
    assert sorted(os.listdir(dest / "sub")) == ["x.txt"]
    assert (dest / "mine.txt").read_text() == "the user's"


def test_unpack_refuses_paths_outside_the_destination(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        data = b"boom"
        info = tarfile.TarInfo("../../outside.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    with pytest.raises(UnpackError, match="outside the destination"):
        unpack_archive(str(archive), str(tmp_path / "dest"))
    assert not (tmp_path / "outside.txt").exists()


def test_unpack_of_a_truncated_archive_is_one_line_and_writes_nothing(tmp_path):
    archive, _ = _imdb_archive(tmp_path)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    dest = tmp_path / "imdb"
    with pytest.raises(UnpackError) as e:
        unpack_archive(str(cut), str(dest), strip=1)
    assert str(cut) in str(e.value) and "\n" not in str(e.value)
    assert not dest.exists() or not os.listdir(dest)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".unpack")]


def test_unpack_killed_midway_reruns_cleanly(tmp_path):
    archive, src = _imdb_archive(tmp_path, n=600)
    dest = tmp_path / "imdb"
    code = ("import sys; from dl1.io.unpack import unpack_archive; "
            f"unpack_archive({str(archive)!r}, {str(dest)!r}, strip=1)")
    for delay in (0.4, 0.8):
        p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
    unpack_archive(str(archive), str(dest), strip=1)
    tree = {k: v for k, v in _tree(dest).items() if not k.startswith(".dl1-unpacked")}
    assert tree == _tree(src)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".unpack")]  # staging of the killed runs swept


# ---- downloads ---------------------------------------------------------------------------------------------
def _movielens_zip(tmp_path, server, n=2000):
    src = tmp_path / "ml"
    movielens_ds.synthesize(str(src), n=n)
    with zipfile.ZipFile(os.path.join(server.root, movielens_ds.FILENAME), "w") as z:
        for name in ("ratings.csv", "movies.csv"):
            z.write(src / name, f"ml-latest-small/{name}")
        z.writestr("ml-latest-small/README.txt", "MovieLens")
    return src


def test_movielens_download_from_a_mirror(server, tmp_path, monkeypatch):
    src = _movielens_zip(tmp_path, server)
    monkeypatch.setenv("DL1_DOWNLOAD_MIRROR", server.url)  # tried before files.grouplens.org
    dest = tmp_path / "ml-small"
    counts = movielens_ds.download(str(dest), verbose=False)
    assert counts == {"ratings.csv": 1, "movies.csv": 1, "README.txt": 1}
    assert (dest / "ratings.csv").read_bytes() == (src / "ratings.csv").read_bytes()
    assert (dest / "ml-latest-small.zip").exists() and not list(dest.glob("*.part*"))
    from dl1.data.ratings import read_ratings

    assert len(read_ratings(str(dest))) == (src / "ratings.csv").read_text().count("\n") - 1
    n = len(server.requests)
    movielens_ds.download(str(dest), verbose=False)  # there already: no second transfer
    assert len(server.requests) == n


def test_a_half_movielens_zip_never_gets_its_real_name(server, tmp_path, capsys):
    from dl1.cli import main

    _movielens_zip(tmp_path, server, n=20000)
    served = os.path.join(server.root, movielens_ds.FILENAME)
    size = os.path.getsize(served)
    url = server.url + "/" + movielens_ds.FILENAME
    dest = tmp_path / "ml-small"
    # a server that says the file ends half way (no checksum is published: only the zip itself can tell)
    server.faults["/" + movielens_ds.FILENAME] = {"length": size // 2}
    assert main(["download", "movielens", str(dest), "--url", url, "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dl1: error: cannot download ml-latest-small.zip from {url}: wrong file (") and "\n" not in err
    assert "File is not a zip file" in err or "cannot read" in err
    assert not (dest / movielens_ds.FILENAME).exists() and not (dest / "ratings.csv").exists()
    # a connection that drops half way: resumed in the same run, then unpacked
    server.requests.clear()
    server.faults["/" + movielens_ds.FILENAME] = {"drop_after": size // 2, "drops": 1}
    assert main(["download", "movielens", str(dest), "--url", url, "--quiet"]) == 0
    assert server.range_starts() == [size // 2]
    assert (dest / movielens_ds.FILENAME).read_bytes() == open(served, "rb").read()
    assert (dest / "ratings.csv").exists()


def test_download_resumes_after_sigkill_and_never_shows_a_half_file(server, tmp_path):
    archive, src = _imdb_archive(tmp_path, n=20, pad=3 << 20)
    os.replace(archive, os.path.join(server.root, imdb_ds.FILENAME))
    served = os.path.join(server.root, imdb_ds.FILENAME)
    sha, size = _sha256(served), os.path.getsize(served)
    server.delay, server.chunk = 0.02, 1 << 15  # ~1.6 MB/s: the kill lands mid-transfer
    dest = tmp_path / "imdb"
    cmd = [sys.executable, "-m", "dl1", "download", "imdb", str(dest), "--quiet",
           "--url", f"{server.url}/{imdb_ds.FILENAME}#sha256={sha}"]
    env = dict(os.environ, DL1_OFFLINE="0")
    p = subprocess.Popen(cmd, cwd=ROOT, env=env)
    part = dest / (imdb_ds.FILENAME + ".part")
    deadline = time.time() + 30
    while time.time() < deadline and (not part.exists() or part.stat().st_size < 300_000):
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert part.exists() and 0 < part.stat().st_size < size
    assert not (dest / imdb_ds.FILENAME).exists()  # never a half file under the real name
    assert not (dest / "train").exists()
    have = part.stat().st_size
    server.delay = 0.0
    rc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=120).returncode
    assert rc == 0
    assert any(r == f"bytes={have}-" for _, r in server.requests), server.requests  # resumed, not restarted
    assert _sha256(dest / imdb_ds.FILENAME) == sha and not part.exists()
    tree = {k: v for k, v in _tree(dest).items() if "/" in k or k == "imdb.vocab"}
    assert tree == {k: v for k, v in _tree(src).items() if k != "README"}


def test_checksum_mismatch_is_refused(server, tmp_path, monkeypatch):
    archive, _ = _imdb_archive(tmp_path)
    os.replace(archive, os.path.join(server.root, imdb_ds.FILENAME))
    monkeypatch.setenv("DL1_DOWNLOAD_MIRROR", server.url)  # a mirror must serve the published file
    dest = tmp_path / "imdb"
    with pytest.raises(DownloadError) as e:
        imdb_ds.download(str(dest), verbose=False, urls=[server.url + "/" + imdb_ds.FILENAME])
    msg = str(e.value)
    assert f"wrong file (the server offers {os.path.getsize(os.path.join(server.root, imdb_ds.FILENAME))} bytes, " \
           f"expected {imdb_ds.SIZE})" in msg and "\n" not in msg
    assert not (dest / imdb_ds.FILENAME).exists() and not (dest / "train").exists()


def test_glove_tries_its_next_source_when_one_serves_a_wrong_file(server, tmp_path):
    with zipfile.ZipFile(os.path.join(server.root, "glove.6B.zip"), "w") as z:
        z.writestr("glove.6B.50d.txt", "the 0.1 0.2 0.3\nof 0.4 0.5 0.6\n")
    sha = _sha256(os.path.join(server.root, "glove.6B.zip"))
    (tmp_path / "www" / "portal").mkdir()
    (tmp_path / "www" / "portal" / "glove.6B.zip").write_bytes(b"<html><body>Sign in</body></html>")
    urls = [f"{server.url}/gone/glove.6B.zip#sha256={sha}", f"{server.url}/portal/glove.6B.zip#sha256={sha}",
            f"{server.url}/glove.6B.zip#sha256={sha}"]
    dest = tmp_path / "glove"
    assert glove_ds.download(str(dest), verbose=False, urls=urls) == {"glove.6B.50d.txt": 1}
    assert [p for p, _ in server.requests] == ["/gone/glove.6B.zip", "/portal/glove.6B.zip", "/glove.6B.zip"]
    assert (dest / "glove.6B.zip.bad").read_bytes().startswith(b"<html>")
    from dl1.data.glove import read_glove

    vecs, words, _ = read_glove(str(dest / "glove.6B.50d.txt"), dim=3)
    assert words == ["the", "of"] and vecs.shape == (2, 3)
    assert len(glove_ds.SOURCES) == 3  # Stanford's server, its old address, the Hugging Face copy


def test_glove_without_a_working_source_says_so_for_each_and_never_loops(server, tmp_path, monkeypatch):
    (tmp_path / "www" / "glove.6B.zip").write_bytes(b"<html><body>Sign in</body></html>")
    monkeypatch.setenv("DL1_DOWNLOAD_MIRROR", server.url)
    monkeypatch.setattr(dl1_download, "_open", _only_local(dl1_download._open))
    dest = tmp_path / "glove"
    for _ in range(2):
        with pytest.raises(DownloadError) as e:
            glove_ds.download(str(dest), verbose=False)
        msg = str(e.value)
        assert msg.startswith("cannot download glove.6B.zip from any of its 4 sources: "
                              f"{server.url}/glove.6B.zip: wrong file (") and "\n" not in msg
        for url in glove_ds.SOURCES:
            assert f"{url}: no network in this test" in msg
    assert [p for p, _ in server.requests] == ["/glove.6B.zip"] * 2  # each run tried every source once


def _only_local(real):
    def _open(url, *args):
        if not url.startswith("http://127.0.0.1"):
            raise DownloadError("no network in this test")
        return real(url, *args)

    return _open


def test_offline_download_is_refused_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DL1_OFFLINE", "1")
    with pytest.raises(DownloadError, match="DL1_OFFLINE") as e:
        glove_ds.download(str(tmp_path / "g"), verbose=False)
    assert "\n" not in str(e.value)


def test_dl1_sample_writes_the_three_stand_ins(tmp_path):
    from dl1.cli import main

    for name in ("movielens", "imdb", "glove"):
        assert main(["sample", str(tmp_path / name), "--dataset", name, "--n", "300"]) == 0
    assert (tmp_path / "movielens" / "ratings.csv").read_text().startswith("userId,movieId,rating,timestamp\n")
    assert (tmp_path / "movielens" / "movies.csv").read_text().startswith("movieId,title,genres\n")
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            assert len(os.listdir(tmp_path / "imdb" / split / label)) == 150
    first = (tmp_path / "glove" / "glove.6B.50d.txt").read_text().splitlines()[0].split(" ")
    assert first[0] == "the" and len(first) == 51
