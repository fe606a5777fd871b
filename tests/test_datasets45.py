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
def test_movielens_download_from_local_server(server, tmp_path, monkeypatch):
    src = tmp_path / "ml"
    movielens_ds.synthesize(str(src), n=2000)
    with zipfile.ZipFile(os.path.join(server.root, "ml-latest-small.zip"), "w") as z:
        for name in ("ratings.csv", "movies.csv"):
            z.write(src / name, f"ml-latest-small/{name}")
        z.writestr("ml-latest-small/README.txt", "MovieLens")
    monkeypatch.setattr(movielens_ds, "URL", server.url + "/ml-latest-small.zip")
    dest = tmp_path / "ml-small"
    counts = movielens_ds.download(str(dest), verbose=False)
    assert counts == {"ratings.csv": 1, "movies.csv": 1, "README.txt": 1}
    assert (dest / "ratings.csv").read_bytes() == (src / "ratings.csv").read_bytes()
    assert (dest / "ml-latest-small.zip").exists() and not list(dest.glob("*.part"))
    from dl1.data.ratings import read_ratings

    assert len(read_ratings(str(dest))) == (src / "ratings.csv").read_text().count("\n") - 1
    n = len(server.requests)
    movielens_ds.download(str(dest), verbose=False)  # there already: no second transfer
    assert len(server.requests) == n


def test_download_resumes_after_sigkill_and_never_shows_a_half_file(server, tmp_path):
    archive, src = _imdb_archive(tmp_path, n=20, pad=3 << 20)
    os.replace(archive, os.path.join(server.root, imdb_ds.FILENAME))
    served = os.path.join(server.root, imdb_ds.FILENAME)
    sha, size = _sha256(served), os.path.getsize(served)
    server.delay, server.chunk = 0.02, 1 << 15  # ~1.6 MB/s: the kill lands mid-transfer
    dest = tmp_path / "imdb"
    code = ("import sys; import dl1.data.datasets.imdb as m; "
            f"m.URL, m.SHA256, m.SIZE = {server.url + '/' + imdb_ds.FILENAME!r}, {sha!r}, {size}; "
            "from dl1.cli import main; sys.exit(main(['download', 'imdb', sys.argv[1], '--quiet']))")
    env = dict(os.environ, DL1_OFFLINE="0")
    p = subprocess.Popen([sys.executable, "-c", code, str(dest)], cwd=ROOT, env=env)
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
    rc = subprocess.run([sys.executable, "-c", code, str(dest)], cwd=ROOT, env=env, timeout=120).returncode
    assert rc == 0
    assert any(r == f"bytes={have}-" for _, r in server.requests), server.requests  # resumed, not restarted
    assert _sha256(dest / imdb_ds.FILENAME) == sha and not part.exists()
    tree = {k: v for k, v in _tree(dest).items() if "/" in k or k == "imdb.vocab"}
    assert tree == {k: v for k, v in _tree(src).items() if k != "README"}


def test_checksum_mismatch_is_refused(server, tmp_path, monkeypatch):
    archive, _ = _imdb_archive(tmp_path)
    os.replace(archive, os.path.join(server.root, imdb_ds.FILENAME))
    monkeypatch.setattr(imdb_ds, "URL", server.url + "/" + imdb_ds.FILENAME)
    monkeypatch.setattr(imdb_ds, "SIZE", None)  # the real sha256 stays: our archive cannot match it
    dest = tmp_path / "imdb"
    with pytest.raises(DownloadError) as e:
        imdb_ds.download(str(dest), verbose=False)
    msg = str(e.value)
    assert "checksum" in msg and "sha256" in msg and "\n" not in msg
    assert not (dest / imdb_ds.FILENAME).exists() and (dest / (imdb_ds.FILENAME + ".bad")).exists()
    assert not (dest / "train").exists()


def test_glove_falls_back_to_its_next_source(server, tmp_path, monkeypatch):
    with zipfile.ZipFile(os.path.join(server.root, "glove.6B.zip"), "w") as z:
        z.writestr("glove.6B.50d.txt", "the 0.1 0.2 0.3\nof 0.4 0.5 0.6\n")
    monkeypatch.setattr(glove_ds, "SOURCES", [server.url + "/gone/glove.6B.zip", server.url + "/glove.6B.zip"])
    monkeypatch.setattr(glove_ds, "SIZE", os.path.getsize(os.path.join(server.root, "glove.6B.zip")))
    dest = tmp_path / "glove"
    assert glove_ds.download(str(dest), verbose=False) == {"glove.6B.50d.txt": 1}
    from dl1.data.glove import read_glove

    vecs, words, _ = read_glove(str(dest / "glove.6B.50d.txt"), dim=3)
    assert words == ["the", "of"] and vecs.shape == (2, 3)


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
