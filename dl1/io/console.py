"""Output for a person or for a log: progress bars that redraw themselves, and Keras' coloured progress bar,
only where someone watches a terminal (or a notebook); a file or a pipe gets plain lines, one per epoch.

``tqdm`` stands in for ``tqdm.auto.tqdm`` (off when standard error is not a terminal), ``keras_verbose`` turns
Keras' ``verbose=1`` into ``verbose=2`` when standard output is not one, and ``PlainLines`` turns another
program's streamed output (the kaggle command's progress bar) into its final lines without colour codes.
"""

import re
import sys

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def interactive(stream=None):
    """Whether ``stream`` (default standard error) is watched: a terminal, or a Jupyter kernel's output."""
    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def keras_verbose(verbose):
    """Keras' ``verbose``: 1 (a bar redrawn with carriage returns and colour codes) becomes 2 (one plain line
    per epoch) when standard output is not a terminal; other values are kept."""
    return 2 if verbose == 1 and not interactive(sys.stdout) else verbose


def tqdm(*args, **kwargs):
    """``tqdm.auto.tqdm``, disabled when the stream it writes to (standard error) is not a terminal."""
    from tqdm.auto import tqdm as bar

    if not interactive(kwargs.get("file")):
        kwargs["disable"] = True
    return bar(*args, **kwargs)


class PlainLines:
    """Bytes as a program streams them, back as whole lines: of a line redrawn with carriage returns only
    its last state is kept, and colour codes are dropped. ``feed`` returns what can be written now,
    ``close`` the rest."""

    def __init__(self):
        self.pending = b""

    def feed(self, chunk):
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        return b"".join(self._plain(line) + b"\n" for line in lines)

    def close(self):
        rest, self.pending = self.pending, b""
        return self._plain(rest) + b"\n" if rest.strip(b"\r") else b""

    @staticmethod
    def _plain(line):
        line = ANSI.sub(b"", line).rstrip(b"\r")
        return line.rsplit(b"\r", 1)[-1]
