"""The lesson notebooks: committed clean, and executed top to bottom on small synthetic data.

Each notebook runs with papermill on generated images at a small size, with the stand-in VGG16 weights
(ImageNet's cannot be downloaded here), for one to three epochs; any error fails the test. A few key results,
written by the notebook's last cell, are checked.
"""

import os
import shutil

import nbformat
import nbtools
import numpy as np
import pytest

NOTEBOOKS = ["lesson1", "dogs_cats_redux", "lesson2", "lesson3", "cnn_from_scratch", "mnist_cnn"]


# ---- the committed notebooks -----------------------------------------------------------------------------
def _read(name):
    return nbformat.read(os.path.join(nbtools.NBS, f"{name}.ipynb"), as_version=4)


def test_every_lesson_notebook_is_there():
    present = {os.path.basename(p)[:-len(".ipynb")] for p in nbtools.notebook_paths()}
    assert set(NOTEBOOKS) <= present


@pytest.mark.parametrize("path", nbtools.notebook_paths(), ids=os.path.basename)
def test_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    problems = nbtools.output_problems(nb)
    assert not problems, (f"{os.path.relpath(path, nbtools.ROOT)} is committed with outputs: "
                          + "; ".join(problems) + ". Clear them (Jupyter: Edit > Clear All Outputs, or "
                          "jupyter nbconvert --clear-output --inplace FILE)")


