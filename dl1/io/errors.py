"""User-facing errors: one clear line that names the file and says what to do, never a traceback wall."""


class DL1Error(Exception):
    """An error caused by the user's input or environment, with a message meant to be read by them.

    The ``dl1`` command prints it as one line; in Jupyter/IPython, ``_render_traceback_`` makes the
    notebook show just the message instead of a page of library frames.
    """

    def _render_traceback_(self):
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


class DataError(DL1Error, ValueError):
    """Bad data: a missing folder, no class sub-folders, an empty class, an unreadable file."""


class WeightsError(DL1Error, FileNotFoundError):
    """Model weights or the ImageNet class index are missing and cannot be downloaded."""


class SubmissionError(DL1Error, ValueError):
    """A submission file that Kaggle would reject (row count, ids, NaN, values out of range)."""


class DiskError(DL1Error, OSError):
    """A write that the disk refused: full, read-only, or a folder without write permission (one line
    naming the folder and the space needed; an ``OSError`` too, so code that carries on without a cache
    on a write error still does)."""


class BusyError(DL1Error):
    """A data folder in use by another dl1 command (``dl1.io.folderlock``)."""

