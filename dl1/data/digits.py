"""Handwritten digits for the MNIST notebooks: Kaggle's Digit Recognizer ``train.csv``, or scikit-learn's.

Kaggle's file (``kaggle competitions download -c digit-recognizer``) has a header line
``label,pixel0,...,pixel783`` and one digit per row: its label (0-9), then 28x28 grey pixels (whole numbers
0-255, row by row). Its ``test.csv`` is the same without the label column. Columns are found by name, so a
file with its pixel columns in another order is read in pixel order; a header without exactly
``pixel0..pixel783`` is refused. ``load_digits(None)`` (no path) uses the 1,797 real 8x8 digits that ship
with scikit-learn, enlarged to 28x28, and says so in one line, so the notebooks run on any machine without a
download. A path that was given is read or refused: one that does not exist, a folder without ``train.csv``
or a file that is not a readable digits CSV is an error naming it, never a reason to load other digits.

    images, labels, source = load_digits(path)     # (N, 28, 28) float32 0-255, (N,) int64, 'csv'|'sklearn'

A bad file gets one line naming it, the line and the problem (``DataError``). ``train.csv.zip`` and
``train.csv.gz`` (Kaggle's downloads) are read as they are.
"""

import os

import numpy as np

from dl1.io.checks import whole
from dl1.io.csvfile import read_csv_file
from dl1.io.errors import DataError
from dl1.io.log import warn

SIDE = 28
N_PIXELS = SIDE * SIDE
PIXEL_COLUMNS = [f"pixel{i}" for i in range(N_PIXELS)]
CSV_NAMES = ("train.csv", "train.csv.zip", "train.csv.gz")


def _where(lines, mask):
    idx = np.flatnonzero(mask)
    more = f" (and {len(idx) - 1} more)" if len(idx) > 1 else ""
    return f"line {int(lines[idx[0]])}{more}", int(idx[0])


def read_digits_csv(csv_file, labelled=True):
    """``(images (N, 28, 28) uint8, labels (N,) int64)`` from a file in Kaggle's format.

    ``labelled=False`` reads ``test.csv`` (no label column); labels are then None.
    """
    import pandas as pd

    name = os.fspath(csv_file)
    df = read_csv_file(name, missing="file not found (Kaggle's digit-recognizer train.csv goes there)",
                       empty="the file is empty; want a header line label,pixel0..pixel783",
                       skip_blank_lines=False)
    columns = [str(c).strip() for c in df.columns]
    df.columns = columns
    if labelled and "label" not in columns:
        raise DataError(f"{name}: no 'label' column (header starts {','.join(columns[:3])}); want "
                        "label,pixel0..pixel783 as in Kaggle's digit-recognizer train.csv")
    pixels = [c for c in columns if c != "label"]
    if len(pixels) != N_PIXELS:
        raise DataError(f"{name}: {len(pixels)} pixel columns, want {N_PIXELS} (28x28 digits: "
                        "pixel0..pixel783)")
    if sorted(pixels) != sorted(PIXEL_COLUMNS):
        odd = next(c for c in pixels if c not in set(PIXEL_COLUMNS) or pixels.count(c) > 1)
        raise DataError(f"{name}: column {odd!r} is not one of pixel0..pixel783 (or is there twice)")
    lines = np.arange(2, len(df) + 2)
    blank = df.isna().all(axis=1).to_numpy()
    df, lines = df[~blank], lines[~blank]  # empty lines hold nothing
    if len(df) == 0:
        raise DataError(f"{name}: no rows after the header")
    not_numbers = [c for c in PIXEL_COLUMNS if not pd.api.types.is_numeric_dtype(df[c].dtype)]
    if not_numbers:
        raise DataError(f"{name}: column {not_numbers[0]} holds values that are not numbers")
    values = df[PIXEL_COLUMNS].to_numpy(dtype=np.float64)  # by name: pixel order whatever the file's
    if np.isnan(values).any():
        where, _ = _where(lines, np.isnan(values).any(axis=1))
        raise DataError(f"{name}: {where} has missing pixel values")
    outside = ((values < 0) | (values > 255)).any(axis=1)
    if outside.any():
        where, _ = _where(lines, outside)
        raise DataError(f"{name}: {where} has pixel values outside 0-255")
    fractional = (values != np.round(values)).any(axis=1)
    if fractional.any():
        where, _ = _where(lines, fractional)
        raise DataError(f"{name}: {where} has pixel values that are not whole numbers")
    images = values.astype(np.uint8).reshape(-1, SIDE, SIDE)
    if not labelled:
        return images, None
    raw = df["label"].astype(str).str.strip()
    ok = raw.str.fullmatch(r"[0-9]|[0-9]\.0").to_numpy()
    if not ok.all():
        where, first = _where(lines, ~ok)
        raise DataError(f"{name}: {where} has label {raw.iloc[first]!r}, want a digit 0-9")
    return images, raw.astype(float).astype(np.int64).to_numpy()


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

    ``path``: Kaggle's ``train.csv`` (or ``train.csv.zip``/``.gz``), or the folder holding it; a folder
    without one is an error. None gives scikit-learn's digits enlarged to ``side`` (``source='sklearn'``),
    with a line that says so. Kaggle's digits are 28 pixels; another ``side`` resizes them.
    """
    side = whole("side", side, minimum=2, maximum=1024)
    csv_file = _csv_file(path)
    if csv_file is not None:
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


def _csv_file(path):
    """The digits file that ``path`` names, or None for scikit-learn's digits when ``path`` is None (said in
    one line)."""
    if path is None:
        warn("no path given: scikit-learn's 1,797 8x8 digits enlarged, not MNIST (give the folder of Kaggle's "
             "train.csv, or run dl1 download digits DIR)")
        return None
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such file or folder (want Kaggle's digit-recognizer train.csv or its "
                        "folder; load_digits() without a path uses scikit-learn's digits)")
    for name in CSV_NAMES:
        if os.path.isfile(os.path.join(path, name)):
            return os.path.join(path, name)
    raise DataError(f"{path} holds no train.csv (nor train.csv.zip/.gz): put Kaggle's digit-recognizer train.csv "
                    f"there or run dl1 download digits {path}; load_digits(None) uses scikit-learn's digits")


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
