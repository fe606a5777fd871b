"""``ModelRecord``: what ``results/dl1-model.json`` says about a trained model, read through one function.

``dl1 finetune`` writes it after every epoch; ``predict``, ``inspect``, ``submit`` and ``export`` (and the
notebooks) read it back: the architecture, the class names in output order, the input size, the weights
file of the last epoch, the dtype policy, and the whole ``RunConfig`` of the run. The file is a JSON
object with a schema ``version``; records written before the version existed (version 1) are read too.
``ModelRecord.from_dict`` checks every field (an object, a list of distinct class names, a size, a known
architecture, version and dtype policy, a weights file name inside ``results/``, whole epoch counts) and says
in one line what is wrong and what to do; ``check_classes`` checks the class order against the class
folders (a reordered list would silently swap every label). No Keras here.
"""

import dataclasses
import numbers

from dl1.io.errors import DataError
from dl1.models import archs

VERSION = 2
FILE_NAME = "dl1-model.json"
POLICIES = (None, "float32", "mixed_float16", "mixed_bfloat16", "float16", "bfloat16")


@dataclasses.dataclass
class ModelRecord:
    """A trained model's record (see the module docstring)."""

    classes: list
    size: list | None = None
    arch: str = archs.DEFAULT_ARCH
    weights: str | None = None
    epochs_done: int = 0
    val_accuracy: float | None = None
    policy: str | None = None
    schedule: str | None = None
    config: dict | None = None

    def to_dict(self):
        return {"version": VERSION, **dataclasses.asdict(self)}

    def run_config(self):
        """The ``RunConfig`` the model was trained with (None for records that did not keep it)."""
        from dl1.models.config import RunConfig

        return RunConfig.from_dict(self.config) if self.config else None

    @classmethod
    def from_dict(cls, data, source=FILE_NAME):
        """The record in ``data`` (a parsed JSON value read from ``source``), or a DataError in one line."""
        redo = "run 'dl1 finetune' again (or put back a good copy)"
        if not isinstance(data, dict):
            raise DataError(f"{source} is not a model record (a JSON object with the class names was expected, "
                            f"found {type(data).__name__ if data is not None else 'null'}): {redo}")
        version = data.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise DataError(f"{source} has an invalid version {version!r}: {redo}")
        if version > VERSION:
            raise DataError(f"{source} is a version {version} model record and this dl1 reads versions 1 to "
                            f"{VERSION}: upgrade dl1, or {redo}")
        classes = data.get("classes")
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
            raise DataError(f"{source} has no list of class names ('classes'): {redo}")
        if len(set(classes)) != len(classes):
            twice = sorted({c for c in classes if classes.count(c) > 1})
            raise DataError(f"{source} names the class {', '.join(twice)} twice in 'classes': {redo}")
        policy = data.get("policy")
        if policy not in POLICIES:
            raise DataError(f"{source} has an unknown dtype policy {policy!r} (one of "
                            f"{', '.join(str(p) for p in POLICIES[1:])} or null): {redo}")
        weights = data.get("weights")
        if weights is not None and not (isinstance(weights, str) and weights and
                                        weights == weights.replace("\\", "/").split("/")[-1]
                                        and weights not in (".", "..")):
            raise DataError(f"{source} has an invalid weights file name {weights!r} (a file name inside "
                            f"results/ expected): {redo}")
        for key in ("epochs_done",):
            value = data.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DataError(f"{source} has an invalid {key} {value!r} (a whole number expected): {redo}")
        acc = data.get("val_accuracy")
        if acc is not None and (isinstance(acc, bool) or not isinstance(acc, numbers.Real)):
            raise DataError(f"{source} has an invalid val_accuracy {acc!r}: {redo}")
        for key in ("schedule",):
            if data.get(key) is not None and not isinstance(data.get(key), str):
                raise DataError(f"{source} has an invalid {key} {data.get(key)!r}: {redo}")
        size = data.get("size")
        if size is not None and not (isinstance(size, list) and len(size) == 2 and all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in size)):
            raise DataError(f"{source} has an invalid size {size!r} (two whole numbers expected): {redo}")
        arch = data.get("arch") or archs.DEFAULT_ARCH
        try:
            arch = archs.get(arch).name
        except ValueError as e:
            raise DataError(f"{source}: {e}: {redo}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.update(arch=arch, classes=list(classes))
        config = values.get("config")
        if config is not None and not isinstance(config, dict):
            raise DataError(f"{source} has an invalid 'config' (an object expected): {redo}")
        return cls(**values)


def check_classes(record, folders, source=FILE_NAME):
    """A DataError when a class folder list (``train/``'s sub-folders, in the sorted order the model's
    outputs follow) holds the same names as ``record.classes`` in another order: the record was edited or
    mixed up, and reading it would swap labels. Other differences (a class added since) are left alone."""
    folders = list(folders)
    if folders and set(folders) == set(record.classes) and folders != list(record.classes):
        raise DataError(f"{source} lists the classes in the order {', '.join(record.classes)} but the model's "
                        f"outputs follow the class folders' order {', '.join(folders)}: the record was "
                        "edited or mixed up; put back a good copy, or run 'dl1 finetune' again")
