"""``TrainingAids``: what learners expect since fastai v2, as methods of any model wrapper.

A class that inherits it (``class Vgg16(TrainingAids)``) gets ``lr_find``, ``fit_one_cycle``,
``fine_tune``, ``predict_tta`` and ``export``. The methods use only ``self.model`` (a Keras model),
``self.classes``, ``self.get_batches``, ``self.compile(lr)``, ``self.size`` and ``self.layer_groups()``,
which a subclass overrides to say which blocks get which discriminative rate (the default: layers named
``block<N>_...`` grouped by N, what comes before joining the first block and what comes after forming the
head; without such names, the body and the last layer).

The work is done by functions of ``dl1.train`` (``lr_find``, ``schedules``, ``tta``), ``dl1.nn.layer_rates``
and ``dl1.models.export``, which take a Keras model.
"""

import os
import re

from dl1.io.errors import DataError
from dl1.io.log import note
from dl1.nn.layer_rates import group_multipliers, with_layer_rates
from dl1.train import lr_find as _lr_find
from dl1.train import schedules, tta


def _results_file(batches, name):
    """``<data folder>/results/<name>`` for batches read from ``<data folder>/train``, else None."""
    directory = getattr(batches, "directory", None)
    if not directory:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(directory)), "results", name)


def _phase_checkpoint(checkpoint, phase):
    if not checkpoint:
        return None
    stem, ext = os.path.splitext(os.fspath(checkpoint))
    return f"{stem}-{phase}{ext or '.npz'}"


