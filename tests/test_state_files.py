"""Every state file dl1 writes has a version and a checked schema: a damaged ``dl1-model.json``, checkpoint or
feature-cache entry is one line naming it and the way out (or, for the cache, a note and a recomputation),
never an internal error; class order is checked against the class folders; nothing read back is a pickle."""

import json
import logging
import os
import re
import shutil

import keras
import numpy as np
import pytest

from dl1 import cli
from dl1.data.batches import get_batches
from dl1.io.arrays import load_array, save_array
from dl1.models.vgg16 import Vgg16
from dl1.train.checkpoints import Checkpoint, CheckpointError
from dl1.train.features import FeatureCache, FrozenPrefix, frozen_prefix_length

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD = {"version": 2, "classes": ["cats", "dogs"], "size": [64, 64], "arch": "vgg16", "weights": "ft1.h5",
        "epochs_done": 1, "val_accuracy": 0.5, "policy": None}
REDO = "run 'dl1 finetune' again (or put back a good copy)"


@pytest.fixture
def folder(tmp_path):
    """A data folder with class folders and a test folder, and a results folder for the record."""
    for d in ("train/cats", "train/dogs", "test/unknown", "results"):
        (tmp_path / d).mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("record, problem", [
    ([], "is not a model record (a JSON object with the class names was expected, found list): " + REDO),
    (None, "is not a model record (a JSON object with the class names was expected, found null): " + REDO),
    ({"version": 2, "size": [64, 64]}, "has no list of class names ('classes'): " + REDO),
    ({**GOOD, "policy": "float64"}, "has an unknown dtype policy 'float64' (one of float32, mixed_float16, "
                                    "mixed_bfloat16, float16, bfloat16 or null): " + REDO),
    ({**GOOD, "classes": ["cats", "cats"]}, "names the class cats twice in 'classes': " + REDO),
    ({**GOOD, "weights": "../../elsewhere.h5"}, "has an invalid weights file name '../../elsewhere.h5' (a file "
                                                "name inside results/ expected): " + REDO),
    ({**GOOD, "epochs_done": "3"}, "has an invalid epochs_done '3' (a whole number expected): " + REDO),
    ({**GOOD, "version": 9}, "is a version 9 model record and this dl1 reads versions 1 to 2: upgrade dl1, or "
                             + REDO),
    ({**GOOD, "classes": ["dogs", "cats"]}, "lists the classes in the order dogs, cats but the model's outputs "
                                            "follow the class folders' order cats, dogs: the record was edited or "
                                            "mixed up; put back a good copy, or run 'dl1 finetune' again"),
])
def test_a_damaged_model_record_is_one_line_for_every_command(folder, record, problem, capsys):
    path = folder / "results" / "dl1-model.json"
    path.write_text(json.dumps(record))
    for argv in (["predict", str(folder)], ["submit", str(folder)], ["export", str(folder)]):
        rc = cli.main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 1, (argv, err)  # bad data (exit 1); never 3 (internal)
        assert err == f"dl1: error: {path} {problem}", argv


def _trained_model():
    keras.utils.set_random_seed(0)
    vgg = Vgg16(weights=None, size=32, verbose=False)
    vgg.ft(2)
    vgg.compile()
    return vgg.model


