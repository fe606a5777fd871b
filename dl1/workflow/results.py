"""``Results``: the one owner of a data folder's ``results/`` file names, its feature-cache folder and of
``dl1-model.json``.

Every step (finetune, predict, inspect, submit, the notebooks) asks this object where its files are,
so a name is spelled once: ``ft3.h5``, ``test_preds.dat``, ``submission.csv``, ...; the steps pass its
folders down (``results.cache_dir`` to the model, ``results.file(...)`` to what writes a file): nothing
below derives a folder from another. The model record is read through ``dl1.models.record``.
"""

import json
import os
import re

from dl1.io.arrays import load_array, save_array
from dl1.io.atomic import write_text
from dl1.io.errors import DL1Error
from dl1.io.space import check_free, unwritable_reason
from dl1.models.record import FILE_NAME as MODEL_FILE
from dl1.models.record import ModelRecord, check_classes
from dl1.train.cachedir import cache_dir_for

_EPOCH_FILE = re.compile(r"^ft(\d+)\.h5$")


def class_folders(folder):
    """The class sub-folders of ``folder`` in the order the batches number them (sorted; hidden aside)."""
    try:
        names = [e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return []
    return sorted(n for n in names if n != "__MACOSX")


class Results:
    """``DIR/results`` (or ``DIR/sample/results``) and what the steps write there."""

    CHECKPOINT = "checkpoint.npz"
    TEST_PREDS = "test_preds.dat"
    TEST_FILENAMES = "filenames.dat"
    VALID_PREDS = "valid_preds.dat"
    VALID_FILENAMES = "valid_filenames.dat"
    VALID_LABELS = "valid_labels.dat"
    SUBMISSION = "submission.csv"
    LOG_LOSS_PNG = "log_loss.png"
    CONFUSION_PNG = "confusion_matrix.png"
    DEMO_PNG = "demo_predictions.png"
    LR_FIND_PNG = "lr_find.png"
    TOP_LOSSES_PNG = "top_losses.png"
    MOST_CONFUSED = "most_confused.csv"
    EXPORT = "model.keras"
    EXPORT_ONNX = "model.onnx"

    def __init__(self, root, create=True):
        self.root = os.fspath(root)
        self.path = os.path.join(self.root, "results")
        if create:
            os.makedirs(self.path, exist_ok=True)

    @property
    def cache_dir(self):
        """The frozen-feature cache folder of this data folder (``dl1.train.features.cache_dir_for``)."""
        return cache_dir_for(self.root)

    def __repr__(self):
        return f"Results({self.path!r})"

    def file(self, name):
        """The path of ``name`` inside the results folder."""
        return os.path.join(self.path, name)

    # ---- the model record ----------------------------------------------------------------------------
    @property
    def model_file(self):
        return self.file(MODEL_FILE)

    def read_model(self, classes_from=None, required=True):
        """The ``ModelRecord`` ``finetune`` wrote: classes, size, weights file, epochs done, the run's
        config. Without the record (a model trained in a notebook) the class names may come from the class
        folders of ``classes_from`` (train/ or valid/). Returns None when absent and not ``required``; a
        damaged record is one line saying what is wrong (``ModelRecord.from_dict``)."""
        try:
            with open(self.model_file, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            for folder in classes_from or []:
                if os.path.isdir(folder):
                    names = sorted(n for n in os.listdir(folder)
                                   if os.path.isdir(os.path.join(folder, n)) and not n.startswith("."))
                    if names:
                        return ModelRecord(classes=names)
            if not required:
                return None
            hint = self._sample_hint(MODEL_FILE, "trained") or "run 'dl1 finetune' first"
            raise DL1Error(f"no trained model in {self.path}: {hint}") from None
        except ValueError as e:
            if not required:
                return None
            raise DL1Error(f"{self.model_file} is damaged ({e}); run 'dl1 finetune' again") from None
        record = ModelRecord.from_dict(data, source=self.model_file)
        for split in ("train", "valid"):  # the order the model's outputs follow: the class folders'
            names = class_folders(os.path.join(self.root, split))
            if names:
                check_classes(record, names, self.model_file)
                break
        return record

    def _sample_hint(self, name, made):
        """When ``name`` is missing here but present in ``ROOT/sample/results``: how to use that one."""
        sample = os.path.join(self.root, "sample", "results")
        if os.path.isfile(os.path.join(sample, name)):
            return f"there is one in {sample} ({made} with --sample): add --sample"
        return None

    def write_model(self, record):
        """Write the record (a ``ModelRecord``, or a dict of its fields as the notebooks write it)."""
        if not isinstance(record, ModelRecord):
            record = ModelRecord.from_dict(dict(record), source="the model record")
        os.makedirs(self.path, exist_ok=True)
        write_text(self.model_file, json.dumps(record.to_dict(), indent=1))

    def check_room(self, needed, what):
        """Before a long step: a ``DiskError`` line now, rather than after the work, when the results folder
        is read-only, closed to this user, or lacks ``needed`` bytes for ``what``."""
        reason = unwritable_reason(self.path, needed, what, space=False)
        if reason is not None:
            raise reason
        check_free(self.path, needed, what)

    # ---- per-epoch weights ---------------------------------------------------------------------------
    @staticmethod
    def epoch_weights_name(epoch):
        """The 2017 name of the weights after ``epoch`` epochs (1-based): ``ft1.h5``, ``ft2.h5``, ..."""
        return f"ft{int(epoch)}.h5"

    def epoch_weights(self):
        """``[(epoch, path)]`` of the per-epoch weight files present, oldest first."""
        found = []
        for name in os.listdir(self.path) if os.path.isdir(self.path) else []:
            m = _EPOCH_FILE.match(name)
            if m:
                found.append((int(m.group(1)), self.file(name)))
        return sorted(found)

    def prune_epoch_weights(self, keep, protect=(), own=None):
        """Delete all but the ``keep`` newest per-epoch weight files (never one in ``protect``; with ``own``,
        only files in it: those the calling run wrote); returns the deleted paths. ``keep`` <= 0 keeps
        everything."""
        if keep is None or keep <= 0:
            return []
        protect = {os.path.abspath(p) for p in protect}
        mine = None if own is None else {os.path.abspath(p) for p in own}
        files = self.epoch_weights()
        doomed = [path for _, path in files[:-keep] if os.path.abspath(path) not in protect
                  and (mine is None or os.path.abspath(path) in mine)]
        for path in doomed:
            try:
                os.remove(path)
            except FileNotFoundError:
                continue
        return doomed

    # ---- arrays --------------------------------------------------------------------------------------
    def save(self, name, array):
        path = self.file(name)
        save_array(path, array)
        return path

    def load(self, names, step):
        """The arrays ``names``; a missing one is a one-line error naming the ``step`` that writes it."""
        out = []
        for name in names:
            path = self.file(name)
            if not os.path.exists(path):
                hint = self._sample_hint(name, "made")
                raise DL1Error(f"{path} not found: " + (f"{hint}, or run '{step}' first" if hint else
                                                         f"run '{step}' first"))
            out.append(load_array(path))
        return out

