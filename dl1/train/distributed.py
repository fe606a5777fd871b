"""Data-parallel training on several processes (``torchrun``), and on several devices of one process.

    torchrun --nproc-per-node 4 -m dl1 finetune data/redux --arch resnet50

``torchrun`` starts one process per GPU and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``; ``fit_model``
(what ``Vgg16.fit`` and ``dl1 finetune`` run) sees them and then trains with Keras' own ``model.fit`` in every
process, as in one process, with three differences (``Session``):

- each process takes its share (``rank::world``) of the same global batch the one-process run would take
  (``Shard``), so ``--batch-size`` is the global batch, the number of steps is the same, and the result
  matches one process within float rounding: the backend's process group averages the gradients in the
  optimizer step, each process's weighted by its share of the batch (``dl1.backend``);
- the processes start from rank 0's weights, agree on stopping (Ctrl-C, ``EarlyStopping``), and sum their
  metrics' totals and counts at the end of each epoch and of each validation, so the logged loss and metrics
  (the compiled model's, whatever they are) are those of all the data;
- checkpoints, weight files and printed lines come from rank 0, which alone runs the user's callbacks
  (except those that must change every process, such as a learning-rate schedule: ``every_process = True``);
  rank 0 prints one line per epoch. A checkpoint resumes on any number of processes (the files must be on a
  shared disk when the processes are on several boxes). The frozen-feature cache is computed once
  (``once``): rank 0 writes it while the others wait, then they read it.

Without torchrun nothing here runs. On the JAX backend one process trains on all its local devices instead
(``device_parallel``: ``keras.distribution.DataParallel`` for the duration of the run).
"""

import json
import os
import time

import keras
import numpy as np

from dl1 import backend
from dl1.backend.base import launched
from dl1.io.log import note

__all__ = ["Session", "Shard", "active", "barrier", "device_parallel", "group", "is_main", "launched", "once",
           "pin_device", "rank", "world_size"]


def world_size():
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def active():
    """True inside a torchrun launch on a backend with a process group (PyTorch), also with one process:
    the same path, so that ``--nproc-per-node 1`` is the exact one-process reference of a larger run."""
    return launched() and backend.name() == "torch"


def rank():
    return int(os.environ.get("RANK", "0")) if launched() else 0


def is_main():
    """True for the process that writes files and prints (rank 0, or the only process)."""
    return rank() == 0


def pin_device():
    """Under torchrun on a CUDA box, this process's GPU becomes the default (call before building models)."""
    backend.current().pin_device()


def group():
    """The backend's process group of this torchrun launch (joined on first use), or None."""
    return backend.current().process_group() if active() else None


def barrier():
    g = group()
    if g is not None:
        g.barrier()


def finish():
    """The end of a torchrun run: every process leaves the group together (nothing without torchrun)."""
    g = group()
    if g is not None:
        g.close()


def once(fn):
    """Run ``fn`` on rank 0 first while the others wait, then on the others (which find its cached result
    on disk): the frozen-feature cache is computed once across processes."""
    g = group()
    if g is None:
        return fn()
    out = fn() if g.rank == 0 else None
    g.barrier()
    return out if g.rank == 0 else fn()


def device_parallel():
    """A context manager: one process on all its local devices where the backend does that (JAX)."""
    return backend.current().device_parallel()


class Shard(keras.utils.PyDataset):
    """The batches of ``data`` from batch ``start`` on (the rest of an interrupted epoch), this process's
    share ``rank::world`` of each. ``data`` is a dl1 batches object (``batch_indices``, ``batch_at``); with
    one process any ``PyDataset`` will do. A process whose share of a short last batch is empty gets one
    sample of weight 0, so that every process takes every step."""

    def __init__(self, data, start=0, rank=0, world=1):
        super().__init__(workers=getattr(data, "workers", 1), use_multiprocessing=False, max_queue_size=4)
        if world > 1 and not hasattr(data, "batch_at"):
            raise TypeError(f"data-parallel training needs dl1 batches (get_batches, ImageDataGenerator().flow), "
                            f"not {type(data).__name__}")
        self.data, self.start, self.rank, self.world = data, int(start), int(rank), int(world)

    def __len__(self):
        return len(self.data) - self.start

    def global_indices(self, b):
        return self.data.batch_indices(self.start + b)

    def indices(self, b):
        """The samples of batch ``b`` this process trains on."""
        return self.global_indices(b)[self.rank::self.world]

    def weight(self, b):
        """This process's share of batch ``b`` times the number of processes (1 when the batch divides
        evenly): its gradient's weight in the average over processes."""
        if self.world == 1:
            return 1.0
        everyone = self.global_indices(b)
        return len(everyone[self.rank::self.world]) * self.world / len(everyone)

    def __getitem__(self, b):
        if self.world == 1:
            return self.data[self.start + b]
        mine = self.indices(b)
        if len(mine):
            return self.data.batch_at(mine)
        x, y = self.data.batch_at(self.global_indices(b)[:1])[:2]
        return x, y, np.zeros(1, dtype="float32")

    def on_epoch_end(self):
        self.data.on_epoch_end()


