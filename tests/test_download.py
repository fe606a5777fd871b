"""dl1.io.download against a local HTTP server that drops connections, lies about lengths, serves HTML and
cuts chunked transfers short (tests/rangeserver.py): a file is whole and verified before it gets its name,
dropped transfers resume, a wrong file makes the next source be tried, and no run loops on one source."""

import hashlib
import json
import os
import shutil

import pytest
import rangeserver

from dl1.io import download as dl
from dl1.io.download import DownloadError, fetch, fetch_url

PAYLOAD = bytes(range(256)) * 1200  # 307,200 bytes


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    for sub in ("a", "b", "mirror"):
        (root / sub).mkdir(parents=True)
        (root / sub / "f.bin").write_bytes(PAYLOAD)
    yield from rangeserver.serve_folder(root, chunk=1 << 14)


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    monkeypatch.delenv("DL1_OFFLINE", raising=False)
    monkeypatch.delenv("DL1_DOWNLOAD_MIRROR", raising=False)


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n != "f.bin")


def test_a_dropped_connection_is_resumed_from_where_it_stopped(server, tmp_path):
    server.faults["/a/f.bin"] = {"drop_after": 100_000, "drops": 2}
    dest = tmp_path / "out" / "f.bin"
    fetch_url(server.url + "/a/f.bin", dest, sha256=SHA, verbose=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.range_starts() == [100_000, 200_000]  # two resumes, never a restart at byte 0
    assert _leftovers(dest.parent) == []  # no part, no state file


def test_a_chunked_transfer_that_ends_early_is_resumed(server, tmp_path):
    server.faults["/a/f.bin"] = {"chunked": True, "drop_after": 50_000, "drops": 1}
    dest = tmp_path / "f.bin"
    fetch_url(server.url + "/a/f.bin", dest, verbose=False)  # no checksum: the length alone must be right
    assert dest.read_bytes() == PAYLOAD
    assert server.range_starts() == [50_000]  # what arrived before the cut is kept


def test_a_source_that_never_sends_the_rest_ends_in_one_line_and_the_next_run_resumes(server, tmp_path):
    server.faults["/a/f.bin"] = {"drop_after": 120_000, "ignore_range": True}  # no Range, always cut
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as e:
        fetch_url(server.url + "/a/f.bin", dest, sha256=SHA, verbose=False)
    msg = str(e.value)
    assert "\n" not in msg and "keeps stopping early" in msg and f"save it as {dest}" in msg
    assert not dest.exists()  # never a half file under the real name
    assert (tmp_path / "f.bin.part").stat().st_size == 120_000
    assert len(server.requests) <= 1 + dl.MAX_STALLS  # gave up, did not loop
    server.faults.clear()
    fetch_url(server.url + "/a/f.bin", dest, sha256=SHA, verbose=False)
    assert dest.read_bytes() == PAYLOAD and server.range_starts()[-1] == 120_000


def test_a_length_longer_than_the_body_is_a_drop_and_the_rest_is_asked_for(server, tmp_path):
    server.faults["/a/f.bin"] = {"length": len(PAYLOAD) + 5000, "drops": 1}
    dest = tmp_path / "f.bin"
    fetch_url(server.url + "/a/f.bin", dest, verbose=False)
    assert dest.read_bytes() == PAYLOAD  # the server's 416 "bytes */307200" says the part is whole
    assert server.range_starts() == [len(PAYLOAD)]


def test_a_wrong_file_makes_the_next_source_be_tried(server, tmp_path):
    server.faults["/a/f.bin"] = {"html": True}
    server.faults["/b/f.bin"] = {"length": 200_000}  # a short file under a short Content-Length
    (tmp_path / "www" / "mirror" / "f.bin").write_bytes(PAYLOAD[:-1] + b"!")  # another checksum
    dest = tmp_path / "f.bin"
    good = tmp_path / "www" / "good"
    good.mkdir()
    (good / "f.bin").write_bytes(PAYLOAD)
    sources = [server.url + p for p in ("/gone/f.bin", "/a/f.bin", "/b/f.bin", "/mirror/f.bin", "/good/f.bin")]
    fetch(sources, dest, sha256=SHA, verbose=False)
    assert dest.read_bytes() == PAYLOAD
    assert [p for p, _ in server.requests] == ["/gone/f.bin", "/a/f.bin", "/b/f.bin", "/mirror/f.bin",
                                               "/good/f.bin"]
    assert (tmp_path / "f.bin.bad").read_bytes() == PAYLOAD[:-1] + b"!"  # the last wrong file, kept to look at


def test_when_every_source_is_wrong_one_line_names_each_and_a_rerun_tries_them_all_again(server, tmp_path):
    server.faults["/a/f.bin"] = {"html": True}
    server.faults["/b/f.bin"] = {"status": 503}
    dest = tmp_path / "f.bin"
    sources = [server.url + "/a/f.bin", server.url + "/b/f.bin"]
    for run in (1, 2):
        with pytest.raises(DownloadError) as e:
            fetch(sources, dest, size=len(PAYLOAD), what="f.bin", verbose=False)
        msg = str(e.value)
        assert msg == (f"cannot download f.bin from any of its 2 sources: {sources[0]}: wrong file (an HTML page, "
                       f"not the file) | {sources[1]}: HTTP 503 Service Unavailable; download it "
                       f"by hand and save it as {dest}")
        assert [p for p, _ in server.requests] == ["/a/f.bin", "/b/f.bin"] * run  # both again, no loop on one
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()


def test_an_html_page_without_a_checksum_is_refused(server, tmp_path):
    (tmp_path / "www" / "a" / "page.txt").write_bytes(rangeserver.HTML_PAGE)  # served as octet-stream
    with pytest.raises(DownloadError, match=r"wrong file \(an HTML page, not the file"):
        fetch_url(server.url + "/a/page.txt", tmp_path / "page.txt", verbose=False)
    assert not (tmp_path / "page.txt").exists()


def test_the_mirror_variable_is_tried_first_and_may_be_a_folder(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DL1_DOWNLOAD_MIRROR", server.url + "/mirror/")
    dest = tmp_path / "one" / "f.bin"
    fetch_url("https://example.invalid/f.bin", dest, sha256=SHA, verbose=False)
    assert dest.read_bytes() == PAYLOAD and [p for p, _ in server.requests] == ["/mirror/f.bin"]
    folder = tmp_path / "usb"
    folder.mkdir()
    shutil.copy(tmp_path / "www" / "a" / "f.bin", folder / "f.bin")
    monkeypatch.setenv("DL1_DOWNLOAD_MIRROR", f"{server.url}/gone {folder}")
    dest = tmp_path / "two" / "f.bin"
    fetch_url("https://example.invalid/f.bin", dest, sha256=SHA, verbose=False)
    assert dest.read_bytes() == PAYLOAD and server.requests[-1][0] == "/gone/f.bin"


def test_a_url_hash_replaces_the_published_checksum(server, tmp_path):
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="its sha256 checksum is"):
        fetch([server.url + "/a/f.bin"], dest, sha256="0" * 64, verbose=False)
    fetch([server.url + f"/a/f.bin#sha256={SHA}"], dest, sha256="0" * 64, size=1, verbose=False)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="the part after '#' must be sha256=HEX or md5=HEX"):
        fetch([server.url + "/a/f.bin#sha1=abc"], tmp_path / "g.bin", verbose=False)


