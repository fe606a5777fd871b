"""The learning-rate range test ("LR finder", Leslie Smith 2015, made popular by fastai).

Train for at most ``num_steps`` batches while the learning rate grows exponentially from ``start_lr`` to
``end_lr``; record the loss of each batch; stop once the (smoothed) loss has diverged; then put the weights
and the optimizer's state back as they were. The plot of loss against rate (log scale) shows where
training is fast and where it blows up. The suggestion follows one of two rules (``suggest``):

- ``"valley"`` (the default, fastai's since 2021): the longest stretch over which the smoothed loss keeps
  falling (its longest decreasing subsequence, counted back from where it ends), and the rate in its
  middle: a rate where the loss is still falling steadily. A flat or noisy start does not pull it to the
  bottom of the range, and a noisy bottom does not pull it to the edge of divergence.
- ``"minimum/10"`` (fastai's 2018 rule): the rate at the lowest smoothed loss, divided by ten.

When the smoothed loss never falls below where it started, there is no suggestion (``suggestion`` is None)
and ``summary()`` says so in one line: the range is too narrow, or the model is already past the point
where this data can teach it anything at these rates.

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

RULES = {"valley": "the middle of the longest stretch where the smoothed loss keeps falling",
         "minimum/10": "the rate at the lowest smoothed loss, divided by 10"}
DEFAULT_RULE = "valley"
NEVER_FELL = "loss never fell below its start"


def longest_valley(values):
    """``(start, end)`` of the longest valley of ``values``: ``end`` closes their longest decreasing
    subsequence (dynamic programming over the pairs, fine for a few hundred steps; the earliest on a tie)
    and ``start`` is as many steps before it, so a flat stretch before the fall does not count."""
    n = len(values)
    length = np.ones(n, dtype=np.int64)
    for i in range(1, n):
        above = values[:i] > values[i]  # earlier points the valley can come down from
        if above.any():
            length[i] = length[:i][above].max() + 1
    end = int(np.argmax(length))
    return max(end - int(length[end]), 0), end


def suggest_valley(lrs, smoothed):
    """The valley rule: the rate at the middle of the longest valley of ``smoothed`` (a third of its
    length, then a sixth more, as fastai counts)."""
    start, end = longest_valley(smoothed)
    third = (end - start) / 3
    return float(lrs[start + int(third) + int(third / 2)])


class LRFinder:
    """The outcome of a range test: ``lrs``, ``losses`` (per batch), ``smoothed``, ``suggestion`` (None when
    the loss never fell), ``rule``, ``min_lr`` and ``steepest`` (both shown in the summary)."""

    def __init__(self, lrs, losses, smoothed, stopped_early, cached, seconds, suggest=DEFAULT_RULE):
        if suggest not in RULES:
            raise ValueError(f"suggest must be one of {', '.join(RULES)}, not {suggest!r}")
        self.lrs = np.asarray(lrs, dtype=np.float64)
        self.losses = np.asarray(losses, dtype=np.float64)
        self.smoothed = np.asarray(smoothed, dtype=np.float64)
        self.stopped_early = bool(stopped_early)
        self.cached = bool(cached)
        self.seconds = float(seconds)
        self.rule = suggest
        self.min_lr = self.steepest = self.suggestion = None
        # the steps after the first tenth (the average has not settled before), up to the first non-finite one
        settled = len(self.smoothed) // 10
        bad = np.flatnonzero(~np.isfinite(self.smoothed[settled:]))
        stop = settled + (int(bad[0]) if len(bad) else len(self.smoothed) - settled)
        if stop - settled < 2:
            return
        lrs, smooth = self.lrs[settled:stop], self.smoothed[settled:stop]
        lowest = int(np.argmin(smooth))
        if not smooth[lowest] < smooth[0]:  # never below where it started: nothing to suggest
            return
        self.min_lr = float(lrs[lowest])
        slope = np.gradient(smooth, np.log(lrs)) if len(smooth) > 2 else np.array([0.0, 0.0])
        self.steepest = float(lrs[int(np.argmin(slope))])
        self.suggestion = suggest_valley(lrs, smooth) if suggest == "valley" else self.min_lr / 10.0

    @property
    def fell(self):
        """Whether the smoothed loss fell below its start at some rate (else there is no suggestion)."""
        return self.suggestion is not None

    def __repr__(self):
        shown = f"{self.suggestion:.2e}" if self.fell else "None"
        return f"LRFinder(steps={len(self.lrs)}, suggestion={shown} ({self.rule}), cached={self.cached})"

    def summary(self):
        """One line: what ran, and the suggestion with its rule, or that the loss never fell."""
        how = "on cached frozen-layer features" if self.cached else "through the whole network"
        stop = "stopped when the loss diverged" if self.stopped_early else "ran every step"
        ran = (f"Learning-rate finder: {len(self.lrs)} steps from {self.lrs[0]:.1e} to {self.lrs[-1]:.1e} "
               f"{how} in {self.seconds:.1f}s ({stop}).")
        if not self.fell:
            return (f"{ran} No suggestion: the {NEVER_FELL} between {self.lrs[0]:.1e} and {self.lrs[-1]:.1e} "
                    "(try a wider range: a lower start rate or a higher end rate)")
        return (f"{ran} Suggested learning rate: {self.suggestion:.2e} (rule {self.rule}: {RULES[self.rule]}; "
                f"lowest loss at {self.min_lr:.2e}, steepest descent at {self.steepest:.2e})")

    def plot(self, fname=None, ax=None):
        """Smoothed loss against learning rate, log x axis, the suggestion marked; saved to ``fname``."""
        import matplotlib.pyplot as plt

        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(self.lrs, self.losses, color="0.8", lw=1, label="loss per batch")
        ax.plot(self.lrs, self.smoothed, lw=2, label="smoothed")
        if self.fell:
            at = float(np.interp(np.log(self.suggestion), np.log(self.lrs), self.smoothed))
            ax.axvline(self.suggestion, color="C3", ls="--", lw=1)
            ax.plot([self.suggestion], [at], "o", color="C3", label=f"suggested {self.suggestion:.1e} ({self.rule})")
        else:
            ax.text(0.02, 0.95, f"no suggestion: {NEVER_FELL}", transform=ax.transAxes, va="top", color="C3")
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
    """The variables of every layer (weights, and the random generators' states of dropout and the like, so
    that a second run repeats the first), and the optimizer's variables and settings."""

    def __init__(self, model):
        self.model = model
        self.layers = [layer for layer in model.layers if layer.variables]
        self.weights = [[np.array(keras.ops.convert_to_numpy(w)) for w in layer.variables] for layer in self.layers]
        opt = model.optimizer
        if not opt.built:
            opt.build(model.trainable_variables)
        self.opt = [np.array(keras.ops.convert_to_numpy(v)) for v in opt.variables]
        inner = getattr(opt, "inner_optimizer", None) or opt  # a LossScaleOptimizer wraps the real one
        self.lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
        self.momentum = getattr(inner, "beta_1", getattr(inner, "momentum", None))

    def restore(self):
        for layer, saved in zip(self.layers, self.weights, strict=True):
            for var, value in zip(layer.variables, saved, strict=True):
                var.assign(value)
        opt = self.model.optimizer
        for var, value in zip(opt.variables, self.opt, strict=True):
            var.assign(value)
        opt.learning_rate = self.lr
        if self.momentum is not None:
            set_momentum(opt, self.momentum)