class _SeenLog:
    """With ``DL1_DDP_LOG=FOLDER``: each rank writes ``seen-rank<R>.jsonl``, one line per epoch with the
    image ids it trained on, so a test (or a user) can check that no image was lost or seen twice."""

    def __init__(self, group):
        self.folder = os.environ.get("DL1_DDP_LOG")
        self.group = group
        self.ids = []

    def add(self, ids):
        if self.folder:
            self.ids.extend(str(i) for i in ids)

    def flush(self, epoch, steps):
        if self.folder:
            os.makedirs(self.folder, exist_ok=True)
            with open(os.path.join(self.folder, f"seen-rank{self.group.rank}.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps({"rank": self.group.rank, "world": self.group.world, "epoch": epoch,
                                    "steps": steps, "ids": self.ids}) + "\n")
        self.ids = []


class _ProcessSync(keras.callbacks.Callback):
    """The per-step weight of this process's gradient, the metrics summed over processes at the end of each
    epoch and each validation, and a common decision to stop; rank 0 prints the epoch's line."""

    def __init__(self, session, part, epochs, ids):
        super().__init__()
        self.session, self.part, self.epochs, self.ids = session, part, epochs, ids
        self.group = session.group
        self.seen = _SeenLog(self.group)
        self.steps = self.t0 = 0

    def _sum_metrics(self):
        self.group.sum_variables([v for m in self.model.metrics for v in m.variables])

    def on_epoch_begin(self, epoch, logs=None):
        self.steps, self.t0 = 0, time.time()

    def on_train_batch_begin(self, batch, logs=None):
        self.session.weight = self.part.weight(batch)
        self.seen.add(self.ids[self.part.indices(batch)])

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if batch == len(self.part) - 1:  # Keras reads the epoch's logs from the metrics after this
            self._sum_metrics()

    def on_test_batch_end(self, batch, logs=None):
        if self.session.val is not None and batch == len(self.session.val) - 1:
            self._sum_metrics()

    def on_epoch_end(self, epoch, logs=None):
        self.seen.flush(epoch, self.steps)
        stop = self.group.all_sum([1.0 if self.model.stop_training else 0.0])[0] > 0
        self.model.stop_training = stop
        if self.group.rank == 0 and self.session.verbose:
            line = " - ".join(f"{k}: {v:.4f}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))
            note("Epoch %d/%d (%d processes, %d steps, %.1fs) - %s", epoch + 1, self.epochs, self.group.world,
                 self.steps, time.time() - self.t0, line)


class Session:
    """One training run over a process group: ``shard`` the data, ``callbacks`` to add, and the context
    (``averaging``) under which the optimizer averages gradients over the processes."""

    def __init__(self, group, model, verbose=1):
        self.group = group
        self.model = model
        self.verbose = verbose
        self.weight = 1.0
        self.val = None

    @property
    def main(self):
        return self.group.rank == 0

    def start(self):
        """Every process takes rank 0's weights (one random initialisation for all)."""
        self.group.broadcast_weights(self.model)

    def shard(self, data, start=0):
        return Shard(data, start, self.group.rank, self.group.world)

    def shard_validation(self, val):
        """This process's share of the validation data (arrays or batches), or None."""
        if val is None:
            self.val = None
            return None
        if isinstance(val, tuple):
            from dl1.data.batches import ArrayIterator

            val = ArrayIterator(val[0], val[1], batch_size=max(256, self.group.world), shuffle=False)
        self.val = self.shard(val)
        return self.val

    def callbacks(self, user_callbacks, part, epochs, ids):
        """The user's callbacks (all on rank 0; on the others those with ``every_process``), then the sync."""
        mine = list(user_callbacks or [])
        if not self.main:
            mine = [cb for cb in mine if getattr(cb, "every_process", False)]
        return mine, _ProcessSync(self, part, epochs, ids)

    def averaging(self, optimizer):
        return self.group.averaging_gradients(optimizer, lambda: self.weight)
