"""Cache the output of a model's frozen layers, once per image, so training the head is cheap.

After ``finetune`` only the last layer learns, yet the 2017 code pushed every image through all of
VGG16 every epoch. Here the longest run of leading layers that are frozen and deterministic (no
dropout, no trainable BatchNorm; a ``FrozenBase`` wrapping a whole pretrained network counts as one such
layer when frozen, since it always runs in inference mode) is the *prefix*; the model may be a
``Sequential`` or a functional model that is a straight chain of layers (input -> preprocessing -> frozen
base -> head, as ``dl1.models.backbones`` builds); its outputs are computed once per image, stored with
blosc2 in a cache folder, and the rest of the model trains on them.

The folder is the caller's, passed down: ``FeatureCache(..., folder=F)``, ``fit_model(..., cache_dir=F)``,
``predict_batches(..., cache_dir=F)`` (``ImageClassifier`` and ``dl1.workflow`` pass their data folder's
``dl1.train.cachedir.cache_dir_for(DIR)``: ``$DL1_CACHE_DIR``, else ``DIR/.dl1-cache``). Without a folder the
features are computed for the call and not kept.

The cache file is keyed by a fingerprint of the prefix's weights and the image size, so other weights
get other files; inside a file, each row remembers its image's path, size and modification time, so
changed or new images are recomputed and unchanged ones reused.
"""

import hashlib
import json
import os

import keras
import numpy as np

from dl1.data.batches import ArrayIterator
from dl1.io.arrays import load_array, save_array
from dl1.io.errors import DataError
from dl1.io.log import note, warn
from dl1.nn import kprivate
from dl1.nn.frozen import FrozenBase
from dl1.nn.model import Sequential
from dl1.train import distributed
from dl1.train.cachedir import cache_files

CACHE_VERSION = 1
_STOCHASTIC = tuple(getattr(keras.layers, name) for name in (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "RandomFlip", "RandomRotation", "RandomTranslation",
    "RandomZoom", "RandomContrast", "RandomBrightness", "RandomCrop") if hasattr(keras.layers, name))


def is_frozen_deterministic(layer):
    """True if ``layer`` gives the same output for the same input in training, and does not learn."""
    if isinstance(layer, FrozenBase):  # calls its network with training=False: dropout off, BN moving stats
        return not layer.trainable_weights
    if isinstance(layer, keras.Model):
        return all(is_frozen_deterministic(sub) for sub in layer.layers)
    if isinstance(layer, _STOCHASTIC):
        return False
    if layer.trainable_weights:
        return False
    # BatchNormalization without scale/offset still uses batch statistics while trainable
    return not (isinstance(layer, keras.layers.BatchNormalization) and layer.trainable)


def chain_layers(model):
    """The layers of ``model`` in order when it is a chain (each layer feeding only the next): a
    ``Sequential``'s layers, or a single-input single-output functional model's layers walked back from
    its output (InputLayer left out). None for any other graph (branches, several inputs or outputs)."""
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    if not isinstance(model, keras.Model) or len(getattr(model, "inputs", None) or []) != 1 \
            or len(model.outputs) != 1:
        return None
    chain, tensor = [], model.outputs[0]
    while True:
        found = kprivate.producer(tensor)
        if found is None:
            return None
        op, inputs = found
        if isinstance(op, keras.layers.InputLayer):
            break
        if len(inputs) != 1 or kprivate.node_output_count(tensor) != 1:
            return None
        chain.append(op)
        tensor = inputs[0]
    if tensor is not model.inputs[0]:
        return None
    chain.reverse()
    return chain


def frozen_prefix_length(model):
    """How many leading layers of a chain ``model`` (see ``chain_layers``) are frozen and deterministic."""
    layers = chain_layers(model)
    if not layers:
        return 0
    k = 0
    for layer in layers:
        if not is_frozen_deterministic(layer):
            break
        k += 1
    return k


def _weight_digest(weight):
    """SHA-256 of one weight's dtype, shape and values, kept on a PyTorch tensor until it changes (torch
    counts every in-place change), so the fits of a notebook do not hash the same frozen weights again."""
    value = getattr(weight, "value", weight)
    version = getattr(value, "_version", None)
    cached = getattr(value, "_dl1_digest", None)
    if version is not None and cached is not None and cached[0] == version:
        return cached[1]
    arr = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
    h = hashlib.sha256(f"{arr.dtype}{arr.shape}".encode())
    h.update(memoryview(arr).cast("B"))
    digest = h.digest()
    if version is not None:
        try:
            value._dl1_digest = (version, digest)
        except AttributeError:  # a tensor type that takes no attributes: hashed again next time
            pass
    return digest


