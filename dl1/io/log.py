"""The ``dl1`` logger: notes (INFO) and warnings a user should read, one line each.

Library code calls ``note(...)``/``warn(...)``; they go to the ``dl1`` logger, which by default prints
notes to the *current* standard output and warnings to the current standard error (so notebooks show
them under the cell that caused them) as ``Note: ...`` / ``Warning: ...``. ``logging.getLogger('dl1').setLevel(logging.WARNING)`` silences notes;
adding your own handler to it replaces the default one. Nothing outside the ``dl1`` logger is touched.
"""

import logging
import sys

log = logging.getLogger("dl1")


class _CurrentStreams(logging.StreamHandler):
    """Writes notes to whatever ``sys.stdout`` is at the time and warnings to ``sys.stderr`` (Jupyter and
    pytest swap them), flushing each line."""

    def __init__(self):
        super().__init__(sys.stdout)

    def emit(self, record):
        self.stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        super().emit(record)


class _Format(logging.Formatter):
    PREFIX = {logging.INFO: "Note: ", logging.WARNING: "Warning: ", logging.ERROR: "Error: "}

    def format(self, record):
        return self.PREFIX.get(record.levelno, "") + super().format(record)


def _default_handler():
    handler = _CurrentStreams()
    handler.setFormatter(_Format("%(message)s"))
    handler.set_name("dl1-default")
    return handler


if not log.handlers:
    log.addHandler(_default_handler())
    log.setLevel(logging.INFO)
    log.propagate = False


def note(message, *args):
    """Something the user may want to know (a choice made for them, a file reused)."""
    log.info(message, *args)


def warn(message, *args):
    """Something that may be wrong with the user's data or setup; the run goes on."""
    log.warning(message, *args)


def examples(items, n=3):
    """``'a, b, c and 7 more'``: the first ``n`` of ``items`` and how many others there are."""
    items = [str(i) for i in items]
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def warn_files(message, items, n=3):
    """One warning line for many files (or rows, or boxes) instead of one per file: ``message`` (``{count}``
    in it becomes their number), then the first ``n`` of ``items`` and how many more. Nothing when
    ``items`` is empty. Returns the items."""
    items = list(items)
    if items:
        warn(message.replace("{count}", str(len(items))) + ": " + examples(items, n))
    return items
