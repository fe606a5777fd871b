"""``plot_history``: the training curves of a run in one call, from its ``results/history.csv``."""

from dl1.io.errors import DL1Error
from dl1.train.history import draw_curves, history_file, read_history


def plot_history(path_or_results_dir, fname=None):
    """Loss and accuracy per epoch, training and validation (two panels), from the ``history.csv`` of a
    results folder, a data folder or the file itself (written by ``fit``, ``fit_one_cycle``, ``fine_tune``
    and ``dl1 finetune``); saved to ``fname`` when given. Returns the matplotlib Figure (a notebook shows
    it)."""
    path = history_file(path_or_results_dir)
    rows = read_history(path)
    if not rows:
        raise DL1Error(f"no training history in {path}: train with fit(), fit_one_cycle(), fine_tune() or "
                       "'dl1 finetune' first")
    return draw_curves(rows, fname, title=f"{len(rows)} epoch(s): {path}")
