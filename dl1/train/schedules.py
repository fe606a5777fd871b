"""One-cycle training: the learning rate warms up, then anneals (cosine), while Adam's ``beta_1`` (the
momentum) does the opposite, as fastai's ``fit_one_cycle`` does.

``one_cycle_values(step, total_steps, max_lr)`` is the schedule itself (pure Python, the tests compare
against it); ``OneCycle`` is a Keras callback that sets the optimizer's rate and ``beta_1`` (``momentum``
for SGD) before every training step. Its position in the cycle is the optimizer's own step counter
(``optimizer.iterations``, minus ``start_iteration``), which the training checkpoints save and restore:
a run stopped half way and started again continues at the very step it stopped at.
"""

import math

import keras

from dl1 import backend


def _cos(start, end, pct):
    """Cosine interpolation from ``start`` (pct=0) to ``end`` (pct=1)."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def one_cycle_values(step, total_steps, max_lr, pct_start=0.25, div=25.0, div_final=1e5,
                     moms=(0.95, 0.85, 0.95)):
    """``(learning rate, beta_1)`` for 0-based ``step`` of a ``total_steps`` cycle.

    Warm-up over the first ``pct_start`` of the steps from ``max_lr/div`` to ``max_lr`` and ``beta_1`` from
    ``moms[0]`` to ``moms[1]``; then down to ``max_lr/div_final`` while ``beta_1`` climbs back to ``moms[2]``
    (both by half cosines). Steps past the end keep the final values.
    """
    total_steps = max(int(total_steps), 1)
    step = min(max(int(step), 0), total_steps - 1)
    warm = max(int(round(total_steps * pct_start)), 1) if pct_start > 0 else 0
    if step < warm:
        pct = step / warm  # reaches max_lr at step ``warm``, the first of the annealing
        return _cos(max_lr / div, max_lr, pct), _cos(moms[0], moms[1], pct)
    rest = total_steps - warm
    pct = (step - warm) / max(rest - 1, 1) if rest > 1 else 1.0
    return _cos(max_lr, max_lr / div_final, pct), _cos(moms[1], moms[2], pct)


def inner_optimizer(optimizer):
    """The optimizer that holds the rate and momentum (a ``LossScaleOptimizer`` wraps another)."""
    return getattr(optimizer, "inner_optimizer", None) or optimizer


_inner = inner_optimizer  # the name it had before it was public, for code not yet switched


def set_momentum(optimizer, value):
    """Set Adam's ``beta_1`` (or SGD's ``momentum`` when it uses one); returns the name set, or None."""
    opt = inner_optimizer(optimizer)
    if hasattr(opt, "beta_1"):
        opt.beta_1 = float(value)
        return "beta_1"
    if getattr(opt, "momentum", 0):
        opt.momentum = float(value)
        return "momentum"
    return None


class OneCycle(keras.callbacks.Callback):
    """Sets the rate and momentum of ``one_cycle_values`` before each training batch.

    ``total_steps`` is the number of optimizer steps of the whole cycle (epochs x batches per epoch).
    The step is read from the optimizer (``iterations - start_iteration``), so resuming from a checkpoint
    (which restores the optimizer) lands on the right point of the schedule. ``history`` keeps
    ``(step, lr, beta_1)`` for each batch trained. Under torchrun it runs in every process
    (``every_process``): each process's optimizer follows the same schedule.
    """

    every_process = True

    def __init__(self, total_steps, max_lr, pct_start=0.25, div=25.0, div_final=1e5, moms=(0.95, 0.85, 0.95),
                 start_iteration=0):
        super().__init__()
        if total_steps < 1:
            raise ValueError(f"a one-cycle schedule needs at least one step, not {total_steps}")
        if not max_lr > 0:
            raise ValueError(f"max_lr must be positive, not {max_lr}")
        self.total_steps = int(total_steps)
        self.max_lr = float(max_lr)
        self.pct_start, self.div, self.div_final, self.moms = pct_start, div, div_final, tuple(moms)
        self.start_iteration = int(start_iteration)
        self.history = []

    def values(self, step):
        return one_cycle_values(step, self.total_steps, self.max_lr, self.pct_start, self.div,
                                self.div_final, self.moms)

    def step(self):
        """The 0-based position in the cycle of the next optimizer step."""
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) - self.start_iteration

    def on_train_begin(self, logs=None):
        """The optimizer's update runs outside a compiled training step while the cycle runs: Adam reads
        ``beta_1`` as a Python number, which a compiled step would specialise on (a recompile every step)."""
        opt = self.model.optimizer
        if "apply" not in vars(opt):
            cached = vars(opt).get("dl1_outside_apply")  # the same function every cycle: no recompile
            if cached is None or cached[0] is not type(opt):
                cached = (type(opt), backend.current().outside_compiled(opt.apply))
                opt.dl1_outside_apply = cached
            opt.apply = cached[1]
            self._unwrap = opt

    def on_train_end(self, logs=None):
        opt = getattr(self, "_unwrap", None)
        if opt is not None:
            del opt.apply
            self._unwrap = None

    def on_train_batch_begin(self, batch, logs=None):
        opt = self.model.optimizer
        step = self.step()
        lr, mom = self.values(step)
        opt.learning_rate = lr
        set_momentum(opt, mom)
        self.history.append((step, lr, mom))

    def describe(self):
        warm = max(int(round(self.total_steps * self.pct_start)), 1)
        return (f"one cycle of {self.total_steps} steps: rate {self.max_lr / self.div:.2e} -> {self.max_lr:.2e} "
                f"over {warm} steps, then cosine down to {self.max_lr / self.div_final:.2e}; "
                f"beta_1 {self.moms[0]} -> {self.moms[1]} -> {self.moms[2]}")


def group_rates(n_groups, max_lr, lr_mult=100.0):
    """Discriminative rates: ``n_groups`` rates growing geometrically from ``max_lr / lr_mult`` (the first,
    earliest group) to ``max_lr`` (the last, the head)."""
    if n_groups < 1:
        raise ValueError("need at least one layer group")
    if n_groups == 1:
        return [float(max_lr)]
    return [float(max_lr) / lr_mult ** ((n_groups - 1 - i) / (n_groups - 1)) for i in range(n_groups)]


def fit_one_cycle(model, batches, val_batches=None, epochs=1, max_lr=1e-3, pct_start=0.25, div=25.0,
                  div_final=1e5, moms=(0.95, 0.85, 0.95), callbacks=None, **fit_kwargs):
    """``fit_model`` under a ``OneCycle`` schedule of ``epochs * len(batches)`` steps.

    The cycle starts at the optimizer's current step count: compile the model afresh before (as
    ``Vgg16.fit_one_cycle`` does) so that a run resumed from its checkpoint (``checkpoint=FILE``, which
    restores the optimizer and with it the step) is at the same point of the schedule. Returns the
    History; the callback (with its per-step ``history``) is ``history.one_cycle``.
    """
    from dl1.train.fit import fit_model

    start = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    cycle = OneCycle(int(epochs) * len(batches), max_lr, pct_start=pct_start, div=div, div_final=div_final,
                     moms=moms, start_iteration=start)
    extra = {"one_cycle": [cycle.total_steps, cycle.max_lr, pct_start, div, div_final, list(moms)]}
    history = fit_model(model, batches, val_batches, epochs=epochs, callbacks=[cycle] + list(callbacks or []),
                        signature_extra=extra, **fit_kwargs)
    history.one_cycle = cycle
    return history
