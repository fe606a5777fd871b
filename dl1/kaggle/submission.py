"""Kaggle submission files: from test-set probabilities to a CSV that is checked before it is uploaded.

- ``binary_submission``: ``id,label`` rows (Dogs vs Cats Redux: label = P(dog)), ids parsed from the
  file names (not by slicing fixed offsets), sorted by id, probabilities clipped.
- ``multiclass_submission``: one column per class (State Farm: ``img,c0,...,c9``).
- ``validate_submission``: accepts what the competition's sample submission accepts and nothing else, and
  names what is wrong (with the line) otherwise: the header (the sample submission's, found beside the test
  folder, or the known competition's: ``id,label`` for Dogs vs Cats Redux), ids (whole numbers where the
  competition's are: ``1.7`` is refused, not read as 1; each test image exactly once), probabilities
  (finite numbers in [0, 1]: ``True``, ``nan``, a 400-digit number are refused), one value per column on
  every line, UTF-8 text, plain, gzipped or zipped (damaged compressed data is refused, not a crash).
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


def multiclass_submission(probs, filenames, classes, clip=None, id_header=None, expected=None):
    """A DataFrame with an id column and one probability column per class (in ``classes`` order).

    ``clip``: None, or the ``mx`` of ``do_clip`` (e.g. 0.93 as in the State Farm notebook). ``id_header``:
    None names the id column as the competition does (``id_column``: Fisheries ``image``, State Farm ``img``).
    """
    id_header = id_header or id_column(classes, expected)
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


# The sample submissions of the course's competitions: (id column, value columns, id kind).
FORMATS = {
    "dogs-vs-cats-redux-kernels-edition": ("id", ("label",), "int"),
    "state-farm-distracted-driver-detection": ("img", tuple(f"c{i}" for i in range(10)), "name"),
    "the-nature-conservancy-fisheries-monitoring": ("image", ("ALB", "BET", "DOL", "LAG", "NoF", "OTHER", "SHARK",
                                                              "YFT"), "name"),
}
TITLES = {"dogs-vs-cats-redux-kernels-edition": "Dogs vs Cats Redux",
          "state-farm-distracted-driver-detection": "State Farm", "the-nature-conservancy-fisheries-monitoring":
          "Fisheries"}
MAX_ID_DIGITS = 18
SAMPLE_NAMES = ("sample_submission.csv", "sample_submission.csv.gz", "sample_submission.csv.zip")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _decompressed(path):
    """The bytes of ``path``, gunzipped or unzipped (Kaggle takes .gz and .zip) when it is compressed."""
    import gzip
    import zipfile
    import zlib

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SubmissionError(f"{path}: cannot read it ({e.strerror})") from None
    if data[:2] == b"\x1f\x8b":  # gzip whatever the name (the course wrote subm.gz)
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise SubmissionError(f"{path}: damaged gzip data ({e}); write the file again") from None
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if not n.endswith("/")]
                if len(names) != 1:
                    raise SubmissionError(f"{path}: a zip file must hold one CSV file, this one holds {len(names)}")
                return z.read(names[0])
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile, RuntimeError) as e:
            raise SubmissionError(f"{path}: damaged zip data ({e}); write the file again") from None
    return data


def _rows(path):
    """``[(line number, fields)]`` of a submission file, header first."""
    import csv
    import io

    data = _decompressed(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SubmissionError(f"{path} is not a readable CSV file (not UTF-8 text: byte {e.start})") from None
    if not text.strip():
        raise SubmissionError(f"{path} is not a readable CSV file (the file is empty)")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    try:
        for fields in reader:
            rows.append((reader.line_num, fields))
    except csv.Error as e:
        raise SubmissionError(f"{path} is not a readable CSV file (line {reader.line_num}: {e})") from None
    while rows and not rows[-1][1]:
        rows.pop()  # a blank line at the end
    return rows


def _sample_format(expected):
    """``(id column, value columns, id kind, where)`` of the competition of the test folder ``expected``: its
    ``sample_submission.csv`` (beside or above the folder), else the competition ``dl1 kaggle download``
    remembered there; None when neither is known."""
    if not isinstance(expected, (str, os.PathLike)):
        return None
    folder = os.path.abspath(os.fspath(expected))
    for data in (os.path.dirname(folder), folder):
        for name in SAMPLE_NAMES:
            sample = os.path.join(data, name)
            if os.path.isfile(sample):
                try:
                    rows = _rows(sample)
                except SubmissionError:
                    continue
                if rows and len(rows[0][1]) >= 2:
                    header = rows[0][1]
                    kind = "int" if len(rows) > 1 and rows[1][1] and rows[1][1][0].isdigit() else "name"
                    return header[0], tuple(header[1:]), kind, f"the header of {sample}"
    from dl1.kaggle.cli import KaggleError, remembered_competition

    try:
        slug = remembered_competition(os.path.dirname(folder))
    except KaggleError:  # a damaged .dl1-kaggle.json: no competition known
        slug = None
    if isinstance(slug, str) and slug in FORMATS:
        return (*FORMATS[slug], f"the sample submission of {slug}")
    return None


def id_column(classes, expected=None, default="img"):
    """The id column the competition's sample submission has: that of the test folder ``expected`` (its
    ``sample_submission.csv`` or remembered competition), else of the competition in ``FORMATS`` whose
    columns are ``classes``, else ``default``. One table, so the writer and the validator agree."""
    known = _sample_format(expected)
    if known:
        return known[0]
    for idc, cols, _ in FORMATS.values():
        if tuple(classes) == cols:
            return idc
    return default


def _format_for(header, expected, id_header):
    """The format the file must have, from the competition when it is known, else from its header."""
    known = _sample_format(expected)
    if known:
        return known
    for slug, (idc, cols, kind) in FORMATS.items():
        if header == [idc, *cols]:
            return idc, cols, kind, f"the sample submission of {TITLES[slug]}"
    lower = [h.lower() for h in header]
    for slug, (idc, cols, kind) in FORMATS.items():  # a near miss (ID,Label; IMG,C0..): the competition's
        if len(header) == len(cols) + 1 and (lower[1:] == [c.lower() for c in cols] or len(cols) == 1):
            return idc, cols, kind, f"the sample submission of {TITLES[slug]}"
    ids = _expected_ids(expected)
    kind = "int" if ids and all(isinstance(i, int) for i in ids) else "name" if ids else "any"
    return id_header or header[0], tuple(header[1:]), kind, None


def _expected_ids(expected):
    if expected is None:
        return None
    if isinstance(expected, (str, os.PathLike)):
        return expected_ids(expected)
    return list(expected)


def _id(text, kind, name, line):
    if text == "":
        raise SubmissionError(f"{name} line {line}: empty id")
    if text != text.strip():
        raise SubmissionError(f"{name} line {line}: id {text!r} has spaces around it")
    if kind == "name" or (kind == "any" and not text.isdigit()):
        return text
    if not (text.isascii() and text.isdigit()):
        raise SubmissionError(f"{name} line {line}: id {text[:30]!r} is not a whole number (the ids are the "
                              "test images' numbers)")
    if len(text) > MAX_ID_DIGITS:
        raise SubmissionError(f"{name} line {line}: id of {len(text)} digits, not an image number")
    return int(text)


def _probability(text, column, name, line, id_):
    import math

    if text.strip() == "" or text.strip().lower() in ("nan", "na", "null"):
        raise SubmissionError(f"{name} line {line}: missing value (NaN) in {column} (id {id_})")
    if not _NUMBER.fullmatch(text) and text.lower().lstrip("+-") not in ("inf", "infinity"):
        raise SubmissionError(f"{name} line {line}: non-numeric value {text[:30]!r} in {column} (id {id_}); "
                              "want a probability from 0 to 1")
    value = float(text)
    if not math.isfinite(value) or not 0 <= value <= 1:
        shown = text if len(text) <= 30 else f"a number of {len(text)} characters"
        raise SubmissionError(f"{name} line {line}: value outside [0, 1] in {column} (id {id_}: {shown})")
    return value


def _from_frame(df):
    """A DataFrame (before writing) as the rows of the CSV it would become."""
    rows = [(1, [str(c) for c in df.columns])]
    for i, row in enumerate(df.itertuples(index=False, name=None)):
        rows.append((i + 2, ["" if isinstance(v, float) and v != v else
                             repr(float(v)) if isinstance(v, (float, np.floating)) else str(v) for v in row]))
    return rows


def validate_submission(path_or_df, expected=None, id_header=None):
    """Check a submission; raise SubmissionError saying what is wrong, else return the DataFrame.

    ``expected``: the ids it must contain exactly once each (a list), or the test folder to read them
    from (its competition's sample submission or remembered slug then fixes the header). Checked: the
    header, one value per column on every line, ids, row count, missing/duplicate/unexpected ids,
    probabilities (finite, in [0, 1]). See the module docstring.
    """
    import pandas as pd

    if isinstance(path_or_df, pd.DataFrame):
        rows, name = _from_frame(path_or_df), "submission"
    else:
        name = os.fspath(path_or_df)
        if not os.path.isfile(name):
            raise SubmissionError(f"submission file not found: {name}")
        rows = _rows(name)
    header = rows[0][1]
    if len(header) < 2:
        raise SubmissionError(f"{name}: needs an id column and at least one probability column, found columns "
                              f"{header}")
    id_col, value_cols, kind, source = _format_for(header, expected, id_header)
    want = [id_col, *value_cols]
    if header != want:
        if source:
            raise SubmissionError(f"{name}: header {','.join(header)[:200]}, expected {','.join(want)} ({source})")
        if id_col not in header:
            raise SubmissionError(f"{name}: no {id_col!r} column (columns: {header})")
    if len(set(header)) != len(header) or any(not h for h in header):
        raise SubmissionError(f"{name}: the header has an empty or repeated column name ({','.join(header)})")
    if len(rows) < 2:
        raise SubmissionError(f"{name}: a header but no rows")
    id_at = header.index(id_col)
    ids, values = [], []
    for line, fields in rows[1:]:
        if not fields:
            raise SubmissionError(f"{name} line {line}: an empty line")
        if len(fields) != len(header):
            raise SubmissionError(f"{name} line {line}: {len(fields)} values, the header has {len(header)} columns")
        id_ = _id(fields[id_at], kind, name, line)
        ids.append(id_)
        values.append([_probability(v, header[j], name, line, id_) for j, v in enumerate(fields) if j != id_at])
    seen = {}
    for (line, _), id_ in zip(rows[1:], ids, strict=True):
        if id_ in seen:
            n = len(ids) - len(set(ids))
            raise SubmissionError(f"{name} line {line}: duplicate id {id_} (first on line {seen[id_]}; {n} "
                                  "duplicates)")
        seen[id_] = line
    exp = _expected_ids(expected)
    if exp is not None:
        want_ids, have = set(exp), set(ids)
        if len(ids) != len(want_ids):
            raise SubmissionError(f"{name}: {len(ids)} rows but the test set has {len(want_ids)} images"
                                  f"{_id_diff(want_ids, have)}")
        if want_ids != have:
            raise SubmissionError(f"{name}: ids do not match the test set{_id_diff(want_ids, have)}")
    df = pd.DataFrame(values, columns=[h for j, h in enumerate(header) if j != id_at])
    df.insert(id_at, id_col, pd.Series(ids, dtype=np.int64 if ids and all(isinstance(i, int) for i in ids)
                                       else object))
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
