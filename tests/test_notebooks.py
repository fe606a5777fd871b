"""The lesson notebooks: committed clean, free of test plumbing, and executed top to bottom on small synthetic data.

Each notebook runs as a learner's papermill run does, on generated images at a small size, with the stand-in
VGG16 weights (ImageNet's cannot be downloaded here), for one to three epochs; any error fails the test. What
the tests check they read from the executed notebook: its outputs, or names read from its kernel after the
last cell (``nbtools.run_notebook(read=..., then=...)``).
"""

import os
import re
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
    assert set(NOTEBOOKS) | {"statefarm_sample", "statefarm", "lesson7", "lesson1_today"} <= present


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


PLUMBING = re.compile(r"results_json|results\[|sys\.path")


@pytest.mark.parametrize("path", nbtools.notebook_paths(), ids=os.path.basename)
def test_notebooks_hold_no_test_plumbing(path):
    """What a learner reads is the lesson: no results dict for the tests, no path juggling (the package is
    installed), and a parameters cell of values a learner sets."""
    nb = nbformat.read(path, as_version=4)
    found = [(i, m.group()) for i, c in enumerate(nb.cells) for m in PLUMBING.finditer(c.source)]
    assert not found, f"{os.path.basename(path)}: {found}"
    params = nbtools.parameters_cells(nb)
    assert len(params) <= 1
    if params:  # plain assignments of literal values, nothing else
        for node in __import__("ast").parse(params[0].source).body:
            assert type(node).__name__ == "Assign", (os.path.basename(path), params[0].source)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_parameters_are_the_courses(name):
    values = nbtools.parameters(name)
    missing = [p for p in nbtools.REQUIRED_PARAMETERS if p not in values]
    assert not missing, f"{name}: the parameters cell does not define {missing}"
    # the defaults are the course's: full data, full size (mnist: 28-pixel digits, no pretrained weights)
    assert values["path"].startswith("../data/") and values["batch_size"] >= 32
    if name == "mnist_cnn":
        assert values["weights"] is None and values["size"] == 28
    else:
        assert values["weights"] == "imagenet" and values["size"] >= 150
    course = {"lesson1": {"epochs": 1}, "dogs_cats_redux": {"epochs": 3, "lr": 0.01, "n_valid": 2000},
              "lesson2": {"epochs": None, "lm_epochs": 3, "finetune_epochs": (2, 3, 4), "lr": 0.1},
              "lesson3": {"epochs": None, "no_dropout_epochs": 8, "aug_epochs": (8, 3), "bn_epochs": 8,
                          "final_epochs": (1, 4, 4)},
              "cnn_from_scratch": {"epochs": 50}, "mnist_cnn": {"epochs": 10}}[name]
    assert {k: values[k] for k in course} == course


# ---- running them ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel(module_tmp, _isolated_keras_home):
    """A ``python3`` kernelspec running this Python, offline, with its own Keras home and feature cache."""
    yield from nbtools.offline_kernel(module_tmp.mktemp("jupyter"), _isolated_keras_home,
                                      DL1_CACHE_DIR=str(module_tmp.mktemp("dl1_cache")))


@pytest.fixture(scope="module")
def small_course(module_tmp):
    """64 synthetic images in the course layout (52 train, 12 valid, 16 test), for the notebooks that
    train through convolutional layers; copied by each test that writes into its data folder."""
    from dl1.data.sample import write_sample

    path = module_tmp.mktemp("small") / "dogscats"
    write_sample(str(path), n=64, layout="course", seed=1, max_side=160, progress=False)
    return path


@pytest.fixture(scope="module")
def standin32(small_course, module_tmp):
    """Stand-in VGG16 weights at 32 pixels: the notebooks that train through convolutional layers or run
    VGG16 on every epoch's augmented images are four times cheaper at 32 than at 64 pixels."""
    from dl1.models.standin import make_standin_weights

    path = module_tmp.mktemp("weights32") / "standin32.h5"
    make_standin_weights(str(path), str(small_course / "train"), size=32, n=48, seed=0, verbose=False)
    return path


@pytest.fixture(scope="module")
def lessons23_data(small_course, module_tmp):
    """One writable copy shared by lesson2 and lesson3, as on a real box: lesson3 starts from the weights
    lesson2 saves in models/."""
    path = module_tmp.mktemp("lessons23") / "dogscats"
    shutil.copytree(small_course, path)
    return path


