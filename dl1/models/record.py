"""``ModelRecord``: what ``results/dl1-model.json`` says about a trained model, read through one function.

``dl1 finetune`` writes it after every epoch; ``predict``, ``inspect``, ``submit`` and ``export`` (and the
notebooks) read it back: the architecture, the class names in output order, the input size, the weights
file of the last epoch, the dtype policy, and the whole ``RunConfig`` of the run. The file is a JSON
object with a schema ``version``; records written before the version existed (version 1) are read too.
``ModelRecord.from_dict`` checks the shape (an object, a list of class names, a size, a known
architecture and version) and says in one line what is wrong and what to do. No Keras here.
"""

import dataclasses
import numbers

from dl1.io.errors import DataError
from dl1.models import archs

VERSION = 2
FILE_NAME = "dl1-model.json"


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
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise DataError(f"{source} has no list of class names ('classes'): {redo}")
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
