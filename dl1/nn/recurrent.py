"""Keras' ``LSTM`` and ``GRU``, with stateful training working on the PyTorch backend.

Keras 3.15 on torch runs LSTM and GRU through a fast path (``backend.lstm``/``backend.gru``: cuDNN on a GPU,
a loop with the input projections precomputed on the CPU) that reads a stateful layer's state variables
directly. The layer then assigns the new state to those variables in place, before the backward pass that
still needs the old values, and ``fit`` stops with "one of the variables needed for gradient computation
has been modified by an inplace operation". (Keras' generic loop copies the states for this reason; its fast
path does not.) These subclasses hand the fast path a copy of the state: same weights, same results, and
``stateful=True`` trains (lesson 6's stateful LSTM).
"""

import keras
from keras import ops

__all__ = ["GRU", "LSTM"]


def _copy_states(states):
    if isinstance(states, (list, tuple)):
        return [ops.copy(s) for s in states]
    return ops.copy(states)


class _StatefulCopy:
    def inner_loop(self, sequences, initial_state, mask, training=False):
        if self.stateful and keras.backend.backend() == "torch":
            initial_state = _copy_states(initial_state)
        return super().inner_loop(sequences, initial_state, mask, training=training)


@keras.saving.register_keras_serializable(package="dl1")
class LSTM(_StatefulCopy, keras.layers.LSTM):
    """``keras.layers.LSTM`` whose ``stateful=True`` trains on the torch backend (module docstring)."""


@keras.saving.register_keras_serializable(package="dl1")
class GRU(_StatefulCopy, keras.layers.GRU):
    """``keras.layers.GRU`` whose ``stateful=True`` trains on the torch backend (module docstring)."""