def weights_fingerprint(layers):
    """A hash of the layers' names and weight values (changes when any weight does). The weights are hashed
    in threads (hashlib lets go of the GIL; SHA-256 runs on the CPU's SHA instructions): VGG16's frozen
    layers at 224 px are 470 MB."""
    from concurrent.futures import ThreadPoolExecutor

    names = [f"{type(layer).__name__}:{layer.name}:{len(layer.weights)}" for layer in layers]
    weights = [w for layer in layers for w in layer.weights]
    workers = max(1, min(len(weights), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = list(pool.map(_weight_digest, weights))
    h = hashlib.blake2b("\n".join(names).encode(), digest_size=16)
    for digest in digests:
        h.update(digest)
    return h.hexdigest()


class FrozenPrefix:
    """The first ``k`` layers of ``model`` as a model of their own, with a fingerprint of their weights."""

    def __init__(self, model, k):
        self.k = k
        self.chain = chain_layers(model)
        self.layers = self.chain[:k]
        self.input_shape = tuple(model.inputs[0].shape[1:])
        self.model = keras.Sequential([keras.Input(shape=self.input_shape)] + list(self.layers),
                                      name="frozen_prefix")
        self.output_shape = tuple(self.model.output_shape[1:])
        policies = sorted({getattr(layer.dtype_policy, "name", "float32") for layer in self.layers})
        self.fingerprint = weights_fingerprint(self.layers) + "-" + "+".join(policies)

    @property
    def worth_caching(self):
        """Only when the prefix does real work (has weights) and leaves something to train."""
        return any(layer.weights for layer in self.layers)

    def head(self, model=None, cls=keras.Sequential):
        """The remaining layers of ``model`` as a model (a ``cls``) that takes the prefix's output."""
        rest = self.chain[self.k:] if model is None else chain_layers(model)[self.k:]
        return cls([keras.Input(shape=self.output_shape)] + list(rest), name="head")

    def compiled_head(self, model):
        """``head(model)`` compiled with ``model``'s optimizer, loss and metrics (it trains the same weights)."""
        head = self.head(model, cls=Sequential)  # dl1's: the compile policy decides at fit
        config = model.get_compile_config() or {}
        head.compile(optimizer=model.optimizer, loss=model.loss, metrics=config.get("metrics"),
                     jit_compile=getattr(model, "dl1_jit", "auto"))
        return head


def cache_limits():
    """``(max bytes, max files)`` of a feature-cache folder: ``DL1_CACHE_MAX_GB`` (default 20) and
    ``DL1_CACHE_MAX_FILES`` (default 24). Every change of frozen weights or image size makes a new file."""
    gb = float(os.environ.get("DL1_CACHE_MAX_GB", "20"))
    files = int(os.environ.get("DL1_CACHE_MAX_FILES", "24"))
    return int(gb * 2**30), files


def prune_cache(folder, keep=()):
    """Delete the least recently used feature files of ``folder`` until it is within ``cache_limits()``;
    never one in ``keep``. Returns the deleted paths."""
    max_bytes, max_files = cache_limits()
    files = cache_files(folder)
    total = sum(size for _, size, _ in files)
    keep = {os.path.abspath(k) for k in keep}
    deleted = []
    for path, size, _ in files:
        if total <= max_bytes and len(files) - len(deleted) <= max_files:
            break
        if os.path.abspath(path) in keep:
            continue
        try:
            os.remove(path)
        except OSError:
            continue
        total -= size
        deleted.append(path)
    if deleted:
        note("feature cache %s: removed %d least recently used file(s) to stay within %.0f GB / %d files "
             "(DL1_CACHE_MAX_GB, DL1_CACHE_MAX_FILES; 'dl1 cache --clear' empties it)", folder, len(deleted),
             max_bytes / 2**30, max_files)
    return deleted


def _stamp(path):
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


class FeatureCache:
    """Frozen-prefix outputs for the images of a ``DirectoryIterator``, cached on disk."""

    def __init__(self, prefix, batch_size=32, verbose=True, folder=None):
        self.prefix = prefix
        self.batch_size = batch_size
        self.verbose = verbose
        self.folder = os.fspath(folder) if folder else None

    def path_for(self, batches):
        key = json.dumps({"v": CACHE_VERSION, "weights": self.prefix.fingerprint,
                          "folder": os.path.abspath(batches.directory),
                          "input": list(self.prefix.input_shape), "target": list(batches.target_size),
                          "interp": batches.interpolation, "color": batches.color_mode}, sort_keys=True)
        digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
        name = os.path.basename(os.path.normpath(batches.directory)) or "data"
        return os.path.join(self.folder, f"{name}-{digest}.b2nd")

    def _load(self, path):
        """``((features, ok), {(file, size, mtime): row})`` from a cache file, or ``(None, {})`` when it is
        absent; a damaged or foreign one (its index not the schema below, or not matching the array) is
        named in a note and recomputed."""
        if not os.path.exists(path):
            return None, {}
        try:
            data, meta = load_array(path, with_meta=True)
            problem = self._index_problem(data, meta)
            if problem is None:
                index = meta["index"]
                rows = {(f, s, m): i for i, (f, s, m) in enumerate(index["files"])}
                return (data, index["ok"]), rows
        except DataError as e:
            problem = str(e)
        warn("feature cache %s is damaged (%s); computing the features again", path, problem)
        return None, {}

    def _index_problem(self, data, meta):
        """What is wrong with a cache entry's index (``{'files': [[name, size, mtime_ns]...], 'ok': [...]}``,
        one row per array row, the prefix's output shape), or None."""
        index = meta.get("index") if isinstance(meta, dict) else None
        if not isinstance(index, dict) or not isinstance(index.get("files"), list) \
                or not isinstance(index.get("ok"), list):
            return "no index of its images"
        files, ok = index["files"], index["ok"]
        if not all(isinstance(r, list) and len(r) == 3 and isinstance(r[0], str)
                   and all(isinstance(v, int) and not isinstance(v, bool) for v in r[1:]) for r in files):
            return "its index is not a list of [image, size, time]"
        if not all(isinstance(v, bool) for v in ok) or len(ok) != len(files):
            return "its index of readable images does not match its list of images"
        if data.ndim < 1 or data.shape[0] != len(files) or tuple(data.shape[1:]) != tuple(self.prefix.output_shape):
            return f"an array of shape {tuple(data.shape)} for {len(files)} images"
        if data.dtype.kind != "f":
            return f"values of type {data.dtype}"
        step = max(1, (1 << 24) // max(1, int(np.prod(data.shape[1:]))))
        if not all(np.isfinite(data[i:i + step]).all() for i in range(0, len(data), step)):
            return "values that are not finite numbers"
        return None

    def features(self, batches):
        """``(features, ok)``: one row per ``batches.filenames`` entry, ``ok`` False for unreadable files."""
        if self.folder is None:  # nowhere to keep them: computed for this call only
            out = np.zeros((batches.n,) + self.prefix.output_shape, dtype=np.float32)
            ok = np.ones(batches.n, dtype=bool)
            self._compute(batches, np.arange(batches.n), out, ok, False)
            return out, ok
        path = self.path_for(batches)
        cached, rows = self._load(path)
        stamps = [_stamp(p) for p in batches.filepaths]
        out = np.zeros((batches.n,) + self.prefix.output_shape, dtype=np.float32)
        ok = np.ones(batches.n, dtype=bool)
        todo = []
        for i, (name, (size, mtime)) in enumerate(zip(batches.filenames, stamps, strict=True)):
            row = rows.get((name, size, mtime))
            if row is None:
                todo.append(i)
            else:
                out[i] = cached[0][row]
                ok[i] = cached[1][row]
        if todo:
            self._compute(batches, np.array(todo), out, ok, len(todo) < batches.n)
        if todo or len(rows) != batches.n:
            index = {"files": [[f, s, m] for f, (s, m) in zip(batches.filenames, stamps, strict=True)],
                     "ok": [bool(v) for v in ok]}
            try:
                save_array(path, out, meta={"index": index})
                prune_cache(os.path.dirname(path), keep=[path])
            except OSError as e:
                warn("could not write the feature cache %s (%s); continuing without it", path, e)
        else:
            os.utime(path)  # last used: pruning removes the least recently used files first
            if self.verbose:
                note("using cached features for %d images of %s", batches.n, batches.directory)
        return out, ok

    def _compute(self, batches, todo, out, ok, partial):
        from dl1.io.console import tqdm
        from dl1.io.pools import prefetch_pool

        what = f"{len(todo)} new or changed images" if partial else f"{len(todo)} images"
        chunks = [todo[i:i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        bar = tqdm(total=len(todo), desc=f"Features of {what} in {batches.directory}", unit="img",
                   disable=not self.verbose)
        loader = prefetch_pool()
        try:  # substitute=False keeps unreadable files in their rows (marked not ok below)
            pending = loader.submit(batches.load_images, chunks[0], False)
            for n, chunk in enumerate(chunks):
                x, _ = pending.result()
                if n + 1 < len(chunks):  # decode the next chunk while this one goes through the model
                    pending = loader.submit(batches.load_images, chunks[n + 1], False)
                out[chunk] = self.prefix.model.predict_on_batch(x)
                bar.update(len(chunk))
        finally:
            bar.close()
        for i in todo:
            if batches.filenames[i] in batches.bad_files:
                ok[i] = False


def feature_arrays(prefix, batches, verbose=True, folder=None):
    """``(features, ok)`` of every image of ``batches`` through the cache (``FeatureCache.features``); under
    torchrun rank 0 computes and writes the cache, the other processes then read it."""
    cache = FeatureCache(prefix, batch_size=max(batches.batch_size, 32), verbose=verbose, folder=folder)
    return distributed.once(lambda: cache.features(batches))


def feature_data(prefix, batches, val_batches=None, verbose=True, folder=None):
    """``(training sequence, validation arrays or None, kept rows)`` of cached features, unreadable images
    left out: what the head trains on instead of the images."""
    x, ok = feature_arrays(prefix, batches, verbose, folder)
    keep = np.flatnonzero(ok)
    train = ArrayIterator(x[keep], batches.labels_for(keep), batch_size=batches.batch_size,
                          shuffle=batches.shuffle, seed=batches.seed)
    val = None
    if val_batches is not None:
        vx, vok = feature_arrays(prefix, val_batches, verbose, folder)
        vkeep = np.flatnonzero(vok)
        val = (vx[vkeep], val_batches.labels_for(vkeep))
    return train, val, keep
