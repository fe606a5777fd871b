"""Keras 1 spellings of Keras' own classes, with today's meaning, for 2017 cells typed from the videos.

``Convolution2D(64, 3, 3, border_mode='same')`` is ``dl1.nn.layers.Conv2D`` itself (so
``type(layer) is Convolution2D`` holds for ``Vgg16().model``'s layers), and likewise ``Dense(output_dim,
init=, W_regularizer=)``, ``Embedding(input_length=, dropout=)``, ``Convolution1D(nb_filter, filter_length,
border_mode=)``, ``LSTM/GRU/SimpleRNN(consume_less=, dropout_W=, dropout_U=, inner_init=)``,
``BatchNormalization(mode=0)``, ``merge([a, b], mode='dot')``, ``Merge(mode='concat')``, ``batch_input_shape=``
(see ``dl1.nn.keras1``); the optimizers take ``lr=`` and ``decay=``; models have ``fit(nb_epoch=)``,
``fit_generator``, ``predict_classes``, ``reset_states`` and ``Model(input=, output=)``.
"""

from dl1.nn.keras1 import (
    GRU,
    LSTM,
    Activation,
    BatchNormalization,
    Conv1D,
    Convolution1D,
    Dropout,
    Embedding,
    Flatten,
    GaussianDropout,
    GaussianNoise,
    Input,
    Keras1Error,
    LeakyReLU,
    MaxPooling1D,
    Merge,
    PReLU,
    Reshape,
    SimpleRNN,
    TimeDistributed,
    ZeroPadding2D,
    merge,
)
from dl1.nn.layers import Conv2D, Convolution2D, Dense, MaxPooling2D
from dl1.nn.model import Model, Sequential
from dl1.nn.optimizers import SGD, Adadelta, Adagrad, Adam, Adamax, Nadam, RMSprop

__all__ = ["Conv2D", "Convolution2D", "MaxPooling2D", "Dense", "Dropout", "Flatten", "Activation", "Reshape",
           "ZeroPadding2D", "BatchNormalization", "Embedding", "Conv1D", "Convolution1D", "MaxPooling1D",
           "SimpleRNN", "GRU", "LSTM", "TimeDistributed", "LeakyReLU", "PReLU", "GaussianNoise",
           "GaussianDropout", "Input", "merge", "Merge", "Keras1Error", "Model",
           "Sequential", "SGD", "Adadelta", "Adagrad", "Adam", "Adamax", "Nadam", "RMSprop"]
