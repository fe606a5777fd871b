"""dl1.io.unpack on hostile and damaged archives: limits on files and unpacked size (a zip bomb), truncation
of every format (a plain tar cut at a block boundary included), a full disk, and something in the way."""

import errno
import io
import os
import shutil
import tarfile
import zipfile

import pytest

from dl1.io.unpack import UnpackError, is_unpacked, unpack_archive


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch):
    for name in ("DL1_UNPACK_MAX_FILES", "DL1_UNPACK_MAX_GB", "DL1_UNPACK_MAX_RATIO"):
        monkeypatch.delenv(name, raising=False)


def _files(n=20, size=1024):
    return {f"data/f{i:02d}.bin": bytes([i]) * size for i in range(n)}


def _tar(path, files, mode="w"):
    with tarfile.open(path, mode) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def _zip(path, files):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def _nothing_unpacked(dest):
    return not os.path.exists(dest) or not [n for n in os.listdir(dest) if n != "keep.txt"]


def test_a_plain_tar_cut_at_a_block_boundary_is_refused(tmp_path):
    archive = _tar(tmp_path / "a.tar", _files())
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:4 * (512 + 1024)])  # 4 whole members of 20, ending exactly on a block
    dest = tmp_path / "dest"
    with pytest.raises(UnpackError) as e:
        unpack_archive(str(cut), str(dest))
    assert str(e.value) == (f"{cut}: the archive is cut short (it stops after 6144 bytes of tar data without its "
                            "end marker); delete it and download again")
    assert _nothing_unpacked(dest) and not is_unpacked(str(cut), str(dest))
    assert unpack_archive(str(archive), str(dest)) == {"data": 20}  # the whole one unpacks


@pytest.mark.parametrize("mode, cut", [("w:gz", 8), ("w:bz2", 30), ("w:xz", 30)])
def test_a_compressed_tar_without_its_end_is_refused(tmp_path, mode, cut):
    archive = _tar(tmp_path / "a.tar.x", _files(), mode)
    short = tmp_path / "short.tar.x"
    short.write_bytes(archive.read_bytes()[:-cut])  # the tar data is whole; the stream's end is missing
    with pytest.raises(UnpackError, match="cannot read the archive .*; delete it and download again"):
        unpack_archive(str(short), str(tmp_path / "dest"))
    assert _nothing_unpacked(tmp_path / "dest")


def test_a_cut_zip_is_refused(tmp_path):
    archive = _zip(tmp_path / "a.zip", _files())
    short = tmp_path / "short.zip"
    short.write_bytes(archive.read_bytes()[:-100])
    with pytest.raises(UnpackError, match=r"cannot read the archive \(file could not be opened successfully"):
        unpack_archive(str(short), str(tmp_path / "dest"))


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z, z.open("zeros.bin", "w", force_zip64=True) as f:
        block = bytes(1 << 20)
        for _ in range(200):
            f.write(block)
    size = archive.stat().st_size
    assert size < 250_000
    dest = tmp_path / "dest"
    with pytest.raises(UnpackError) as e:
        unpack_archive(str(archive), str(dest))
    assert str(e.value) == (f"{archive}: {size} bytes that unpack to 200 MB, {200 * 2**20 // size} times their "
                            "size (a zip bomb?); limit 200 times (DL1_UNPACK_MAX_RATIO raises it)")
    assert _nothing_unpacked(dest)
    monkeypatch.setenv("DL1_UNPACK_MAX_RATIO", "2000")
    monkeypatch.setenv("DL1_UNPACK_MAX_GB", "0.1")
    with pytest.raises(UnpackError, match=r"unpacks to 0.2 GB, more than the limit of 0.1 GB \(DL1_UNPACK_MAX_GB"):
        unpack_archive(str(archive), str(dest))


def test_the_file_count_limit_and_a_bad_setting(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "a.zip", _files(20))
    monkeypatch.setenv("DL1_UNPACK_MAX_FILES", "10")
    with pytest.raises(UnpackError) as e:
        unpack_archive(str(archive), str(tmp_path / "dest"))
    assert str(e.value) == f"{archive}: 20 files, more than the limit of 10 (DL1_UNPACK_MAX_FILES raises it)"
    monkeypatch.setenv("DL1_UNPACK_MAX_FILES", "many")
    with pytest.raises(UnpackError, match="^DL1_UNPACK_MAX_FILES='many' is not a number$"):
        unpack_archive(str(archive), str(tmp_path / "dest"))
    monkeypatch.setenv("DL1_UNPACK_MAX_FILES", "20")
    assert unpack_archive(str(archive), str(tmp_path / "dest")) == {"data": 20}


def test_a_full_disk_is_said_as_such_and_leaves_nothing(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "a.zip", _files(20, 4096))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    real = shutil.copyfileobj
    calls = []

    def full_after_five(src, dst, length=0):
        calls.append(1)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst, length)

    monkeypatch.setattr(shutil, "copyfileobj", full_after_five)
    with pytest.raises(UnpackError) as e:
        unpack_archive(str(archive), str(dest))
    assert str(e.value) == (f"no space left on the device of {dest} while unpacking a.zip (it needs 0 MB); free "
                            "some space and run again (the archive is fine)")
    assert os.listdir(dest) == ["keep.txt"] and archive.exists()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".unpack")]
    monkeypatch.setattr(shutil, "copyfileobj", real)
    usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(p)._replace(free=1000))
    with pytest.raises(UnpackError, match=f"^{archive}: unpacks to 0 MB but {dest} has 0 MB free; free some space "
                                          r"and run again \(the archive is fine\)$"):
        unpack_archive(str(archive), str(dest))


def test_something_in_the_way_is_one_line_and_is_kept(tmp_path):
    archive = _zip(tmp_path / "a.zip", {**_files(3), "notes.txt": b"n"})
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "data").write_text("a file of mine")
    with pytest.raises(UnpackError) as e:
        unpack_archive(str(archive), str(dest))
    assert str(e.value) == f"{dest / 'data'} is a file where a.zip puts a folder: move it away and run again"
    assert (dest / "data").read_text() == "a file of mine"
    os.remove(dest / "data")
    (dest / "notes.txt").mkdir()
    with pytest.raises(UnpackError, match="notes.txt is a folder where a.zip puts a file: move it away"):
        unpack_archive(str(archive), str(dest))
    os.rmdir(dest / "notes.txt")
    os.symlink(tmp_path, dest / "data")
    with pytest.raises(UnpackError, match="data is a link where a.zip puts a folder"):
        unpack_archive(str(archive), str(dest))
    os.remove(dest / "data")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(UnpackError, match=f"^{blocker} is a file, not a folder: move it away"):
        unpack_archive(str(archive), str(blocker))
    assert unpack_archive(str(archive), str(dest)) == {"data": 3, "notes.txt": 1}
