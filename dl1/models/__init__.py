"""The course's models (``Vgg16``, ``Vgg16BN``), their weights, and the 2017 model-surgery helpers."""
