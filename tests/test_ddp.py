"""Data parallel training with PyTorch's engine, on this CPU: torchrun, gloo, 2 processes against 1.

Same number of steps, the same final weights (within float rounding) as one process with the same global
batch, one checkpoint, every training image seen exactly once per epoch, and a resumed run."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--arch", "resnet50", "--weights", "none", "--size", "32", "--batch-size", "8", "--verbose", "1"]


def _torchrun(n, data, log, *extra):
    env = dict(os.environ, DL1_DDP_LOG=str(log), DL1_OFFLINE="1", PYTHONPATH=ROOT)
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n), "--master-port",
           str(29400 + 10 * n + os.getpid() % 7), "-m", "dl1", "finetune", str(data), *ARGS, *extra]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


def _weights(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _seen(log):
    lines = {}
    for name in sorted(os.listdir(log)):
        with open(os.path.join(log, name), encoding="utf-8") as f:
            lines[name] = [json.loads(line) for line in f]
    return lines


@pytest.fixture(scope="module")
def two_sets(module_tmp):
    from dl1.data.sample import write_sample

    base = module_tmp.mktemp("ddp")
    for name in ("one", "two"):
        write_sample(str(base / name / "data"), n=36, layout="course", seed=2, max_side=64, progress=False)
    return base


def test_two_processes_match_one_and_see_each_image_once(two_sets):
    one, two = two_sets / "one", two_sets / "two"
    out1 = _torchrun(1, one / "data", one / "log", "--epochs", "2")
    out2 = _torchrun(2, two / "data", two / "log", "--epochs", "2")
    assert "(2 processes, 4 steps" in out2 and "(1 processes, 4 steps" in out1  # 28 images / global batch 8
    assert out2.count("Fine-tuned 2 epoch(s)") == 1  # rank 0 alone prints
    w1 = _weights(one / "data" / "results" / "ft2.h5")
    w2 = _weights(two / "data" / "results" / "ft2.h5")
    assert w1.keys() == w2.keys()
    for key in w1:
        np.testing.assert_allclose(w1[key], w2[key], atol=1e-5, err_msg=key)
    assert sorted(os.listdir(two / "data" / "results")) == ["checkpoint.npz", "dl1-model.json", "ft1.h5",
                                                            "ft2.h5", "history.csv", "training_curves.png"]
    with open(two / "data" / "results" / "history.csv", encoding="utf-8") as f:
        assert [line.split(",")[:2] for line in f.read().splitlines()[1:]] == [["1", "fit"], ["2", "fit"]]
    with open(two / "data" / "results" / "dl1-model.json", encoding="utf-8") as f:
        assert json.load(f)["arch"] == "resnet50"
    train = sorted(os.path.join(c, f) for c in ("cats", "dogs")
                   for f in os.listdir(two / "data" / "train" / c))
    logs = _seen(two / "log")
    assert sorted(logs) == ["seen-rank0.jsonl", "seen-rank1.jsonl"]
    for epoch in (0, 1):
        rows = [r for lines in logs.values() for r in lines if r["epoch"] == epoch]
        assert [r["steps"] for r in rows] == [4, 4]
        seen = [i for r in rows for i in r["ids"]]
        assert len(seen) == len(set(seen)) == len(train)  # none twice, none lost
        assert sorted(seen) == train
        assert abs(len(rows[0]["ids"]) - len(rows[1]["ids"])) <= 1  # each process its own half


def test_a_two_process_run_resumes_from_its_checkpoint(two_sets):
    two = two_sets / "two"
    if not (two / "data" / "results" / "checkpoint.npz").exists():
        pytest.skip("needs the run of the previous test")
    out = _torchrun(2, two / "data", two / "log3", "--epochs", "3")
    assert "Resuming from" in out and "2 epoch(s) done" in out
    assert "Epoch 3/3 (2 processes, 4 steps" in out and "Epoch 1/3" not in out
    assert os.path.exists(two / "data" / "results" / "ft3.h5")
    rows = [r for lines in _seen(two / "log3").values() for r in lines]
    assert {r["epoch"] for r in rows} == {2}


def test_without_torchrun_nothing_distributed_happens(monkeypatch):
    from dl1.train import distributed

    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(key, raising=False)
    assert not distributed.active() and distributed.is_main() and distributed.rank() == 0
    assert distributed.once(lambda: 42) == 42
    distributed.barrier()  # a no-op


def test_jax_data_parallel_where_it_applies():
    pytest.importorskip("jax")
    from dl1.train import distributed

    with distributed.device_parallel() as spread:
        assert spread in (True, False)


def test_predict_reads_the_architecture_from_the_results_folder(two_sets, capsys):
    from dl1.cli import main

    data = two_sets / "two" / "data"
    if not (data / "results" / "dl1-model.json").exists():
        pytest.skip("needs the run of the first test")
    assert main(["predict", str(data), "--batch-size", "8"]) == 0
    assert "Predicted" in capsys.readouterr().out
    assert (data / "results" / "test_preds.dat").exists()


def test_finetune_help_lists_the_architectures(capsys):
    from dl1.cli import ARCH_NAMES, build_parser
    from dl1.models.backbones import ARCHITECTURES

    assert ARCH_NAMES == list(ARCHITECTURES)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in ARCH_NAMES:
        assert name in text
    assert "torchrun" in text
