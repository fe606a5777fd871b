"""The pieces every training run shares, in one process or several: a clean stop, the checkpoint at
epoch ends (and every N batches), the user's callbacks shown the whole model, and one merged history.

``CleanStop`` turns Ctrl-C (SIGINT) and SIGTERM (a spot instance going away) into a flag;
``StopAndCheckpoint`` checks it after every batch, saves the checkpoint (when there is one) and raises
``KeyboardInterrupt``; under ``torchrun`` the processes agree first (``group``), so they all stop at the same
batch and the checkpoint is written once. The metrics and the history are Keras' own (``model.fit``): the
compiled model's metrics, whatever they are.
"""

import signal
import threading

import keras

from dl1.io.log import note


class CleanStop:
    """Turns SIGINT/SIGTERM into a flag checked between batches (main thread only); a second Ctrl-C stops
    at once. ``saving``: say that a checkpoint will be saved."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, saving=False):
        self.requested = None
        self.saving = saving
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        note("%s: stopping after this batch%s (press Ctrl-C again to stop at once)", self.requested,
             " and saving a checkpoint" if self.saving else "")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        return False


class StopAndCheckpoint(keras.callbacks.Callback):
    """Saves ``checkpoint`` (or nothing, when None) at epoch ends and every ``every`` batches, and stops
    cleanly when ``stop`` was requested. ``batch_offset``: batches of the first epoch done before this fit
    (a resumed run); ``group``: the process group of a multi-process run (None: one process)."""

    def __init__(self, checkpoint, data, stop, every=None, batch_offset=0, epochs_target=None, group=None):
        super().__init__()
        self.checkpoint = checkpoint
        self.data = data
        self.stop = stop
        self.every = every
        self.batch_offset = batch_offset
        self.epochs_target = epochs_target
        self.group = group
        self.epoch = 0

    def _requested(self):
        asked = self.stop.requested is not None
        if self.group is not None:  # every process stops at the same batch
            asked = self.group.all_sum([1.0 if asked else 0.0])[0] > 0
        return asked

    def _save(self, epoch, batch):
        if self.checkpoint is not None and (self.group is None or self.group.rank == 0):
            self.checkpoint.save(epoch, batch, self.data.seed, self.epochs_target)
        if self.group is not None:
            self.group.barrier()

    def _where(self):
        return f"; checkpoint saved to {self.checkpoint.path}" if self.checkpoint is not None else ""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        done = self.batch_offset + batch + 1
        if self._requested():
            self._save(self.epoch, done)
            raise KeyboardInterrupt(f"stopped by {self.stop.requested or 'another process'} at epoch "
                                    f"{self.epoch + 1}, batch {done}{self._where()}")
        if self.every and done % self.every == 0 and done < len(self.data):
            self._save(self.epoch, done)

    def on_test_batch_end(self, batch, logs=None):
        if self._requested():  # during validation: the epoch's training part is done
            self._save(self.epoch, len(self.data))
            raise KeyboardInterrupt(f"stopped by {self.stop.requested or 'another process'} during validation "
                                    f"of epoch {self.epoch + 1}{self._where()}")

    def on_epoch_end(self, epoch, logs=None):
        self.batch_offset = 0
        self._save(epoch + 1, 0)


class SeenAsFullModel(keras.callbacks.Callback):
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
    setattr(SeenAsFullModel, _hook, lambda self, *args, _h=_hook, **kwargs: self._forward(_h, *args, **kwargs))


def merge_histories(histories):
    """One Keras ``History`` of several ``fit`` calls (a resumed epoch, then the rest), in order."""
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
