"""The course's models: one ``ImageClassifier`` (classifier.py) for every network of the architecture table
(archs.py, facts only: no Keras), the networks that build them (``VggNetwork`` in vgg16.py,
``ApplicationNetwork`` in applications.py), the 2017 names (``Vgg16``, ``Vgg16BN``, ``Resnet50``, ...),
the run configuration (config.py) and the model record (record.py), weights, export, and the 2017
model-surgery helpers."""
