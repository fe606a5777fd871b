"""Output to a file or a pipe: no colour codes (ESC [) and no progress bars redrawn with carriage returns
anywhere (Keras' fit and predict, tqdm, the kaggle command's streamed output); one line per epoch."""

import os
import re
import subprocess
import sys

from dl1.io.console import PlainLines, keras_verbose

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dl1(*args):
    """The console script with standard output and error going to pipes, as in ``dl1 ... > log 2>&1``."""
    exe = os.path.join(os.path.dirname(sys.executable), "dl1")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "dl1"]
    out = subprocess.run(cmd + list(args), capture_output=True, cwd=REPO, timeout=900)  # pipes, not a terminal
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    for stream in (out.stdout, out.stderr):
        assert b"\x1b[" not in stream and b"\r" not in stream, stream.decode()[-2000:]
    return out.stdout.decode(), out.stderr.decode()


def test_finetune_to_a_pipe_prints_one_plain_line_per_epoch(tmp_path):
    d = str(tmp_path / "d")
    _dl1("sample", d, "--n", "60", "--n-test", "8", "--max-size", "64")
    _dl1("prepare", d, "--valid", "12", "--sample-train", "24", "--sample-valid", "12")
    out, err = _dl1("finetune", d, "--sample", "--weights", "none", "--size", "32", "--batch-size", "8",
                    "--epochs", "3")
    text = out + err
    assert len(re.findall(r"(?m)^Epoch \d+/3$", text)) == 3, text
    summaries = [line for line in text.splitlines() if " - val_loss: " in line]
    assert len(summaries) == 3 and all(line.startswith("3/3 - ") for line in summaries), summaries
    out, err = _dl1("predict", d, "--sample", "--batch-size", "8")
    assert "Predicted 8 test images" in out


def test_keras_verbose_is_plain_when_not_a_terminal(capsys):
    assert keras_verbose(1) == 2 and keras_verbose(0) == 0 and keras_verbose(2) == 2  # pytest captures stdout


def test_a_streamed_progress_bar_becomes_plain_lines_every_ten_seconds():
    """A redrawn bar: its first state at once, then one line per ten seconds at most, then its last state."""
    now = [0.0]
    plain = PlainLines(clock=lambda: now[0])
    chunks = [(0, b"Downloading redux.zip to d\n"), (0, b"\r  0%|          | 0.00/10.0M"),
              (4, b"\r 30%|\x1b[32m###\x1b[0m       | 3.00M/10.0M"),
              (11, b"\r 50%|\x1b[32m#####\x1b[0m     | 5.00M/10.0M"), (12, b"\r 60%|######    | 6.00M/10.0M"),
              (13, b"\r100%|##########| 10.0M/10.0M [00:13<00:00]\n"), (13, b"\r\x1b[1mdone\x1b[0m")]
    written = b""
    for t, c in chunks:
        now[0] = t
        written += plain.feed(c)
    written += plain.close()
    assert written == (b"Downloading redux.zip to d\n  0%|          | 0.00/10.0M\n 50%|#####     | 5.00M/10.0M\n"
                       b"100%|##########| 10.0M/10.0M [00:13<00:00]\ndone\n")
    assert b"\r" not in written and b"\x1b" not in written


def test_the_kaggle_commands_output_reaches_a_pipe_as_plain_lines(capfd):
    from dl1.kaggle import cli as kaggle_cli

    script = ("import sys, time\n"
              "print('Downloading x.zip', flush=True)\n"
              "for i in range(0, 101, 25):\n"
              "    sys.stderr.write(f'\\r{i:3d}%|\\x1b[32m' + '#' * (i // 10) + '\\x1b[0m|'); sys.stderr.flush()\n"
              "    time.sleep(0.01)\n"
              "sys.stderr.write('\\n')\n")
    code, tail = kaggle_cli._streamed([sys.executable, "-c", script])
    out, err = capfd.readouterr()
    assert code == 0 and "\r" in tail  # the tail keeps the raw output (for the error message)
    assert out == "Downloading x.zip\n" and err == "  0%||\n100%|##########|\n"  # first and last state


def test_a_process_that_imported_ipykernel_is_not_a_notebook():
    """papermill and nbclient import ipykernel in a plain process: its output is still a pipe, so still plain."""
    code = ("import ipykernel, IPython\n"
            "from dl1.io.console import interactive, keras_verbose\n"
            "print(interactive(), keras_verbose(1))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["False", "2"], out.stderr[-2000:]
