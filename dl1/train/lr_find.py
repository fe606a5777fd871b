"""The learning-rate range test ("LR finder", Leslie Smith 2015, made popular by fastai).

Train for at most ``num_steps`` batches while the learning rate grows exponentially from ``start_lr`` to
``end_lr``; record the loss of each batch; stop once the (smoothed) loss has diverged; then put the weights
and the optimizer's state back as they were. The plot of loss against rate (log scale) shows where
training is fast and where it blows up; the suggestion is the rate at the lowest smoothed loss divided by
ten (fastai's "minimum/10" rule), a rate still well inside the region where the loss falls.

When only the layers after a frozen prefix train (after ``finetune``), the test runs on the cached
frozen-prefix features (``features.py``): each image goes through the convolutional layers once, not once
per step, so the whole test takes seconds.
"""

import math

import keras
import numpy as np

from dl1.io.atomic import atomic_path
from dl1.nn.kprivate import sync_optimizer
from dl1.train.features import feature_data
from dl1.train.fit import cache_plan
from dl1.train.schedules import set_momentum

RULE = "minimum/10"
RULE_TEXT = "the rate at the lowest smoothed loss, divided by 10"


class LRFinder:
    """The outcome of a range test: ``lrs``, ``losses`` (per batch), ``smoothed``, ``suggestion``, ``rule``."""

    def __init__(self, lrs, losses, smoothed, stopped_early, cached, seconds):
        self.lrs = np.asarray(lrs, dtype=np.float64)
        self.losses = np.asarray(losses, dtype=np.float64)
        self.smoothed = np.asarray(smoothed, dtype=np.float64)
        self.stopped_early = bool(stopped_early)
        self.cached = bool(cached)
        self.seconds = float(seconds)
        self.rule = RULE
        finite = np.isfinite(self.smoothed)
        finite[:len(finite) // 10] = False  # the first tenth: the average has not settled yet
        if finite.any():
            i = int(np.nanargmin(np.where(finite, self.smoothed, np.inf)))
            self.min_lr = float(self.lrs[i])
            self.suggestion = self.min_lr / 10.0
            d = np.gradient(self.smoothed[finite], np.log(self.lrs[finite])) if finite.sum() > 2 else None
            self.steepest = float(self.lrs[finite][int(np.argmin(d))]) if d is not None else self.suggestion
        else:
            self.min_lr = self.suggestion = self.steepest = float("nan")

    def __repr__(self):
        return (f"LRFinder(steps={len(self.lrs)}, suggestion={self.suggestion:.2e} ({self.rule}), "
                f"cached={self.cached})")

    def summary(self):
        how = "on cached frozen-layer features" if self.cached else "through the whole network"
        stop = "stopped when the loss diverged" if self.stopped_early else "ran every step"
        return (f"Learning-rate finder: {len(self.lrs)} steps from {self.lrs[0]:.1e} to {self.lrs[-1]:.1e} "
                f"{how} in {self.seconds:.1f}s ({stop}). Suggested learning rate: {self.suggestion:.2e} "
                f"(rule {self.rule}, {RULE_TEXT}: {self.min_lr:.2e} / 10; steepest descent at {self.steepest:.2e})")

    def plot(self, fname=None, ax=None):
        """Smoothed loss against learning rate, log x axis, the suggestion marked; saved to ``fname``."""
        import matplotlib.pyplot as plt

        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(self.lrs, self.losses, color="0.8", lw=1, label="loss per batch")
        ax.plot(self.lrs, self.smoothed, lw=2, label="smoothed")
        if math.isfinite(self.suggestion):
            ax.axvline(self.suggestion, color="C3", ls="--", label=f"suggested {self.suggestion:.1e} ({RULE})")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("loss")
        finite = self.smoothed[np.isfinite(self.smoothed)]
        if len(finite):
            lo, hi = float(finite.min()), float(finite[0])
            ax.set_ylim(lo - 0.1 * abs(hi - lo + 1e-9), max(hi, lo) * 1.5 + 1e-9)
        ax.set_title("Learning-rate range test")
        ax.legend(loc="best", fontsize=8)
        if fname and fig is not None:
            with atomic_path(fname, suffix=".png") as tmp:
                fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
            plt.close(fig)
        return fname


class _State:
    """The weights of every layer that can train, and the optimizer's variables and settings."""

    def __init__(self, model):
        self.model = model
        self.layers = [layer for layer in model.layers if layer.trainable_weights]
        self.weights = [[np.array(keras.ops.convert_to_numpy(w)) for w in layer.weights] for layer in self.layers]
        opt = model.optimizer
        if not opt.built:
            opt.build(model.trainable_variables)
        self.opt = [np.array(keras.ops.convert_to_numpy(v)) for v in opt.variables]
        inner = getattr(opt, "inner_optimizer", None) or opt  # a LossScaleOptimizer wraps the real one
        self.lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
        self.momentum = getattr(inner, "beta_1", getattr(inner, "momentum", None))

    def restore(self):
        for layer, saved in zip(self.layers, self.weights, strict=True):
            for var, value in zip(layer.weights, saved, strict=True):
                var.assign(value)
        opt = self.model.optimizer
        for var, value in zip(opt.variables, self.opt, strict=True):
            var.assign(value)
        opt.learning_rate = self.lr
        if self.momentum is not None:
            set_momentum(opt, self.momentum)


def lr_find(model, batches, start_lr=1e-7, end_lr=10.0, num_steps=100, diverge=4.0, beta=0.98, cache="auto",
            stop_div=True, verbose=1, cache_dir=None):
    """Run the range test on compiled ``model`` with ``batches``; returns an ``LRFinder``.

    ``cache``: 'auto'/True uses the frozen-prefix features when only the layers after a frozen prefix
    train, False pushes every batch through the whole model (as fastai and plain Keras do). The loss is
    smoothed with an exponential moving average (``beta``, bias-corrected); with ``stop_div`` the test
    stops when the smoothed loss exceeds ``diverge`` times its minimum, or is not finite. The weights, the
    optimizer's state, its learning rate and momentum are restored afterwards.
    """
    import time

    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise RuntimeError("compile the model before the learning-rate finder (Vgg16 does this in finetune)")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, not {start_lr} and {end_lr}")
    if num_steps < 2:
        raise ValueError(f"num_steps must be at least 2, not {num_steps}")
    t0 = time.time()
    sync_optimizer(model)
    prefix = cache_plan(model, [batches], cache, verbose)
    if prefix is not None:
        data, _, _ = feature_data(prefix, batches, None, verbose, folder=cache_dir)
        target = prefix.compiled_head(model)
    else:
        data, target = batches, model
    if not len(data):
        raise ValueError(f"no batches to run the learning-rate finder on ({batches!r})")
    state = _State(model)
    opt = model.optimizer
    lrs, losses, smoothed = [], [], []
    avg, best, stopped = 0.0, math.inf, False
    ratio = end_lr / start_lr
    from tqdm.auto import tqdm

    from dl1.io.pools import prefetch_pool

    bar = tqdm(total=num_steps, desc="lr_find", unit="step", disable=not verbose)
    pool = prefetch_pool()
    epoch0 = data.epoch  # the batches' own position is put back afterwards
    j = 0
    pending = pool.submit(data.__getitem__, 0)
    try:
        for i in range(num_steps):
            lr = start_lr * ratio ** (i / (num_steps - 1))
            x, y = pending.result()[:2]
            j += 1
            if j >= len(data):
                j = 0
                data.on_epoch_end()
            if i + 1 < num_steps:
                pending = pool.submit(data.__getitem__, j)
            opt.learning_rate = lr
            loss = float(target.train_on_batch(x, y, return_dict=True)["loss"])
            avg = beta * avg + (1 - beta) * loss
            smooth = avg / (1 - beta ** (i + 1))
            lrs.append(lr)
            losses.append(loss)
            smoothed.append(smooth)
            bar.update(1)
            if math.isfinite(smooth):
                best = min(best, smooth)
            if stop_div and (not math.isfinite(smooth) or smooth > diverge * best):
                stopped = True
                break
    finally:
        bar.close()
        state.restore()
        data.set_epoch(epoch0)
    return LRFinder(lrs, losses, smoothed, stopped, prefix is not None, time.time() - t0)
