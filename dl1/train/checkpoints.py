"""Training checkpoints that let a killed run continue where it stopped.

A checkpoint holds what training changes: the weights of every layer that has trainable weights (with
their non-trainable parts, e.g. BatchNorm statistics), the optimizer's state, and the position
(epoch, batch) and shuffle seed. Frozen layers are not stored: they are rebuilt by running the same
command again, and a fingerprint of their weights makes sure the checkpoint only resumes the run it
came from. Files are written under a temporary name and renamed, so a kill during a save leaves the
previous checkpoint intact, after a check that the disk has room for them (``dl1.io.atomic``).

The file is a plain ``.npz`` (never a pickle) with a ``meta`` entry: ``format`` (the version), the run's
signature, the position and the seed. Reading it back checks every entry (types, arrays present with the
model's shapes, finite numbers) before any weight is touched; a damaged file is one ``CheckpointError``
line naming it and the way out (a previous checkpoint, or ``--restart``).
"""

import hashlib
import io
import json
import os
import time
import zipfile

import keras
import numpy as np

from dl1.io.atomic import write_bytes
from dl1.io.errors import DL1Error

FORMAT = "dl1-checkpoint-1"


class CheckpointError(DL1Error):
    """A checkpoint file that cannot be read back (damaged, foreign, or not matching its own record)."""


def _whole(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_meta(meta):
    """The problem with a checkpoint's metadata, or None when it is well formed."""
    if not isinstance(meta, dict):
        return "its metadata is not an object"
    if meta.get("format") != FORMAT:
        return f"format {meta.get('format')!r} (this dl1 reads {FORMAT})"
    if not isinstance(meta.get("signature"), str):
        return "it has no run signature"
    for key in ("epoch", "batch", "seed"):
        if not _whole(meta.get(key)):
            return f"invalid {key} {meta.get(key)!r}"
    target = meta.get("epochs_target")
    if target is not None and not _whole(target):
        return f"invalid epochs_target {target!r}"
    return None


def _layer_key(i, layer):
    return f"{i}:{layer.name}"


def trained_layers(model):
    """``[(key, layer)]`` of the layers whose weights training can change."""
    return [(_layer_key(i, layer), layer) for i, layer in enumerate(model.layers) if layer.trainable_weights]


def model_signature(model, extra=None):
    """A hash of what must be the same for a checkpoint to apply: layers, shapes, trainable flags,
    the frozen weights' fingerprint and ``extra`` (e.g. classes and batch size)."""
    from dl1.train.features import weights_fingerprint

    frozen = [layer for layer in model.layers if layer.weights and not layer.trainable_weights]
    desc = {
        "layers": [[layer.name, type(layer).__name__, bool(layer.trainable),
                    [list(w.shape) for w in layer.weights]] for layer in model.layers],
        "frozen": weights_fingerprint(frozen),
        "extra": extra or {},
    }
    return hashlib.blake2b(json.dumps(desc, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


class Checkpoint:
    """One checkpoint file for one training run (identified by ``signature``)."""

    def __init__(self, path, model, signature):
        self.path = os.fspath(path)
        self.model = model
        self.signature = signature

    def _optimizer(self):
        opt = self.model.optimizer
        if opt is not None and not opt.built:
            opt.build(self.model.trainable_variables)
        return opt

    def save(self, epoch, batch, seed, epochs_target=None):
        arrays = {}
        for key, layer in trained_layers(self.model):
            for j, w in enumerate(layer.weights):
                arrays[f"w/{key}/{j}"] = keras.ops.convert_to_numpy(w)
        opt = self._optimizer()
        for j, v in enumerate(opt.variables if opt is not None else []):
            arrays[f"o/{j}"] = keras.ops.convert_to_numpy(v)
        meta = {"format": FORMAT, "signature": self.signature, "epoch": int(epoch), "batch": int(batch),
                "seed": int(seed), "epochs_target": epochs_target, "time": time.time()}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_bytes(self.path, buf.getbuffer(), what=f"the checkpoint {os.path.basename(self.path)}")

    def _damaged(self, why):
        folder, name = os.path.split(self.path)
        older = sorted(n for n in os.listdir(folder or ".") if n.startswith(name + ".") and n.endswith(".old"))
        previous = f"put back the previous checkpoint ({os.path.join(folder, older[-1])}) under its name, or " \
            if older else ""
        return CheckpointError(f"{self.path} is damaged ({why}): {previous}run again with --restart to start "
                               "over (the epoch weights and dl1-model.json are kept)")

    def read_meta(self):
        """The checkpoint's metadata, or None when there is no checkpoint. A file that is there but cannot
        be read (damaged, truncated, foreign, another format) is a ``CheckpointError``."""
        if not os.path.exists(self.path):
            return None
        if not zipfile.is_zipfile(self.path):  # np.load would take it for a pickle (and refuse it)
            raise self._damaged("not a whole .npz archive: cut short or overwritten")
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if "meta" not in data.files:
                    raise self._damaged("no 'meta' entry")
                meta = json.loads(bytes(data["meta"]).decode())
        except CheckpointError:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as e:
            raise self._damaged(f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                                .rstrip(": ")) from None
        problem = check_meta(meta)
        if problem:
            raise self._damaged(problem)
        return meta

    def matches(self, meta):
        return meta is not None and meta.get("signature") == self.signature

    def restore(self):
        """Load weights and optimizer state; returns the metadata (epoch, batch, seed). Every array is read
        and checked (present, the model's shape, finite) before the first one is assigned."""
        meta = self.read_meta()
        try:
            with np.load(self.path, allow_pickle=False) as data:
                plan = []
                for key, layer in trained_layers(self.model):
                    for j, var in enumerate(layer.weights):
                        name = f"w/{key}/{j}"
                        if name not in data.files:
                            raise self._damaged(f"no weights for layer {layer.name}")
                        value = data[name]
                        if tuple(value.shape) != tuple(var.shape):
                            raise self._damaged(f"layer {layer.name} has shape {tuple(value.shape)} in the file, "
                                                f"{tuple(var.shape)} in the model")
                        if value.dtype.kind == "f" and not np.isfinite(value).all():
                            raise self._damaged(f"layer {layer.name} holds NaN or infinite weights")
                        plan.append((var, value))
                opt = self._optimizer()
                names = sorted((k for k in data.files if k.startswith("o/") and k[2:].isdigit()),
                               key=lambda k: int(k[2:]))
                if opt is not None and len(names) == len(opt.variables):
                    plan += [(var, data[name]) for var, name in zip(opt.variables, names, strict=True)
                             if tuple(var.shape) == data[name].shape]
        except CheckpointError:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise self._damaged(f"{type(e).__name__}: {e}") from None
        for var, value in plan:
            var.assign(value)
        return meta

    def set_aside(self):
        """Rename a checkpoint of another run to ``<name>.<time>.old`` (never delete progress)."""
        if os.path.exists(self.path):
            old = f"{self.path}.{time.strftime('%Y%m%d-%H%M%S')}.old"
            os.replace(self.path, old)
            return old
        return None
