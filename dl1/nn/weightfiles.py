"""Read weight files in the Keras 2 HDF5 layout (Keras' ImageNet downloads, files saved by Keras 2).

Keras 3 reads these only by layer order; we match by layer name (falling back to order), skip or
report shape mismatches, and recognise the 2017 course's Theano-format ``vgg16.h5`` with a message
instead of a shape error deep inside Keras.
"""

import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from dl1.io.errors import WeightsError


@dataclass
class LoadReport:
    """What ``load_legacy_h5`` did: layer names loaded, skipped for shape mismatch, absent from the file."""

    loaded: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    missing: list = field(default_factory=list)


def _attr_list(group, name):
    """An HDF5 string-list attribute, which Keras splits into ``name0``, ``name1``... when large."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values += list(group.attrs[f"{name}{i}"])
            i += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _weights_group(f):
    return f["model_weights"] if "model_weights" in f else f


def is_legacy_h5(path):
    """True for an HDF5 file in the Keras 2 weights layout (root or ``model_weights`` ``layer_names``)."""
    try:
        with h5py.File(path, "r") as f:
            g = _weights_group(f)
            return "layer_names" in g.attrs or "layer_names0" in g.attrs
    except (OSError, ValueError):
        return False


def read_legacy_h5(path):
    """``[(layer_name, [arrays...]), ...]`` for the layers that have weights, in file order."""
    with h5py.File(path, "r") as f:
        g = _weights_group(f)
        out = []
        for name in _attr_list(g, "layer_names"):
            names = _attr_list(g[name], "weight_names")
            if names:
                out.append((name, [np.asarray(g[name][w]) for w in names]))
        return out


def _looks_channels_first(file_shapes, model_shapes):
    return any(len(a) == 4 and len(b) == 4 and a != b and sorted(a) == sorted(b)
               for a, b in zip(file_shapes, model_shapes, strict=False))


def load_legacy_h5(model, path, skip_mismatch=False):
    """Set ``model``'s weights from Keras-2 layout file ``path``, matching layers by name (by order if no
    name matches). Shape mismatches raise WeightsError unless ``skip_mismatch``. Returns a LoadReport."""
    saved = read_legacy_h5(path)
    layers = [layer for layer in model.layers if layer.weights]
    by_name = dict(saved)
    pairs = [(layer, by_name.get(layer.name)) for layer in layers]
    if not any(arrays is not None for _, arrays in pairs):
        if len(saved) != len(layers):
            raise WeightsError(
                f"{path} holds weights for {len(saved)} layers, none named like this model's "
                f"{len(layers)} layers with weights; it was saved from a different model")
        pairs = [(layer, arrays) for layer, (_, arrays) in zip(layers, saved, strict=True)]
    report = LoadReport()
    for layer, arrays in pairs:
        if arrays is None:
            report.missing.append(layer.name)
            continue
        want = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(a.shape) for a in arrays]
        if want != got:
            if _looks_channels_first(got, want):
                raise WeightsError(
                    f"{path} holds channels-first (Theano-format) weights, like the 2017 course's vgg16.h5; "
                    "Keras 3 uses channels-last: use Vgg16(weights='imagenet') for the same ImageNet weights")
            if skip_mismatch:
                report.skipped.append(layer.name)
                continue
            raise WeightsError(f"{os.path.basename(path)}: layer {layer.name} has weights of shape {got} "
                               f"in the file but {want} in the model")
        layer.set_weights(arrays)
        report.loaded.append(layer.name)
    return report


def save_legacy_h5(model, path):
    """Write ``model``'s weights in the Keras 2 HDF5 layout, the layout of Keras' ImageNet downloads
    (used to make stand-in 'ImageNet' files for offline machines and tests)."""
    from dl1.io.atomic import atomic_path

    layers = [layer for layer in model.layers if layer.weights]
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode("utf8") for layer in layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in layers:
            g = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            g.attrs["weight_names"] = [n.encode("utf8") for n in names]
            for name, value in zip(names, layer.get_weights(), strict=True):
                g.create_dataset(name, data=value)


# ---- what kind of file is this? ---------------------------------------------------------------------------
def file_kind(path):
    """``'keras2-h5'`` (Keras 2 layout: Keras' ImageNet downloads), ``'keras3-h5'`` (``save_weights`` of
    Keras 3, under any name), ``'keras-archive'`` (a ``.keras`` model file) or ``'unknown'``."""
    import zipfile

    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
            return "keras-archive" if "config.json" in names and "model.weights.h5" in names else "unknown"
        except (OSError, zipfile.BadZipFile):
            return "unknown"
    if is_legacy_h5(path):
        return "keras2-h5"
    try:
        with h5py.File(path, "r") as f:
            return "keras3-h5" if "layers" in f or "vars" in f else "unknown"
    except (OSError, ValueError):
        return "unknown"


KIND_TEXT = {"keras2-h5": "a Keras 2 weights file", "keras3-h5": "a Keras 3 weights file",
             "keras-archive": "a Keras model file (.keras)", "unknown": "not a Keras weights or model file"}


def _archive_last_units(path):
    """Outputs of the last layer in a ``.keras`` archive, from its ``config.json`` (public format)."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    layers = config.get("config", {}).get("layers") or []
    for layer in reversed(layers):
        units = layer.get("config", {}).get("units")
        if units is not None:
            return int(units)
    return None


def saved_num_classes(path):
    """Number of outputs of the last Dense layer stored in a weights or model file, or None when it
    cannot be told (the caller then builds the 1000-class network and lets loading say what is wrong)."""
    from dl1.nn import kprivate

    kind = file_kind(path)
    try:
        if kind == "keras2-h5":
            saved = read_legacy_h5(path)
            return int(saved[-1][1][-1].shape[-1]) if saved else None
        if kind == "keras-archive":
            return _archive_last_units(path)
        if kind == "keras3-h5":
            with h5py.File(path, "r") as f:
                return kprivate.keras3_last_dense_units(f)
    except (OSError, KeyError, IndexError, ValueError):
        return None
    return None
