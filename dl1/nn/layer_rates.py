"""Discriminative learning rates: one optimizer, a different rate for each group of layers.

Scaling the gradients does not work for Adam (its steps do not depend on the gradients' scale), so the
optimizer itself multiplies its learning rate per variable: ``with_layer_rates(optimizer, multipliers)``
returns an optimizer of the same class and configuration whose ``update_step`` (the public per-variable
hook of Keras 3 optimizers, used on every backend for classes outside Keras' own) uses
``learning_rate * multipliers[variable.path]``. A schedule that sets ``optimizer.learning_rate`` (the
one-cycle callback) moves every group together.
"""

import keras

from dl1.nn import kprivate


class _LayerRates:
    """Mixed into an optimizer class: the per-variable multiplier of the learning rate."""

    rate_multipliers = {}

    def update_step(self, gradient, variable, learning_rate):
        factor = self.rate_multipliers.get(variable.path, 1.0)
        if factor != 1.0:
            learning_rate = learning_rate * factor
        return super().update_step(gradient, variable, learning_rate)


def with_layer_rates(optimizer, multipliers):
    """A fresh optimizer like ``optimizer`` (same class and configuration, no state) whose learning rate is
    multiplied by ``multipliers[variable.path]`` for each variable named there (1 for the others).
    A ``LossScaleOptimizer`` keeps its loss scaling around the new inner optimizer."""
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:
        return keras.optimizers.LossScaleOptimizer(with_layer_rates(inner, multipliers))
    # Keras swaps its optimizers for backend-specific classes (torch: a parallel update that bypasses
    # ``update_step``); subclass the public class instead, which goes through ``update_step``
    base = kprivate.public_optimizer_class(type(optimizer))
    cls = type(base.__name__, (_LayerRates, base), {"rate_multipliers": dict(multipliers)})
    config = optimizer.get_config()
    lr = config.get("learning_rate")
    if not isinstance(lr, (int, float)) and not isinstance(lr, dict):
        config["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    return cls.from_config(config)


def group_multipliers(groups, rates, base_rate):
    """``{variable.path: rate / base_rate}`` for each layer of each group (``groups`` a list of lists of
    layers, ``rates`` one learning rate per group)."""
    if len(groups) != len(rates):
        raise ValueError(f"{len(rates)} learning rates for {len(groups)} layer groups")
    out = {}
    for layers, rate in zip(groups, rates, strict=True):
        for layer in layers:
            for v in layer.weights:
                out[v.path] = float(rate) / float(base_rate)
    return out
