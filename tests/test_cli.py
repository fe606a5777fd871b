"""The dl1 command: every subcommand's --help, the flow from raw Kaggle data to a valid CSV, and
one-line errors (never a traceback) for bad input."""

import hashlib
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from dl1.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBCOMMANDS = ["sample", "prepare", "finetune", "predict", "inspect", "submit", "validate", "demo"]


def _dl1(*args, **kw):
    """The installed console script when there is one (as users run it), else the module."""
    exe = os.path.join(os.path.dirname(sys.executable), "dl1")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "dl1"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=REPO, **kw)


@pytest.mark.parametrize("sub", SUBCOMMANDS + ["kaggle download"])
def test_every_subcommand_has_help(sub):
    out = _dl1(*sub.split(), "--help")
    assert out.returncode == 0 and "usage: dl1 " + sub in out.stdout


def test_sample_is_deterministic_and_has_both_layouts(tmp_path):
    for name in ("a", "b"):
        assert main(["sample", str(tmp_path / name), "--n", "10", "--seed", "7", "--max-size", "80"]) == 0

    def digest(folder):
        return sorted((os.path.relpath(os.path.join(d, f), folder),
                       hashlib.sha1(open(os.path.join(d, f), "rb").read()).hexdigest())
                      for d, _, fs in os.walk(folder) for f in fs)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    names = sorted(os.listdir(tmp_path / "a" / "train"))
    assert names[0] == "cat.0.jpg" and "dog.4.jpg" in names and len(names) == 10
    assert os.listdir(tmp_path / "a" / "test") and not os.path.isdir(tmp_path / "a" / "test" / "unknown")
    assert main(["sample", str(tmp_path / "c"), "--n", "20", "--layout", "course", "--max-size", "80"]) == 0
    assert sorted(os.listdir(tmp_path / "c")) == ["test", "test_truth.csv", "train", "valid"]
    assert sorted(os.listdir(tmp_path / "c" / "valid")) == ["cats", "dogs"]
    from PIL import Image

    sizes = {Image.open(tmp_path / "a" / "train" / n).size for n in names}
    assert len(sizes) > 5  # images vary in size and aspect like photos


def test_sample_refuses_to_overwrite(tmp_path, capsys):
    assert main(["sample", str(tmp_path), "--n", "4", "--max-size", "64"]) == 0
    assert main(["sample", str(tmp_path), "--n", "4", "--max-size", "64"]) == 1
    assert "already exists and is not empty" in capsys.readouterr().err


def test_the_redux_flow_from_raw_kaggle_data_to_a_valid_csv(tmp_path, standin_weights, seeded, capsys):
    d = str(tmp_path / "redux")
    assert main(["sample", d, "--n", "160", "--n-test", "40", "--max-size", "160"]) == 0
    assert main(["prepare", d, "--valid", "40", "--sample-train", "20", "--sample-valid", "10"]) == 0
    assert main(["finetune", d, "--weights", str(standin_weights), "--size", "64", "--epochs", "2",
                 "--batch-size", "16", "--verbose", "0"]) == 0
    results = os.path.join(d, "results")
    assert {"ft1.h5", "ft2.h5", "dl1-model.json", "checkpoint.npz"} <= set(os.listdir(results))
    assert main(["predict", d]) == 0
    assert main(["inspect", d]) == 0
    out = capsys.readouterr().out
    assert "correct labels" in out and "best clip" in out
    for png in ("confusion_matrix.png", "inspect_correct.png", "inspect_uncertain.png", "log_loss.png"):
        assert open(os.path.join(results, png), "rb").read(4) == b"\x89PNG"
    assert main(["submit", d, "--clip", "auto"]) == 0
    csv = os.path.join(results, "submission.csv")
    df = pd.read_csv(csv)
    assert list(df.columns) == ["id", "label"] and len(df) == 40
    assert df["id"].tolist() == sorted(df["id"]) and df["label"].between(0, 1).all()
    assert main(["validate", csv, "--test", os.path.join(d, "test")]) == 0
    # the sample sub-folder trains on its own, with results under sample/results
    assert main(["finetune", d, "--sample", "--weights", str(standin_weights), "--size", "64",
                 "--epochs", "1", "--batch-size", "8", "--verbose", "0"]) == 0
    assert os.path.exists(os.path.join(d, "sample", "results", "ft1.h5"))


def test_submit_upload_needs_a_message(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / "dl1-model.json").write_text('{"classes": ["cats", "dogs"], "size": [64, 64]}')
    from dl1.io.arrays import save_array

    save_array(results / "test_preds.dat", [[0.3, 0.7]])
    save_array(results / "filenames.dat", ["unknown/1.jpg"])
    (tmp_path / "test" / "unknown").mkdir(parents=True)
    (tmp_path / "test" / "unknown" / "1.jpg").write_bytes(b"x")
    assert main(["submit", str(tmp_path), "--upload"]) == 2  # a usage error
    assert "--upload needs a message" in capsys.readouterr().err
    assert not (results / "submission.csv").exists()  # refused before anything is written


def test_validate_exit_status_and_reason(tmp_path, capsys):
    (tmp_path / "test" / "unknown").mkdir(parents=True)
    for i in (1, 2):
        (tmp_path / "test" / "unknown" / f"{i}.jpg").write_bytes(b"x")
    (tmp_path / "s.csv").write_text("id,label\n1,0.5\n1,0.5\n")
    assert main(["validate", str(tmp_path / "s.csv"), "--test", str(tmp_path / "test")]) == 1
    assert "INVALID" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["prepare", "/definitely/not/here"], "folder not found: /definitely/not/here"),
    (["finetune", "/definitely/not/here"], "folder not found: /definitely/not/here/train"),
    (["predict", "/tmp"], "folder not found: /tmp/test"),
    (["validate", "/definitely/not/here.csv"], "submission file not found"),
    (["finetune", "{data}", "--weights", "/no/such.h5"], "weights file not found: /no/such.h5"),
    (["finetune", "{data}", "--weights", "imagenet"], "vgg16_weights_tf_dim_ordering_tf_kernels.h5 is not "
                                                      "in the Keras cache"),
    (["inspect", "{data}"], "no trained model in"),
])
def test_bad_input_is_one_line_without_traceback(args, message, course_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(course_data, data)
    out = _dl1(*[a.format(data=data) for a in args], env={**os.environ, "DL1_OFFLINE": "1"})
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout


def test_demo_runs_the_whole_job_offline(tmp_path, capsys):
    d = str(tmp_path / "demo")
    assert main(["demo", d, "--n", "60", "--epochs", "1", "--size", "32", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "Notice: no ImageNet weights on this machine" in out and "accuracy on the synthetic test set" in out
    results = os.path.join(d, "results")
    for name in ("submission.csv", "demo_predictions.png", "confusion_matrix.png", "ft1.h5"):
        assert os.path.exists(os.path.join(results, name)), name
    assert main(["validate", os.path.join(results, "submission.csv"), "--test", os.path.join(d, "test")]) == 0
    assert main(["demo", d, "--n", "60", "--epochs", "1", "--size", "32"]) == 0  # a second run reuses it
    assert "reusing the one already there" in capsys.readouterr().out
