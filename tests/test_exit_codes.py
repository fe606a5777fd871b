"""The dl1 command's exit codes, the same for the same kind of failure in every subcommand: 0 success,
1 bad data or environment, 2 usage, 3 internal error, 130 interrupted; ``--version``; and ``submit --upload``
refusing before it writes anything."""

import functools
import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from dl1.cli import EXIT_CODES, main
from dl1.io.arrays import save_array

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dl1(*args, **kw):
    """The installed console script when there is one (as users run it), else the module."""
    exe = os.path.join(os.path.dirname(sys.executable), "dl1")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "dl1"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=REPO, **kw)


@pytest.fixture
def predicted(tmp_path):
    """A data folder with a model record, test predictions and the test image they name (no weights)."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "dl1-model.json").write_text('{"classes": ["cats", "dogs"], "size": [64, 64]}')
    save_array(results / "test_preds.dat", [[0.3, 0.7]])
    save_array(results / "filenames.dat", ["unknown/1.jpg"])
    (tmp_path / "test" / "unknown").mkdir(parents=True)
    (tmp_path / "test" / "unknown" / "1.jpg").write_bytes(b"x")
    (tmp_path / "bad.csv").write_text("id,label\n1,0.5\n1,0.5\n")
    return tmp_path


def test_version_prints_the_installed_version():
    out = _dl1("--version")
    assert (out.returncode, out.stdout, out.stderr) == (0, f"dl1 {version('dl1')}\n", "")


def test_the_codes_are_documented_in_the_readme():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    assert "## Exit codes" in readme
    for code in EXIT_CODES:
        assert f"| {code} |" in readme, code


def test_success_is_0(predicted, capsys):
    assert main(["submit", str(predicted)]) == 0
    assert main(["validate", str(predicted / "results" / "submission.csv"), "--test", str(predicted / "test")]) == 0


@pytest.mark.parametrize("argv, message", [
    (["prepare", "{d}/nope"], "folder not found: {d}/nope"),
    (["finetune", "{d}/nope"], "folder not found: {d}/nope/train (run 'dl1 prepare DIR' first)"),
    (["lr-find", "{d}/nope"], "folder not found: {d}/nope/train (run 'dl1 prepare DIR' first)"),
    (["predict", "{d}"], "weights file not found: {d}/results/; run 'dl1 finetune' (or give --weights)"),
    (["inspect", "{d}"], "{d}/results/valid_preds.dat not found: run 'dl1 predict DIR' first"),
    (["export", "{d}/nope"], "no trained model in {d}/nope/results: run 'dl1 finetune' first"),
    (["submit", "{d}/nope"], "no trained model in {d}/nope/results: run 'dl1 finetune' first"),
    (["classify", "{d}", "{d}/gone.jpg"], "not found: {d}/gone.jpg"),
    (["validate", "{d}/bad.csv"], "INVALID: {d}/bad.csv line 3: duplicate id 1 (first on line 2; 1 duplicates)"),
    (["sample", "{d}"], "{d}/test already exists and is not empty; choose another folder or use --force"),
])
def test_bad_data_or_environment_is_1(predicted, capsys, argv, message):
    assert main([a.format(d=predicted) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(message.format(d=predicted)) and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["finetune", "{d}", "--epochs", "-1"], "--epochs must be 1 or more, not -1"),
    (["lr-find", "{d}", "--batch-size", "0"], "--batch-size must be 1 or more, not 0"),
    (["predict", "{d}", "--tta", "0"], "--tta must be 1 or more, not 0"),
    (["inspect", "{d}", "--n-view", "0"], "--n-view must be 1 or more, not 0"),
    (["submit", "{d}", "--clip", "2"], "--clip must be between 0.5 and 1 (probabilities go to [1-clip, clip]), "
                                       "not 2.0"),
    (["submit", "{d}", "--upload"], "--upload needs a message: -m 'what you changed'"),
    (["export", "{d}", "-o", "{d}/m.h5"], "-o {d}/m.h5: the file name must end in .keras (--format keras)"),
    (["sample", "{d}/new", "--n", "0"], "--n must be 1 or more, not 0"),
])
def test_a_value_out_of_range_is_2(predicted, capsys, argv, message):
    assert main([a.format(d=predicted) for a in argv]) == 2
    assert capsys.readouterr().err == f"dl1: error: {message.format(d=predicted)}\n"


@pytest.mark.parametrize("argv", [["finetune", "d", "--no-such-option"], ["predict"], ["submit", "d", "--clip"],
                                  ["sample", "d", "--n", "many"], ["no-such-command"]])
def test_argparse_usage_errors_are_2(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_a_usage_error_from_the_console_script_is_2():
    out = _dl1("predict", "d", "--no-such-option")
    assert out.returncode == 2 and out.stderr.splitlines()[-1] == "dl1: error: unrecognized arguments: " \
                                                                   "--no-such-option"


STEPS = [("prepare", ["prepare", "{d}"]), ("finetune", ["finetune", "{d}"]), ("predict", ["predict", "{d}"]),
         ("inspect", ["inspect", "{d}"]), ("submit", ["submit", "{d}"]), ("export", ["export", "{d}"]),
         ("kaggle_download", ["kaggle", "download", "{d}"])]


@pytest.mark.parametrize("step, argv", STEPS)
def test_an_unexpected_exception_is_3_in_one_line(predicted, monkeypatch, capsys, step, argv):
    from dl1.workflow import steps

    @functools.wraps(getattr(steps, step))  # the same signature: the parser reads its defaults
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.delenv("DL1_DEBUG", raising=False)
    monkeypatch.setattr(steps, step, boom)
    assert main([a.format(d=predicted) for a in argv]) == 3
    assert capsys.readouterr().err == ("dl1: internal error: RuntimeError: boom (run with DL1_DEBUG=1 for the "
                                       "traceback, and please report it)\n")


@pytest.mark.parametrize("step, argv", STEPS)
def test_ctrl_c_is_130_without_a_traceback(predicted, monkeypatch, capsys, step, argv):
    from dl1.workflow import steps

    @functools.wraps(getattr(steps, step))
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(steps, step, interrupted)
    assert main([a.format(d=predicted) for a in argv]) == 130
    assert capsys.readouterr().err == "\ndl1: interrupted\n"


def test_ctrl_c_in_a_real_process_is_130(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while a sample too big to finish first is
    being written: 130, no traceback."""
    import signal
    import time

    def as_from_a_terminal():
        # a suite started in the background (`make test &` from a script) runs with SIGINT ignored, and a
        # process inherits that: it could never see the Ctrl-C (CI on a clean clone ran 15 minutes of sample)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    exe = os.path.join(os.path.dirname(sys.executable), "dl1")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "dl1"]
    proc = subprocess.Popen(cmd + ["sample", str(tmp_path / "d"), "--n", "100000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=as_from_a_terminal)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "d" / "train").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # never left running after the test
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("dl1: interrupted")


# ---- submit --upload: refused before anything is written ------------------------------------------------
def _no_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)


def test_upload_without_a_message_writes_nothing(predicted, capsys):
    assert main(["submit", str(predicted), "--upload"]) == 2
    assert capsys.readouterr().err == "dl1: error: --upload needs a message: -m 'what you changed'\n"
    assert not (predicted / "results" / "submission.csv").exists()


def test_upload_without_credentials_writes_nothing(predicted, tmp_path, monkeypatch, capsys):
    _no_credentials(tmp_path, monkeypatch)
    monkeypatch.setenv("DL1_KAGGLE_CLI", sys.executable)  # a command that exists; the credentials do not
    assert main(["submit", str(predicted), "--upload", "-m", "first try"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dl1: error: Kaggle credentials not found. Create a token at") and err.count("\n") == 1
    assert not (predicted / "results" / "submission.csv").exists()


def test_upload_without_the_kaggle_command_writes_nothing(predicted, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DL1_KAGGLE_CLI", raising=False)
    monkeypatch.setenv("KAGGLE_API_TOKEN", "token")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "empty" / "python"))
    assert main(["submit", str(predicted), "--upload", "-m", "first try"]) == 1
    assert capsys.readouterr().err == ("dl1: error: the kaggle command is not installed: pip install kaggle "
                                       "(it is in requirements.txt)\n")
    assert not (predicted / "results" / "submission.csv").exists()


def test_bounded_map_keeps_order_queues_little_and_cancels_the_rest_when_left():
    """What `dl1 sample` and prepare run their images through: results in order, never more than the window
    queued, and nothing left queued to run on after the loop is left (Ctrl-C, an error)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from dl1.io.pools import bounded_map

    pool = ThreadPoolExecutor(2)
    started, lock = [], threading.Lock()

    def work(i):
        with lock:
            started.append(i)
        time.sleep(0.002)
        return i * i

    assert list(bounded_map(work, range(50), pool=pool, window=4)) == [i * i for i in range(50)]
    started.clear()
    results = bounded_map(work, range(10_000), pool=pool, window=4)
    for k, value in enumerate(results):
        assert value == k * k
        assert len(started) <= k + 1 + 4  # taken + the window
        if k == 5:
            break
    results.close()  # what a KeyboardInterrupt in the loop does
    time.sleep(0.1)
    assert len(started) <= 6 + 4
    pool.shutdown()
