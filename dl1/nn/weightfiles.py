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


def read_legacy_h5(path, finite=False):
    """``[(layer_name, [arrays...]), ...]`` for the layers that have weights, in file order; ``finite``:
    refuse NaN or infinite values as ``check_finite`` does, on the arrays as they are read (VGG16's ImageNet
    file is 553 MB: read once, not twice)."""
    with h5py.File(path, "r") as f:
        g = _weights_group(f)
        out = []
        for name in _attr_list(g, "layer_names"):
            names = _attr_list(g[name], "weight_names")
            if names:
                arrays = [np.asarray(g[name][w]) for w in names]
                for w, a in zip(names, arrays, strict=True) if finite else ():
                    if not _all_finite(a):
                        raise _nonfinite(path, g[name][w].name.lstrip("/"))
                out.append((name, arrays))
        return out


def _looks_channels_first(file_shapes, model_shapes):
    return any(len(a) == 4 and len(b) == 4 and a != b and sorted(a) == sorted(b)
               for a, b in zip(file_shapes, model_shapes, strict=False))


def load_legacy_h5(model, path, skip_mismatch=False):
    """Set ``model``'s weights from Keras-2 layout file ``path``, matching layers by name (by order if no
    name matches). Shape mismatches raise WeightsError unless ``skip_mismatch``. Returns a LoadReport."""
    saved = read_legacy_h5(path, finite=True)
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
        want = [tuple(w.shape) for w in layer.weights]
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
    import io

    from dl1.io.atomic import write_bytes

    layers = [layer for layer in model.layers if layer.weights]
    buf = io.BytesIO()  # HDF5 in memory, then one plain write (a full disk cannot crash HDF5)
    with h5py.File(buf, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode("utf8") for layer in layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in layers:
            g = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            g.attrs["weight_names"] = [n.encode("utf8") for n in names]
            for name, value in zip(names, layer.get_weights(), strict=True):
                g.create_dataset(name, data=value)
    write_bytes(path, buf.getbuffer(), what=f"the weights {os.path.basename(path)}")


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

# ---- the one loader: what a file holds, checked against the model before anything is built or loaded -------
MAX_CLASSES = 1_000_000  # outputs of a classifier's last layer: beyond this a config is taken for damaged
MAX_ELEMENTS = 2**31  # values in one array of a weights file (VGG16's largest has 103 M)


@dataclass
class WeightFile:
    """What a weights or model file holds, read without loading its arrays (``describe``)."""

    path: str
    kind: str
    shapes: list = field(default_factory=list)  # shapes of the model's float arrays (optimizer state aside)
    last_units: int | None = None  # outputs of its last Dense layer, when that can be told

    @property
    def name(self):
        return os.path.basename(self.path)


def _bad(path, why):
    return WeightsError(f"{path} cannot be used as weights: {why}")


def _h5_arrays(f, skip=("optimizer",)):
    """``[(name, dataset)]`` of every array in an open HDF5 file (groups in ``skip`` at the top aside)."""
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.split("/", 1)[0] not in skip:
            found.append((name, obj))

    f.visititems(visit)
    return found


def _checked_shapes(path, arrays):
    shapes = []
    for name, ds in arrays:
        shape = tuple(int(n) for n in ds.shape)
        if int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS:
            raise _bad(path, f"its array {name} claims {np.prod(shape, dtype=np.float64):.3g} values, more than "
                             f"{MAX_ELEMENTS:,} (a damaged or hostile file)")
        if ds.dtype.kind == "f":
            shapes.append(shape)
    return shapes


def _units(path, value, where):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_CLASSES:
        raise _bad(path, f"{where} claims {value!r} output units (1 to {MAX_CLASSES:,} expected)")
    return value


def _archive_config(path, z):
    import json

    try:
        config = json.loads(z.read("config.json"))
    except ValueError as e:
        raise _bad(path, f"its config.json is not valid JSON ({e})") from None
    if not isinstance(config, dict) or not isinstance(config.get("config", {}), dict):
        raise _bad(path, f"its config.json is a {type(config).__name__}, not a Keras model config (an object)")
    layers = config.get("config", {}).get("layers") or []
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise _bad(path, "its config.json has no list of layers")
    return layers


def _archive_last_units(path, layers):
    """Outputs of the last layer with ``units`` in a ``.keras`` archive's config (public format)."""
    for layer in reversed(layers):
        conf = layer.get("config")
        if isinstance(conf, dict) and conf.get("units") is not None:
            return _units(path, conf["units"], f"its config.json (layer {layer.get('class_name', '?')})")
    return None


def _describe(path, kind):
    import zipfile

    if kind == "keras-archive":
        with zipfile.ZipFile(path) as z:
            damaged = z.testzip()  # every member's CRC: a damaged archive is named before Keras reads it
            if damaged is not None:
                raise _bad(path, f"the archive is damaged (bad CRC in {damaged})")
            layers = _archive_config(path, z)
            units = _archive_last_units(path, layers)
            with z.open("model.weights.h5") as member, h5py.File(member, "r") as f:
                shapes = _checked_shapes(path, _h5_arrays(f))
        return WeightFile(path, kind, shapes, units)
    if kind == "keras2-h5":
        with h5py.File(path, "r") as f:
            g = _weights_group(f)
            arrays = []
            for name in _attr_list(g, "layer_names"):
                if name not in g:
                    raise _bad(path, f"it lists layer {name} but holds no group for it")
                for w in _attr_list(g[name], "weight_names"):
                    if w not in g[name]:
                        raise _bad(path, f"it lists weights {w} but does not hold them")
                    arrays.append((w, g[name][w]))
            shapes = _checked_shapes(path, arrays)
        last = shapes[-1][-1] if shapes and shapes[-1] else None
        return WeightFile(path, kind, shapes, _units(path, last, "its last layer"))
    with h5py.File(path, "r") as f:
        shapes = _checked_shapes(path, _h5_arrays(f))
        units = None
        try:
            from dl1.nn import kprivate

            units = kprivate.keras3_last_dense_units(f)
        except (KeyError, IndexError, ValueError, TypeError):
            units = None
    return WeightFile(path, kind, shapes, _units(path, units, "its last Dense layer"))


def describe(path):
    """The ``WeightFile`` at ``path``: kind, array shapes and the last layer's outputs, read from the file's
    structure only (nothing allocated for its values). Anything unreadable, damaged, out of bounds
    (an array of more than ``MAX_ELEMENTS`` values, more than ``MAX_CLASSES`` outputs) or not a Keras file
    is one ``WeightsError`` line naming the file."""
    import zipfile

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    kind = file_kind(path)
    if kind == "unknown":
        raise WeightsError(f"{path} is {KIND_TEXT[kind]} (expected an HDF5 .h5/.weights.h5 file or a .keras file)")
    try:
        return _describe(path, kind)
    except WeightsError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile, RuntimeError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise _bad(path, f"it is damaged ({first})") from None


def _chunk_rows(shape):
    """Rows of an array of ``shape`` that make ~16 M values: finiteness is checked a chunk at a time."""
    return max(1, (1 << 24) // max(1, int(np.prod(shape[1:], dtype=np.int64)))) if len(shape) else 1


def _all_finite(a):
    """True when array ``a`` (any dtype) holds no NaN or infinite value."""
    a = np.asarray(a)
    if a.dtype.kind != "f" or a.size == 0:
        return True
    if a.ndim == 0:
        return bool(np.isfinite(a))
    rows = _chunk_rows(a.shape)
    return all(np.isfinite(a[i:i + rows]).all() for i in range(0, a.shape[0], rows))


def _nonfinite(path, name):
    return WeightsError(f"{path} holds NaN or infinite weights (in {name}): refused; use the weights of an earlier "
                        "epoch, or train again")


def check_finite(path):
    """Refuse (one line naming the file and the array) a weights file holding NaN or infinite values."""
    import zipfile

    def scan(f):
        for name, ds in _h5_arrays(f):
            if ds.dtype.kind != "f" or ds.size == 0:
                continue
            rows = _chunk_rows(ds.shape)
            for start in range(0, ds.shape[0] if ds.ndim else 1, rows):
                if not _all_finite(ds[start:start + rows] if ds.ndim else ds[()]):
                    raise _nonfinite(path, name)

    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z, z.open("model.weights.h5") as member, h5py.File(member, "r") as f:
                scan(f)
        else:
            with h5py.File(path, "r") as f:
                scan(f)
    except WeightsError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, RuntimeError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise _bad(path, f"it is damaged ({first})") from None


def model_shapes(model):
    """Shapes of ``model``'s float weights, as ``describe`` lists a file's."""
    return [tuple(int(n) for n in w.shape) for w in model.weights if "float" in str(w.dtype)]


def check_fits(model, info, what="this model"):
    """One ``WeightsError`` line when the file ``info`` describes cannot fill ``model``: another number of
    classes, other layer shapes (another input size or architecture), or another number of arrays."""
    from collections import Counter

    ours = model_shapes(model)
    units = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if info.last_units is not None and units is not None and ours and len(ours[-1]) == 1 \
            and info.last_units != units and Counter(info.shapes) != Counter(ours):
        raise WeightsError(f"{info.path} holds a model with {info.last_units} outputs (classes) but {what} has "
                           f"{units}: use the weights trained for these classes")
    if Counter(info.shapes) == Counter(ours):
        return
    if len(info.shapes) != len(ours):
        raise WeightsError(f"{info.path} holds {len(info.shapes)} weight arrays and {what} has {len(ours)}: it "
                           "was saved from another architecture")
    missing = list((Counter(ours) - Counter(info.shapes)).elements())
    extra = list((Counter(info.shapes) - Counter(ours)).elements())
    mine = missing[0] if missing else "?"
    other = extra[0] if extra else "?"
    raise WeightsError(f"{info.path} holds weights of shape {other} where {what} has {mine}: it was saved "
                       "from another input size or architecture")


def saved_num_classes(path):
    """Number of outputs of the last Dense layer stored in a weights or model file, or None when it
    cannot be told. A damaged file, or one claiming an absurd number of outputs, is one WeightsError."""
    return describe(path).last_units
