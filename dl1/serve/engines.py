"""What runs the model behind the app: ``OnnxEngine`` (an exported ``.onnx`` file, ONNX Runtime only: starts in
a second, no training stack) or ``KerasEngine`` (the trained ``ImageClassifier`` itself). Both say their
``classes`` and input ``size`` and map a float32 (n, h, w, 3) batch of raw 0-255 RGB to probabilities."""

import os

import numpy as np

from dl1.io.errors import DL1Error
from dl1.models.onnxmeta import read_metadata


class OnnxEngine:
    """An exported ONNX file run by ONNX Runtime on the CPU; ``classes`` and ``size`` from its metadata."""

    name = "ONNX Runtime"

    def __init__(self, path, threads=None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise DL1Error("serving an ONNX file needs onnxruntime: pip install 'dl1[app]' (or pip install "
                           "onnxruntime)") from None
        self.path = os.fspath(path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no per-node notes on the terminal
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for a damaged or foreign file
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DL1Error(f"{self.path} is not a model ONNX Runtime can run ({first[:200]}): write it again "
                           "with 'dl1 export DIR --format onnx'") from None
        self.classes, self.size = read_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        self.input = self.session.get_inputs()[0].name

    def predict(self, x):
        return self.session.run(None, {self.input: np.ascontiguousarray(x, dtype=np.float32)})[0]


class KerasEngine:
    """A trained ``ImageClassifier`` (anything with ``model``, ``classes`` and ``size``)."""

    name = "Keras"

    def __init__(self, classifier):
        self.model = classifier.model
        self.classes = [str(c) for c in classifier.classes]
        self.size = tuple(classifier.size)
        self.name = f"Keras ({os.environ.get('KERAS_BACKEND', 'torch')} backend)"

    def predict(self, x):
        return np.asarray(self.model.predict_on_batch(np.asarray(x, dtype=np.float32)), dtype=np.float32)
