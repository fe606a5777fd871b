"""Data preparation: end state and counts, re-runs, and 'never lose or duplicate an image' under kills."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter

import pytest

from dl1.data.prepare import prepare_data
from dl1.io.errors import DataError

OPTS = {"valid": 20, "sample_train": 10, "sample_valid": 4, "seed": 1, "progress": False}


def _hashes(root, sub):
    out = Counter()
    base = os.path.join(root, sub)
    for folder, _, files in os.walk(base):
        for name in files:
            if name.lower().endswith((".jpg", ".png")):
                with open(os.path.join(folder, name), "rb") as f:
                    out[hashlib.sha1(f.read()).hexdigest()] += 1
    return out


def _layout(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root)
                  for f in files if not f.startswith("."))


def _check_nothing_lost(root, raw_train, raw_test):
    labelled = _hashes(root, "train") + _hashes(root, "valid") + _hashes(root, "unreadable")
    assert labelled == raw_train  # every image exactly once
    assert _hashes(root, "test") == raw_test
    sample = _hashes(root, "sample")
    assert all(raw_train[h] >= n for h, n in sample.items())  # sample images are copies of real ones


def test_end_state_and_counts(kaggle_data):
    raw_train, raw_test = _hashes(kaggle_data, "train"), _hashes(kaggle_data, "test")
    report = prepare_data(kaggle_data, **OPTS)
    c = report.counts
    assert c["train/cats"] + c["train/dogs"] == 100 and c["valid/cats"] + c["valid/dogs"] == 20
    assert c["sample/train/cats"] + c["sample/train/dogs"] == 10
    assert c["sample/valid/cats"] + c["sample/valid/dogs"] == 4
    assert c["test/unknown"] == 30
    assert all(name.startswith("cat.") for name in os.listdir(kaggle_data / "train" / "cats"))
    assert (kaggle_data / "results").is_dir() and (kaggle_data / "sample" / "results").is_dir()
    _check_nothing_lost(kaggle_data, raw_train, raw_test)


def test_rerun_is_a_no_op_and_other_options_are_refused(kaggle_data):
    prepare_data(kaggle_data, **OPTS)
    before = _layout(kaggle_data)
    again = prepare_data(kaggle_data, **OPTS)
    assert again.already_done and _layout(kaggle_data) == before
    with pytest.raises(DataError, match="other options"):
        prepare_data(kaggle_data, **{**OPTS, "valid": 10})
    assert _layout(kaggle_data) == before


def test_same_seed_same_split_in_another_folder(kaggle_data, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(kaggle_data, copy)
    prepare_data(kaggle_data, **OPTS)
    prepare_data(copy, **OPTS)
    assert sorted(os.listdir(kaggle_data / "valid" / "cats")) == sorted(os.listdir(copy / "valid" / "cats"))


def test_works_from_the_kaggle_zip_files(kaggle_data, tmp_path):
    raw_train, raw_test = _hashes(kaggle_data, "train"), _hashes(kaggle_data, "test")
    target = tmp_path / "zipped"
    target.mkdir()
    for split in ("train", "test"):
        with zipfile.ZipFile(target / f"{split}.zip", "w") as zf:
            for name in os.listdir(kaggle_data / split):
                zf.write(kaggle_data / split / name, f"{split}/{name}")
    bundle = tmp_path / "bundle"  # what `kaggle competitions download` gives: a zip of zips
    bundle.mkdir()
    with zipfile.ZipFile(bundle / "dogs-vs-cats-redux-kernels-edition.zip", "w") as zf:
        zf.write(target / "train.zip", "train.zip")
        zf.write(target / "test.zip", "test.zip")
    for folder in (target, bundle):
        report = prepare_data(folder, **OPTS)
        assert "train.zip" in report.extracted
        _check_nothing_lost(folder, raw_train, raw_test)


def test_a_damaged_zip_is_named(tmp_path):
    (tmp_path / "train.zip").write_bytes(b"PK\x03\x04 half a download")
    with pytest.raises(DataError, match="train.zip is damaged or incomplete"):
        prepare_data(tmp_path, **OPTS)


def test_zips_are_extracted_within_the_unpack_limits(tmp_path, monkeypatch):
    """prepare's zip extraction goes through dl1.io.unpack's limits: refused before a file is written."""
    with zipfile.ZipFile(tmp_path / "train.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(12):
            zf.writestr(f"train/cat.{i}.jpg", b"x" * 2048)
    monkeypatch.setenv("DL1_UNPACK_MAX_FILES", "10")
    with pytest.raises(DataError) as e:
        prepare_data(tmp_path, **OPTS)
    assert str(e.value) == f"{tmp_path / 'train.zip'}: 12 files, more than the limit of 10 (DL1_UNPACK_MAX_FILES raises it)"
    assert sorted(os.listdir(tmp_path)) == ["train.zip"]
    monkeypatch.delenv("DL1_UNPACK_MAX_FILES")
    bundle = tmp_path / "bundle"  # the train/ folder inside a competition's bundle zip too
    bundle.mkdir()
    shutil.move(tmp_path / "train.zip", bundle / "train.zip")
    with zipfile.ZipFile(bundle / "comp.zip", "w") as zf:
        zf.write(bundle / "train.zip", "train.zip")
    os.remove(bundle / "train.zip")
    monkeypatch.setenv("DL1_UNPACK_MAX_GB", "0.00001")  # 10.7 kB: the 2 kB train.zip fits, its 24 kB do not
    with pytest.raises(DataError) as e:
        prepare_data(bundle, **OPTS)
    assert str(e.value) == (f"{bundle / 'train.zip'}: unpacks to 0.0 GB, more than the limit of 1e-05 GB "
                            "(DL1_UNPACK_MAX_GB raises it)")
    assert not os.path.exists(bundle / "train")


def test_data_that_already_has_class_folders(course_data, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(course_data / "train", root / "train")
    raw = _hashes(root, "train")
    report = prepare_data(root, valid=30, sample_train=5, sample_valid=5, seed=0, progress=False)
    assert report.counts["valid/cats"] + report.counts["valid/dogs"] == 30
    assert _hashes(root, "train") + _hashes(root, "valid") == raw


def test_other_label_in_the_file_name_data_sets(tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    for i in range(12):
        (train / f"{'ant' if i % 3 else 'bee'}_{i}.png").write_bytes(_png(i))
    report = prepare_data(tmp_path, valid=3, sample_train=2, sample_valid=1, label_regex=r"^([a-z]+)_",
                          plural=False, progress=False)
    assert set(os.listdir(tmp_path / "train")) == {"ant", "bee"}
    assert report.counts["train/ant"] + report.counts.get("valid/ant", 0) == 8


def _png(seed):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (seed * 10 % 255, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


def test_bad_input_messages(tmp_path, kaggle_data):
    with pytest.raises(DataError, match="folder not found"):
        prepare_data(tmp_path / "nope", **OPTS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train/ folder"):
        prepare_data(tmp_path / "empty", **OPTS)
    (kaggle_data / "train" / "1234.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="cannot tell the class of train/1234.jpg"):
        prepare_data(kaggle_data, **OPTS)
    os.remove(kaggle_data / "train" / "1234.jpg")
    (kaggle_data / "train" / "mystery.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match=r"class 'mysterys' would hold a single image \(.*mystery.jpg\)"):
        prepare_data(kaggle_data, **OPTS)
    os.remove(kaggle_data / "train" / "mystery.jpg")
    with pytest.raises(DataError, match="only 120 readable images"):
        prepare_data(kaggle_data, **{**OPTS, "valid": 500})


def test_unreadable_images_are_set_aside_not_lost(kaggle_data):
    (kaggle_data / "train" / "cat.999.jpg").write_bytes(b"")  # zero bytes
    (kaggle_data / "train" / "dog.998.jpg").write_text("<html>404 not found</html>")  # a failed download
    raw_train, raw_test = _hashes(kaggle_data, "train"), _hashes(kaggle_data, "test")
    report = prepare_data(kaggle_data, **OPTS)
    assert {os.path.basename(p) for p in report.unreadable} == {"cat.999.jpg", "dog.998.jpg"}
    assert (kaggle_data / "unreadable" / "train" / "cats" / "cat.999.jpg").exists()
    _check_nothing_lost(kaggle_data, raw_train, raw_test)
    assert prepare_data(kaggle_data, **OPTS).already_done


class _Crash(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the code can catch it."""


