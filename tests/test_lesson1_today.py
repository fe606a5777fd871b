"""nbs/lesson1_today.ipynb (lr finder, one-cycle, fine_tune) runs to the end on ~40 synthetic images."""

import json
import os

import nbtools
import pytest


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, _isolated_keras_home):
    yield from nbtools.offline_kernel(tmp_path_factory.mktemp("jupyter_today"), _isolated_keras_home,
                                      DL1_CACHE_DIR=str(tmp_path_factory.mktemp("dl1_cache_today")))


def test_lesson1_today_parameters_are_the_course_defaults():
    import nbformat

    nb = nbformat.read(os.path.join(nbtools.NBS, "lesson1_today.ipynb"), as_version=4)
    cells = nbtools.parameters_cells(nb)
    assert len(cells) == 1
    assert set(nbtools.REQUIRED_PARAMETERS) <= nbtools.assigned_names(cells[0].source)
    assert 'weights = "imagenet"' in cells[0].source and "size = 224" in cells[0].source


def test_lesson1_today_runs(kernel, tmp_path):
    from dl1.data.sample import write_sample

    data = tmp_path / "dogscats"
    write_sample(str(data), n=40, layout="course", seed=2, max_side=96, progress=False)
    results, _ = nbtools.run_notebook("lesson1_today", tmp_path / "run", {
        "path": str(data), "size": 32, "weights": None, "epochs": 1, "batch_size": 8})
    assert 1e-7 < results["suggested_lr"] < 10 and results["lr_find_steps"] >= 2
    for key in ("one_cycle_val_accuracy", "fine_tune_val_accuracy", "tta_val_accuracy"):
        assert 0.0 <= results[key] <= 1.0
    assert results["fine_tune_epochs"] == 2 and results["exported"]
    assert (data / "results" / "lr_find.png").exists()
    classes = json.loads((data / "results" / "model.keras.classes.json").read_text())["classes"]
    assert classes == ["cats", "dogs"]