def lr_find(model, batches, start_lr=1e-7, end_lr=10.0, num_steps=100, diverge=4.0, beta=0.98, cache="auto",
            stop_div=True, verbose=1, cache_dir=None, suggest=DEFAULT_RULE, seed=0):
    """Run the range test on compiled ``model`` with ``batches``; returns an ``LRFinder``.

    ``cache``: 'auto'/True uses the frozen-prefix features when only the layers after a frozen prefix
    train, False pushes every batch through the whole model (as fastai and plain Keras do). The loss is
    smoothed with an exponential moving average (``beta``, bias-corrected); with ``stop_div`` the test
    stops when the smoothed loss exceeds ``diverge`` times its minimum, or is not finite. The weights, the
    optimizer's state, its learning rate and momentum are restored afterwards, and so are the random
    generators' states (dropout), so that a second run on the same data gives the same curve. ``suggest``:
    the rule of the suggestion, ``"valley"`` or ``"minimum/10"`` (see the module's docstring). ``seed``
    seeds the random generators first (``keras.utils.set_random_seed``: dropout without a seed of its own
    draws from the backend's global generator), so the same data and seed give the same curve and the same
    suggestion; None leaves them as they are.
    """
    import time

    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise RuntimeError("compile the model before the learning-rate finder (Vgg16 does this in finetune)")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, not {start_lr} and {end_lr}")
    if suggest not in RULES:
        raise ValueError(f"suggest must be one of {', '.join(RULES)}, not {suggest!r}")
    if num_steps < 2:
        raise ValueError(f"num_steps must be at least 2, not {num_steps}")
    t0 = time.time()
    if seed is not None:
        keras.utils.set_random_seed(seed)
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
    from dl1.io.console import tqdm
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
    return LRFinder(lrs, losses, smoothed, stopped, prefix is not None, time.time() - t0, suggest=suggest)
