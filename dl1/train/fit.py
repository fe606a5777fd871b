"""Training and prediction for directory batches: cached frozen features, checkpoints, clean stops.

``fit_model`` is what ``Vgg16.fit`` runs. It
- trains only the layers after the frozen prefix on cached prefix outputs when it can (see
  ``features.py``), which gives the same model as pushing every image through every layer;
- with ``checkpoint=FILE`` resumes from that file and saves to it at every epoch end (and every
  ``checkpoint_every`` batches), so a run killed with SIGKILL continues when started again;
- on Ctrl-C (SIGINT) or SIGTERM (a spot instance going away) finishes the current batch, saves the
  checkpoint and then raises ``KeyboardInterrupt`` (``callbacks.py``);
- under ``torchrun`` trains in every process, each on its share of every global batch, features cached
  once, files written by rank 0 (``distributed.py``).
One path for all of these: Keras' ``model.fit`` with the callbacks of ``callbacks.py`` (and, under torchrun,
``distributed.Session``'s), so metrics and history are Keras' own in one process and in several.
"""

import contextlib

import numpy as np

from dl1.data.batches import DirectoryIterator
from dl1.io.console import keras_verbose
from dl1.io.errors import DataError
from dl1.io.log import note
from dl1.nn.kprivate import sync_optimizer
from dl1.train import distributed
from dl1.train.callbacks import CleanStop, SeenAsFullModel, StopAndCheckpoint, merge_histories
from dl1.train.checkpoints import Checkpoint, model_signature
from dl1.train.features import FrozenPrefix, chain_layers, feature_arrays, feature_data, frozen_prefix_length


def check_same_classes(batches, val_batches):
    """Training and validation folders must name the same classes in the same order."""
    a = getattr(batches, "class_indices", None)
    b = getattr(val_batches, "class_indices", None)
    if a is None or b is None or a == b:
        return
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    detail = "; ".join(filter(None, [
        f"only in {batches.directory}: {', '.join(only_a)}" if only_a else "",
        f"only in {val_batches.directory}: {', '.join(only_b)}" if only_b else ""])) or "different order"
    raise DataError(f"training and validation class folders differ ({detail}); "
                    "both need the same class sub-folders")


def _cacheable(batches):
    return isinstance(batches, DirectoryIterator) and batches.image_data_generator.is_identity


def cache_plan(model, batches_list, cache="auto", verbose=True):
    """A ``FrozenPrefix`` to train/predict through, or None when the full model must run."""
    if cache is False or cache is None:
        return None
    if not all(_cacheable(b) for b in batches_list if b is not None):
        if cache is True:
            note("cache=True ignored: augmented batches differ every epoch")
        return None
    k = frozen_prefix_length(model)
    if k == 0 or k >= len(chain_layers(model)):
        return None
    prefix = FrozenPrefix(model, k)
    return prefix if prefix.worth_caching else None


def _resume(model, checkpoint, batches, prefix, signature_extra, session, verbose):
    """``(Checkpoint or None, epoch, batch)`` to start from; a checkpoint of another run is set aside."""
    if not checkpoint:
        return None, 0, 0
    extra = {"classes": getattr(batches, "class_indices", None), "batch_size": batches.batch_size,
             "n": batches.n, "cached": prefix is not None, **(signature_extra or {})}
    ckpt = Checkpoint(checkpoint, model, model_signature(model, extra))
    meta = ckpt.read_meta()
    start_epoch = start_batch = 0
    if ckpt.matches(meta):
        meta = ckpt.restore()
        start_epoch, start_batch = meta["epoch"], meta["batch"]
        batches.seed = meta["seed"]
        if verbose:
            where = f"epoch {start_epoch + 1}, batch {start_batch + 1}" if start_batch else \
                f"the start of epoch {start_epoch + 1}"
            note("Resuming from %s: %d epoch(s) done, continuing at %s", checkpoint, start_epoch, where)
    elif meta is not None and distributed.is_main():
        old = ckpt.set_aside()
        note("%s is from a different model or data; kept as %s, starting afresh", checkpoint, old)
    if session is not None:
        session.group.barrier()
    return ckpt, start_epoch, start_batch


