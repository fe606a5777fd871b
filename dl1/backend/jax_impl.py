"""The JAX backend (see ``dl1.backend.base``): ``jax.value_and_grad`` for the hand-written RNNs, bfloat16 on
GPUs, and data parallel training on the local devices with ``keras.distribution.DataParallel``, set for the
duration of a training run and then put back (Keras' multi-device API is implemented for JAX only).

Convolutions and augmentation use the plain implementations: XLA lays out convolutions itself.
"""

import contextlib

from dl1.backend.base import Backend


class JaxBackend(Backend):
    def __init__(self):
        super().__init__("jax")

    def gpu(self):
        import jax

        return any(d.platform == "gpu" for d in jax.devices()), True

    def value_and_grad(self, fn):
        import jax

        return lambda weights: jax.value_and_grad(fn)(list(weights))

    def device_parallel(self):
        """``keras.distribution.DataParallel`` over the local devices while inside (True when there are
        several and no distribution was set by the user), the previous distribution afterwards."""
        import jax
        import keras

        devices = jax.devices()
        if len(devices) < 2 or keras.distribution.distribution() is not None:
            return contextlib.nullcontext(False)
        return _scope(keras.distribution.DataParallel(devices=devices))


@contextlib.contextmanager
def _scope(distribution):
    with distribution.scope():
        yield True