class TrainingAids:
    """Learning-rate finder, one-cycle, staged unfreezing, test-time augmentation and export."""

    # ---- the blocks of the network -------------------------------------------------------------------
    def layer_groups(self):
        """Lists of layers from the earliest to the head; each gets its own rate in ``fine_tune``."""
        layers = list(self.model.layers)
        blocks, head, before = {}, [], []
        for layer in layers:
            m = re.match(r"block(\d+)_", layer.name)
            if m:
                if head:  # a block after the head started: not the layout this default knows
                    blocks = {}
                    break
                blocks.setdefault(int(m.group(1)), []).append(layer)
            elif blocks:
                head.append(layer)
            else:
                before.append(layer)
        if not blocks or not head:
            return [layers[:-1], layers[-1:]] if len(layers) > 1 else [layers]
        groups = [blocks[k] for k in sorted(blocks)]
        groups[0] = before + groups[0]
        return groups + [head]

    def _check_classes(self, batches):
        n = getattr(batches, "num_classes", None)
        out = self.model.output_shape[-1]
        if n and n != out:
            raise DataError(f"{batches.directory} has {n} classes but the model has {out} outputs: "
                            "call finetune(batches) first")

    # ---- learning-rate finder ------------------------------------------------------------------------
    def lr_find(self, batches, start_lr=1e-7, end_lr=10.0, num_steps=100, fname="auto", cache="auto",
                stop_div=True, verbose=1, **kwargs):
        """The learning-rate range test on ``batches`` (see ``dl1.train.lr_find``): the weights and the
        optimizer are left as they were; the plot goes to ``fname`` (default ``results/lr_find.png`` of the
        data folder; None: not saved); the suggestion is printed. Returns the ``LRFinder``."""
        self._check_classes(batches)
        if getattr(self.model, "optimizer", None) is None:
            self.compile()
        found = _lr_find.lr_find(self.model, batches, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps,
                                 cache=cache, stop_div=stop_div, verbose=verbose, **kwargs)
        if fname == "auto":
            fname = _results_file(batches, "lr_find.png")
        if fname:
            found.plot(fname)
            found.fname = fname
        note("%s", found.summary() + (f"; plot: {fname}" if fname else ""))
        return found

    # ---- one-cycle -----------------------------------------------------------------------------------
    def fit_one_cycle(self, batches, val_batches, epochs=1, max_lr=1e-3, pct_start=0.25, div=25.0,
                      div_final=1e5, moms=(0.95, 0.85, 0.95), checkpoint=None, callbacks=None, **kwargs):
        """Train ``epochs`` epochs under one cycle: the rate warms up from ``max_lr/div`` to ``max_lr`` over
        ``pct_start`` of the steps, then anneals (cosine) to ``max_lr/div_final``; Adam's ``beta_1`` goes
        the opposite way (``moms``). A fresh optimizer each call; with ``checkpoint=FILE`` a stopped run
        resumes at the same step of the cycle. Other keywords go to ``fit`` (``cache``, ``verbose``, ...)."""
        self._check_classes(batches)
        self.compile(max_lr)
        return self._one_cycle(batches, val_batches, epochs, max_lr, pct_start, div, div_final, moms,
                               checkpoint, callbacks, **kwargs)

    def _one_cycle(self, batches, val_batches, epochs, max_lr, pct_start, div, div_final, moms, checkpoint,
                   callbacks, **kwargs):
        history = schedules.fit_one_cycle(self.model, batches, val_batches, epochs=epochs, max_lr=max_lr,
                                          pct_start=pct_start, div=div, div_final=div_final, moms=moms,
                                          callbacks=callbacks, checkpoint=checkpoint, **kwargs)
        return history

    # ---- staged unfreezing ---------------------------------------------------------------------------
    def discriminative_rates(self, max_lr, lr_mult=100.0):
        """One rate per ``layer_groups()`` group, from ``max_lr/lr_mult`` (earliest) up to ``max_lr``."""
        return schedules.group_rates(len(self.layer_groups()), max_lr, lr_mult)

    def compile_discriminative(self, max_lr, lr_mult=100.0):
        """Compile with one optimizer whose rate is ``max_lr`` scaled per layer group
        (``discriminative_rates``); a schedule that sets the rate scales all groups together."""
        self.compile(max_lr)
        groups = self.layer_groups()
        rates = schedules.group_rates(len(groups), max_lr, lr_mult)
        model = self.model
        config = model.get_compile_config() or {}
        optimizer = with_layer_rates(model.optimizer, group_multipliers(groups, rates, max_lr))
        model.compile(optimizer=optimizer, loss=model.loss, metrics=config.get("metrics"),
                      jit_compile=getattr(model, "jit_compile", "auto"))
        return rates

    def fine_tune(self, batches, val_batches, epochs=1, freeze_epochs=1, base_lr=1e-3, lr_mult=100.0,
                  checkpoint=None, callbacks=None, **kwargs):
        """fastai's ``fine_tune``: ``freeze_epochs`` one-cycle epochs of the head alone (the layers that
        are trainable now, e.g. the new softmax after ``finetune``; everything but the last layer group
        if nothing is frozen), on cached frozen-layer features; then every layer trainable for ``epochs``
        one-cycle epochs at ``base_lr/2`` for the head and geometrically lower rates for earlier blocks
        (down to ``base_lr/2/lr_mult``). Returns the merged History (``history.phases``: the two)."""
        from dl1.train.fit import merge_histories

        self._check_classes(batches)
        layers = self.model.layers
        if all(layer.trainable for layer in layers):
            head = {id(layer) for layer in self.layer_groups()[-1]}
            for layer in layers:
                layer.trainable = id(layer) in head
        phases = []
        if freeze_epochs > 0:
            self.compile(base_lr)
            phases.append(self._one_cycle(batches, val_batches, freeze_epochs, base_lr, 0.99, 25.0, 1e5,
                                          (0.95, 0.85, 0.95), _phase_checkpoint(checkpoint, "head"),
                                          callbacks, **kwargs))
        for layer in layers:
            layer.trainable = True
        if epochs > 0:
            max_lr = base_lr / 2
            self.compile_discriminative(max_lr, lr_mult)
            phases.append(self._one_cycle(batches, val_batches, epochs, max_lr, 0.3, 5.0, 1e5,
                                          (0.95, 0.85, 0.95), _phase_checkpoint(checkpoint, "unfrozen"),
                                          callbacks, **kwargs))
        history = merge_histories(phases)
        history.phases = phases
        return history

    # ---- test-time augmentation ----------------------------------------------------------------------
    def predict_tta(self, batches, n=4, shift=0.08, verbose=1):
        """Mean probabilities over the original and ``n - 1`` fixed flips/shifts (``dl1.train.tta``)."""
        return tta.predict_tta(self.model, batches, n=n, shift=shift, verbose=verbose)

    # ---- export --------------------------------------------------------------------------------------
    def export(self, fname="model.keras"):
        """Write one ``.keras`` file that Keras alone loads (no dl1 needed), taking raw RGB images, with
        the class names beside it (``fname.classes.json``) and inside. Returns the path."""
        from dl1.models.export import export_model

        path = export_model(self.model, self.classes, fname)
        note("exported %s (%d classes, input %s) to %s", type(self).__name__, len(self.classes), tuple(self.size),
             path)
        return path