def test_a_full_disk_is_said_before_the_transfer_and_no_other_source_is_tried(server, tmp_path, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=100_000))
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as e:
        fetch([server.url + "/a/f.bin", server.url + "/b/f.bin"], dest, verbose=False)
    assert str(e.value) == (f"no space left in {tmp_path}: the download needs 0 MB more, 0 MB are free; free some "
                            "space and run again (it resumes)")
    assert [p for p, _ in server.requests] == ["/a/f.bin"]


def test_a_file_already_there_is_kept_or_named(server, tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(PAYLOAD)
    assert fetch_url(server.url + "/a/f.bin", dest, sha256=SHA, verbose=False) == str(dest)
    assert server.requests == []
    dest.write_bytes(b"something else")
    with pytest.raises(DownloadError, match=r"exists but is not the expected f.bin \(14 bytes, expected 307200\); "
                                            "delete it to download again"):
        fetch_url(server.url + "/a/f.bin", dest, size=len(PAYLOAD), verbose=False)


def test_offline_is_one_line_naming_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DL1_OFFLINE", "1")
    with pytest.raises(DownloadError) as e:
        fetch_url("https://example.invalid/f.bin", tmp_path / "f.bin", verbose=False)
    assert str(e.value) == (f"f.bin is not here and DL1_OFFLINE is set: download https://example.invalid/f.bin "
                            f"and save it as {tmp_path / 'f.bin'}")


def test_a_part_the_server_cannot_continue_is_started_again(server, tmp_path):
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(b"x" * 400_000)  # longer than the file: from another version of it
    (tmp_path / "f.bin.part.json").write_text(json.dumps({"url": server.url + "/a/f.bin"}))
    fetch_url(server.url + "/a/f.bin", dest, verbose=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == ["bytes=400000-", None]  # 416, then the whole file
    assert _leftovers(tmp_path) == ["www"]
