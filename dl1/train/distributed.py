"""Data-parallel training on several processes with PyTorch's own engine (``torchrun`` + DDP).

    torchrun --nproc-per-node 4 -m dl1 finetune data/redux --arch resnet50

``torchrun`` starts one process per GPU and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``; ``fit_model``
(what ``Vgg16.fit`` and ``dl1 finetune`` run) sees them and then:
- joins the process group (NCCL on CUDA, gloo on CPU) and pins each process to ``cuda:LOCAL_RANK``;
- copies rank 0's weights to every process, so random initialisations agree;
- computes the frozen-feature cache once: rank 0 writes it while the others wait on a barrier, then read it;
- trains with ``torch.nn.parallel.DistributedDataParallel`` in a plain loop (as Keras' own "distributed
  training with PyTorch" guide does, since ``model.fit`` cannot drive DDP): every step each process takes
  its share (``rank::world``) of the same global batch the one-process run would take, so ``--batch-size``
  is the global batch, the number of steps is the same, and the result matches one process within float
  rounding; the loss is weighted so the averaged gradient is exactly the global batch's;
- checkpoints, per-epoch weights and printed lines come from rank 0 only; a checkpoint resumes on any
  number of processes (the files must be on a shared disk when the processes are on several boxes).
Without torchrun nothing here runs and training is Keras' ``model.fit``, as before. On the JAX backend
``keras.distribution.DataParallel`` spreads batches over the local devices instead (``jax_data_parallel``).
"""

import json
import os
import time

import keras
import numpy as np


def world_size():
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def launched():
    """True when torchrun (or torch.distributed.run) started this process, even with one process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def active():
    """True inside a torchrun launch on the PyTorch backend (one process too: the same loop, so that
    ``--nproc-per-node 1`` is the exact one-process reference of a multi-process run)."""
    return launched() and keras.backend.backend() == "torch"


def rank():
    return int(os.environ.get("RANK", "0")) if launched() else 0


def is_main():
    """True for the process that writes files and prints (rank 0, or the only process)."""
    return rank() == 0


def pin_device():
    """``torch.cuda.set_device(LOCAL_RANK)`` under torchrun on a CUDA box (before models are built)."""
    if launched() and keras.backend.backend() == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def init():
    """Join the process group once (env:// rendezvous from torchrun). Returns the torch.distributed module."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        pin_device()
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist


def barrier():
    if active():
        init().barrier()


def broadcast_weights(model):
    """Every variable of ``model`` takes rank 0's value."""
    dist = init()
    for v in model.weights:
        dist.broadcast(v.value.data, src=0)


def all_sum(values):
    """Element-wise sum over processes of a list of floats."""

    dist = init()
    t = keras.ops.convert_to_tensor(np.asarray(values, dtype="float64"))
    dist.all_reduce(t)
    return keras.ops.convert_to_numpy(t).tolist()


def once(fn):
    """Run ``fn`` on rank 0 first while the others wait, then on the others (which find its cached result
    on disk): the frozen-feature cache is computed once across processes."""
    if not active():
        return fn()
    dist = init()
    out = fn() if is_main() else None
    dist.barrier()
    return out if is_main() else fn()


def jax_data_parallel():
    """On the JAX backend with several local devices, shard batches with ``keras.distribution.DataParallel``
    (set once). Returns True when it did. No-op (False) elsewhere or when JAX is absent."""
    if keras.backend.backend() != "jax":
        return False
    try:
        import jax
    except ImportError:
        return False
    devices = jax.devices()
    if len(devices) < 2:
        return False
    if keras.distribution.distribution() is None:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return True


class _SeenLog:
    """With ``DL1_DDP_LOG=FOLDER``: each rank writes ``seen-rank<R>.jsonl``, one line per epoch with the
    image ids it trained on, so a test (or a user) can check that no image was lost or seen twice."""

    def __init__(self):
        self.folder = os.environ.get("DL1_DDP_LOG")
        self.ids = []

    def add(self, ids):
        if self.folder:
            self.ids.extend(str(i) for i in ids)

    def flush(self, epoch, steps):
        if self.folder:
            os.makedirs(self.folder, exist_ok=True)
            with open(os.path.join(self.folder, f"seen-rank{rank()}.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps({"rank": rank(), "world": world_size(), "epoch": epoch, "steps": steps,
                                    "ids": self.ids}) + "\n")
        self.ids = []


def _batch(data, idxs):
    out = data._get_batch(np.asarray(idxs, dtype=np.int64))
    return out[0], out[1]