def test_lesson1(kernel, course_data, standin_weights, tmp_path):
    run = nbtools.run_notebook("lesson1", tmp_path, {
        "path": str(course_data), "size": 64, "weights": str(standin_weights), "epochs": 1, "batch_size": 16},
        read=("max_diff", "(preds.argmax(1) == ref_preds.argmax(1)).all()", "history.history", "vgg.classes",
              "fpath", "model.count_params()"))
    # VGG16 written out layer by layer, loaded from the weights file, predicts exactly as Vgg16 does
    assert run["fpath"] == str(standin_weights)
    assert run["max_diff"] < 1e-5 and run["(preds.argmax(1) == ref_preds.argmax(1)).all()"]
    assert "largest difference between the two networks' probabilities" in run.text("ref_preds =")
    assert run["vgg.classes"] == ["cats", "dogs"] and len(run["history.history"]["val_accuracy"]) == 1
    assert run["model.count_params()"] > 14_000_000  # all of VGG16 at 64 pixels
    assert run.count("image/png") >= 2  # the two batches of four images


def test_dogs_cats_redux(kernel, kaggle_data, standin_weights, tmp_path):
    from dl1.kaggle.submission import validate_submission

    run = nbtools.run_notebook("dogs_cats_redux", tmp_path, {
        "path": str(kaggle_data), "size": 64, "weights": str(standin_weights), "epochs": 2, "batch_size": 16,
        "n_valid": 24, "n_sample_train": 16, "n_sample_valid": 8},
        read=("counts.to_dict()", "history['val_accuracy']", "cm.tolist()", "mx", "submission_file_name"))
    # the folder cells: 120 labelled images split 96/24, a sample copied, the 30 test images in test/unknown
    counts = run["counts.to_dict()"]
    assert counts["valid/cats"] + counts["valid/dogs"] == 24
    assert counts["train/cats"] + counts["train/dogs"] == 96
    assert counts["sample/train/cats"] + counts["sample/train/dogs"] == 16
    assert counts["sample/valid/cats"] + counts["sample/valid/dogs"] == 8
    assert counts["test/unknown"] == 30
    assert not list(kaggle_data.glob("train/*.jpg")) and not list(kaggle_data.glob("test/*.jpg"))
    assert all(f.name.startswith("cat.") for f in kaggle_data.glob("*/cats/*.jpg"))
    # one weights file per epoch
    assert {"ft0.h5", "ft1.h5"} <= set(os.listdir(kaggle_data / "results"))
    assert len(run["history['val_accuracy']"]) == 2
    assert np.asarray(run["cm.tolist()"]).sum() == 24
    # the submission CSVs (the notebook's and dl1 submit's) validate against the test folder
    test_dir = str(kaggle_data / "test")
    df = validate_submission(run["submission_file_name"], expected=test_dir)
    assert list(df.columns) == ["id", "label"] and len(df) == 30
    assert df["label"].between(1 - run["mx"] - 1e-6, run["mx"] + 1e-6).all()
    validate_submission(str(kaggle_data / "results" / "submission.csv"), expected=test_dir)


SELECTION_AGREES = """
import numpy as _np
from dl1.inspect.predictions import inspect_predictions as _inspect
_p = {probs}
_sel = _inspect(_np.stack([_p, 1 - _p], axis=1), {labels}, n_view=n_view)
def _same(mine, helpers):
    return bool(_np.allclose(_np.sort(_p[mine]), _np.sort(_p[helpers])))
selection_agrees = {{
    'n_correct': len(correct) == _sel['n_correct'], 'n_incorrect': len(incorrect) == _sel['n_incorrect'],
    'correct_cats': _same(correct_cats[most_correct_cats], _sel['confident_correct'][0]),
    'correct_dogs': _same(correct_dogs[most_correct_dogs], _sel['confident_correct'][1]),
    'incorrect_cats': _same(incorrect_cats[most_incorrect_cats], _sel['confident_wrong'][0]),
    'incorrect_dogs': _same(incorrect_dogs[most_incorrect_dogs], _sel['confident_wrong'][1]),
    'uncertain': _same(most_uncertain[:n_view], _sel['uncertain']),
}}
selection_sizes = [len(most_correct_cats), len(most_correct_dogs), len(most_incorrect_cats),
                   len(most_incorrect_dogs)]
"""


