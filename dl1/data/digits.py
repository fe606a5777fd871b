"""Handwritten digits for the MNIST notebooks: Kaggle's Digit Recognizer ``train.csv``, or scikit-learn's.

Kaggle's file (``kaggle competitions download -c digit-recognizer``) has a header line
``label,pixel0,...,pixel783`` and one digit per row: its label (0-9), then 28x28 grey pixels (0-255, row by
row). Its ``test.csv`` is the same without the label column. When there is no ``train.csv``,
``load_digits`` falls back to the 1,797 real 8x8 digits that ship with scikit-learn, enlarged to 28x28, so
the notebooks run on any machine without a download.

    images, labels, source = load_digits(path)     # (N, 28, 28) float32 0-255, (N,) int64, 'csv'|'sklearn'

A bad file gets one line naming it and the problem (``DataError``).
"""

import os

import numpy as np

from dl1.io.csvfile import read_csv_file
from dl1.io.errors import DataError

SIDE = 28
N_PIXELS = SIDE * SIDE
PIXEL_COLUMNS = [f"pixel{i}" for i in range(N_PIXELS)]


def read_digits_csv(csv_file, labelled=True):
    """``(images (N, 28, 28) uint8, labels (N,) int64)`` from a file in Kaggle's format.

    ``labelled=False`` reads ``test.csv`` (no label column); labels are then None.
    """
    import pandas as pd

    name = os.fspath(csv_file)
    df = read_csv_file(name, missing="file not found (Kaggle's digit-recognizer train.csv goes there)",
                       empty="the file is empty; want a header line label,pixel0..pixel783")
    columns = [str(c).strip() for c in df.columns]
    df.columns = columns
    if labelled and "label" not in columns:
        raise DataError(f"{name}: no 'label' column (header starts {','.join(columns[:3])}); want "
                        "label,pixel0..pixel783 as in Kaggle's digit-recognizer train.csv")
    pixels = [c for c in columns if c != "label"]
    if len(pixels) != N_PIXELS:
        raise DataError(f"{name}: {len(pixels)} pixel columns, want {N_PIXELS} (28x28 digits: "
                        "pixel0..pixel783)")
    if len(df) == 0:
        raise DataError(f"{name}: no rows after the header")
    not_numbers = [c for c in pixels if not pd.api.types.is_numeric_dtype(df[c].dtype)]
    if not_numbers:
        raise DataError(f"{name}: column {not_numbers[0]} holds values that are not numbers")
    values = df[pixels].to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        row = int(np.flatnonzero(np.isnan(values).any(axis=1))[0])
        raise DataError(f"{name}: row {row + 2} has missing pixel values")
    if values.min() < 0 or values.max() > 255:
        row = int(np.flatnonzero(((values < 0) | (values > 255)).any(axis=1))[0])
        raise DataError(f"{name}: row {row + 2} has pixel values outside 0-255")
    images = values.astype(np.uint8).reshape(-1, SIDE, SIDE)
    if not labelled:
        return images, None
    ok = pd.to_numeric(df["label"], errors="coerce")
    bad = np.flatnonzero(~ok.isin(range(10)).to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{name}: row {row + 2} has label {str(df['label'].iloc[row])!r}, want a digit 0-9")
    return images, ok.to_numpy().astype(np.int64)


def sklearn_digits(side=SIDE):
    """scikit-learn's 1,797 8x8 digits enlarged to ``side`` pixels (bilinear), as 0-255 uint8, and labels."""
    from PIL import Image
    from sklearn.datasets import load_digits as _sk

    digits = _sk()
    small = (digits.images * (255 / 16)).round().astype(np.uint8)
    if side == small.shape[1]:
        return small, digits.target.astype(np.int64)
    big = np.stack([np.asarray(Image.fromarray(d).resize((side, side), Image.BILINEAR)) for d in small])
    return big, digits.target.astype(np.int64)


def load_digits(path=None, side=SIDE):
    """``(images (N, side, side) float32 0-255, labels (N,) int64, source)``.

    ``path`` is a folder holding Kaggle's ``train.csv`` (or the file itself); when it is None or holds no
    ``train.csv``, scikit-learn's digits enlarged to 28x28 (``source='sklearn'``). Kaggle's digits are
    28 pixels; another ``side`` resizes them.
    """
    csv_file = None
    if path is not None:
        path = os.fspath(path)
        csv_file = path if path.endswith(".csv") else os.path.join(path, "train.csv")
    if csv_file and (os.path.exists(csv_file) or path.endswith(".csv")):
        images, labels = read_digits_csv(csv_file)
        source = "csv"
        if side != SIDE:
            from PIL import Image

            images = np.stack([np.asarray(Image.fromarray(d).resize((side, side), Image.BILINEAR))
                               for d in images])
    else:
        images, labels = sklearn_digits(side)
        source = "sklearn"
    return images.astype(np.float32), labels, source


def write_digits_csv(csv_file, images, labels=None):
    """Write ``images`` ((N, 28, 28), 0-255) and ``labels`` in Kaggle's format, atomically."""
    import pandas as pd

    from dl1.io.atomic import atomic_path

    images = np.asarray(images)
    if images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"digits must be {SIDE}x{SIDE}, not {images.shape[1:]}")
    df = pd.DataFrame(np.clip(np.round(images), 0, 255).astype(np.uint8).reshape(len(images), -1),
                      columns=PIXEL_COLUMNS)
    if labels is not None:
        df.insert(0, "label", np.asarray(labels, dtype=np.int64))
    with atomic_path(csv_file, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    return len(df)
