"""Lesson 7 (fisheries), State Farm and the State Farm sample notebook: end to end on the synthetic stand-ins
of 40 labelled images, from Kaggle's layout, at small sizes with random weights and the course's split sizes
(scaled to the data, with a note)."""

import re

import nbtools
import numpy as np
import pytest


@pytest.fixture(scope="module")
def kernel(module_tmp, _isolated_keras_home):
    yield from nbtools.offline_kernel(module_tmp.mktemp("jupyter"), _isolated_keras_home,
                                      DL1_CACHE_DIR=str(module_tmp.mktemp("dl1_cache")))


@pytest.mark.parametrize("name, course", [
    ("lesson7", {"path": "../data/fish/", "size": 224, "large_size": (360, 640), "weights": "imagenet",
                 "epochs": None, "ft_epochs": 3, "bn_epochs": (3, 7), "multi_epochs": (3, 8), "bb_epochs": (3, 10),
                 "lrg_epochs": (2, 6), "incep_epochs": (2, 6, 10), "pseudo_epochs": 8, "batch_size": 64,
                 "lr": 1e-3, "p": 0.6, "n_valid": 500, "n_sample_train": 400, "n_sample_valid": 200}),
    ("statefarm", {"path": "../data/state/", "size": 224, "weights": "imagenet", "epochs": None,
                   "conv1_epochs": (2, 4), "conv1_aug_epochs": 15, "deep_epochs": (2, 10, 10), "bn_epochs": (1, 2),
                   "da_epochs": (1, 4, 4), "pseudo_epochs": (1, 4, 4), "batch_size": 64, "n_valid": 3000,
                   "n_sample_train": 1500, "n_sample_valid": 1000, "n_aug": 5}),
    ("statefarm_sample", {"path": "../data/state/", "size": 224, "epochs": None, "linear_epochs": (2, 2, 4),
                          "l2_epochs": (2, 4), "hidden_epochs": (2, 5), "conv1_epochs": (2, 4),
                          "aug_epochs": (5, 25), "batch_size": 64, "n_sample_train": 1500, "n_sample_valid": 1000}),
])
def test_parameters_are_the_courses(name, course):
    values = nbtools.parameters(name)
    assert {k: values[k] for k in course} == course


LESSON7 = {"size": 32, "large_size": [64, 128], "weights": None, "epochs": 1, "batch_size": 16}

# After the last cell of lesson 7: the heat map the cells read from the intermediate layer is the one the
# library's class_heatmap computes for the same model and picture.
HEATMAP_AGREES = """
from dl1.inspect.heatmap import class_heatmap
_x = load_array(path + 'results/conv_val_640.dat')[:1]
heat_diff = float(np.abs(class_heatmap(lrg_model, _x, 0, layer=-3, size=large_size, interp='bilinear') - cm).max())
"""


def test_lesson7(kernel, tmp_path):
    from dl1.data.datasets import fisheries
    from dl1.kaggle.submission import validate_submission

    data = tmp_path / "fish"
    fisheries.synthesize(data, seed=0, n=40, n_test=10)
    run = nbtools.run_notebook("lesson7", tmp_path / "out", dict(LESSON7, path=str(data)), then=HEATMAP_AGREES,
                               read=("have_boxes", "cm.shape", "heat_diff", "subm_name", "report.counts"))
    print(f"lesson7 ran in {run.seconds:.1f} s")
    assert (data / "valid").is_dir() and (data / "test" / "unknown").is_dir() and not (data / "test_stg1").exists()
    # the course's 500 validation images do not fit 40: a fifth, with a note
    assert "has 40 labelled images, fewer than the split asks for" in run.text()
    assert sum(n for k, n in run["report.counts"].items() if k.startswith("valid/")) == 8
    assert run["have_boxes"] and run["cm.shape"] == (64, 128) and run["heat_diff"] < 1e-6
    for cell in ("val_acc", "class_accuracy"):
        assert cell in run.text()
    assert run["subm_name"].endswith("subm_bb.gz")
    df = validate_submission(run["subm_name"], expected=str(data / "test"))
    assert list(df.columns) == ["image", "ALB", "BET", "DOL", "LAG", "NoF", "OTHER", "SHARK", "YFT"]
    assert len(df) == 10
    with open(run["subm_name"], "rb") as f:
        assert f.read(2) == b"\x1f\x8b"


