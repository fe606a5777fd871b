"""Training checkpoints that let a killed run continue where it stopped.

A checkpoint holds what training changes: the weights of every layer that has trainable weights (with
their non-trainable parts, e.g. BatchNorm statistics), the optimizer's state, and the position
(epoch, batch) and shuffle seed. Frozen layers are not stored: they are rebuilt by running the same
command again, and a fingerprint of their weights makes sure the checkpoint only resumes the run it
came from. Files are written under a temporary name and renamed, so a kill during a save leaves the
previous checkpoint intact.
"""

import hashlib
import io
import json
import os
import time

import keras
import numpy as np

from dl1.io.atomic import atomic_path

FORMAT = "dl1-checkpoint-1"


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
        with atomic_path(self.path, suffix=".npz") as tmp, open(tmp, "wb") as f:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            f.write(buf.getvalue())

    def read_meta(self):
        """The checkpoint's metadata, or None when there is no readable checkpoint."""
        if not os.path.exists(self.path):
            return None
        try:
            with np.load(self.path) as data:
                meta = json.loads(bytes(data["meta"]).decode())
            return meta if meta.get("format") == FORMAT else None
        except (OSError, ValueError, KeyError, EOFError):
            return None

    def matches(self, meta):
        return meta is not None and meta.get("signature") == self.signature

    def restore(self):
        """Load weights and optimizer state; returns the metadata (epoch, batch, seed)."""
        with np.load(self.path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            for key, layer in trained_layers(self.model):
                saved = [data[f"w/{key}/{j}"] for j in range(len(layer.weights))]
                for var, value in zip(layer.weights, saved, strict=True):
                    var.assign(value)
            opt = self._optimizer()
            names = sorted((k for k in data.files if k.startswith("o/")), key=lambda k: int(k[2:]))
            if opt is not None and len(names) == len(opt.variables):
                for var, name in zip(opt.variables, names, strict=True):
                    if tuple(var.shape) == data[name].shape:
                        var.assign(data[name])
        return meta

    def set_aside(self):
        """Rename a checkpoint of another run to ``<name>.<time>.old`` (never delete progress)."""
        if os.path.exists(self.path):
            old = f"{self.path}.{time.strftime('%Y%m%d-%H%M%S')}.old"
            os.replace(self.path, old)
            return old
        return None
