"""What an exported ONNX file says about itself, in its ``metadata_props`` (ONNX Runtime:
``session.get_modelmeta().custom_metadata_map``); written by ``dl1.models.onnx_export``, read by the app.
No Keras, no PyTorch, no onnx here: the app's ONNX path imports only this, numpy and onnxruntime.

    dl1.classes     JSON list of the class names, in output order
    dl1.input_size  JSON [height, width]
    dl1.input       "raw RGB images, 0-255 float32, (batch, height, width, 3)"
    dl1.arch        the architecture's name in dl1's table (a note for people; nothing reads it)
"""

import json

from dl1.io.errors import DL1Error

META_CLASSES = "dl1.classes"
META_SIZE = "dl1.input_size"
META_INPUT = "dl1.input"
META_ARCH = "dl1.arch"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
INPUT_TEXT = "raw RGB images, 0-255 float32, (batch, height, width, 3)"


def metadata(classes, size, arch=None):
    """The ``metadata_props`` written into an exported file (see the module docstring)."""
    meta = {META_CLASSES: json.dumps([str(c) for c in classes]), META_SIZE: json.dumps([int(s) for s in size]),
            META_INPUT: INPUT_TEXT}
    if arch:
        meta[META_ARCH] = str(arch)
    return meta


def read_metadata(meta, source="the ONNX file"):
    """``(classes, (height, width))`` from a file's metadata map; a one-line ``DL1Error`` when it was not
    written by ``dl1 export --format onnx``."""
    try:
        classes = json.loads(meta[META_CLASSES])
        size = tuple(int(s) for s in json.loads(meta[META_SIZE]))
        if not (isinstance(classes, list) and classes and len(size) == 2):
            raise ValueError
    except (KeyError, ValueError, TypeError):
        raise DL1Error(f"{source} has no dl1 metadata (class names and input size): write it with "
                       "'dl1 export DIR --format onnx'") from None
    return [str(c) for c in classes], size