def fit_model(model, batches, val_batches=None, epochs=1, cache="auto", checkpoint=None,
              checkpoint_every=None, callbacks=None, verbose=1, signature_extra=None, cache_dir=None):
    """Train ``model`` on ``batches`` for ``epochs`` epochs in all (see the module docstring).
    ``signature_extra``: more that a checkpoint must match to be resumed (e.g. a schedule's settings);
    ``cache_dir``: the feature-cache folder (the caller's; without one, features are computed and not kept)."""
    check_same_classes(batches, val_batches)
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise RuntimeError("compile the model before fitting it (Vgg16 does this in finetune/compile)")
    sync_optimizer(model)
    group = distributed.group()
    session = distributed.Session(group, model, verbose) if group is not None else None
    if session is not None:
        session.start()
        verbose = verbose if session.main else 0
    prefix = cache_plan(model, [batches, val_batches], cache, verbose)
    ckpt, start_epoch, start_batch = _resume(model, checkpoint, batches, prefix, signature_extra, session,
                                             verbose)
    if start_epoch >= epochs:
        if verbose:
            note("Already trained %d epoch(s) (checkpoint %s); nothing to do.", start_epoch, checkpoint)
        return merge_histories([])

    ids = np.asarray(batches.filenames) if hasattr(batches, "filenames") else None
    if prefix is not None:
        data, val, keep = feature_data(prefix, batches, val_batches, verbose, folder=cache_dir)
        ids = ids[keep] if ids is not None else keep
        target = prefix.compiled_head(model)
    else:
        data, val, target = batches, val_batches, model
    ids = np.arange(data.n) if ids is None else ids
    data.set_epoch(start_epoch)
    run = _Run(target, model, data, val, epochs, ckpt, checkpoint_every, callbacks, verbose, session, ids,
               wrap=prefix is not None)
    with CleanStop(saving=ckpt is not None) as stop, distributed.device_parallel():
        histories = run.fit(stop, start_epoch, start_batch)
    merged = merge_histories(histories)
    merged.set_model(model)  # the user's model, also when its head trained alone on cached features
    return merged


class _Run:
    """The ``model.fit`` calls of one ``fit_model``: the rest of an interrupted epoch, then the others."""

    def __init__(self, target, model, data, val, epochs, ckpt, every, callbacks, verbose, session, ids, wrap):
        self.target, self.model, self.data, self.val, self.epochs = target, model, data, val, epochs
        self.ckpt, self.every, self.callbacks, self.verbose = ckpt, every, list(callbacks or []), verbose
        self.session, self.ids, self.wrap = session, ids, wrap

    def fit(self, stop, start_epoch, start_batch):
        histories = []
        if start_batch and start_batch < len(self.data):
            histories.append(self._fit(stop, start_epoch, start_epoch + 1, start_batch))
            start_epoch += 1
        elif start_batch:
            self.data.on_epoch_end()  # the checkpoint was taken after the epoch's last batch
            start_epoch += 1
        if start_epoch < self.epochs:
            histories.append(self._fit(stop, start_epoch, self.epochs, 0))
        return histories

    def _fit(self, stop, first, last, start):
        session = self.session
        user = self.callbacks
        extra = []
        if session is None:
            part = distributed.Shard(self.data, start) if start else self.data
            val = self.val
        else:
            part = session.shard(self.data, start)
            val = session.shard_validation(self.val)
            user, sync = session.callbacks(user, part, self.epochs, self.ids)
            extra.append(sync)
        if user and self.wrap:
            user = [SeenAsFullModel(user, self.model)]
        guard = StopAndCheckpoint(self.ckpt, self.data, stop, self.every, start, self.epochs,
                                  session.group if session is not None else None)
        averaging = session.averaging(self.target.optimizer) if session is not None else contextlib.nullcontext()
        # several processes: rank 0 prints one line per epoch; not a terminal: one plain line per epoch
        verbose = keras_verbose(self.verbose) if session is None else 0
        # cached validation features (arrays): in batches of the training batch size, as the 2017 code's
        # validation batches were, not Keras' default of 32
        sizes = {"validation_batch_size": getattr(self.data, "batch_size", None)} if isinstance(val, tuple) else {}
        with averaging:
            return self.target.fit(part, epochs=last, initial_epoch=first, validation_data=val, verbose=verbose,
                                   callbacks=user + [guard] + extra, **sizes)


def predict_batches(model, batches, cache="auto", verbose=1, cache_dir=None):
    """Probabilities for every image of ``batches`` (in ``filenames`` order), through cached
    frozen-prefix features (kept in ``cache_dir``) when the model has a frozen prefix."""
    prefix = cache_plan(model, [batches], cache, verbose) if _cacheable(batches) else None
    if prefix is None:
        return model.predict(batches, verbose=keras_verbose(verbose))
    x, _ = feature_arrays(prefix, batches, verbose, folder=cache_dir)
    return prefix.head(model).predict(x, batch_size=max(batches.batch_size, 32), verbose=keras_verbose(verbose))