def test_killed_at_every_point_the_rerun_ends_in_the_same_state(kaggle_data, tmp_path, monkeypatch):
    """Crash after the k-th file operation for many k; each time a re-run must finish the job with the
    exact same files as an uninterrupted run, and every image exactly once."""
    reference = tmp_path / "reference"
    shutil.copytree(kaggle_data, reference)
    prepare_data(reference, **OPTS)
    expected = _layout(reference)
    raw_train, raw_test = _hashes(kaggle_data, "train"), _hashes(kaggle_data, "test")

    real = {"rename": os.rename, "replace": os.replace, "copyfile": shutil.copyfile}
    calls = {"n": 0, "limit": None}

    def counting(name):
        def op(*a, **kw):
            calls["n"] += 1
            if calls["limit"] is not None and calls["n"] > calls["limit"]:
                raise _Crash()
            return real[name](*a, **kw)
        return op

    monkeypatch.setattr(os, "rename", counting("rename"))
    monkeypatch.setattr(os, "replace", counting("replace"))
    monkeypatch.setattr(shutil, "copyfile", counting("copyfile"))
    total_ops = 20 + 10 + 4 + 100 + 30 + 20  # moves, copies, test moves and the atomic writes; roughly
    for limit in range(0, total_ops, 9):
        work = tmp_path / f"run{limit}"
        shutil.copytree(kaggle_data, work, copy_function=real["copyfile"])
        calls.update(n=0, limit=limit)
        try:
            prepare_data(work, **OPTS)
        except _Crash:
            pass
        calls.update(n=0, limit=None)
        prepare_data(work, **OPTS)
        assert _layout(work) == expected, f"crash after {limit} operations"
        _check_nothing_lost(work, raw_train, raw_test)
        shutil.rmtree(work)


