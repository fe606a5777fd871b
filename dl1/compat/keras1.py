"""Keras 1 spellings of Keras' own classes, with today's meaning, for 2017 cells typed from the videos.

``Convolution2D(64, 3, 3, border_mode='same')`` is ``dl1.nn.layers.Conv2D`` itself (so
``type(layer) is Convolution2D`` holds for ``Vgg16().model``'s layers); the optimizers take ``lr=`` and
``decay=``; models have ``fit(nb_epoch=)``, ``fit_generator`` and ``predict_classes``.
"""

from dl1.nn.layers import Conv2D, Convolution2D, MaxPooling2D
from dl1.nn.model import Model, Sequential
from dl1.nn.optimizers import SGD, Adadelta, Adagrad, Adam, Adamax, Nadam, RMSprop

__all__ = ["Conv2D", "Convolution2D", "MaxPooling2D", "Model", "Sequential", "SGD", "Adadelta", "Adagrad",
           "Adam", "Adamax", "Nadam", "RMSprop"]
