"""Optimizers as this toolkit uses them: Keras' own classes and the mixed-precision policy.

``SGD``, ``Adam``, ... are Keras' classes (their ``learning_rate`` can be set at any time and takes effect at
the next step); ``dl1.compat`` adds the Keras 1 spellings (``lr=``, ``decay=``, ``opt.lr``) while a 2017
face is imported. ``mixed_precision_policy`` (``dl1.nn.precision``) picks the Keras dtype policy for
the device.
"""

import keras

from dl1.nn.precision import mixed_precision_policy

__all__ = ["SGD", "RMSprop", "Adam", "Adagrad", "Adadelta", "Adamax", "Nadam", "LossScaleOptimizer",
           "mixed_precision_policy"]

SGD = keras.optimizers.SGD
RMSprop = keras.optimizers.RMSprop
Adam = keras.optimizers.Adam
Adagrad = keras.optimizers.Adagrad
Adadelta = keras.optimizers.Adadelta
Adamax = keras.optimizers.Adamax
Nadam = keras.optimizers.Nadam
LossScaleOptimizer = keras.optimizers.LossScaleOptimizer

