"""Kaggle submission files: from test-set probabilities to a CSV that is checked before it is uploaded.

- ``binary_submission``: ``id,label`` rows (Dogs vs Cats Redux: label = P(dog)), ids parsed from the
  file names (not by slicing fixed offsets), sorted by id, probabilities clipped.
- ``multiclass_submission``: one column per class (State Farm: ``img,c0,...,c9``).
- ``validate_submission``: refuses wrong row counts, missing or duplicate ids, NaN and values outside
  [0, 1], naming what is wrong.
- ``log_loss_score`` and ``best_clip``: the local score and the clip value that minimises it.
"""

import os
import re

import numpy as np

from dl1.data.images import list_images
from dl1.io.atomic import atomic_path
from dl1.io.errors import SubmissionError

DEFAULT_CLIP = (0.05, 0.95)


def do_clip(arr, mx):
    """Clip probabilities to at most ``mx`` and renormalise each row to sum to 1 (2017 ``utils.do_clip``).

    With C classes the floor is ``(1-mx)/(C-1)``, so a row sure of one class becomes ``mx`` there and an
    equal share of ``1-mx`` elsewhere (two classes: [1-mx, mx], as in 2017; lesson 7 used ``/7`` for its 8
    fish, State Farm ``/9`` for its 10 poses). A 1-D array (one probability per image) is clipped to
    [1-mx, mx].
    """
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        return np.clip(arr, 1 - mx, mx)
    floor = (1 - mx) / max(arr.shape[-1] - 1, 1)
    clipped = np.clip(arr, floor, mx)
    return clipped / clipped.sum(axis=-1, keepdims=True)


def parse_id(filename):
    """The Kaggle id of a test file: ``unknown/9292.jpg`` -> 9292, ``test/img_81.jpg`` -> 'img_81.jpg'.

    Numeric stems become ints (so they sort numerically); other names are kept whole, extension
    included, as State Farm's ``img`` column wanted.
    """
    base = os.path.basename(os.fspath(filename).replace("\\", "/"))
    stem, ext = os.path.splitext(base)
    if re.fullmatch(r"\d+", stem):
        return int(stem)
    if not stem:
        raise SubmissionError(f"cannot take an id from file name {filename!r}")
    return base


def _clip_bounds(clip):
    if clip is None or clip is False:
        return None
    if np.isscalar(clip):
        lo, hi = 1 - float(clip), float(clip)
    else:
        lo, hi = (float(c) for c in clip)
    if not 0 <= lo < hi <= 1:
        raise SubmissionError(f"clip must be (low, high) with 0 <= low < high <= 1, not {clip!r}")
    return lo, hi


def binary_submission(probs, filenames, clip=DEFAULT_CLIP, column=1, id_header="id", label_header="label"):
    """A pandas DataFrame ``id,label`` sorted by id; ``label`` = ``probs[:, column]`` clipped.

    ``probs`` may also be 1-D (already the probability of the positive class). ``clip`` is
    (low, high), a single high value (low = 1 - high), or None.
    """
    import pandas as pd

    probs = np.asarray(probs, dtype=np.float64)
    p = probs if probs.ndim == 1 else probs[:, column]
    if len(p) != len(filenames):
        raise SubmissionError(f"{len(p)} predictions but {len(filenames)} file names")
    bounds = _clip_bounds(clip)
    if bounds:
        p = np.clip(p, *bounds)
    df = pd.DataFrame({id_header: [parse_id(f) for f in filenames], label_header: p})
    return df.sort_values(id_header, kind="stable").reset_index(drop=True)


def multiclass_submission(probs, filenames, classes, clip=None, id_header="img"):
    """A DataFrame with an id column and one probability column per class (in ``classes`` order).

    ``clip``: None, or the ``mx`` of ``do_clip`` (e.g. 0.93 as in the State Farm notebook).
    """
    import pandas as pd

    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise SubmissionError(f"predictions of shape {probs.shape} do not match {len(classes)} classes")
    if len(probs) != len(filenames):
        raise SubmissionError(f"{len(probs)} predictions but {len(filenames)} file names")
    if clip:
        probs = do_clip(probs, float(clip))
    df = pd.DataFrame(probs, columns=list(classes))
    df.insert(0, id_header, [parse_id(f) for f in filenames])
    return df.sort_values(id_header, kind="stable").reset_index(drop=True)


def expected_ids(test_dir):
    """The ids Kaggle expects: one per image in ``test_dir`` (with or without its ``unknown/`` level)."""
    test_dir = os.fspath(test_dir)
    if not os.path.isdir(test_dir):
        raise SubmissionError(f"test folder not found: {test_dir}")
    images, _ = list_images(test_dir)
    if not images:
        raise SubmissionError(f"no test images in {test_dir}")
    return [parse_id(f) for f in images]


def _read(path_or_df):
    import pandas as pd

    if isinstance(path_or_df, pd.DataFrame):
        return path_or_df, "submission"
    path = os.fspath(path_or_df)
    if not os.path.isfile(path):
        raise SubmissionError(f"submission file not found: {path}")
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"  # gzip whatever the name (the course wrote subm.gz)
    try:
        return pd.read_csv(path, compression="gzip" if gzipped else None), path
    except (ValueError, OSError, EOFError) as e:  # EmptyDataError/ParserError are ValueErrors
        raise SubmissionError(f"{path} is not a readable CSV file ({str(e).splitlines()[0]})") from None


