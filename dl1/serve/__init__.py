"""Serving a trained model: the engines that run it (ONNX Runtime on an exported file, or the Keras model),
one answer per photo (``answer.py``: decoded as ``get_batches`` decodes, the probabilities, the image as the
model saw it, or the reason it cannot be read), and the Gradio web app of ``dl1 app`` (``app.py``, the
optional ``dl1[app]`` extra). Folders are resolved by ``dl1.workflow``, which passes the files down; the
ONNX path imports neither Keras nor PyTorch."""