def test_sigkill_of_the_real_command_at_random_moments(tmp_path):
    """The real `dl1 prepare` process, killed with SIGKILL at random moments of its run, then run to the
    end: every image is still there exactly once."""
    import random

    from dl1.data.sample import write_sample

    root = tmp_path / "big"
    write_sample(str(root), n=2000, n_test=300, seed=5, max_side=48, progress=False)
    raw_train, raw_test = _hashes(root, "train"), _hashes(root, "test")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def command(folder):
        return [sys.executable, "-m", "dl1", "prepare", str(folder), "--valid", "300",
                "--sample-train", "100", "--sample-valid", "50"]

    timing = tmp_path / "timing"
    shutil.copytree(root, timing)
    start = time.monotonic()
    subprocess.run(command(timing), capture_output=True, cwd=repo, check=True)
    duration = time.monotonic() - start
    rng = random.Random(0)
    killed = 0
    for _ in range(8):
        proc = subprocess.Popen(command(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=repo)
        time.sleep(rng.uniform(0.05, 0.7) * duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    done = subprocess.run(command(root), capture_output=True, text=True, cwd=repo)
    assert done.returncode == 0, done.stderr
    _check_nothing_lost(root, raw_train, raw_test)
    assert _layout(root) == _layout(timing)
    assert killed >= 1
    assert not [f for d, _, fs in os.walk(root) for f in fs if ".tmp-" in f]  # no temp litter
