"""Look at what the model got right and wrong, as the 2017 Dogs vs Cats notebook did.

``inspect_predictions`` picks the images to look at (random correct, random incorrect, the most
confident correct and the most confident wrong predictions of each class, the most uncertain);
``plots_idx`` shows them; ``save_inspection`` writes them all, with the confusion matrix, as PNG files.
"""

import os

import numpy as np

from dl1.inspect.plots import plot_confusion_matrix, plots


def inspect_predictions(probs, labels, n_view=4, seed=0):
    """Indices of the images worth looking at, for predictions ``probs`` (N, C) and true ``labels``.

    Returns a dict: ``correct``/``incorrect`` (random picks), ``confident_correct[c]`` (predicted c,
    rightly, most confident first), ``confident_wrong[c]`` (predicted c, wrongly, most confident first),
    ``uncertain`` (smallest gap between the two most likely classes), plus counts.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs must be (N, classes) for N labels, got {probs.shape} for {len(labels)}")
    rng = np.random.default_rng(seed)
    pred = probs.argmax(axis=1)
    ok = pred == labels
    correct, incorrect = np.flatnonzero(ok), np.flatnonzero(~ok)
    out = {
        "predicted": pred,
        "n_correct": int(ok.sum()),
        "n_incorrect": int((~ok).sum()),
        "correct": rng.permutation(correct)[:n_view],
        "incorrect": rng.permutation(incorrect)[:n_view],
        "confident_correct": {},
        "confident_wrong": {},
    }
    for c in range(probs.shape[1]):
        for key, mask in (("confident_correct", ok), ("confident_wrong", ~ok)):
            idx = np.flatnonzero((pred == c) & mask)
            out[key][c] = idx[np.argsort(-probs[idx, c], kind="stable")][:n_view]
    top2 = np.sort(probs, axis=1)[:, -2:] if probs.shape[1] > 1 else np.stack([probs[:, 0]] * 2, 1)
    out["uncertain"] = np.argsort(top2[:, 1] - top2[:, 0], kind="stable")[:n_view]
    return out


def plots_idx(idx, filenames, path, titles=None, fname=None, figsize=(12, 6)):
    """Show the images ``filenames[i]`` (relative to ``path``) for ``i`` in ``idx``."""

    from dl1.data.images import open_image

    ims = [open_image(os.path.join(path, filenames[i])) for i in idx]
    plots(ims, figsize=figsize, titles=titles, fname=fname)


def save_inspection(path, filenames, probs, labels, class_names, out_dir, n_view=4, seed=0):
    """Write the inspection pictures and the confusion matrix under ``out_dir``; returns the paths."""
    from sklearn.metrics import confusion_matrix

    sel = inspect_predictions(probs, labels, n_view, seed)
    os.makedirs(out_dir, exist_ok=True)
    written = []

    def save(name, idx, col=None):
        if len(idx) == 0:
            return
        titles = [f"{class_names[sel['predicted'][i]]} {probs[i, sel['predicted'][i] if col is None else col]:.3f}"
                  for i in idx]
        target = os.path.join(out_dir, f"inspect_{name}.png")
        plots_idx(idx, filenames, path, titles=titles, fname=target)
        written.append(target)

    save("correct", sel["correct"])
    save("incorrect", sel["incorrect"])
    for c, name in enumerate(class_names):
        save(f"confident_correct_{name}", sel["confident_correct"][c], c)
        save(f"confident_wrong_{name}", sel["confident_wrong"][c], c)
    save("uncertain", sel["uncertain"])
    cm = confusion_matrix(labels, sel["predicted"], labels=np.arange(len(class_names)))
    target = os.path.join(out_dir, "confusion_matrix.png")
    plot_confusion_matrix(cm, class_names, fname=target)
    written.append(target)
    return sel, cm, written


def plot_log_loss(fname=None):
    """The log loss of one prediction whose true label is 1, as the predicted probability goes from 0
    to 1: why a confident wrong answer costs so much, and why clipping helps."""
    import matplotlib.pyplot as plt

    from dl1.inspect.plots import save_figure

    x = np.linspace(1e-4, 1 - 1e-4, 500)
    fig = plt.figure(figsize=(8, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(x, -np.log(x))
    ax.axis([-0.05, 1.1, -0.8, 10])
    ax.set_title("Log Loss when true label = 1")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("log loss")
    if fname:
        save_figure(fig, fname)