def test_redux_selection_and_folders_agree_with_the_helpers(kernel, standin_weights, tmp_path):
    """The numpy cells pick the images inspect_predictions picks, and the folder cells sort the images as
    prepare_data does, on the same data (40 images: the split is scaled to the data, with a note)."""
    from dl1.data.prepare import prepare_data, split_sizes
    from dl1.data.sample import write_sample

    data, twin = tmp_path / "redux", tmp_path / "twin"
    write_sample(str(data), n=40, n_test=10, seed=5, max_side=120, progress=False)
    shutil.copytree(data, twin)
    run = nbtools.run_notebook("dogs_cats_redux", tmp_path / "out", {
        "path": str(data), "size": 64, "weights": str(standin_weights), "epochs": 1, "batch_size": 8},
        then=SELECTION_AGREES.format(probs="our_predictions", labels="expected_labels"),
        read=("selection_agrees", "selection_sizes", "counts.to_dict()", "(n_valid, n_sample_train, n_sample_valid)"))
    assert all(run["selection_agrees"].values()), run["selection_agrees"]
    assert sum(run["selection_sizes"]) > 0
    assert "only 40 labelled images, fewer than the split asks for" in run.text()
    sizes = split_sizes(str(twin))
    assert run["(n_valid, n_sample_train, n_sample_valid)"] == (sizes["valid"], sizes["sample_train"],
                                                              sizes["sample_valid"]) == (8, 10, 4)
    report = prepare_data(str(twin), progress=False, **sizes)

    def per_split(counts):  # images per folder, the classes added up (the random picks differ per class)
        totals = {}
        for folder, n in counts.items():
            split = folder.rsplit("/", 1)[0] if folder.endswith(("/cats", "/dogs")) else folder
            totals[split] = totals.get(split, 0) + n
        return totals

    assert per_split(run["counts.to_dict()"]) == \
        {k: v for k, v in per_split(report.counts).items() if k in per_split(run["counts.to_dict()"])} == \
        {"train": 32, "valid": 8, "sample/train": 10, "sample/valid": 4, "test/unknown": 10}

    def where(root):  # image name -> class folder, over train and valid; test names
        return ({f.name: f.parent.name for f in root.glob("[tv]*/*/*.jpg")},
                sorted(f.name for f in root.glob("test/unknown/*.jpg")))

    assert where(data) == where(twin)


def test_lesson2(kernel, lessons23_data, standin32, tmp_path):
    # after the last cell: the course's K.set_value(opt.lr, ...) really changes the step (no recompile)
    then = """
def _step():
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    model.fit(trn_data[:batch_size], trn_labels[:batch_size], batch_size=batch_size, epochs=1, shuffle=False,
              verbose=0)
    return float(np.mean([np.abs(keras.ops.convert_to_numpy(w) - b).mean()
                          for w, b in zip(model.trainable_weights, before)]))
_lr = float(K.get_value(opt.lr))   # the last step's rate, lr / 100
_big = _step()
K.set_value(opt.lr, _lr / 10)
lr_ratio = _big / _step()
""" + SELECTION_AGREES.format(probs="lm.predict_proba(val_features, batch_size=batch_size)[:, 0]",
                               labels="val_classes")
    run = nbtools.run_notebook("lesson2", tmp_path, {
        "path": str(lessons23_data), "size": 32, "weights": str(standin32), "epochs": 1, "batch_size": 16,
        "lr": 0.001}, then=then,
        read=("w.ravel().tolist()", "float(b[0])", "float(dense_change)", "float(conv_change)", "lr_ratio",
              "selection_agrees", "lm.count_params()"))
    # the linear model recovers y = 2*x1 + 3*x2 + 1
    np.testing.assert_allclose(run["w.ravel().tolist()"], [2.0, 3.0], atol=0.05)
    assert abs(run["float(b[0])"] - 1.0) < 0.05
    assert run["lm.count_params()"] == 2002
    # unfreezing takes effect: the dense layer moved; the last conv layer moved once unfrozen (the frozen
    # conv layer's change is printed as 0)
    assert run["float(dense_change)"] > 0 and run["float(conv_change)"] > 0
    assert re.search(r"block5_conv3 \(frozen\) by 0\.00e\+00", run.text())
    # lowering the learning rate tenfold with K.set_value (no compile) makes the steps much smaller
    assert run["lr_ratio"] > 3
    assert all(run["selection_agrees"].values()), run["selection_agrees"]
    assert (lessons23_data / "models" / "finetune3.h5").exists()


def test_lesson3(kernel, lessons23_data, standin32, tmp_path):
    lesson2_done = (lessons23_data / "models" / "finetune3.h5").exists()
    run = nbtools.run_notebook("lesson3", tmp_path, {
        "path": str(lessons23_data), "size": 32, "weights": str(standin32), "epochs": 1, "batch_size": 16},
        read=("trn_features.shape", "float(K.get_value(final_model.optimizer.lr))", "history.history",
              "float(np.abs(moving_mean - bn_before[2]).mean() + np.abs(moving_var - bn_before[3]).mean())"))
    assert ("loaded lesson 2's" in run.text()) == lesson2_done
    # 52 training images -> the last convolution's output, 2x2x512 at 32 pixels
    assert run["trn_features.shape"] == (52, 2, 2, 512)
    assert run["float(K.get_value(final_model.optimizer.lr))"] == pytest.approx(1e-4)
    assert len(run["history.history"]["val_accuracy"]) == 1
    # the batch-normalised head's BatchNormalization layers learned statistics of our images
    assert run["float(np.abs(moving_mean - bn_before[2]).mean() + np.abs(moving_var - bn_before[3]).mean())"] > 1e-4
    for name in ("no_dropout.h5", "aug1.h5", "bn.h5", "final1.h5", "final2.h5", "final3.h5"):
        assert (lessons23_data / "models" / name).exists(), name


