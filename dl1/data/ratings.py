"""Ratings for collaborative filtering (lesson 4): read MovieLens CSVs, remap ids, split train/valid.

``read_ratings`` checks the file (the columns ``userId,movieId,rating`` present, ratings numeric) and
raises a one-line ``DataError`` naming the file otherwise. ``remap_ids`` turns the sparse user and movie ids
into contiguous indices, in order of first appearance (what the course's ``userid2idx`` did);
``split_ratings`` is the course's random 80/20 mask, seeded properly.
"""

import os

import numpy as np

from dl1.io.csvfile import read_csv_file
from dl1.io.errors import DataError

__all__ = ["RATINGS_COLUMNS", "movie_names", "read_movies", "read_ratings", "remap_ids", "split_ratings",
           "top_ids"]

RATINGS_COLUMNS = ("userId", "movieId", "rating")


def _csv(path, default_name, required, numeric=()):
    import pandas as pd

    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, default_name)
    df = read_csv_file(path)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(map(str, df.columns))}; "
                        f"expected {','.join(required)})")
    if df.empty:
        raise DataError(f"{path}: the file has a header but no rows")
    for col in numeric:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna() | df[col].isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: non-numeric {col} {df[col].iloc[row]!r} on line {row + 2}")
        df[col] = values
    return df, path


def read_ratings(path):
    """The ratings table of ``path`` (a ``ratings.csv`` or the folder holding it), checked."""
    df, path = _csv(path, "ratings.csv", RATINGS_COLUMNS, numeric=RATINGS_COLUMNS)
    for col in ("userId", "movieId"):
        if not (df[col] == df[col].round()).all():
            raise DataError(f"{path}: {col} must hold whole numbers")
        df[col] = df[col].astype(np.int64)
    return df


def read_movies(path):
    """The movies table of ``path`` (a ``movies.csv`` or its folder): ``movieId,title[,genres]``."""
    df, _ = _csv(path, "movies.csv", ("movieId", "title"), numeric=("movieId",))
    df["movieId"] = df["movieId"].astype(np.int64)
    return df


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
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be between 0 and 1, not {valid_fraction}")
    msk = np.random.RandomState(seed).rand(len(ratings)) < 1 - valid_fraction
    return ratings[msk], ratings[~msk]


def top_ids(ratings, column="movieId", n=2000):
    """The ``n`` values of ``column`` with the most ratings, most rated first (the course's ``topMovies``)."""
    counts = ratings.groupby(column)["rating"].count().sort_values(ascending=False, kind="stable")
    return np.array(counts.index[:n])
