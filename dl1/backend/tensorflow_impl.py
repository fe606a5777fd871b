"""The TensorFlow backend (see ``dl1.backend.base``): ``tf.GradientTape`` for the hand-written RNNs; the rest
is the plain implementation. dl1 does not install TensorFlow; this is for users who run Keras on it."""

from dl1.backend.base import Backend


class TensorflowBackend(Backend):
    def __init__(self):
        super().__init__("tensorflow")

    def value_and_grad(self, fn):
        import tensorflow as tf

        def g(weights):
            ws = [tf.Variable(w) for w in weights]
            with tf.GradientTape() as tape:
                value = fn(ws)
            return value, tape.gradient(value, ws)

        return g
