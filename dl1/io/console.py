"""Output for a person or for a log: progress bars that redraw themselves, and Keras' coloured progress bar,
only where someone watches a terminal (or a notebook); a file or a pipe gets plain lines, one per epoch.

``tqdm`` stands in for ``tqdm.auto.tqdm`` (off when standard error is not a terminal), ``keras_verbose`` turns
Keras' ``verbose=1`` into ``verbose=2`` when standard output is not one, and ``PlainLines`` turns another
program's streamed output (the kaggle command's progress bar) into whole lines without colour codes: a
redrawn bar's first state, its state every ten seconds, its last state.
"""

import re
import sys
import time

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _in_kernel():
    """Whether this process is a Jupyter kernel (not merely one that imported ipykernel, as papermill does)."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def interactive(stream=None):
    """Whether ``stream`` (default standard error) is watched: a terminal, or a Jupyter kernel's output."""
    if _in_kernel():
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
    """Bytes as a program streams them, back as whole lines without colour codes: of a line redrawn with
    carriage returns, its first state (so that a long download shows at once that it started), then its
    state at most every ``interval`` seconds, then its last state, each as a line of its own. ``feed``
    returns what can be written now, ``close`` the rest."""

    def __init__(self, interval=10.0, clock=time.monotonic):
        self.pending = b""
        self.interval = interval
        self.clock = clock
        self.shown = None  # (the redrawn line's state last written, when)

    def feed(self, chunk):
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        out = b"".join(self._finish(line) for line in lines)
        if b"\r" in self.pending:
            state = self._plain(self.pending)
            now = self.clock()
            if state.strip() and (self.shown is None or now - self.shown[1] >= self.interval) and \
                    (self.shown is None or state != self.shown[0]):
                self.shown = (state, now)
                out += state + b"\n"
        return out

    def close(self):
        rest, self.pending = self.pending, b""
        return self._finish(rest) if rest.strip(b"\r") else b""

    def _finish(self, line):
        state = self._plain(line)
        shown, self.shown = self.shown, None
        if shown is not None and shown[0] == state:
            return b""
        return state + b"\n"

    @staticmethod
    def _plain(line):
        line = ANSI.sub(b"", line).rstrip(b"\r")
        return line.rsplit(b"\r", 1)[-1]
