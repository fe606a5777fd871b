"""Training and prediction for directory batches: cached frozen features, checkpoints, clean stops.

``fit_model`` is what ``Vgg16.fit`` runs. It
- trains only the layers after the frozen prefix on cached prefix outputs when it can (see
  ``features.py``), which gives the same model as pushing every image through every layer;
- with ``checkpoint=FILE`` resumes from that file and saves to it at every epoch end (and every
  ``checkpoint_every`` batches), so a run killed with SIGKILL continues when started again;
- on Ctrl-C (SIGINT) or SIGTERM (a spot instance going away) finishes the current batch, saves the
  checkpoint and then raises ``KeyboardInterrupt``;
- under ``torchrun`` with several processes trains with DistributedDataParallel (``distributed.py``):
  each process its share of every global batch, features cached once, files written by rank 0.
"""

import signal
import threading

import keras
import numpy as np

from dl1.data.batches import ArrayIterator, DirectoryIterator
from dl1.io.errors import DataError
from dl1.io.log import note
from dl1.nn.kprivate import sync_optimizer
from dl1.train import distributed
from dl1.train.checkpoints import Checkpoint, model_signature
from dl1.train.features import FeatureCache, FrozenPrefix, chain_layers, frozen_prefix_length


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


def _compile_like(head, model):
    config = model.get_compile_config() or {}
    head.compile(optimizer=model.optimizer, loss=model.loss, metrics=config.get("metrics"))
    return head


