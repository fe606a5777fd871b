"""nbs/lesson1_today.ipynb (lr finder, one-cycle, fine_tune, Resnet50 beside Vgg16) runs to the end on 40
synthetic images."""

import json

import nbtools
import pytest


@pytest.fixture(scope="module")
def kernel(module_tmp, _isolated_keras_home):
    yield from nbtools.offline_kernel(module_tmp.mktemp("jupyter_today"), _isolated_keras_home,
                                      DL1_CACHE_DIR=str(module_tmp.mktemp("dl1_cache_today")))


def test_lesson1_today_parameters_are_the_course_defaults():
    values = nbtools.parameters("lesson1_today")
    assert set(values) == set(nbtools.REQUIRED_PARAMETERS)
    assert values["weights"] == "imagenet" and values["size"] == 224 and values["epochs"] == 1
    assert values["path"] == "../data/dogscats/" and values["batch_size"] == 64


def test_lesson1_today_runs(kernel, tmp_path):
    from dl1.data.sample import write_sample

    data = tmp_path / "dogscats"
    write_sample(str(data), n=40, layout="course", seed=2, max_side=96, progress=False)
    run = nbtools.run_notebook("lesson1_today", tmp_path / "run", {
        "path": str(data), "size": 32, "weights": None, "epochs": 1, "batch_size": 8},
        read=("lr", "len(found.lrs)", "hist.history", "float(tta_accuracy)", "exported", "compared"))
    assert 1e-7 < run["lr"] < 10 and run["len(found.lrs)"] >= 2
    # fine_tune: one epoch of the head, then `epochs` of everything
    assert len(run["hist.history"]["val_accuracy"]) == 2
    assert 0 <= run["float(tta_accuracy)"] <= 1
    assert run["exported"].endswith("model.keras") and (data / "results" / "model.keras").exists()
    assert (data / "results" / "lr_find.png").exists()
    classes = json.loads((data / "results" / "model.keras.classes.json").read_text())["classes"]
    assert classes == ["cats", "dogs"]
    # Resnet50 fine-tuned beside Vgg16 on the same batches: a fifth of the weights (at 32 pixels the VGG16 head
    # is small, so compare with what each network's layers hold), one accuracy each
    (vgg_params, vgg_acc), (res_params, res_acc) = run["compared"]["VGG16"], run["compared"]["ResNet50"]
    assert 23_000_000 < res_params < 24_000_000 and vgg_params > 14_000_000
    assert 0 <= vgg_acc <= 1 and 0 <= res_acc <= 1
    assert "ResNet50" in run.text("Resnet50(") and run.count("image/png") >= 3
