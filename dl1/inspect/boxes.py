"""Drawing bounding boxes on images (lesson 7's ``create_rect``, ``show_bb``, ``show_bb_pred``)."""

import numpy as np

from dl1.data.imageops import to_plot


def create_rect(bb, color="red"):
    """An unfilled matplotlib rectangle for a box ``[height, width, x, y]`` (the course's order) or a
    dict with those keys, line width 3."""
    import matplotlib.pyplot as plt

    if isinstance(bb, dict):
        bb = [bb["height"], bb["width"], bb["x"], bb["y"]]
    h, w, x, y = (float(v) for v in bb)
    return plt.Rectangle((x, y), w, h, color=color, fill=False, lw=3)


def show_bb(img, bb, pred=None, figsize=(6, 6), ax=None):
    """Show ``img`` with its true box ``bb`` in red and, if given, a predicted box ``pred`` in yellow;
    returns the matplotlib axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    ax.imshow(to_plot(img))
    ax.axis("off")
    if bb is not None and np.any(np.asarray(list(bb.values())[:4] if isinstance(bb, dict) else bb, float)):
        ax.add_patch(create_rect(bb, "red"))
    if pred is not None:
        ax.add_patch(create_rect(pred, "yellow"))
    return ax
