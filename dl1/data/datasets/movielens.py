"""MovieLens ``ml-latest-small`` (lesson 4): GroupLens' ratings and movies, or a synthetic stand-in.

The real archive unpacks (its top folder ``ml-latest-small/`` stripped) to ``ratings.csv``
(``userId,movieId,rating,timestamp``), ``movies.csv`` (``movieId,title,genres``), ``links.csv``, ``tags.csv``
and ``README.txt``. GroupLens publishes no checksum for it and updates the "latest" set from time to time, so
none is enforced: the unpack is checked against the archive's own listing instead.

The stand-in has the same two CSV files and a learnable structure: each rating is
``3.5 + user bias + movie bias + user factors . movie factors + noise``, rounded to half stars in 0.5-5,
with a few genres that follow the movie factors (so the embeddings' principal components mean something).
"""

import csv
import io
import os

import numpy as np

from dl1.data.datasets import Dataset, register
from dl1.data.datasets._archive import fetch_and_unpack
from dl1.io.atomic import write_text

URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
FILENAME = "ml-latest-small.zip"
GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
_TITLE_WORDS = ("Silent River Night Last Summer Dark City Lost Star Secret Road Iron Heart Winter Garden Blue "
                "Storm King Little Wild House Broken Golden Edge Shadow Journey Empire Dream Stranger Island "
                "Return Fire Ghost Ocean Rain Mountain Song Hunter Midnight Paradise").split()


def download(dest, verbose=True, urls=None):
    return fetch_and_unpack(dest, [URL], FILENAME, strip=1, verbose=verbose, urls=urls)


def synthesize(dest, seed=0, n=20000, n_factors=3):
    """Write ``ratings.csv`` and ``movies.csv`` with about ``n`` ratings; returns ``{file: rows}``."""
    rng = np.random.RandomState(seed)
    n = max(int(n), 200)
    n_users = max(20, n // 100)
    n_movies = max(30, n // 40)
    user_f = rng.normal(0, 0.6, (n_users, n_factors))
    movie_f = rng.normal(0, 0.6, (n_movies, n_factors))
    user_b = rng.normal(0, 0.4, n_users)
    movie_b = rng.normal(0, 0.5, n_movies)
    popularity = 1.0 / np.arange(1, n_movies + 1) ** 0.8
    popularity = popularity[rng.permutation(n_movies)]
    popularity /= popularity.sum()
    # each user rates at least 20 movies (as in GroupLens' sets); the rest by a skewed activity level
    activity = rng.pareto(1.5, n_users) + 1
    per_user = np.maximum(20, np.round(activity / activity.sum() * n)).astype(int)
    per_user = np.minimum(per_user, n_movies)
    movie_ids = np.sort(rng.choice(np.arange(1, n_movies * 20), n_movies, replace=False))
    rows = []
    for u in range(n_users):
        seen = rng.choice(n_movies, per_user[u], replace=False, p=popularity)
        r = 3.5 + user_b[u] + movie_b[seen] + movie_f[seen] @ user_f[u] + rng.normal(0, 0.3, len(seen))
        r = np.clip(np.round(r * 2) / 2, 0.5, 5.0)
        stamps = rng.randint(946684800, 1537799250, len(seen))
        for m, rating, t in zip(sorted(seen, key=lambda i: movie_ids[i]), r[np.argsort(movie_ids[seen])],
                                stamps, strict=True):
            rows.append((u + 1, int(movie_ids[m]), float(rating), int(t)))
    out = io.StringIO()
    out.write("userId,movieId,rating,timestamp\n")
    out.writelines(f"{u},{m},{r:.1f},{t}\n" for u, m, r, t in rows)
    write_text(os.path.join(dest, "ratings.csv"), out.getvalue())

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["movieId", "title", "genres"])
    for i, mid in enumerate(movie_ids):
        words = rng.choice(_TITLE_WORDS, rng.randint(1, 4), replace=False)
        title = " ".join(words)
        if rng.rand() < 0.15:
            title = f"{title}, The"  # GroupLens' style, which needs CSV quoting
        title = f"{title} ({rng.randint(1930, 2019)})"
        f = movie_f[i]
        genres = [GENRES[7] if f[0] > 0 else GENRES[0], GENRES[4] if f[1] > 0 else GENRES[14]]
        if f[2] > 0.6:
            genres.append(GENRES[12])
        if rng.rand() < 0.2:
            genres.append(GENRES[rng.randint(len(GENRES))])
        w.writerow([int(mid), title, "|".join(dict.fromkeys(genres))])
    write_text(os.path.join(dest, "movies.csv"), buf.getvalue())
    return {"ratings.csv": len(rows), "movies.csv": n_movies}


register(Dataset(
    "movielens", "MovieLens ml-latest-small ratings (lesson 4), GroupLens",
    "ratings.csv (userId,movieId,rating,timestamp), movies.csv (movieId,title,genres)",
    download=download, synthesize=synthesize, sources=[URL]))
