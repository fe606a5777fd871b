"""Ensembles of models: the average of their predicted probabilities (mnist and dogscats-ensemble).

In 2017 the notebooks trained several copies of one network (``models = [fit_model() for i in range(6)]``),
saved each member's weights under a numbered name (``cnn-mnist23-0.pkl``..., ``aug0.h5``...), and later
rebuilt the network once per file and averaged the predictions (``get_ens_pred``). ``Ensemble`` keeps that
flavour: the folder holds one ordinary weights file per member under the 2017 names, plus a small
``ensemble.json`` that lists them, so a member file still loads with plain ``model.load_weights``.

    ens = Ensemble(models)
    ens.save(model_path, prefix='cnn-mnist23-', ext='.pkl')
    ens = Ensemble.load(model_path, get_model_bn_do)   # a function that builds one (untrained) member
    avg_preds = ens.predict(x_test)                    # mean over the members
    ens.evaluate(x_test, y_test)                       # [log loss, accuracy] of the averaged predictions
"""

import json
import os

import numpy as np

from dl1.io.atomic import write_text
from dl1.io.errors import DL1Error, WeightsError

INDEX = "ensemble.json"
FORMAT = "dl1-ensemble"


def _as_labels(y):
    y = np.asarray(y)
    return y.argmax(axis=-1) if y.ndim == 2 else y.astype(np.int64).ravel()


def log_loss(y, probs, eps=1e-7):
    """Mean categorical cross-entropy of ``probs`` (N, C) for labels ``y`` (one-hot or class indices),
    with probabilities clipped to [eps, 1 - eps] as Keras does."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    labels = _as_labels(y)
    return float(-np.log(probs[np.arange(len(labels)), labels]).mean())


def accuracy(y, probs):
    """Fraction of rows whose most probable class is the label (``categorical_accuracy``, averaged)."""
    return float((np.asarray(probs).argmax(axis=-1) == _as_labels(y)).mean())


class Ensemble:
    """Several models of the same task; ``predict`` averages their probabilities."""

    def __init__(self, models, files=None):
        self.models = list(models)
        if not self.models:
            raise ValueError("an Ensemble needs at least one model")
        self.files = list(files) if files is not None else None

    def __len__(self):
        return len(self.models)

    def __iter__(self):
        return iter(self.models)

    def __getitem__(self, i):
        return self.models[i]

    def __repr__(self):
        return f"Ensemble({len(self)} members)"

    # ---- predictions ------------------------------------------------------------------------------------
    def predict_all(self, x, batch_size=32, verbose=0):
        """Every member's probabilities, stacked: (members, N, classes) (2017 ``all_preds``)."""
        preds = []
        for m in self.models:
            if hasattr(x, "reset"):
                x.reset()
            kwargs = {} if hasattr(x, "__getitem__") and not isinstance(x, np.ndarray) else \
                {"batch_size": batch_size}
            preds.append(np.asarray(m.predict(x, verbose=verbose, **kwargs)))
        shapes = {p.shape for p in preds}
        if len(shapes) != 1:
            raise ValueError(f"the members predict different shapes: {sorted(shapes)}")
        return np.stack(preds)

    def predict(self, x, batch_size=32, verbose=0):
        """The mean of the members' probabilities (N, classes)."""
        return self.predict_all(x, batch_size=batch_size, verbose=verbose).mean(axis=0)

    def evaluate(self, x, y, batch_size=32):
        """``[log loss, accuracy]`` of the averaged predictions on ``x``, ``y``."""
        p = self.predict(x, batch_size=batch_size)
        return [log_loss(y, p), accuracy(y, p)]

    def evaluate_members(self, x, y, batch_size=32):
        """``(members, 2)`` array: each member's ``[log loss, accuracy]`` (2017 ``evals``)."""
        return np.array([[log_loss(y, p), accuracy(y, p)]
                         for p in self.predict_all(x, batch_size=batch_size)])

    # ---- files ------------------------------------------------------------------------------------------
    def save(self, folder, prefix="member", ext=".h5", meta=None):
        """Write ``folder/{prefix}{i}{ext}`` for each member (``model.save_weights``) and
        ``folder/ensemble.json`` listing them (written last, so a crash never leaves an index naming
        missing files). Returns the paths of the member files."""
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        files = [f"{prefix}{i}{ext}" for i in range(len(self))]
        for m, name in zip(self.models, files, strict=True):
            m.save_weights(os.path.join(folder, name))
        index = {"format": FORMAT, "version": 1, "combine": "mean", "members": files,
                 "classes": int(self.models[0].output_shape[-1]), "meta": meta or {}}
        write_text(os.path.join(folder, INDEX), json.dumps(index, indent=1) + "\n")
        self.files = [os.path.join(folder, f) for f in files]
        return self.files

    @classmethod
    def load(cls, folder, model_fn):
        """The ensemble saved in ``folder``: ``model_fn()`` builds each member (an untrained model of the
        same architecture, e.g. ``get_model_bn_do`` or ``lambda: vgg_ft_bn(2)``), then its weights load."""
        folder = os.fspath(folder)
        index_file = os.path.join(folder, INDEX)
        index = read_index(index_file)
        files = [os.path.join(folder, name) for name in index["members"]]
        for path in files:
            if not os.path.isfile(path):
                raise WeightsError(f"{index_file}: member weights file {path} is missing")
        return cls.from_files(files, model_fn)

    @classmethod
    def from_files(cls, files, model_fn):
        """An ensemble of weight files saved one by one, as in 2017 (``aug0.h5``, ``aug1.h5``...):
        ``model_fn()`` builds each member, then ``load_weights(file)``."""
        models = []
        for path in files:
            path = os.fspath(path)
            if not os.path.isfile(path):
                raise WeightsError(f"ensemble member weights file not found: {path}")
            model = model_fn()
            model = getattr(model, "model", model)  # a Vgg16-style wrapper
            model.load_weights(path)
            models.append(model)
        return cls(models, files)


def read_index(index_file):
    """The parsed ``ensemble.json``; a missing or malformed one is a one-line ``DL1Error`` naming it."""
    if not os.path.isfile(index_file):
        raise WeightsError(f"{index_file}: not found (Ensemble.save writes it beside the member files)")
    try:
        with open(index_file, encoding="utf-8") as f:
            index = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DL1Error(f"{index_file}: not valid JSON ({e})") from None
    members = index.get("members") if isinstance(index, dict) else None
    if index.get("format") != FORMAT if isinstance(index, dict) else True:
        raise DL1Error(f"{index_file}: not an ensemble index (no \"format\": \"{FORMAT}\")")
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise DL1Error(f"{index_file}: \"members\" must be a non-empty list of file names")
    return index


def load_ensemble(folder, model_fn):
    """``Ensemble.load(folder, model_fn)``."""
    return Ensemble.load(folder, model_fn)
