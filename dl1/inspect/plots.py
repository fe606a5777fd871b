"""Plots a learner looks at: image grids with titles, and the confusion matrix.

Both draw on a new matplotlib figure (shown inline in notebooks) and, given ``fname``, also save it as
a PNG (written under a temporary name, then renamed) and close it, which is what the ``dl1`` command
uses on machines without a screen.
"""

import numpy as np

from dl1.data.imageops import to_plot
from dl1.io.atomic import atomic_path
from dl1.io.log import note


def _plt():
    import matplotlib.pyplot as plt  # falls back to the file-only Agg backend when there is no screen

    return plt


def save_figure(fig, fname):
    """Save ``fig`` as PNG at ``fname`` atomically and close it."""
    plt = _plt()
    with atomic_path(fname, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return fname


def _title(t):
    if isinstance(t, np.ndarray):
        return np.array2string(t, precision=2, separator=" ")
    if isinstance(t, (float, np.floating)):
        return f"{t:.3f}"
    return str(t)


def plots(ims, figsize=(12, 6), rows=1, interp=False, titles=None, fname=None):
    """Show images side by side (``rows`` rows), each with its title (2017 ``utils.plots``).

    ``ims``: a batch array (N, H, W, C), a list of arrays or a list of PIL images. With none (e.g. no
    confident correct dogs from a random model) it says so in one line and returns: a notebook goes on.
    """
    ims = list(ims)
    if not ims:
        note("no images to show")
        return
    plt = _plt()
    if isinstance(ims[0], np.ndarray):
        ims = [to_plot(im) for im in ims]
    rows = max(1, int(rows))
    cols = len(ims) // rows if len(ims) % rows == 0 else len(ims) // rows + 1
    fig = plt.figure(figsize=figsize)
    for i, im in enumerate(ims):
        sp = fig.add_subplot(rows, cols, i + 1)
        sp.axis("off")
        if titles is not None and i < len(titles):
            sp.set_title(_title(titles[i]), fontsize=16)
        sp.imshow(im, interpolation=None if interp else "none")
    if fname:
        save_figure(fig, fname)


def plot_confusion_matrix(cm, classes, normalize=False, title="Confusion matrix", cmap=None, fname=None):
    """Draw (and print) a confusion matrix; ``classes`` is a list of names or a ``class_indices`` dict.

    With ``normalize`` each row is divided by its total before drawing (the 2017 code normalised after
    drawing, so the picture showed counts).
    """
    plt = _plt()
    cm = np.asarray(cm)
    if isinstance(classes, dict):
        classes = sorted(classes, key=classes.get)
    classes = list(classes)
    if normalize:
        cm = cm.astype(np.float64) / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    print(cm)
    fig = plt.figure()
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(cm, interpolation="nearest", cmap=cmap or plt.cm.Blues)
    ax.set_title(title)
    fig.colorbar(im)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=45)
    ax.set_yticks(ticks, classes)
    thresh = cm.max() / 2.0 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            text = f"{cm[i, j]:.2f}" if normalize else str(cm[i, j])
            ax.text(j, i, text, horizontalalignment="center",
                    color="white" if cm[i, j] > thresh else "black")
    ax.set_ylabel("True label")
    ax.set_xlabel("Predicted label")
    fig.tight_layout()
    if fname:
        save_figure(fig, fname)


def plot(img):
    """Show one image array (2017 ``utils.plot``)."""
    import matplotlib.pyplot as plt

    plt.imshow(to_plot(img))
