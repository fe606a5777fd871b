"""Ratings for collaborative filtering (lesson 4): read MovieLens CSVs, remap ids, split train/valid.

``read_ratings`` reads the file strictly (``dl1.io.csvfile``): the columns ``userId,movieId,rating``
present, every row with the header's fields (data rows that end in a comma are read as they are meant, not
shifted by a column), ids whole numbers from 0 to 2**63-1 (read exactly: ids above 2**53 stay distinct),
ratings finite numbers in ``rating_range`` (MovieLens: 0.5-5 stars); anything else is one ``DataError`` line
naming the file and the line numbers. ``remap_ids`` turns the sparse user and movie ids into contiguous
indices, in order of first appearance (what the course's ``userid2idx`` did); ``split_ratings`` is the
course's random 80/20 mask, seeded properly.
"""

import os

import numpy as np

from dl1.io.csvfile import float_column, int_column, read_text_table
from dl1.io.errors import DataError

__all__ = ["RATINGS_COLUMNS", "RATING_RANGE", "movie_names", "read_movies", "read_ratings", "remap_ids",
           "split_ratings", "top_ids"]

RATINGS_COLUMNS = ("userId", "movieId", "rating")
RATING_RANGE = (0.5, 5.0)  # MovieLens: half stars from 0.5 to 5
MAX_ID = 2**63 - 1


def _table(path, default_name, required):
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, default_name)
    df, lines = read_text_table(path, required)
    return df, lines, path


def read_ratings(path, rating_range=RATING_RANGE):
    """The ratings table of ``path`` (a ``ratings.csv`` or the folder holding it), checked (see the module
    docstring). ``rating_range``: ``(low, high)`` of the scale (``(1, 10)`` for another data set)."""
    lo, hi = _range(rating_range)
    df, lines, path = _table(path, "ratings.csv", RATINGS_COLUMNS)
    import pandas as pd

    out = {}
    for col in df.columns:
        if col in ("userId", "movieId"):
            out[col] = int_column(df, col, path, lines, 0, MAX_ID, "a whole number (an id)")
        elif col == "rating":
            out[col] = float_column(df, col, path, lines, lo, hi)
        elif col == "timestamp":
            out[col] = int_column(df, col, path, lines, what="a whole number (seconds since 1970)")
        else:
            out[col] = df[col].to_numpy()
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)))


def _range(rating_range):
    try:
        lo, hi = (float(v) for v in rating_range)
    except (TypeError, ValueError):
        raise DataError(f"rating_range must be (low, high), not {rating_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise DataError(f"rating_range must be (low, high) with low < high, not {rating_range!r}")
    return lo, hi


def read_movies(path):
    """The movies table of ``path`` (a ``movies.csv`` or its folder): ``movieId,title[,genres]``; movie ids
    whole numbers, each once."""
    import pandas as pd

    df, lines, path = _table(path, "movies.csv", ("movieId", "title"))
    ids = int_column(df, "movieId", path, lines, 0, MAX_ID, "a whole number (an id)")
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        raise DataError(f"{path} line {int(lines[first])}: movieId {ids[first]} is listed a second time")
    out = df.reset_index(drop=True).copy()
    out["movieId"] = ids
    return out


def movie_names(path):
    """``{movieId: title}`` from ``movies.csv`` (the course's ``movie_names``)."""
    movies = read_movies(path)
    return dict(zip(movies.movieId.tolist(), movies.title.tolist(), strict=True))


def remap_ids(ratings, columns=("userId", "movieId")):
    """``(ratings with contiguous 0-based ids, {column: original ids, indexed by the new id})``.

    The order is that of first appearance, as ``ratings.userId.unique()`` gives it; ``ratings`` itself is
    not changed (the course overwrote its columns in place: assign the result to do the same).
    """
    import pandas as pd

    out = ratings.copy()
    originals = {}
    for col in columns:
        codes, uniques = pd.factorize(out[col], sort=False)
        out[col] = codes.astype(np.int64)
        originals[col] = np.asarray(uniques)
    return out, originals


def split_ratings(ratings, valid_fraction=0.2, seed=42):
    """``(trn, val)``: a random mask, ``rand(len(ratings)) < 1 - valid_fraction`` after seeding with ``seed``
    (the course meant ``np.random.seed(42)`` and wrote ``np.random.seed = 42``)."""
    if not isinstance(valid_fraction, (int, float, np.number)) or not 0 < valid_fraction < 1:
        raise DataError(f"valid_fraction must be between 0 and 1, not {valid_fraction!r}")
    msk = np.random.RandomState(seed).rand(len(ratings)) < 1 - valid_fraction
    return ratings[msk], ratings[~msk]


def top_ids(ratings, column="movieId", n=2000):
    """The ``n`` values of ``column`` with the most ratings, most rated first (the course's ``topMovies``)."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"n must be a whole number of at least 1, not {n!r}")
    counts = ratings.groupby(column)["rating"].count().sort_values(ascending=False, kind="stable")
    return np.array(counts.index[:n])
