"""A CSV file read with pandas, or one line naming the file and what is wrong with it (``DataError``)."""

import os

from dl1.io.errors import DataError

__all__ = ["read_csv_file"]


def read_csv_file(path, missing="no such file", empty="the file is empty"):
    """The DataFrame of CSV file ``path``. A missing file raises ``DataError("PATH: " + missing)``, an empty
    one ``"PATH: " + empty``, one pandas cannot parse (or not text) ``PATH: not a readable CSV file (why)``."""
    import pandas as pd

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: {missing}")
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: {empty}") from None
    except ValueError as e:  # ParserError and UnicodeDecodeError are ValueErrors
        raise DataError(f"{path}: not a readable CSV file ({str(e).splitlines()[0]})") from None
