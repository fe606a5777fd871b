"""MNIST digits in the format of Kaggle's Digit Recognizer (``train.csv``: label, pixel0..pixel783).

``download``: Kaggle's own files need the ``kaggle`` CLI and the competition's rules accepted
(``dl1 kaggle download DIR --competition digit-recognizer``); without credentials this fetches the same MNIST digits from the
file Keras' ``mnist.load_data`` uses (checksummed) and writes them in Kaggle's format: ``train.csv`` (the
60,000 training digits with labels) and ``test.csv`` (the 10,000 test digits, pixels only, as Kaggle's).
``synthesize``: scikit-learn's 1,797 real 8x8 digits enlarged to 28x28, as a ``train.csv``.
"""

import os

import numpy as np

from dl1.data.datasets import Dataset, register

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def download(dest, verbose=True, urls=None):
    from dl1.data.digits import write_digits_csv
    from dl1.io.download import fetch

    dest = os.fspath(dest)
    train, test = os.path.join(dest, "train.csv"), os.path.join(dest, "test.csv")
    if not (os.path.exists(train) and os.path.exists(test)):
        npz = fetch(list(urls or [MNIST_URL]), os.path.join(dest, "mnist.npz"), sha256=MNIST_SHA256,
                    verbose=verbose, mirrors=not urls)
        with np.load(npz, allow_pickle=False) as f:
            if not os.path.exists(train):
                write_digits_csv(train, f["x_train"], f["y_train"])
            if not os.path.exists(test):
                write_digits_csv(test, f["x_test"])
    return {"train.csv": _rows(train), "test.csv": _rows(test)}


def _rows(csv_file):
    with open(csv_file, "rb") as f:
        return sum(1 for _ in f) - 1


def synthesize(dest, seed=0, n=None):
    """``dest/train.csv`` with ``n`` (default all 1,797) of scikit-learn's digits at 28x28, shuffled."""
    from dl1.data.digits import sklearn_digits, write_digits_csv

    images, labels = sklearn_digits()
    order = np.random.default_rng(seed).permutation(len(images))
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be at least 1, not {n}")
        order = order[:n]
    count = write_digits_csv(os.path.join(os.fspath(dest), "train.csv"), images[order], labels[order])
    return {"train.csv": count}


register(Dataset(
    name="digits",
    description="handwritten digits (MNIST, Kaggle Digit Recognizer format)",
    layout="train.csv (label,pixel0..pixel783), test.csv (pixel0..pixel783)",
    download=download,
    synthesize=synthesize,
    sources=[MNIST_URL, "kaggle competitions download -c digit-recognizer"],
))