@pytest.mark.parametrize("path", nbtools.notebook_paths(), ids=os.path.basename)
def test_notebooks_are_valid_and_run_on_python3(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_have_one_parameters_cell(name):
    nb = _read(name)
    cells = nbtools.parameters_cells(nb)
    assert len(cells) == 1, f"{name}: {len(cells)} cells tagged 'parameters', want exactly one"
    names = nbtools.assigned_names(cells[0].source)
    missing = [p for p in nbtools.REQUIRED_PARAMETERS if p not in names]
    assert not missing, f"{name}: the parameters cell does not define {missing}"
    # the defaults are the course's: full data, full size (mnist: 28-pixel digits, no pretrained weights)
    values = {}
    exec(compile(cells[0].source, name, "exec"), {}, values)
    assert values["results_json"] is None
    assert values["path"].startswith("data/") and values["epochs"] >= 1 and values["batch_size"] >= 32
    if name == "mnist_cnn":
        assert values["weights"] is None and values["size"] == 28
    else:
        assert values["weights"] == "imagenet" and values["size"] >= 150


# ---- running them ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel(tmp_path_factory, _isolated_keras_home):
    """A ``python3`` kernelspec running this Python, offline, with its own Keras home and feature cache."""
    yield from nbtools.offline_kernel(tmp_path_factory.mktemp("jupyter"), _isolated_keras_home,
                                      DL1_CACHE_DIR=str(tmp_path_factory.mktemp("dl1_cache")))


@pytest.fixture(scope="module")
def small_course(tmp_path_factory):
    """64 synthetic images in the course layout (52 train, 12 valid, 16 test), for the notebooks that
    train through convolutional layers; copied by each test that writes into its data folder."""
    from dl1.data.sample import write_sample

    path = tmp_path_factory.mktemp("small") / "dogscats"
    write_sample(str(path), n=64, layout="course", seed=1, max_side=160, progress=False)
    return path


@pytest.fixture(scope="module")
def standin32(small_course, tmp_path_factory):
    """Stand-in VGG16 weights at 32 pixels: the notebooks that train through convolutional layers or run
    VGG16 on every epoch's augmented images are four times cheaper at 32 than at 64 pixels."""
    from dl1.models.standin import make_standin_weights

    path = tmp_path_factory.mktemp("weights32") / "standin32.h5"
    make_standin_weights(str(path), str(small_course / "train"), size=32, n=48, seed=0, verbose=False)
    return path


@pytest.fixture(scope="module")
def lessons23_data(small_course, tmp_path_factory):
    """One writable copy shared by lesson2 and lesson3, as on a real box: lesson3 starts from the weights
    lesson2 saves in models/."""
    path = tmp_path_factory.mktemp("lessons23") / "dogscats"
    shutil.copytree(small_course, path)
    return path


def test_lesson1(kernel, course_data, standin_weights, tmp_path):
    results, _ = nbtools.run_notebook("lesson1", tmp_path, {
        "path": str(course_data), "size": 64, "weights": str(standin_weights), "epochs": 1, "batch_size": 16})
    # VGG16 written out layer by layer predicts exactly as Vgg16 does with the same weights
    assert results["from_scratch_max_abs_diff"] < 1e-5
    assert results["from_scratch_same_argmax"]
    for key in ("recipe_val_accuracy", "finetune_val_accuracy"):
        assert 0.0 <= results[key] <= 1.0


def test_dogs_cats_redux(kernel, kaggle_data, standin_weights, tmp_path):
    from dl1.kaggle.submission import validate_submission

    results, _ = nbtools.run_notebook("dogs_cats_redux", tmp_path, {
        "path": str(kaggle_data), "size": 64, "weights": str(standin_weights), "epochs": 2, "batch_size": 16,
        "n_valid": 24, "n_sample_train": 16, "n_sample_valid": 8})
    # prepare_data: 120 labelled images split 96/24, a sample copied, the 30 test images in test/unknown
    counts = results["counts"]
    assert counts["valid/cats"] + counts["valid/dogs"] == 24
    assert counts["train/cats"] + counts["train/dogs"] == 96
    assert counts["test/unknown"] == 30
    # one weights file per epoch
    assert {"ft0.h5", "ft1.h5"} <= set(os.listdir(kaggle_data / "results"))
    assert len(results["val_accuracy"]) == 2
    assert np.asarray(results["confusion_matrix"]).sum() == 24
    # the submission CSVs (the notebook's and dl1 submit's) validate against the test folder
    test_dir = str(kaggle_data / "test")
    df = validate_submission(results["submission"], expected=test_dir)
    assert list(df.columns) == ["id", "label"] and len(df) == 30
    assert df["label"].between(1 - results["best_clip"] - 1e-6, results["best_clip"] + 1e-6).all()
    validate_submission(str(kaggle_data / "results" / "submission.csv"), expected=test_dir)


def test_lesson2(kernel, lessons23_data, standin32, tmp_path):
    results, _ = nbtools.run_notebook("lesson2", tmp_path, {
        "path": str(lessons23_data), "size": 32, "weights": str(standin32), "epochs": 1, "batch_size": 16,
        "lr": 0.001})
    # the linear model recovers y = 2*x1 + 3*x2 + 1
    np.testing.assert_allclose(results["linear_weights"], [2.0, 3.0], atol=0.05)
    assert abs(results["linear_bias"] - 1.0) < 0.05
    # unfreezing takes effect: the unfrozen dense layer moved, the frozen conv layer did not, then it did
    assert results["dense_change"] > 0
    assert results["frozen_conv_change"] == 0
    assert results["unfrozen_conv_change"] > 0
    # lowering the learning rate tenfold with K.set_value (no compile) makes the steps much smaller
    assert results["lr_ratio"] > 3
    assert (lessons23_data / "models" / "finetune3.h5").exists()


def test_lesson3(kernel, lessons23_data, standin32, tmp_path):
    lesson2_done = (lessons23_data / "models" / "finetune3.h5").exists()
    results, _ = nbtools.run_notebook("lesson3", tmp_path, {
        "path": str(lessons23_data), "size": 32, "weights": str(standin32), "epochs": 1, "batch_size": 16})
    assert results["loaded_lesson2_weights"] == lesson2_done
    # 52 training images -> the last convolution's output, 2x2x512 at 32 pixels
    assert results["conv_features_shape"] == [52, 2, 2, 512]
    for key in ("no_dropout_val_accuracy", "augmented_val_accuracy", "bn_val_accuracy", "final_val_accuracy"):
        assert 0.0 <= results[key] <= 1.0, key
    assert results["final_lr"] == pytest.approx(1e-4)
    # the batch-normalised head's BatchNormalization layers learned statistics of our images
    assert results["bn_statistics_moved"] > 1e-4
    for name in ("no_dropout.h5", "aug1.h5", "bn.h5", "final1.h5", "final2.h5", "final3.h5"):
        assert (lessons23_data / "models" / name).exists(), name


def test_cnn_from_scratch(kernel, small_course, standin32, tmp_path):
    data = tmp_path / "dogscats"
    shutil.copytree(small_course, data)
    results, _ = nbtools.run_notebook("cnn_from_scratch", tmp_path / "out", {
        "path": str(data), "size": 32, "weights": str(standin32), "epochs": 3, "batch_size": 16})
    # a Conv2D layer with the Sobel kernel computes what scipy's convolution does
    assert results["conv2d_vs_scipy_max_diff"] < 1e-5
    assert 1 <= results["scratch_epochs_run"] <= 3
    assert 0.0 <= results["scratch_val_accuracy"] <= 1.0
    # VGG16 without its top at 32 pixels: 1x1x512 per image
    assert results["bottleneck_shape"] == [52, 1, 1, 512]
    assert 0.0 <= results["bottleneck_val_accuracy"] <= 1.0


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    """What a user tries first: 40 training images (course layout: 40 train, 10 valid; Kaggle layout: 40
    labelled, 10 test)."""
    from dl1.data.sample import write_sample

    root = tmp_path_factory.mktemp("tiny")
    write_sample(str(root / "course"), n=50, layout="course", seed=2, max_side=120, progress=False)
    write_sample(str(root / "kaggle"), n=40, n_test=10, seed=2, max_side=120, progress=False)
    return root


@pytest.mark.parametrize("name", ["lesson1", "dogs_cats_redux", "lesson2", "lesson3", "cnn_from_scratch"])
def test_image_notebooks_run_with_random_weights_on_40_images(kernel, tiny_sets, tmp_path, name):
    """The course's defaults except the data (40 images) and weights=None: nothing divides by a zero
    step, no split asks for 2,000 validation images, no plot of an empty selection stops the run."""
    data = tmp_path / "data"
    shutil.copytree(tiny_sets / ("kaggle" if name == "dogs_cats_redux" else "course"), data)
    results, _ = nbtools.run_notebook(name, tmp_path / "out", {
        "path": str(data), "size": 32, "weights": None, "epochs": 1, "batch_size": 8})
    if name == "dogs_cats_redux":
        counts = results["counts"]
        assert counts["valid/cats"] + counts["valid/dogs"] == 8  # a fifth of 40, with a note
        assert counts["train/cats"] + counts["train/dogs"] == 32


MNIST_MIN_TEST_ACCURACY = 0.9


def test_mnist_cnn_on_sklearn_digits(kernel, tmp_path):
    """No train.csv in path: scikit-learn's 1,797 digits, at their own 8x8 pixels."""
    data = tmp_path / "mnist"
    data.mkdir()
    results, _ = nbtools.run_notebook("mnist_cnn", tmp_path / "out", {
        "path": str(data), "size": 8, "weights": None, "epochs": 6, "batch_size": 64})
    assert results["source"] == "sklearn" and results["n_images"] == 1797
    assert sum(results["split"]) == 1797 and min(results["split"]) > 200
    assert results["backend"] == "torch"
    assert results["device"].startswith("cuda" if results["gpu"] else "cpu")
    assert results["test_accuracy"] >= MNIST_MIN_TEST_ACCURACY
    assert (data / "models" / "mnist_cnn.h5").exists()


def test_mnist_cnn_reads_kaggle_csv(kernel, tmp_path):
    """A train.csv in Kaggle's Digit Recognizer format (label,pixel0..pixel783): here 600 of scikit-learn's
    digits enlarged to 28x28, so no download is needed; read at 14 pixels (the resizing path)."""
    import pandas as pd
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    n = 600
    big = np.stack([np.asarray(Image.fromarray((d * 255 / 16).astype(np.uint8)).resize((28, 28), Image.BILINEAR))
                    for d in digits.images[:n]])
    df = pd.DataFrame(big.reshape(n, -1), columns=[f"pixel{i}" for i in range(784)])
    df.insert(0, "label", digits.target[:n])
    data = tmp_path / "mnist"
    data.mkdir()
    df.to_csv(data / "train.csv", index=False)
    results, _ = nbtools.run_notebook("mnist_cnn", tmp_path / "out", {
        "path": str(data), "size": 14, "weights": None, "epochs": 3, "batch_size": 64})
    assert results["source"] == "csv" and results["n_images"] == n
    assert results["test_accuracy"] >= 0.5
