"""One lock per data folder: a second command that would write under a folder in use says in one line which
process holds it; a killed run's lock is taken over; ``--keep`` deletes only the run's own weight files."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from dl1 import cli
from dl1.io.errors import BusyError
from dl1.io.folderlock import LOCK_NAME, folder_lock, holder

HOLD = ("import sys, time\nfrom dl1.io.folderlock import folder_lock\n"
        "with folder_lock(sys.argv[1], sys.argv[2]):\n    print('held', flush=True)\n    time.sleep(600)\n")


def _holder(folder, command="finetune"):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), command], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _busy_line(folder, pid, command="finetune"):
    started = time.strftime("%H:%M:%S", time.localtime(holder(folder)["started"]))
    return (f"{folder} is in use by dl1 {command} (pid {pid}) since {started}: wait for it to finish (or stop it), "
            "then run again")


def test_a_second_holder_is_told_who_holds_the_folder_and_a_killed_holder_is_taken_over(tmp_path):
    proc = _holder(tmp_path)
    try:
        assert holder(tmp_path)["pid"] == proc.pid and holder(tmp_path)["command"] == "finetune"
        with pytest.raises(BusyError) as e, folder_lock(tmp_path, "predict"):
            pass
        assert str(e.value) == _busy_line(tmp_path, proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert holder(tmp_path)["pid"] == proc.pid  # the killed run's file is still there: a stale lock
    with folder_lock(tmp_path, "predict"):
        assert holder(tmp_path)["pid"] == os.getpid() and holder(tmp_path)["command"] == "predict"
        with folder_lock(tmp_path, "export"):  # re-entrant: a step that runs another step
            pass
        assert holder(tmp_path)["command"] == "predict"
    assert not (tmp_path / LOCK_NAME).exists()


def test_the_commands_that_write_under_a_folder_refuse_it_while_it_is_in_use(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    proc = _holder(tmp_path)
    try:
        for argv in (["predict", str(tmp_path)], ["submit", str(tmp_path)], ["prepare", str(tmp_path)],
                     ["export", str(tmp_path)], ["inspect", str(tmp_path)], ["cache", str(tmp_path), "--clear"]):
            rc = cli.main(argv)
            err = capsys.readouterr().err.strip()
            assert rc == 1, argv  # bad data or environment (exit 1), never an internal error (3)
            assert err == f"dl1: error: {_busy_line(tmp_path, proc.pid)}", argv
        assert cli.main(["cache", str(tmp_path)]) == 0  # showing the cache writes nothing: no lock
    finally:
        proc.kill()
        proc.wait()


def _finetune(data, weights, *extra):
    return [sys.executable, "-m", "dl1", "finetune", str(data), "--weights", str(weights), "--size", "64",
            "--batch-size", "8", "--verbose", "2", "--no-cache", *extra]


def test_two_finetunes_on_one_folder_and_keep_deletes_only_this_runs_files(tmp_path, course_data, standin_weights,
                                                                           capsys):
    data = tmp_path / "data"
    for split in ("train", "valid"):
        shutil.copytree(course_data / split, data / split)
    results = data / "results"
    results.mkdir()
    for name in ("ft5.h5", "ft7.h5"):  # weight files of earlier runs, to be kept whatever --keep says
        shutil.copy(standin_weights, results / name)
    first = subprocess.Popen(_finetune(data, standin_weights, "--epochs", "30"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        start = time.monotonic()
        while holder(data) is None and time.monotonic() - start < 120 and first.poll() is None:
            time.sleep(0.1)
        assert holder(data)["command"] == "finetune"
        second = _finetune(data, standin_weights, "--epochs", "2")[3:]
        assert cli.main(second) == 1
        assert capsys.readouterr().err.strip() == f"dl1: error: {_busy_line(data, first.pid)}"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert cli.main(_finetune(data, standin_weights, "--epochs", "2", "--restart", "--keep", "1")[3:]) == 0
    names = sorted(n for n in os.listdir(results) if n.endswith(".h5"))
    assert names == ["ft2.h5", "ft5.h5", "ft7.h5"]  # its own ft1.h5 pruned, the others' kept
    record = json.loads((results / "dl1-model.json").read_text())
    assert (record["weights"], record["epochs_done"]) == ("ft2.h5", 2)
    assert not (data / LOCK_NAME).exists()


def test_on_a_full_disk_the_lock_still_holds_and_leaves_no_file(tmp_path, monkeypatch):
    import errno

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "pwrite", full)  # the holder's record cannot be written
    with folder_lock(tmp_path, "predict"):
        proc = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path), "finetune"], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines()[-1] == (
            f"dl1.io.errors.BusyError: {tmp_path} is in use by another dl1 command: wait for it to finish (or "
            "stop it), then run again")
    assert not (tmp_path / LOCK_NAME).exists()
