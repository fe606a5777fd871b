"""The course's extra notebooks (mnist, dogscats_ensemble, imagenet_batchnorm, sgd_intro, convolution_intro) run
end to end on small synthetic data (weights=None), and their key results hold."""

import os

import nbtools
import pytest
from test_notebooks import kernel  # noqa: F401 (the module-scoped offline kernel fixture)

PARAMS = {"mnist": {"path": "../data/mnist/", "size": 28, "weights": None, "epochs": None, "batch_size": 64,
                    "n_models": 6, "lin_epochs": (1, 5), "fc_epochs": (1, 8), "cnn_epochs": (1, 9),
                    "aug_epochs": (1, 36), "bn_epochs": (1, 28), "bn_do_epochs": (1, 17),
                    "ens_epochs": (1, 16, 18)},
          "dogscats_ensemble": {"path": "../data/dogscats/", "size": 224, "weights": "imagenet", "epochs": None,
                                "ll_epochs": 12, "fc_epochs": 2, "aug_epochs": 19, "batch_size": 64,
                                "n_models": 5},
          "imagenet_batchnorm": {"path": "../data/dogscats/", "size": 224, "weights": "imagenet", "epochs": 1,
                                 "batch_size": 64},
          "sgd_intro": {"epochs": 40, "batch_size": 30},
          "convolution_intro": {"path": "../data/mnist/", "size": 28}}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameters_are_the_courses(name):
    values = nbtools.parameters(name)
    assert {k: values[k] for k in PARAMS[name]} == PARAMS[name]


@pytest.fixture
def dogscats(tmp_path):
    from dl1.data.sample import write_sample

    path = tmp_path / "dogscats"
    write_sample(str(path), n=40, layout="course", seed=1, max_side=96, progress=False)
    return path


def test_sgd_intro(kernel, tmp_path):  # noqa: F811
    run = nbtools.run_notebook("sgd_intro", tmp_path, {"epochs": 10, "batch_size": 30},
                               read=("losses", "a_guess", "b_guess", "avg_loss(y, -1., 1., x)"))
    losses = run["losses"]
    assert len(losses) == 1 + 10 and losses[-1] < run["avg_loss(y, -1., 1., x)"] / 5  # the first guess, then 10 frames
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert abs(run["b_guess"] - 8) < 1.5
    assert f"b = {run['b_guess']:.3f} (true 8)" in run.text()


def test_convolution_intro_on_sklearn_digits(kernel, tmp_path):  # noqa: F811
    run = nbtools.run_notebook("convolution_intro", tmp_path / "out", {"path": str(tmp_path)}, read=(
        "source", "len(eights)", "len(ones)", "sum(is8_n2(im) for im in eights)",
        "sum(1 - is8_n2(im) for im in ones)",
        "bool(np.allclose(convolve(images[0], np.rot90(top, 2)), correlate(images[0], top)))"))
    assert run["source"] == "sklearn"
    assert f"no {tmp_path}/train.csv, so no MNIST: using the 1,797 small digits" in run.text()
    assert run["bool(np.allclose(convolve(images[0], np.rot90(top, 2)), correlate(images[0], top)))"]
    # the nearest-template classifier gets most eights and most ones right
    assert run["sum(is8_n2(im) for im in eights)"] > 0.7 * run["len(eights)"]
    assert run["sum(1 - is8_n2(im) for im in ones)"] > 0.7 * run["len(ones)"]


