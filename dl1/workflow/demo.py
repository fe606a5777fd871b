"""``demo``: the whole main job on a built-in synthetic sample, so that it runs on any fresh machine.

sample -> prepare -> finetune -> predict -> inspect -> submit, with the ImageNet weights when they are in
the Keras cache, else with stand-in weights (``dl1.models.standin``) and a one-line notice.
"""

import os

import numpy as np

from dl1.data.sample import write_sample
from dl1.io.arrays import load_array
from dl1.models.config import RunConfig, at_least, checked
from dl1.models.weights import have_imagenet_weights
from dl1.workflow import steps
from dl1.workflow.results import Results

DEFAULT_DIR = os.path.join("data", "demo")
MIN_IMAGES = 20  # a few of each class in train/, valid/ and sample/


def demo(directory=DEFAULT_DIR, n=300, epochs=5, batch_size=32, size=64, seed=0,
         stand_in=False):
    """Run every step on ``n`` synthetic labelled images in ``directory``; returns the results folder."""
    checked("--n", n, at_least(MIN_IMAGES))
    RunConfig(epochs=epochs, batch_size=batch_size, size=size, seed=seed)  # the same checks as finetune's
    print(f"== 1/6 A synthetic Kaggle-style data set in {directory}")
    if os.path.isdir(os.path.join(directory, "train")):
        print(f"   (reusing the one already there; delete {directory} to start afresh)")
    else:
        write_sample(directory, n=n, seed=seed)
    print("== 2/6 Preparing it (class folders, validation split, sample)")
    steps.prepare(directory, valid=max(2, n // 5), sample_train=min(40, n // 3), sample_valid=min(10, n // 10),
                  seed=seed)
    results = Results(directory)
    if have_imagenet_weights() and not stand_in:
        weights, size = "imagenet", 224
        print("== 3/6 ImageNet weights found: fine-tuning VGG16 at 224px")
    else:
        from dl1.models.standin import make_standin_weights  # imports Keras: only when it is needed

        weights = results.file(f"standin-vgg16-{size}px.h5")
        print("== 3/6 Notice: no ImageNet weights on this machine (offline?), so the demo uses stand-in "
              "weights (random VGG16 scaled to the data, see dl1/models/standin.py); expect lower accuracy")
        if not os.path.exists(weights):
            make_standin_weights(weights, os.path.join(directory, "train"), size=size, seed=seed)
    steps.finetune(directory, weights=weights, size=size, epochs=epochs, batch_size=batch_size, seed=seed,
                   verbose=2)
    print("== 4/6 Predicting the test set")
    steps.predict(directory, batch_size=batch_size)
    print("== 5/6 Inspecting the validation results")
    steps.inspect(directory, seed=seed)
    print("== 6/6 Writing the Kaggle submission")
    steps.submit(directory, clip="0.95")
    _demo_picture(directory, results)
    return results


def _demo_picture(directory, results):
    """A PNG of test images with their predicted class, and the score against the synthetic truth."""
    from dl1.inspect.predictions import plots_idx
    from dl1.kaggle.submission import parse_id

    classes = results.read_model().classes
    preds = load_array(results.file(Results.TEST_PREDS))
    filenames = load_array(results.file(Results.TEST_FILENAMES))
    idx = np.arange(min(8, len(filenames)))
    titles = [f"{classes[int(preds[i].argmax())]} {preds[i].max():.2f}" for i in idx]
    plots_idx(idx, list(filenames), os.path.join(directory, "test"), titles=titles,
              fname=results.file(Results.DEMO_PNG), figsize=(16, 5))
    truth = os.path.join(directory, "test_truth.csv")
    score = ""
    if os.path.exists(truth):
        import pandas as pd

        t = pd.read_csv(truth).set_index("id")["label"]
        pred = {parse_id(f): int(p.argmax()) for f, p in zip(filenames, preds, strict=True)}
        acc = np.mean([pred[i] == t[i] for i in t.index if i in pred])
        score = f"; accuracy on the synthetic test set {acc:.3f}"
    print(f"Done{score}. Results in {results.path}: submission.csv, demo_predictions.png, inspect_*.png, "
          "confusion_matrix.png")