def _evaluate(model, val, loss_fn):
    """``(val_loss, val_accuracy)`` over all processes (each evaluates its share)."""
    import torch

    r, w = rank(), world_size()
    total = [0.0, 0.0, 0.0]
    with torch.no_grad():
        if isinstance(val, tuple):
            chunks = [(val[0][i:i + 256][r::w], val[1][i:i + 256][r::w]) for i in range(0, len(val[0]), 256)]
        else:
            chunks = (_batch(val, val.batch_indices(b)[r::w]) for b in range(len(val)))
        for x, y in chunks:
            if len(x) == 0:
                continue
            pred = model(keras.ops.convert_to_tensor(np.asarray(x, dtype="float32")), training=False)
            yt = keras.ops.convert_to_tensor(np.asarray(y, dtype="float32"))
            total[0] += float(keras.ops.sum(loss_fn(yt, pred)))
            total[1] += float(keras.ops.sum(keras.ops.cast(
                keras.ops.argmax(pred, -1) == keras.ops.argmax(yt, -1), "float32")))
            total[2] += len(x)
    s = all_sum(total)
    return s[0] / max(s[2], 1), s[1] / max(s[2], 1)


def ddp_fit(model, data, val=None, epochs=1, start_epoch=0, start_batch=0, checkpoint=None,
            checkpoint_every=None, callbacks=None, verbose=1, ids=None, stop=None):
    """Train ``model`` (compiled, on ``data``: a dl1 batch iterator) under DDP; returns a Keras History
    (rank 0's callbacks run as under ``fit``). ``ids`` names the rows of ``data`` for the seen-log."""
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    dist = init()
    r, w = rank(), world_size()
    main = is_main()
    optimizer = model.optimizer
    variables = model.trainable_variables
    if not optimizer.built:
        optimizer.build(variables)
    device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    ddp = DDP(model, device_ids=device_ids)
    loss_fn = keras.losses.get(model.loss) if isinstance(model.loss, str) else model.loss
    per_sample = getattr(loss_fn, "fn", loss_fn)  # categorical_crossentropy without its reduction
    history = keras.callbacks.History()
    cbs = keras.callbacks.CallbackList(list(callbacks or []) + [history], model=model) if main else None
    if cbs:
        cbs.set_params({"epochs": epochs, "steps": len(data), "verbose": verbose})
        cbs.on_train_begin()
    seen = _SeenLog()
    ids = np.arange(data.n) if ids is None else np.asarray(ids)

    def save(epoch, batch):
        if checkpoint is not None and main:
            checkpoint.save(epoch, batch, data.seed, epochs)
        dist.barrier()

    for epoch in range(start_epoch, epochs):
        data.set_epoch(epoch)
        if cbs:
            cbs.on_epoch_begin(epoch)
        first = start_batch if epoch == start_epoch else 0
        sums, steps, t0 = [0.0, 0.0, 0.0], 0, time.time()
        for b in range(first, len(data)):
            global_idx = data.batch_indices(b)
            mine = global_idx[r::w]
            x, y = _batch(data, mine)
            seen.add(ids[mine])
            xt = keras.ops.convert_to_tensor(np.asarray(x, dtype="float32"))
            yt = keras.ops.convert_to_tensor(np.asarray(y, dtype="float32"))
            for v in variables:
                v.value.grad = None
            pred = ddp(xt, training=True)
            losses = per_sample(yt, pred)
            # DDP averages gradients over the w processes: scale so the result is the global batch's mean
            loss = keras.ops.sum(losses) * (w / len(global_idx))
            if hasattr(optimizer, "scale_loss"):
                loss = optimizer.scale_loss(loss)
            loss.backward()
            grads = [v.value.grad if v.value.grad is not None else torch.zeros_like(v.value) for v in variables]
            with torch.no_grad():
                optimizer.apply(grads, variables)
            with torch.no_grad():
                correct = keras.ops.sum(keras.ops.cast(
                    keras.ops.argmax(pred, -1) == keras.ops.argmax(yt, -1), "float32"))
            sums[0] += float(keras.ops.sum(losses.detach()))
            sums[1] += float(correct)
            sums[2] += len(mine)
            steps += 1
            stopping = stop is not None and stop.requested
            flag = all_sum([1.0 if stopping else 0.0])[0]
            if cbs:
                cbs.on_train_batch_end(b)
            if flag:
                save(epoch, b + 1)
                raise KeyboardInterrupt(f"stopped at epoch {epoch + 1}, batch {b + 1}; checkpoint saved"
                                        + (f" to {checkpoint.path}" if checkpoint else ""))
            if checkpoint_every and (b + 1) % checkpoint_every == 0 and b + 1 < len(data):
                save(epoch, b + 1)
        seen.flush(epoch, steps)
        total = all_sum(sums)
        logs = {"loss": total[0] / max(total[2], 1), "accuracy": total[1] / max(total[2], 1)}
        if val is not None:
            logs["val_loss"], logs["val_accuracy"] = _evaluate(model, val, per_sample)
        if main and verbose:
            line = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            print(f"Epoch {epoch + 1}/{epochs} ({w} processes, {steps} steps, {time.time() - t0:.1f}s) - {line}",
                  flush=True)
        save(epoch + 1, 0)
        if cbs:
            cbs.on_epoch_end(epoch, logs)
        dist.barrier()  # rank 0's per-epoch files are written before anyone goes on
    if cbs:
        cbs.on_train_end()
    if not main:
        history.set_model(model)
        history.history, history.epoch = {}, []
    return history