def test_statefarm(kernel, tmp_path):
    from dl1.data.datasets import statefarm
    from dl1.kaggle.submission import validate_submission

    data = tmp_path / "state"
    statefarm.synthesize(data, seed=0, n=40, n_test=10, n_drivers=4, size=(64, 48))
    run = nbtools.run_notebook("statefarm", tmp_path / "out", {
        "path": str(data), "size": 32, "weights": None, "epochs": 1, "batch_size": 16, "n_aug": 1},
        read=("sorted(trn_drivers & val_drivers)", "len(val_classes)", "float(ensemble_accuracy)", "subm_name"))
    print(f"statefarm ran in {run.seconds:.1f} s")
    assert run["sorted(trn_drivers & val_drivers)"] == []
    assert "has 40 labelled images, fewer than the split asks for" in run.text()
    assert run["len(val_classes)"] >= 8  # whole drivers: at least a fifth of the pictures
    assert 0 <= run["float(ensemble_accuracy)"] <= 1
    assert re.search(r"validation log loss: [0-9.]+, clipped at 0.93: [0-9.]+", run.text())
    df = validate_submission(run["subm_name"], expected=str(data / "test"))
    assert list(df.columns) == ["img"] + [f"c{i}" for i in range(10)] and len(df) == 10
    # clipped at 0.93 over 10 classes: nothing below (1 - 0.93) / 9 before renormalising
    assert df.iloc[:, 1:].to_numpy().min() > 0.005
    # the ensemble's heads train where the learner sees them: one line per epoch
    assert nbtools.epoch_lines(run.text("def fit_conv")) == 2


def test_statefarm_sample(kernel, tmp_path):
    """Every step of the 2017 sample notebook, on 40 pictures of 4 drivers: the driver split and the sample
    made by the cells (all the pictures, with a note), each model trained, the validation check."""
    from dl1.data.datasets import statefarm

    data = tmp_path / "state"
    statefarm.synthesize(data, seed=1, n=40, n_test=4, n_drivers=4, size=(64, 48))
    run = nbtools.run_notebook("statefarm_sample", tmp_path / "out", {
        "path": str(data), "size": 32, "epochs": 1, "batch_size": 8},
        read=("{k: len(glob(sample_path + k + '/c?/*.jpg')) for k in ('train', 'valid')}",
              "len(glob(path + 'train/c?/*.jpg'))", "len(glob(path + 'valid/c?/*.jpg'))", "val_res", "boot",
              "model.count_params()", "float(K.get_value(model.optimizer.lr))", "h.history"))
    n_train, n_valid = run["len(glob(path + 'train/c?/*.jpg'))"], run["len(glob(path + 'valid/c?/*.jpg'))"]
    assert n_train + n_valid == 40 and n_valid >= 8
    # the sample: all of the pictures, since there are fewer than the course's 1,500 and 1,000
    assert run["{k: len(glob(sample_path + k + '/c?/*.jpg')) for k in ('train', 'valid')}"] == \
        {"train": n_train, "valid": n_valid}
    text = run.text()
    assert f"has {n_train} pictures, fewer than the 1500 asked for the sample: copying them all" in text
    # the parameter count of the linear model, worked out: 10 outputs x 3 x 32 x 32 inputs + 10 biases
    assert "(30730, 6)" in run.text("10 * 3 * size * size")
    # evaluating the same model ten times on reshuffled batches gives the same numbers today; the bootstrap
    # draws differ
    val_res, boot = np.array(run["val_res"]), np.array(run["boot"])
    assert val_res.shape == (10, 2) and np.allclose(val_res, val_res[0])
    assert boot.shape == (10, 2) and ((0 <= boot[:, 0]) & (boot[:, 0] <= 1)).all()
    # the linear model's diagnosis: ten rows of ten probabilities
    assert run.text("predict_generator").count("[") >= 10
    # the last model: conv1 on all the augmentations, trained on at a tenth of its rate
    assert run["float(K.get_value(model.optimizer.lr))"] == pytest.approx(1e-4)
    assert len(run["h.history"]["val_accuracy"]) == 1
    assert run["model.count_params()"] > 0
    # every fit shows its epochs: linear 3 fits, L2 2, hidden layer 2, conv1 7 times 2, then 2 more
    assert text.count("val_loss") == 3 + 2 + 2 + 7 * 2 + 2