def validate_submission(path_or_df, expected=None, id_header=None):
    """Check a submission; raise SubmissionError saying what is wrong, else return the DataFrame.

    ``expected``: the ids it must contain exactly once each (a list), or the test folder to read them
    from. Checked: at least an id column and one value column, row count, missing/duplicate/unexpected
    ids, NaN or non-numeric values, values outside [0, 1].
    """
    import pandas as pd

    df, name = _read(path_or_df)
    if df.shape[1] < 2:
        raise SubmissionError(f"{name}: needs an id column and at least one probability column, "
                              f"found columns {list(df.columns)}")
    id_col = id_header or df.columns[0]
    if id_col not in df.columns:
        raise SubmissionError(f"{name}: no {id_col!r} column (columns: {list(df.columns)})")
    values = df.drop(columns=[id_col])
    numeric = values.apply(pd.to_numeric, errors="coerce")
    bad_type = numeric.isna() & values.notna()
    if bad_type.any().any():
        row = int(np.flatnonzero(bad_type.any(axis=1).to_numpy())[0])
        raise SubmissionError(f"{name}: non-numeric value in row {row + 2} (id {df[id_col].iloc[row]})")
    if numeric.isna().any().any():
        row = int(np.flatnonzero(numeric.isna().any(axis=1).to_numpy())[0])
        raise SubmissionError(f"{name}: missing value (NaN) in row {row + 2} (id {df[id_col].iloc[row]})")
    arr = numeric.to_numpy(dtype=np.float64)
    outside = (arr < 0) | (arr > 1)
    if outside.any():
        row = int(np.flatnonzero(outside.any(axis=1))[0])
        raise SubmissionError(f"{name}: value outside [0, 1] in row {row + 2} "
                              f"(id {df[id_col].iloc[row]}: {arr[row][outside[row]][0]})")
    ids = df[id_col].map(lambda v: v if isinstance(v, str) and not v.isdigit() else int(v))
    dup = ids[ids.duplicated()]
    if len(dup):
        raise SubmissionError(f"{name}: duplicate id {dup.iloc[0]} ({len(dup)} duplicates)")
    if expected is not None:
        if isinstance(expected, (str, os.PathLike)):
            expected = expected_ids(expected)
        want, have = set(expected), set(ids)
        if len(df) != len(want):
            detail = _id_diff(want, have)
            raise SubmissionError(f"{name}: {len(df)} rows but the test set has {len(want)} images{detail}")
        if want != have:
            raise SubmissionError(f"{name}: ids do not match the test set{_id_diff(want, have)}")
    return df


def _id_diff(want, have):
    missing, extra = sorted(want - have, key=str), sorted(have - want, key=str)
    parts = []
    if missing:
        parts.append(f"missing ids {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if extra:
        parts.append(f"unexpected ids {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    return " (" + "; ".join(parts) + ")" if parts else ""


def write_submission(df, path, expected=None, float_format="%.5f", compress=None):
    """Validate ``df`` and write it as CSV, atomically; returns the path written.

    Gzipped (Kaggle takes ``.csv.gz`` files, a tenth of the size for 80,000 State Farm rows) when ``path``
    ends in ``.gz`` or ``compress=True`` (which adds ``.gz`` to a name without it). The written file is read
    back and validated like any other."""
    validate_submission(df, expected)
    path = os.fspath(path)
    if compress and not path.endswith(".gz"):
        path += ".gz"
    compression = "gzip" if path.endswith(".gz") and compress is not False else None
    with atomic_path(path, suffix=".csv.gz" if compression else ".csv") as tmp:
        df.to_csv(tmp, index=False, float_format=float_format, compression=compression)
        validate_submission(tmp, expected)
    return path


def log_loss_score(y_true, probs, clip=None):
    """Kaggle's log loss of ``probs`` (N, C) or P(positive) (N,) for integer labels ``y_true``,
    after clipping (``clip`` as in ``binary_submission`` for 1-D, or ``do_clip``'s mx for 2-D)."""
    from sklearn.metrics import log_loss

    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true)
    if probs.ndim == 1:
        bounds = _clip_bounds(clip)
        p = np.clip(probs, *bounds) if bounds else probs
        probs = np.stack([1 - p, p], axis=1)
    elif clip:
        probs = do_clip(probs, float(clip))
    probs = np.clip(probs, 1e-15, 1 - 1e-15)
    probs = probs / probs.sum(axis=1, keepdims=True)
    return float(log_loss(y_true, probs, labels=np.arange(probs.shape[1])))


def best_clip(y_true, probs, candidates=None):
    """The clip value (``mx``: clip to [1-mx, mx]) that minimises the log loss on a labelled set.

    Returns ``(best_mx, {mx: loss})``; ``candidates`` default to 0.80 ... 0.999.
    """
    if candidates is None:
        candidates = [0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 0.999]
    scores = {float(mx): log_loss_score(y_true, probs, clip=mx) for mx in candidates}
    return min(scores, key=scores.get), scores
