"""One ``.onnx`` file that ONNX Runtime runs without dl1, Keras or PyTorch: ``export_onnx(model, classes, path)``.

The model is first made of plain Keras layers, float32, preprocessing inside (``dl1.models.export.
plain_model``: VGG16's caffe preprocessing is a 1x1 convolution), so the file takes what ``get_batches``
gives: raw 0-255 RGB, float32, shaped (batch, height, width, 3) at the model's size, any batch size. Its
one output is the class probabilities (batch, classes). The class names, the input size and what the input
is are in the file's metadata (``dl1.models.onnxmeta``).

The conversion is the backend's (``dl1.backend.current().onnx_program``: on torch, PyTorch's ONNX exporter
through ``torch.export``, which needs the ``onnx`` and ``onnxscript`` packages), with the batch dimension
dynamic; through it every architecture of the table exports. Keras and PyTorch are imported only when a
file is written.
"""

import os
import warnings

from dl1 import backend
from dl1.io.atomic import atomic_path
from dl1.io.errors import DL1Error
from dl1.models.onnxmeta import INPUT_NAME, INPUT_TEXT, META_CLASSES, OUTPUT_NAME, metadata


def _modules_needed():
    """A one-line error naming what to install when the exporter's packages are missing."""
    import importlib

    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise DL1Error(f"ONNX export needs {' and '.join(missing)}: pip install 'dl1[onnx]' "
                       f"(or pip install {' '.join(missing)})")


def export_onnx(model, classes, path, arch=None):
    """Write ``model`` (a Keras model taking raw RGB images) to ``path`` (``.onnx``) with ``classes`` and
    its input size in the metadata; returns ``path``."""
    import keras
    import numpy as np

    from dl1.models.export import plain_model

    path = os.fspath(path)
    if not path.endswith(".onnx"):
        raise DL1Error(f"the ONNX file's name must end in .onnx, not {path}")
    if keras.backend.backend() != "torch":
        raise DL1Error(f"ONNX export runs on the torch backend (KERAS_BACKEND=torch), not "
                       f"{keras.backend.backend()}")
    _modules_needed()
    classes = [str(c) for c in classes]
    n_out = model.output_shape[-1]
    if len(classes) != n_out:
        raise ValueError(f"{len(classes)} class names for a model with {n_out} outputs")
    size = tuple(int(s) for s in model.inputs[0].shape[1:3])
    plain = plain_model(model)
    with warnings.catch_warnings():  # a functional model named its input: Keras notes a bare tensor's structure
        warnings.simplefilter("ignore", UserWarning)
        plain(np.zeros((1,) + size + (3,), dtype=np.float32))  # built and called once, in float32
    program = backend.current().onnx_program(plain, size, INPUT_NAME, OUTPUT_NAME)
    program.model.metadata_props.update(metadata(classes, size, arch))
    program.model.doc_string = (f"dl1 image classifier: {INPUT_TEXT} at {size[0]}x{size[1]} in, class "
                                f"probabilities out ({len(classes)} classes, names in metadata {META_CLASSES})")
    needed = sum(int(np.prod(w.shape)) * 4 for w in plain.weights)
    with atomic_path(path, suffix=".onnx", needed=needed, what=f"the export {os.path.basename(path)}") as tmp:
        program.save(tmp)
    return path
