"""mnist, dogscats_ensemble, imagenet_batchnorm, sgd_intro and convolution_intro run end to end on small
synthetic data (weights=None), and their key results hold."""

import os

import nbformat
import nbtools
import pytest
from test_notebooks import kernel  # noqa: F401 (the module-scoped offline kernel fixture)

PARAMS = {"mnist": ("path", "size", "weights", "epochs", "batch_size"),
          "dogscats_ensemble": ("path", "size", "weights", "epochs", "batch_size"),
          "imagenet_batchnorm": ("path", "size", "weights", "epochs", "batch_size"),
          "sgd_intro": ("epochs", "batch_size"),
          "convolution_intro": ("path",)}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameters_cell(name):
    nb = nbformat.read(os.path.join(nbtools.NBS, f"{name}.ipynb"), as_version=4)
    cells = nbtools.parameters_cells(nb)
    assert len(cells) == 1
    names = nbtools.assigned_names(cells[0].source)
    assert set(PARAMS[name]) | {"results_json"} <= names


@pytest.fixture
def dogscats(tmp_path):
    from dl1.data.sample import write_sample

    path = tmp_path / "dogscats"
    write_sample(str(path), n=40, layout="course", seed=1, max_side=96, progress=False)
    return path


def test_sgd_intro(kernel, tmp_path):  # noqa: F811
    r, _ = nbtools.run_notebook("sgd_intro", tmp_path, {"epochs": 10, "batch_size": 30})
    losses = r["avg_losses"]
    assert losses[-1] < r["initial_avg_loss"] / 5
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert abs(r["b_guess"] - 8) < 1.5


def test_convolution_intro_on_sklearn_digits(kernel, tmp_path):  # noqa: F811
    r, _ = nbtools.run_notebook("convolution_intro", tmp_path / "out", {"path": str(tmp_path)})
    assert r["source"] == "sklearn" and r["convolve_equals_rotated_correlate"]
    # the nearest-template classifier gets most eights and most ones right
    assert r["n2_eights"][0] > 0.7 * r["n_eights"] and r["n2_ones"][1] > 0.7 * r["n_ones"]


def test_mnist_on_a_kaggle_format_csv(kernel, tmp_path):  # noqa: F811
    from dl1.data import datasets

    data = tmp_path / "mnist"
    datasets.get("digits").synthesize(str(data), seed=0, n=400)
    r, _ = nbtools.run_notebook("mnist", tmp_path / "out", {
        "path": str(data), "size": 28, "weights": None, "epochs": 1, "batch_size": 64, "n_models": 2})
    assert r["source"] == "csv" and r["split"] == [333, 67]
    assert r["fc_accuracy"] > 0.5
    # calibrated BN statistics rescue a BN network whose moving averages lag after few steps
    assert r["bn_calibrated_accuracy"] >= r["bn_accuracy"]
    # Jensen: the averaged predictions' log loss is at most the members' mean
    assert r["ensemble_log_loss"] <= sum(r["member_losses"]) / 2 + 1e-6
    assert r["reload_max_diff"] < 1e-5
    assert sorted(f for f in os.listdir(data / "models") if f.startswith("cnn-mnist23-")) == \
        ["cnn-mnist23-0.pkl", "cnn-mnist23-1.pkl"]


def test_imagenet_batchnorm(kernel, dogscats, tmp_path):  # noqa: F811
    r, _ = nbtools.run_notebook("imagenet_batchnorm", tmp_path / "out", {
        "path": str(dogscats), "size": 32, "weights": None, "epochs": 1, "batch_size": 16,
        "n_sample_train": 16, "n_sample_valid": 8})
    assert r["dense_vs_vgg_max_diff"] < 1e-6
    assert r["bn_max_diff"] < 1e-6 and r["combined_vs_bn_max_diff"] < 1e-6
    assert r["vgg16bn_calibration_max_diff"] < 1e-6 and r["vgg16bn_reload_max_diff"] == 0
    assert r["vgg16bn_moving_variance_mean"] != 1
    assert (dogscats / "models" / "vgg16bn_calibrated.h5").exists()


@pytest.mark.slow
def test_dogscats_ensemble(kernel, dogscats, tmp_path):  # noqa: F811
    r, _ = nbtools.run_notebook("dogscats_ensemble", tmp_path / "out", {
        "path": str(dogscats), "size": 32, "weights": None, "epochs": 1, "batch_size": 16, "n_models": 2})
    assert len(r["member_val_accuracy"]) == 2
    assert r["ensemble_log_loss"] <= sum(r["member_log_loss"]) / 2 + 1e-6
    for name in ("ll_bn0.h5", "bn1.h5", "no_dropout_bn0.h5", "aug1.h5", "ensemble/ensemble.json"):
        assert (dogscats / "models" / name).exists(), name
