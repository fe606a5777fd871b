"""The images the model got most wrong, and the pairs of classes it mixes up most (fastai's
``plot_top_losses`` and ``most_confused``), beside the 2017 inspection plots of ``predictions.py``.

    interp = Interpretation(probs, labels, filenames, path, classes)   # or Interpretation.from_model(...)
    interp.plot_top_losses(9)
    interp.most_confused(min_count=2)

The loss of an image is its cross-entropy, ``-log p(true class)``; the top losses are confident mistakes
first, then the least confident right answers.
"""

import os

import numpy as np

from dl1.inspect.plots import plots

EPS = 1e-7


def losses_of(probs, labels):
    """Per-image cross-entropy ``-log p(true class)`` (probabilities clipped to [1e-7, 1])."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs must be (N, classes) for N labels, got {probs.shape} for {len(labels)}")
    return -np.log(np.clip(probs[np.arange(len(labels)), labels], EPS, 1.0))


def top_losses(probs, labels, k=None):
    """``(losses, indices)`` of the ``k`` largest losses, largest first (all when ``k`` is None)."""
    loss = losses_of(probs, labels)
    idx = np.argsort(-loss, kind="stable")[:k]
    return loss[idx], idx


def most_confused(probs, labels, classes, min_count=1):
    """``[(actual, predicted, count)]`` of the off-diagonal cells of the confusion matrix with at least
    ``min_count`` images, most frequent first."""
    probs = np.asarray(probs)
    labels = np.asarray(labels).astype(int)
    pred = probs.argmax(axis=1)
    n = len(classes)
    cm = np.zeros((n, n), dtype=int)
    np.add.at(cm, (labels, pred), 1)
    pairs = [(classes[a], classes[p], int(cm[a, p])) for a in range(n) for p in range(n)
             if a != p and cm[a, p] >= max(int(min_count), 1)]
    return sorted(pairs, key=lambda t: (-t[2], t[0], t[1]))


def plot_top_losses(probs, labels, filenames, path, classes, k=9, fname=None, rows=None, figsize=None):
    """Show the ``k`` images with the largest losses, titled ``predicted/actual/loss/p(actual)``;
    saved to ``fname`` when given. Returns the indices shown."""
    from dl1.data.images import open_image

    loss, idx = top_losses(probs, labels, k)
    if not len(idx):
        return idx
    probs = np.asarray(probs)
    labels = np.asarray(labels).astype(int)
    titles = [f"{classes[int(probs[i].argmax())]}/{classes[labels[i]]}\n{loss[j]:.2f}/{probs[i, labels[i]]:.2f}"
              for j, i in enumerate(idx)]
    ims = [open_image(os.path.join(path, filenames[i])) for i in idx]
    rows = rows or int(np.ceil(len(ims) / min(len(ims), 5)))
    plots(ims, figsize=figsize or (3 * min(len(ims), 5), 3.3 * rows), rows=rows, titles=titles, fname=fname)
    return idx


def write_most_confused(pairs, fname):
    """Save ``most_confused``'s pairs as CSV (actual,predicted,count)."""
    from dl1.io.atomic import write_text

    lines = ["actual,predicted,count"] + [f"{a},{p},{c}" for a, p, c in pairs]
    write_text(fname, "\n".join(lines) + "\n")
    return fname


def format_most_confused(pairs):
    if not pairs:
        return "Most confused: no class was mistaken for another"
    return "Most confused (actual -> predicted: images):\n" + "\n".join(
        f"  {a} -> {p}: {c}" for a, p, c in pairs)


class Interpretation:
    """Validation predictions with what is needed to look at them: ``plot_top_losses(k)``,
    ``most_confused(min_count)``, ``top_losses(k)``."""

    def __init__(self, probs, labels, filenames, path, classes):
        self.probs = np.asarray(probs)
        self.labels = np.asarray(labels).astype(int)
        self.filenames = list(filenames)
        self.path = os.fspath(path)
        self.classes = list(classes)

    @classmethod
    def from_model(cls, model, batches, classes=None):
        """Predict ``batches`` (a non-shuffled ``get_batches`` of a labelled folder) with ``model`` (a
        Keras model, or anything with ``.model`` and ``.classes`` such as ``Vgg16``)."""
        from dl1.train.fit import predict_batches

        if getattr(batches, "shuffle", False):
            raise ValueError("use batches with shuffle=False, so that predictions follow the file names")
        keras_model = getattr(model, "model", model)
        names = classes or getattr(model, "classes", None) or sorted(batches.class_indices,
                                                                      key=batches.class_indices.get)
        probs = predict_batches(keras_model, batches, verbose=0)
        return cls(probs, batches.classes, batches.filenames, batches.directory, names)

    def top_losses(self, k=None):
        return top_losses(self.probs, self.labels, k)

    def plot_top_losses(self, k=9, fname=None, **kwargs):
        return plot_top_losses(self.probs, self.labels, self.filenames, self.path, self.classes, k=k,
                               fname=fname, **kwargs)

    def most_confused(self, min_count=1):
        return most_confused(self.probs, self.labels, self.classes, min_count)