def test_cnn_from_scratch(kernel, tiny_sets, tmp_path):
    """On what a user tries first (40 training images, weights=None): the notebook needs no pretrained weights
    to show its mechanics (this is also its run on 40 images, see below)."""
    data = tmp_path / "dogscats"
    shutil.copytree(tiny_sets / "course", data)
    run = nbtools.run_notebook("cnn_from_scratch", tmp_path / "out", {
        "path": str(data), "size": 32, "weights": None, "epochs": 3, "batch_size": 16},
        read=("float(np.abs(keras_dx - dx).max() / np.abs(dx).max())", "len(history.losses)",
              "bottleneck_features_train.shape", "float(scratch_acc)", "float(acc)"))
    # a Conv2D layer with the Sobel kernel computes what scipy's convolution does
    assert run["float(np.abs(keras_dx - dx).max() / np.abs(dx).max())"] < 1e-5
    assert 1 <= run["len(history.losses)"] <= 3
    # VGG16 without its top at 32 pixels: 1x1x512 per image
    assert run["bottleneck_features_train.shape"] == (40, 1, 1, 512)
    assert 0 <= run["float(scratch_acc)"] <= 1 and 0 <= run["float(acc)"] <= 1
    assert (data / "models" / "bottleneck_fc_model.h5").exists()


@pytest.fixture(scope="module")
def tiny_sets(module_tmp):
    """What a user tries first: 40 training images (course layout: 40 train, 10 valid; Kaggle layout: 40
    labelled, 10 test)."""
    from dl1.data.sample import write_sample

    root = module_tmp.mktemp("tiny")
    write_sample(str(root / "course"), n=50, layout="course", seed=2, max_side=120, progress=False)
    write_sample(str(root / "kaggle"), n=40, n_test=10, seed=2, max_side=120, progress=False)
    return root


@pytest.mark.parametrize("name", ["lesson1", "lesson2", "lesson3"])
def test_image_notebooks_run_with_random_weights_on_40_images(kernel, tiny_sets, tmp_path, name):
    """The course's defaults except the data (40 images), the size and weights=None: nothing divides by a
    zero step, no plot of an empty selection stops the run. (dogs_cats_redux and cnn_from_scratch: their own
    tests, above, run on 40 images.)"""
    data = tmp_path / "data"
    shutil.copytree(tiny_sets / "course", data)
    nbtools.run_notebook(name, tmp_path / "out", {
        "path": str(data), "size": 32, "weights": None, "epochs": 1, "batch_size": 8})


MNIST_MIN_TEST_ACCURACY = 0.9
TEST_SPLIT = "(len(x_train), len(x_val), len(x_test))"


def test_mnist_cnn_on_sklearn_digits(kernel, tmp_path):
    """No train.csv in path: scikit-learn's 1,797 digits, at their own 8x8 pixels, and the notebook says so."""
    data = tmp_path / "mnist"
    data.mkdir()
    run = nbtools.run_notebook("mnist_cnn", tmp_path / "out", {
        "path": str(data), "size": 8, "weights": None, "epochs": 6, "batch_size": 64},
        read=("source", "len(images)", TEST_SPLIT, "keras.backend.backend()", "device",
              "torch.cuda.is_available()", "float(test_acc)"))
    assert run["source"] == "sklearn" and run["len(images)"] == 1797
    assert f"no {data}/train.csv, so no MNIST: using the 1,797 small digits" in run.text()
    assert sum(run[TEST_SPLIT]) == 1797 and min(run[TEST_SPLIT]) > 200
    assert run["keras.backend.backend()"] == "torch"
    assert run["device"].startswith("cuda" if run["torch.cuda.is_available()"] else "cpu")
    assert run["float(test_acc)"] >= MNIST_MIN_TEST_ACCURACY
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
    run = nbtools.run_notebook("mnist_cnn", tmp_path / "out", {
        "path": str(data), "size": 14, "weights": None, "epochs": 3, "batch_size": 64},
        read=("source", "len(images)", "float(test_acc)"))
    assert run["source"] == "csv" and run["len(images)"] == n
    assert f"reading MNIST from {data}/train.csv" in run.text()
    assert run["float(test_acc)"] >= 0.5
