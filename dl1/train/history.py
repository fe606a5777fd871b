"""A record of training: one row per epoch in ``results/history.csv`` and the curves in
``results/training_curves.png``, kept across resumed runs and phases.

``HistoryRecorder`` (a Keras callback) appends each epoch's loss, accuracy, validation loss and accuracy,
the learning rate at the epoch's end and its seconds; the epoch number counts on from the last row of the
file, so a resumed run, a second ``finetune`` and ``fine_tune``'s two phases continue one record. The file is
rewritten whole through a temporary file (``dl1.io.atomic``): a killed run never leaves half a row. The
folder is the run's results folder, given by whoever starts the run.
"""

import csv
import io
import math
import os
import time

import keras

from dl1.io.atomic import atomic_path, write_text
from dl1.io.log import warn

FILE_NAME = "history.csv"
CURVES_NAME = "training_curves.png"
COLUMNS = ["epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]


def history_file(path_or_results_dir):
    """The ``history.csv`` meant by a results folder, a data folder (its ``results/``) or the file itself."""
    path = os.fspath(path_or_results_dir)
    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, FILE_NAME)):
        return path if not os.path.isdir(path) else os.path.join(path, FILE_NAME)
    if os.path.isdir(os.path.join(path, "results")):
        return os.path.join(path, "results", FILE_NAME)
    return os.path.join(path, FILE_NAME)


def read_history(path_or_results_dir):
    """The rows of ``history.csv`` as dicts (numbers as floats, ``epoch`` as int); [] when there is none."""
    path = history_file(path_or_results_dir)
    if not os.path.isfile(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for name in COLUMNS:
            if name == "epoch":
                row[name] = int(row[name])
            elif name != "phase":
                row[name] = float(row[name]) if row.get(name) not in (None, "") else math.nan
    return rows


def _cell(value):
    """A CSV cell: text and whole numbers as they are, other numbers to 6 significant digits, none empty."""
    if isinstance(value, (str, int)):
        return str(value)
    value = float(value) if value is not None else math.nan
    return "" if not math.isfinite(value) else f"{value:.6g}"


def append_epoch(results_dir, phase, logs, lr, seconds):
    """Append one epoch's row to ``results_dir/history.csv`` (rewritten atomically); returns the row."""
    path = os.path.join(os.fspath(results_dir), FILE_NAME)
    rows = read_history(path)
    logs = logs or {}
    row = {"epoch": (rows[-1]["epoch"] if rows else 0) + 1, "phase": phase,
           "loss": logs.get("loss"), "accuracy": logs.get("accuracy", logs.get("acc")),
           "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy", logs.get("val_acc")),
           "lr": lr, "seconds": seconds}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows + [row]:
        writer.writerow([_cell(r[c]) for c in COLUMNS])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_text(path, out.getvalue())
    return row


def draw_curves(rows, fname=None, title=None):
    """Loss (left) and accuracy (right) per epoch, training and validation: a matplotlib Figure, saved to
    ``fname`` (atomically) when given. Phases after the first are marked by a dotted line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in rows]
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label, style in ((metric, "train", "-o"), ("val_" + metric, "validation", "-s")):
            values = [r[key] for r in rows]
            if any(math.isfinite(v) for v in values):
                ax.plot(epochs, values, style, ms=3, label=label)
        for before, row in zip(rows[:-1], rows[1:], strict=True):
            if row["phase"] != before["phase"]:
                ax.axvline(row["epoch"] - 0.5, color="0.6", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        if epochs:
            ax.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if fname:
        with atomic_path(fname, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=80)
    return fig


def _learning_rate(model):
    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return math.nan


def curves_behind(results_dir):
    """Whether ``training_curves.png`` is missing or older than ``history.csv`` (a run stopped between two
    redraws): ``redraw_curves`` brings it up to date."""
    csv_path, png = os.path.join(results_dir, FILE_NAME), os.path.join(results_dir, CURVES_NAME)
    if not os.path.isfile(csv_path):
        return False
    return not os.path.isfile(png) or os.path.getmtime(png) < os.path.getmtime(csv_path)


def redraw_curves(results_dir):
    """``training_curves.png`` drawn again from ``history.csv``."""
    draw_curves(read_history(results_dir), os.path.join(results_dir, CURVES_NAME))


class HistoryRecorder(keras.callbacks.Callback):
    """After each epoch a row appended to ``results_dir/history.csv``; ``training_curves.png`` redrawn at the
    end of training and, during it, after an epoch when the last drawing is ``REDRAW_SECONDS`` old (drawing
    takes ~0.3 s: after every epoch it was a third of the 7-line recipe's head training on cached features).
    ``phase`` names the kind of training (``fit``, ``one_cycle``, ``head``, ``unfrozen``); ``main``: False
    in the processes of a multi-process run other than the first, which write nothing."""

    REDRAW_SECONDS = 30.0

    def __init__(self, results_dir, phase="fit", main=True):
        super().__init__()
        self.results_dir = os.fspath(results_dir)
        self.phase = phase
        self.main = main
        self.started = None
        self.drawn = None  # time of the last drawing, or of the start of training (None: neither yet)
        self.pending = False  # rows appended since the last drawing

    def on_train_begin(self, logs=None):
        self.drawn = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if not self.main:
            return
        seconds = time.time() - self.started if self.started is not None else math.nan
        try:
            append_epoch(self.results_dir, self.phase, logs, _learning_rate(self.model), seconds)
            self.pending = True
            if self.drawn is None or time.time() - self.drawn >= self.REDRAW_SECONDS:
                self._draw()
        except OSError as e:  # a read-only or full disk costs the record, not the training run
            self._lost(e)

    def on_train_end(self, logs=None):
        if not (self.main and self.pending):
            return
        try:
            self._draw()
        except OSError as e:
            self._lost(e)

    def _draw(self):
        redraw_curves(self.results_dir)
        self.drawn, self.pending = time.time(), False

    def _lost(self, e):
        warn("cannot write the training history in %s (%s); training goes on without it", self.results_dir,
             e.strerror or e)
        self.main = False
