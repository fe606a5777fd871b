"""Float precision: which mixed-precision policy suits the device, and building layers under a policy.

``mixed_precision_policy(setting)`` is the Keras dtype policy for ``Vgg16(mixed_precision=...)``
(``dl1.backend`` knows whether the GPU computes bfloat16). ``dtype_policy(policy)`` is a context manager for
code that cannot pass ``dtype=`` to each layer (``keras.applications`` builders take none): Keras' global
policy is set inside and put back on the way out, also when building fails.
"""

import contextlib

import keras

from dl1 import backend


def mixed_precision_policy(setting):
    """The Keras dtype policy for ``setting``: False/None -> None (float32); True -> 'mixed_bfloat16'
    where the GPU (or CPU) computes bfloat16, else 'mixed_float16'; 'auto' -> like True on a GPU, None
    otherwise; a policy name is returned as it is."""
    return backend.current().mixed_precision_policy(setting)


@contextlib.contextmanager
def dtype_policy(policy):
    """Layers made inside get ``policy`` (a name or None for no change); the previous global policy is
    restored afterwards."""
    old = keras.config.dtype_policy()
    if policy:
        keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)