def test_mnist_on_a_kaggle_format_csv(kernel, tmp_path):  # noqa: F811
    from dl1.data import datasets

    data = tmp_path / "mnist"
    datasets.get("digits").synthesize(str(data), seed=0, n=400)
    run = nbtools.run_notebook("mnist", tmp_path / "out", {
        "path": str(data), "size": 28, "weights": None, "epochs": 1, "batch_size": 64, "n_models": 2},
        read=("source", "(len(X_train), len(X_test))", "fc.evaluate(X_test, y_test, verbose=0)[1]",
              "bn_accuracy", "bn_calibrated_accuracy", "evals[:, 0].tolist()", "ens_loss",
              "float(np.abs(ens2.predict(X_test, batch_size=256) - avg_preds).max())"))
    assert run["source"] == "csv" and run["(len(X_train), len(X_test))"] == (333, 67)
    assert f"reading the digits from {data}/train.csv" in run.text()
    assert run["fc.evaluate(X_test, y_test, verbose=0)[1]"] > 0.5
    # calibrated BN statistics rescue a BN network whose moving averages lag after few steps
    assert run["bn_calibrated_accuracy"] >= run["bn_accuracy"]
    # Jensen: the averaged predictions' log loss is at most the members' mean
    assert run["ens_loss"] <= sum(run["evals[:, 0].tolist()"]) / 2 + 1e-6
    assert run["float(np.abs(ens2.predict(X_test, batch_size=256) - avg_preds).max())"] < 1e-5
    assert sorted(f for f in os.listdir(data / "models") if f.startswith("cnn-mnist23-")) == \
        ["cnn-mnist23-0.pkl", "cnn-mnist23-1.pkl"]
    # the members train where the learner sees them: one line per epoch, three fits each
    members = run.text("def fit_model")
    assert "--- member 2 of 2" in members and nbtools.epoch_lines(members) == 6


def test_imagenet_batchnorm(kernel, dogscats, tmp_path):  # noqa: F811
    run = nbtools.run_notebook("imagenet_batchnorm", tmp_path / "out", {
        "path": str(dogscats), "size": 32, "weights": None, "epochs": 1, "batch_size": 16}, read=(
        "float(np.abs(vgg_preds - dense_preds).max())", "float(np.abs(bn_preds - dense_preds).max())",
        "float(np.abs(full_preds - bn_model.predict(samp_conv_val_feat, verbose=0)).max())",
        "float(np.abs(after - before).max())", "float(np.abs(again - after).max())",
        "float(np.mean(bn[0].get_weights()[3]))"))
    assert run["float(np.abs(vgg_preds - dense_preds).max())"] < 1e-6
    assert run["float(np.abs(bn_preds - dense_preds).max())"] < 1e-6
    assert run["float(np.abs(full_preds - bn_model.predict(samp_conv_val_feat, verbose=0)).max())"] < 1e-6
    assert run["float(np.abs(after - before).max())"] < 1e-6 and run["float(np.abs(again - after).max())"] == 0
    assert run["float(np.mean(bn[0].get_weights()[3]))"] != 1
    assert (dogscats / "models" / "vgg16bn_calibrated.h5").exists()
    # 40 images, fewer than the sample's 200 + 50: all of them are copied, with a note
    assert "fewer than the 200 asked for the sample: copying them all" in run.text()
    assert len(list((dogscats / "sample" / "train").glob("*/*"))) == len(list((dogscats / "train").glob("*/*")))


@pytest.mark.slow
def test_dogscats_ensemble(kernel, dogscats, tmp_path):  # noqa: F811
    run = nbtools.run_notebook("dogscats_ensemble", tmp_path / "out", {
        "path": str(dogscats), "size": 32, "weights": None, "epochs": 1, "batch_size": 16, "n_models": 2},
        read=("member_val_acc", "evals[:, 0].tolist()", "ens_loss"))
    assert len(run["member_val_acc"]) == 2
    assert run["ens_loss"] <= sum(run["evals[:, 0].tolist()"]) / 2 + 1e-6
    for name in ("ll_bn0.h5", "bn1.h5", "no_dropout_bn0.h5", "aug1.h5", "ensemble/ensemble.json"):
        assert (dogscats / "models" / name).exists(), name
    # the members train where the learner sees them: one line per epoch (2 members x 3 stages x 1 epoch)
    assert nbtools.epoch_lines(run.text("member_val_acc = []")) == 6
