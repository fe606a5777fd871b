"""A full, read-only or size-limited disk is one line naming the folder and the space needed, and nothing is
lost: the free space is checked before a write (``shutil.disk_usage``), a write the disk refuses (a real
``RLIMIT_FSIZE`` limit, ``os.write`` failing with ``ENOSPC``/``EROFS``) leaves the previous files as they
were, and no HDF5 write can crash the process (weights are serialised in memory)."""

import errno
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest

from dl1 import cli
from dl1.io.arrays import load_array, save_array
from dl1.io.errors import DiskError

SIZE = ["--size", "64", "--batch-size", "8", "--verbose", "0"]
Usage = namedtuple("Usage", "total used free")


def _no_temps(folder):
    return [n for n in os.listdir(folder) if ".tmp-" in n]


def _fail_writes(monkeypatch, under, code, when=lambda path: True):
    """``os.write`` raises ``OSError(code)`` for files under ``under`` (for which ``when(path)``): what a full or
    read-only file system answers."""
    real = os.write
    under = os.path.realpath(under)

    def write(fd, data):
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if path.startswith(under) and when(path):
            raise OSError(code, os.strerror(code))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def _little_space(monkeypatch, free):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(real(p).total, real(p).used, free))


@pytest.fixture(scope="module")
def trained(module_tmp, course_data, standin_weights):
    """A data folder with one fine-tuned epoch (``results/ft1.h5``, ``dl1-model.json``)."""
    data = module_tmp.mktemp("disk") / "data"
    for split in ("train", "valid", "test"):
        shutil.copytree(course_data / split, data / split)
    assert cli.main(["finetune", str(data), "--weights", str(standin_weights), "--epochs", "1", *SIZE]) == 0
    return data


def test_save_array_checks_the_free_space_first_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "preds.dat"
    save_array(path, np.arange(10.0))
    _little_space(monkeypatch, 1000)
    with pytest.raises(DiskError) as e:
        save_array(path, np.random.default_rng(0).random((400, 400)))  # 1.2 MB, hardly compressible
    assert re.fullmatch(rf"not enough free space in {re.escape(str(tmp_path))}: 1\.[12] MB needed for preds\.dat, "
                        r"1000 bytes free; free some space \(or write elsewhere\) and run again", str(e.value))
    np.testing.assert_array_equal(load_array(path), np.arange(10.0))
    assert _no_temps(tmp_path) == []


def test_enospc_during_a_write_is_one_line_and_the_old_file_stays(tmp_path, monkeypatch):
    path = tmp_path / "preds.dat"
    save_array(path, np.arange(10.0))
    _fail_writes(monkeypatch, tmp_path, errno.ENOSPC)
    with pytest.raises(DiskError, match=rf"^the disk is full: cannot write preds.dat in {tmp_path} \(\d+ bytes needed, "):
        save_array(path, np.ones(1000))
    monkeypatch.undo()
    np.testing.assert_array_equal(load_array(path), np.arange(10.0))
    assert _no_temps(tmp_path) == []


def test_predict_on_a_read_only_results_folder_is_one_line(trained, monkeypatch, capsys):
    results = trained / "results"
    _fail_writes(monkeypatch, results, errno.EROFS)
    assert cli.main(["predict", str(trained), "--batch-size", "16"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()  # a progress bar, then the one error line
    err = lines[-1]
    assert not [line for line in lines[:-1] if "error" in line.lower()]
    assert err.startswith(f"dl1: error: {results} is on a read-only file system: cannot write test_preds.dat (")
    assert err.endswith(" bytes); use a writable folder")
    assert _no_temps(results) == []


def test_predict_without_the_space_it_needs_is_one_line(trained, monkeypatch, capsys):
    _little_space(monkeypatch, 100)
    assert cli.main(["predict", str(trained), "--batch-size", "16"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dl1: error: not enough free space in {trained / 'results'}: ")
    assert " needed for the predictions, " in err  # checked before predicting: no work lost
    assert err.endswith(", 100 bytes free; free some space (or write elsewhere) and run again")


def test_a_full_disk_at_an_epoch_loses_nothing_and_the_run_resumes(trained, standin_weights, monkeypatch, capsys):
    results = trained / "results"
    before = (results / "ft1.h5").read_bytes()
    _fail_writes(monkeypatch, results, errno.ENOSPC, when=lambda path: "ft2.h5" in path)
    cmd = ["finetune", str(trained), "--weights", str(standin_weights), "--epochs", "2", *SIZE]
    assert cli.main(cmd) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    err = lines[-1]
    assert not [line for line in lines[:-1] if "error" in line.lower()]
    assert err.startswith(f"dl1: error: the disk is full: cannot write the weights ft2.h5 in {results} (")
    assert err.endswith("free some space and run again (the previous files are intact)")
    assert (results / "ft1.h5").read_bytes() == before and not (results / "ft2.h5").exists()
    record = json.loads((results / "dl1-model.json").read_text())
    assert (record["weights"], record["epochs_done"]) == ("ft1.h5", 1)
    assert _no_temps(results) == []
    monkeypatch.undo()  # space freed: the same command runs the lost epoch again
    assert cli.main(cmd) == 0
    record = json.loads((results / "dl1-model.json").read_text())
    assert (record["weights"], record["epochs_done"]) == ("ft2.h5", 2) and (results / "ft2.h5").is_file()


def _limited(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_real_write_past_the_file_size_limit_never_crashes_finetune(tmp_path, course_data, standin_weights):
    data = tmp_path / "data"
    for split in ("train", "valid"):
        shutil.copytree(course_data / split, data / split)
    cmd = [sys.executable, "-m", "dl1", "finetune", str(data), "--weights", str(standin_weights), "--epochs", "1",
           "--no-cache", *SIZE]
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_limited(2 << 20), timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith(f"dl1: error: cannot write the weights ft1.h5 in {data / 'results'} (")
    assert err[-1].endswith(" MB): larger than this process may write (the file size limit, 'ulimit -f'); raise "
                            "the limit and run again (the previous files are intact)")
    assert not (data / "results" / "ft1.h5").exists() and _no_temps(data / "results") == []
