"""CSV files read strictly: one line naming the file, the line and what is wrong (``DataError``), never a
silent guess.

``read_csv_file`` is pandas' reader with the file's problems (missing, empty, not text, unparsable) as one
line, and without pandas' guess that a first column is an index when data rows end in a comma (which
shifted every column). ``read_text_table`` reads every cell as text, checks the header and the number of
fields of every row (a trailing comma is allowed, another extra field is not) and keeps each row's line
number; ``int_column`` and ``float_column`` then parse a column exactly (ids above 2**53 stay distinct, NaN
and inf are refused) within a documented range, naming the lines of the bad values.
"""

import os

import numpy as np

from dl1.io.errors import DataError

__all__ = ["float_column", "int_column", "read_csv_file", "read_text_table"]

_EXTRA = "\0extra"
_INT = r"[+-]?\d+"
_FLOAT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def read_csv_file(path, missing="no such file", empty="the file is empty", **options):
    """The DataFrame of CSV file ``path``. A missing file raises ``DataError("PATH: " + missing)``, an empty
    one ``"PATH: " + empty``, one pandas cannot parse (or not text) ``PATH: not a readable CSV file (why)``.
    ``options`` go to ``pandas.read_csv`` (``index_col=False`` unless given)."""
    import pandas as pd

    path = os.fspath(path)
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, not a CSV file")
    if not os.path.isfile(path):
        raise DataError(f"{path}: {missing}")
    options.setdefault("index_col", False)
    try:
        return pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: {empty}") from None
    except (ValueError, OverflowError) as e:  # ParserError and UnicodeDecodeError are ValueErrors
        raise DataError(f"{path}: not a readable CSV file ({_first_line(e)})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None


def _first_line(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def read_text_table(path, required, missing="no such file"):
    """``(DataFrame of str cells, line numbers)`` of CSV file ``path``, checked: the header names each of
    ``required`` once, and every row has the header's number of fields (one more, empty, is a trailing
    comma and is dropped). Empty lines are left out; the line numbers are the file's."""

    path = os.fspath(path)
    header = read_csv_file(path, missing=missing, nrows=0, dtype=str, encoding="utf-8-sig")
    columns = [str(c) for c in header.columns]
    for c in required:
        if c not in columns:
            raise DataError(f"{path}: missing column {c} (has {', '.join(columns)}; expected "
                            f"{','.join(required)})")
    mangled = [c for c in columns if any(c == f"{d}.{k}" for d in columns for k in range(1, 9))]
    if mangled:
        raise DataError(f"{path}: the header names a column twice ({mangled[0].rsplit('.', 1)[0]})")
    df = read_csv_file(path, missing=missing, header=None, skiprows=1, names=columns + [_EXTRA], dtype=str,
                       keep_default_na=False, na_filter=False, skip_blank_lines=False, encoding="utf-8-sig",
                       empty="the file has a header but no rows")
    lines = np.arange(2, len(df) + 2)
    blank = ((df[columns] == "").all(axis=1) & (df[_EXTRA] == "")).to_numpy()
    if blank.any():  # empty lines hold nothing: dropped, the others keep their numbers
        df, lines = df[~blank], lines[~blank]
    if df.empty:
        raise DataError(f"{path}: the file has a header but no rows")
    extra = df[_EXTRA] != ""
    if extra.any():
        raise DataError(f"{path}: more fields than the header's {len(columns)} on line{_lines(lines[extra.to_numpy()])}")
    return df[columns], lines


def _lines(numbers, limit=5):
    """``'s 3, 7, 9'`` / ``' 3'``: the line numbers for a message, the first ``limit`` of them."""
    numbers = [int(n) for n in numbers]
    more = f" and {len(numbers) - limit} more" if len(numbers) > limit else ""
    return ("s " if len(numbers) > 1 else " ") + ", ".join(map(str, numbers[:limit])) + more


def _refuse(path, col, values, lines, bad, why):
    """``PATH line N: COL 'VALUE' WHY`` (and how many other lines have such a value, and which)."""
    idx = np.flatnonzero(bad)
    first = int(idx[0])
    others = f" (and {len(idx) - 1} more: line{_lines(lines[idx[1:]])})" if len(idx) > 1 else ""
    raise DataError(f"{path} line {int(lines[first])}: {col} {values[first]!r} {why}{others}")


def int_column(df, col, path, lines, lo=None, hi=None, what="a whole number"):
    """Column ``col`` of a ``read_text_table`` frame as exact int64; a value that is not a whole number, or
    outside ``[lo, hi]``, is refused with its line numbers."""
    values = df[col].str.strip()
    ok = values.str.fullmatch(_INT).to_numpy()
    if not ok.all():
        _refuse(path, col, values.to_numpy(), lines, ~ok, f"is not {what}")
    try:
        out = values.astype(np.int64).to_numpy()
    except (OverflowError, ValueError):
        big = np.array([abs(int(v)) >= 2**63 for v in values])
        _refuse(path, col, values.to_numpy(), lines, big, "is too large (more than 2**63)")
    out_of_range = np.zeros(len(out), bool)
    if lo is not None:
        out_of_range |= out < lo
    if hi is not None:
        out_of_range |= out > hi
    if out_of_range.any():
        _refuse(path, col, values.to_numpy(), lines, out_of_range, f"is outside {_range(lo, hi)}")
    return out


def float_column(df, col, path, lines, lo=None, hi=None):
    """Column ``col`` as float64; a value that is not a finite number (``nan``, ``inf``, text, empty), or
    outside ``[lo, hi]``, is refused with its line numbers."""
    values = df[col].str.strip()
    ok = values.str.fullmatch(_FLOAT).to_numpy()
    if not ok.all():
        _refuse(path, col, values.to_numpy(), lines, ~ok, "is not a number")
    out = values.astype(np.float64).to_numpy()
    bad = ~np.isfinite(out)
    if lo is not None:
        bad |= out < lo
    if hi is not None:
        bad |= out > hi
    if bad.any():
        _refuse(path, col, values.to_numpy(), lines, bad, f"is outside {_range(lo, hi)}")
    return out


def _range(lo, hi):
    if lo is not None and hi is not None:
        return f"{lo:g}-{hi:g}"
    return f">= {lo:g}" if lo is not None else f"<= {hi:g}" if hi is not None else "the finite numbers"