class _Stop:
    """Turns SIGINT/SIGTERM into a flag checked between batches (main thread only)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = None
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(f"\n{self.requested}: stopping after this batch and saving a checkpoint "
              "(press Ctrl-C again to stop at once)", flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        return False


class _CheckpointCallback(keras.callbacks.Callback):
    """Saves the checkpoint at epoch ends, every N batches, and when a stop was requested."""

    def __init__(self, checkpoint, data, stop, every=None, batch_offset=0, epochs_target=None):
        super().__init__()
        self.checkpoint = checkpoint
        self.data = data
        self.stop = stop
        self.every = every
        self.batch_offset = batch_offset
        self.epochs_target = epochs_target
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def _save(self, epoch, batch):
        self.checkpoint.save(epoch, batch, self.data.seed, self.epochs_target)

    def on_train_batch_end(self, batch, logs=None):
        done = self.batch_offset + batch + 1
        if self.stop.requested:
            self._save(self.epoch, done)
            raise KeyboardInterrupt(f"stopped by {self.stop.requested} at epoch {self.epoch + 1}, "
                                    f"batch {done}; checkpoint saved to {self.checkpoint.path}")
        if self.every and done % self.every == 0 and done < len(self.data):
            self._save(self.epoch, done)

    def on_test_batch_end(self, batch, logs=None):
        if self.stop.requested:  # during validation: the epoch's training part is done
            self._save(self.epoch, len(self.data))
            raise KeyboardInterrupt(f"stopped by {self.stop.requested} during validation of epoch "
                                    f"{self.epoch + 1}; checkpoint saved to {self.checkpoint.path}")

    def on_epoch_end(self, epoch, logs=None):
        self.batch_offset = 0
        self._save(epoch + 1, 0)


class _SeenAsFullModel(keras.callbacks.Callback):
    """The user's callbacks, shown the model they passed in rather than the head-only model that trains on
    cached features: ``ModelCheckpoint`` saves the whole network (whose head layers are the ones being
    trained), ``History.model`` is the user's model, and ``EarlyStopping``'s ``stop_training`` reaches
    the loop that runs the head."""

    def __init__(self, callbacks, full_model):
        super().__init__()
        self.callbacks = keras.callbacks.CallbackList(list(callbacks), model=full_model)
        self.full_model = full_model

    def set_params(self, params):
        super().set_params(params)
        self.callbacks.set_params(params)

    def set_model(self, model):
        super().set_model(model)  # the head; the user's callbacks keep the full model

    def _forward(self, hook, *args, **kwargs):
        getattr(self.callbacks, hook)(*args, **kwargs)
        if getattr(self.full_model, "stop_training", False) and self.model is not None:
            self.model.stop_training = True


for _hook in ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
              "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
              "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end"):
    setattr(_SeenAsFullModel, _hook, lambda self, *args, _h=_hook, **kwargs: self._forward(_h, *args, **kwargs))


class _Tail(keras.utils.PyDataset):
    """The batches of ``data`` from ``start`` on: the rest of an epoch interrupted half way."""

    def __init__(self, data, start):
        super().__init__()
        self.data = data
        self.start = start

    def __len__(self):
        return len(self.data) - self.start

    def __getitem__(self, idx):
        return self.data[idx + self.start]

    def on_epoch_end(self):
        self.data.on_epoch_end()


def _merge(histories):
    merged = keras.callbacks.History()
    merged.history, merged.epoch = {}, []
    for h in histories:
        if h is None:
            continue
        merged.epoch += list(h.epoch)
        for key, values in h.history.items():
            merged.history.setdefault(key, []).extend(values)
        merged.set_model(h.model)
        merged.set_params(h.params)
    return merged


def _features(prefix, batches, verbose):
    cache = FeatureCache(prefix, batch_size=max(batches.batch_size, 32), verbose=verbose)
    # several processes: rank 0 computes and writes the cache, the others then read it
    return distributed.once(lambda: cache.features(batches))


def _feature_data(prefix, batches, val_batches, verbose):
    """Training sequence and validation arrays of cached features (unreadable images left out)."""
    x, ok = _features(prefix, batches, verbose)
    keep = np.flatnonzero(ok)
    train = ArrayIterator(x[keep], batches.labels_for(keep), batch_size=batches.batch_size,
                          shuffle=batches.shuffle, seed=batches.seed)
    val = None
    if val_batches is not None:
        vx, vok = _features(prefix, val_batches, verbose)
        vkeep = np.flatnonzero(vok)
        val = (vx[vkeep], val_batches.labels_for(vkeep))
    return train, val, keep


def fit_model(model, batches, val_batches=None, epochs=1, cache="auto", checkpoint=None,
              checkpoint_every=None, callbacks=None, verbose=1, signature_extra=None):
    """Train ``model`` on ``batches`` for ``epochs`` epochs in all (see the module docstring).
    ``signature_extra``: more that a checkpoint must match to be resumed (e.g. a schedule's settings)."""
    check_same_classes(batches, val_batches)
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise RuntimeError("compile the model before fitting it (Vgg16 does this in finetune/compile)")
    sync_optimizer(model)
    ddp = distributed.active()
    if ddp:
        distributed.init()
        distributed.broadcast_weights(model)  # one random initialisation for all processes
        verbose = verbose if distributed.is_main() else 0
    else:
        distributed.jax_data_parallel()
    prefix = cache_plan(model, [batches, val_batches], cache, verbose)
    ckpt, start_epoch, start_batch = None, 0, 0
    if checkpoint:
        extra = {"classes": getattr(batches, "class_indices", None), "batch_size": batches.batch_size,
                 "n": batches.n, "cached": prefix is not None, **(signature_extra or {})}
        ckpt = Checkpoint(checkpoint, model, model_signature(model, extra))
        meta = ckpt.read_meta()
        if ckpt.matches(meta):
            meta = ckpt.restore()
            start_epoch, start_batch = meta["epoch"], meta["batch"]
            batches.seed = meta["seed"]
            if verbose:
                where = f"epoch {start_epoch + 1}, batch {start_batch + 1}" if start_batch else \
                    f"the start of epoch {start_epoch + 1}"
                print(f"Resuming from {checkpoint}: {start_epoch} epoch(s) done, continuing at {where}",
                      flush=True)
        elif meta is not None and distributed.is_main():
            old = ckpt.set_aside()
            note("%s is from a different model or data; kept as %s, starting afresh", checkpoint, old)
        distributed.barrier()
    if start_epoch >= epochs:
        if verbose:
            print(f"Already trained {start_epoch} epoch(s) (checkpoint {checkpoint}); nothing to do.")
        return _merge([])

    ids = np.asarray(batches.filenames) if hasattr(batches, "filenames") else None
    if prefix is not None:
        data, val, keep = _feature_data(prefix, batches, val_batches, verbose)
        ids = ids[keep] if ids is not None else keep
        target = _compile_like(prefix.head(model), model)
        if callbacks:
            callbacks = [_SeenAsFullModel(callbacks, model)]
    else:
        data, val, target = batches, val_batches, model
    data.set_epoch(start_epoch)
    if ddp:
        with _Stop() as stop:
            return distributed.ddp_fit(target, data, val, epochs, start_epoch, start_batch, ckpt,
                                       checkpoint_every, callbacks, verbose, ids=ids, stop=stop)
    with _Stop() as stop:
        histories = []
        common = {"validation_data": val, "verbose": verbose}
        if start_batch and start_batch < len(data):
            cb = _CheckpointCallback(ckpt, data, stop, checkpoint_every, start_batch, epochs) if ckpt else None
            histories.append(target.fit(_Tail(data, start_batch), epochs=start_epoch + 1,
                                        initial_epoch=start_epoch,
                                        callbacks=list(callbacks or []) + ([cb] if cb else []), **common))
            start_epoch += 1
        elif start_batch:
            data.on_epoch_end()  # the checkpoint was taken after the epoch's last batch
            start_epoch += 1
        if start_epoch < epochs:
            cb = _CheckpointCallback(ckpt, data, stop, checkpoint_every, 0, epochs) if ckpt else None
            histories.append(target.fit(data, epochs=epochs, initial_epoch=start_epoch,
                                        callbacks=list(callbacks or []) + ([cb] if cb else []), **common))
    merged = _merge(histories)
    merged.set_model(model)  # the user's model, also when its head trained alone on cached features
    return merged


def predict_batches(model, batches, cache="auto", verbose=1):
    """Probabilities for every image of ``batches`` (in ``filenames`` order), through cached
    frozen-prefix features when the model has a frozen prefix."""
    prefix = cache_plan(model, [batches], cache, verbose) if _cacheable(batches) else None
    if prefix is None:
        return model.predict(batches, verbose=verbose)
    x, _ = _features(prefix, batches, verbose)
    return prefix.head(model).predict(x, batch_size=max(batches.batch_size, 32), verbose=verbose)