def test_a_damaged_checkpoint_is_one_line_with_the_way_out(tmp_path):
    model = _trained_model()
    path = tmp_path / "checkpoint.npz"
    good = Checkpoint(path, model, "run-1")
    good.save(epoch=1, batch=0, seed=7)
    assert good.read_meta()["epoch"] == 1 and good.restore()["seed"] == 7
    data = path.read_bytes()
    cases = {
        b"not a zip at all": "not a whole .npz archive: cut short or overwritten",
        data[: len(data) // 2]: "not a whole .npz archive: cut short or overwritten",
        b"": "not a whole .npz archive: cut short or overwritten",
    }
    for damaged, why in cases.items():
        path.write_bytes(damaged)
        with pytest.raises(CheckpointError) as e:
            Checkpoint(path, model, "run-1").read_meta()
        assert str(e.value) == (f"{path} is damaged ({why}): run again with --restart to start over (the epoch "
                                "weights and dl1-model.json are kept)")
    # well-formed zips whose content is wrong: bad metadata, an array of another shape, NaN weights
    key = next(k for k in np.load(io_bytes(data)).files if k.startswith("w/"))
    for change, why in [
        (lambda d: d.update(meta=_meta(d, epoch=-1)), "invalid epoch -1"),
        (lambda d: d.update(meta=_meta(d, format="dl1-checkpoint-9")),
         "format 'dl1-checkpoint-9' (this dl1 reads dl1-checkpoint-1)"),
        (lambda d: d.update({key: np.zeros((3, 3), "float32")}), None),
        (lambda d: d.update({key: np.full_like(d[key], np.nan)}), None),
    ]:
        arrays = dict(np.load(io_bytes(data)))
        change(arrays)
        np.savez(path, **arrays)
        old = tmp_path / "checkpoint.npz.20260101-000000.old"
        shutil.copy(path, old)  # a previous checkpoint set aside: the message names it
        with pytest.raises(CheckpointError) as e:
            Checkpoint(path, model, "run-1").restore()
        text = str(e.value)
        assert text.startswith(f"{path} is damaged (") and "\n" not in text
        assert text.endswith(f"): put back the previous checkpoint ({old}) under its name, or run again with "
                             "--restart to start over (the epoch weights and dl1-model.json are kept)")
        if why:
            assert f"({why})" in text
        else:
            assert re.search(r"has shape \(3, 3\) in the file|holds NaN or infinite weights", text)
        os.remove(old)
    assert not list(tmp_path.glob("*.tmp-*"))


def io_bytes(data):
    import io

    return io.BytesIO(data)


def _meta(arrays, **changes):
    meta = {**json.loads(bytes(arrays["meta"]).decode()), **changes}
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def test_finetune_with_a_damaged_checkpoint_says_so_and_restart_goes_on(tmp_path, course_data, standin_weights,
                                                                        capsys):
    data = tmp_path / "data"
    for split in ("train", "valid"):
        shutil.copytree(course_data / split, data / split)
    ckpt = data / "results" / "checkpoint.npz"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"PK\x03\x04 a zip that stops here")
    cmd = ["finetune", str(data), "--weights", str(standin_weights), "--size", "64", "--epochs", "1",
           "--batch-size", "16", "--verbose", "0"]
    assert cli.main(cmd) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"dl1: error: {ckpt} is damaged (not a whole .npz archive: cut short or overwritten"
                   "): run again with --restart to start over (the epoch weights and dl1-model.json are kept)")
    assert cli.main(cmd + ["--restart"]) == 0
    assert json.loads((data / "results" / "dl1-model.json").read_text())["epochs_done"] == 1


def test_a_damaged_feature_cache_entry_is_named_and_recomputed(tmp_path, course_data, caplog):
    batches = get_batches(course_data / "valid", shuffle=False, batch_size=16, target_size=(32, 32), verbose=False)
    vgg = Vgg16(weights=None, size=32, verbose=False)
    vgg.ft(2)
    cache = FeatureCache(FrozenPrefix(vgg.model, frozen_prefix_length(vgg.model)), verbose=False, folder=tmp_path)
    expected, ok = cache.features(batches)
    path = cache.path_for(batches)
    _, meta = load_array(path, with_meta=True)
    files = meta["index"]["files"]
    for array, index, why in [
        (expected[:3], meta["index"], f"an array of shape {(3,) + expected.shape[1:]} for {len(files)} images"),
        (expected, {"files": [["a.jpg", 1]], "ok": [True]}, "its index is not a list of [image, size, time]"),
        (expected, {"files": files, "ok": [True]}, "its index of readable images does not match its list of images"),
        (expected * np.nan, meta["index"], "values that are not finite numbers"),
        (expected, None, "no index of its images"),
    ]:
        save_array(path, array, meta={"index": index} if index is not None else None)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="dl1"):
            again, again_ok = cache.features(batches)
        np.testing.assert_allclose(again, expected, atol=1e-5)
        assert [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()] == [
            f"feature cache {path} is damaged ({why}); computing the features again"]
    # after the recomputation the entry is whole again
    assert cache._index_problem(*load_array(path, with_meta=True)) is None


def test_nothing_read_back_from_disk_is_a_pickle():
    found = []
    for folder, _, files in os.walk(os.path.join(REPO, "dl1")):
        for name in files:
            if name.endswith(".py"):
                text = open(os.path.join(folder, name), encoding="utf-8").read()
                for pattern in (r"pickle\.loads?\(", r"allow_pickle\s*=\s*True", r"torch\.load\(", r"joblib\.load",
                                r"np\.load\((?![^)]*allow_pickle=False)"):
                    found += [f"{name}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert found == []
