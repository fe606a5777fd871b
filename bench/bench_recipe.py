"""(b) The 7-line recipe end to end against the same work written with plain Keras 3.

Ours, timed from the first line to the end of training, with a fresh feature cache (``DL1_CACHE_DIR`` set
to a new empty folder, so the first epoch pays for the features)::

    vgg = Vgg16(weights=STANDIN_H5, size=S)
    batches = vgg.get_batches(path + 'train', batch_size=B)
    val_batches = vgg.get_batches(path + 'valid', batch_size=B)
    vgg.finetune(batches)
    vgg.fit(batches, val_batches, nb_epoch=3)

Baseline: what the official Keras 3 transfer-learning guide (keras.io/guides/transfer_learning) has a user
write, for the same network, weights, head, optimizer and data: ``keras.applications.VGG16(weights=None,
include_top=True, input_shape=(S, S, 3))`` with the same stand-in file loaded by ``load_weights``
(verified equal to ours), ``keras.applications.vgg16.preprocess_input``, the fast.ai head (fc1,
Dropout(0.5), fc2, Dropout(0.5), a new Dense(2, softmax)), everything but the new Dense frozen, Adam(1e-3),
``model.fit``. The guide's data pipeline is tf.data ending in ``.cache()``, i.e. images decoded once and
kept in memory; without TensorFlow the equivalent is decoding every image once with Pillow (bilinear, one
at a time) into arrays up front (``--baseline-data arrays``, the default, included in the time).
``--baseline-data pydataset`` instead streams images through a ``keras.utils.PyDataset`` that decodes them
one at a time every epoch (no cache).

The 1-epoch figures are read at the end of epoch 1 of the 3-epoch runs (the same work as a 1-epoch run);
"rerun" is ours once more with the cache of the first run (a notebook run a second time).
Stand-in weights (LSUV-scaled random VGG16, dl1.models.standin): no ImageNet weights offline, so accuracies
are lower than with ImageNet; both sides use the very same weights.

On a GPU box also try ``--mixed-precision`` (``Vgg16(mixed_precision=True)`` for ours, the same Keras
policy for the plain model) and ``--jit`` (``jit_compile=True`` on both sides).

    python bench/bench_recipe.py           # CPU: 64 px, 400 train + 100 valid images of <=500 px
    python bench/bench_recipe.py --full    # GPU box: 224 px, 4000 + 1000 images
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

import dl1  # noqa: F401  (picks the Keras backend before Keras is imported: keep it above keras)

# isort: split
import keras


class EpochClock(keras.callbacks.Callback):
    """Wall-clock seconds since ``t0`` when training starts and at each epoch end, with the logs."""

    def __init__(self, t0):
        super().__init__()
        self.t0 = t0
        self.train_begin = None
        self.epochs = []  # (seconds since t0, logs)

    def on_train_begin(self, logs=None):
        if self.train_begin is None:
            self.train_begin = time.perf_counter() - self.t0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((time.perf_counter() - self.t0, dict(logs or {})))


# ---- ours -------------------------------------------------------------------------------------------------
def run_ours(data, weights, size, batch_size, epochs, cache_dir, seed, options=None):
    old_cache_dir = os.environ.get("DL1_CACHE_DIR")
    os.environ["DL1_CACHE_DIR"] = cache_dir
    try:
        return _run_ours(data, weights, size, batch_size, epochs, seed, options or {})
    finally:
        if old_cache_dir is None:
            os.environ.pop("DL1_CACHE_DIR", None)
        else:
            os.environ["DL1_CACHE_DIR"] = old_cache_dir


def _run_ours(data, weights, size, batch_size, epochs, seed, options):
    from dl1.models.vgg16 import Vgg16

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    marks = {}
    t0 = time.perf_counter()
    vgg = Vgg16(weights=weights, size=size, verbose=False, **options)
    marks["model"] = time.perf_counter() - t0
    batches = vgg.get_batches(os.path.join(data, "train"), batch_size=batch_size, verbose=False)
    val_batches = vgg.get_batches(os.path.join(data, "valid"), batch_size=batch_size, verbose=False)
    marks["get_batches"] = time.perf_counter() - t0
    vgg.finetune(batches)
    marks["finetune"] = time.perf_counter() - t0
    clock = EpochClock(t0)
    vgg.fit(batches, val_batches, nb_epoch=epochs, callbacks=[clock], verbose=0)
    total = time.perf_counter() - t0
    return {"total": total, "marks": marks, "clock": clock, "vgg": vgg}


# ---- plain Keras 3 -----------------------------------------------------------------------------------------
def class_files(folder):
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    paths, labels = [], []
    for k, c in enumerate(classes):
        names = sorted(os.listdir(os.path.join(folder, c)))
        paths += [os.path.join(folder, c, n) for n in names]
        labels += [k] * len(names)
    return paths, np.asarray(labels), len(classes)


def pil_load(path, size):
    from PIL import Image

    img = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def load_arrays(folder, size):
    """Every image decoded once, one at a time, into memory (what the guide's tf.data ``.cache()`` gives)."""
    from keras.applications.vgg16 import preprocess_input

    paths, labels, k = class_files(folder)
    x = np.zeros((len(paths), size, size, 3), dtype=np.float32)
    for i, p in enumerate(paths):
        x[i] = pil_load(p, size)
    return preprocess_input(x), keras.utils.to_categorical(labels, k)


class PilSequence(keras.utils.PyDataset):
    """What a user writes without tf.data: a PyDataset that decodes its images one at a time."""

    def __init__(self, folder, size, batch_size, shuffle, **kwargs):
        super().__init__(**kwargs)
        self.paths, labels, k = class_files(folder)
        self.y = keras.utils.to_categorical(labels, k)
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.order = np.random.permutation(len(self.paths)) if shuffle else np.arange(len(self.paths))

    def __len__(self):
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, idx):
        from keras.applications.vgg16 import preprocess_input

        rows = self.order[idx * self.batch_size:(idx + 1) * self.batch_size]
        x = np.stack([pil_load(self.paths[i], self.size) for i in rows])
        return preprocess_input(x), self.y[rows]

    def on_epoch_end(self):
        if self.shuffle:
            self.order = np.random.permutation(len(self.paths))


def plain_keras_model(weights, size, jit_compile="auto"):
    base = keras.applications.VGG16(weights=None, include_top=True, input_shape=(size, size, 3))
    base.load_weights(weights)  # a Keras-2 layout .h5: Keras 3 loads it by layer order
    x = base.get_layer("flatten").output
    x = base.get_layer("fc1")(x)
    x = keras.layers.Dropout(0.5)(x)
    x = base.get_layer("fc2")(x)
    x = keras.layers.Dropout(0.5)(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="new_predictions", dtype="float32")(x)
    model = keras.Model(base.input, outputs)
    for layer in model.layers[:-1]:
        layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit_compile)
    return model


def run_plain(data, weights, size, batch_size, epochs, seed, how="arrays", policy=None, jit_compile="auto"):
    """The plain-Keras run; ``policy`` (a mixed-precision policy name) is set globally, as the Keras
    mixed-precision guide does, for this run only."""
    keras.mixed_precision.set_global_policy(policy or "float32")
    try:
        return _run_plain(data, weights, size, batch_size, epochs, seed, how, jit_compile)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _run_plain(data, weights, size, batch_size, epochs, seed, how, jit_compile):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    marks = {}
    t0 = time.perf_counter()
    if how == "arrays":
        x, y = load_arrays(os.path.join(data, "train"), size)
        xv, yv = load_arrays(os.path.join(data, "valid"), size)
        marks["decode"] = time.perf_counter() - t0
    model = plain_keras_model(weights, size, jit_compile)
    marks["model"] = time.perf_counter() - t0
    clock = EpochClock(t0)
    if how == "arrays":
        model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=(xv, yv), shuffle=True,
                  callbacks=[clock], verbose=0)
    else:
        train = PilSequence(os.path.join(data, "train"), size, batch_size, shuffle=True)
        val = PilSequence(os.path.join(data, "valid"), size, batch_size, shuffle=False)
        model.fit(train, epochs=epochs, validation_data=val, callbacks=[clock], verbose=0)
    total = time.perf_counter() - t0
    return {"total": total, "marks": marks, "clock": clock, "model": model}


def check_same_weights(weights, size):
    """The plain model's frozen weights equal ours, layer by layer (else the comparison is void)."""
    from dl1.models.vgg16 import Vgg16

    ours = {layer.name: layer.get_weights() for layer in Vgg16(weights=weights, size=size, verbose=False)
            .model.layers if layer.weights}
    base = keras.applications.VGG16(weights=None, include_top=True, input_shape=(size, size, 3))
    base.load_weights(weights)
    for layer in base.layers:
        if layer.weights and not all(np.array_equal(a, b) for a, b in zip(layer.get_weights(),
                                                                             ours[layer.name], strict=True)):
            raise SystemExit(f"plain Keras loaded different weights for {layer.name}: comparison void")
    keras.backend.clear_session()


# ---- where the time goes ----------------------------------------------------------------------------------
def profile_features(data, vgg, batch_size, work):
    """Decode alone, frozen-prefix forward alone, cache write/read alone, for ours' feature phase."""
    from dl1.io.arrays import load_array, save_array
    from dl1.train.features import FrozenPrefix, frozen_prefix_length

    model = vgg.model
    prefix = FrozenPrefix(model, frozen_prefix_length(model))
    chunk = max(batch_size, 32)
    rows = []
    for split in ("train", "valid"):
        b = vgg.get_batches(os.path.join(data, split), batch_size=chunk, shuffle=False, verbose=False)
        t0 = time.perf_counter()
        xs = [b.load_images(b.index_array[i:i + chunk], False)[0] for i in range(0, b.n, chunk)]
        t_decode = time.perf_counter() - t0
        prefix.model.predict_on_batch(xs[0][:2])  # warm-up
        t0 = time.perf_counter()
        feats = np.concatenate([keras.ops.convert_to_numpy(prefix.model.predict_on_batch(x)) for x in xs])
        t_forward = time.perf_counter() - t0
        rows.append((split, b.n, t_decode, t_forward, feats))
    C.say(f"ours, feature phase taken apart ({prefix.k} frozen layers, features of shape "
          f"{prefix.output_shape}):")
    for split, n, t_decode, t_forward, _ in rows:
        C.say(f"  {split:5s}: decode {n} images {t_decode:6.2f} s ({n / t_decode:6.0f} img/s); frozen-prefix "
              f"forward {t_forward:6.2f} s ({n / t_forward:6.1f} img/s)")
    feats = np.concatenate([r[4] for r in rows])
    path = os.path.join(work, "profile.b2nd")
    t0 = time.perf_counter()
    save_array(path, feats)
    t_save = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_array(path)
    t_load = time.perf_counter() - t0
    C.say(f"  cache: write {feats.nbytes / 1e6:.1f} MB of features {t_save:.2f} s "
          f"({os.path.getsize(path) / 1e6:.1f} MB on disk), read {t_load:.2f} s")
    C.say()


def describe(label, run, epochs):
    clock = run["clock"]
    marks = run["marks"]
    parts = [f"{k} done at {v:.2f} s" for k, v in marks.items()]
    if clock.train_begin is not None:
        parts.append(f"training starts at {clock.train_begin:.2f} s")
    C.say(f"{label}: total {run['total']:.2f} s; " + "; ".join(parts))
    prev = clock.train_begin or 0.0
    for i, (t, logs) in enumerate(clock.epochs[:epochs], start=1):
        C.say(f"    epoch {i}: ends at {t:7.2f} s (took {t - prev:6.2f} s)  loss {logs.get('loss', float('nan')):.4f}"
              f"  acc {logs.get('accuracy', float('nan')):.3f}  val_acc {logs.get('val_accuracy', float('nan')):.3f}")
        prev = t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="GPU-box size: 224 px, 4000 train + 1000 valid images")
    p.add_argument("--tiny", action="store_true", help="smoke-test size")
    p.add_argument("--size", type=int, help="image size S (default 64; --full 224)")
    p.add_argument("--n-train", type=int, help="training images (default 400; --full 4000)")
    p.add_argument("--n-valid", type=int, help="validation images (default 100; --full 1000)")
    p.add_argument("--max-side", type=int, default=500, help="longest side of the generated JPEGs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3, help="epochs of the long run (RESULTs for 1 and this)")
    p.add_argument("--repeats", type=int, help="runs of each side, alternating who goes first; medians "
                   "reported (default 2; --tiny 1)")
    p.add_argument("--baseline-data", choices=("arrays", "pydataset"), default="arrays",
                   help="how the plain-Keras user feeds images (see the module docstring)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="both sides in mixed precision: Vgg16(mixed_precision=True) and the same Keras policy "
                        "for the plain model (for GPU boxes)")
    p.add_argument("--jit", action="store_true",
                   help="both sides compiled: Vgg16(jit_compile=True) and compile(jit_compile=True)")
    p.add_argument("--no-profile", action="store_true", help="skip taking ours' feature phase apart")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder for data, weights and caches (kept); default a temporary folder")
    args = p.parse_args(argv)
    if args.tiny:
        size, n_train, n_valid, max_side = 32, 32, 16, 96
    elif args.full:
        size, n_train, n_valid, max_side = 224, 4000, 1000, args.max_side
    else:
        size, n_train, n_valid, max_side = 64, 400, 100, args.max_side
    size = args.size or size
    repeats = args.repeats or (1 if args.tiny else 2)
    n_train = args.n_train or n_train
    n_valid = args.n_valid or n_valid
    epochs = max(1, args.epochs)

    options, policy = {}, None
    if args.mixed_precision:
        from dl1.nn.optimizers import mixed_precision_policy

        options["mixed_precision"] = True
        policy = mixed_precision_policy(True)
    if args.jit:
        options["jit_compile"] = True
    plain_jit = True if args.jit else "auto"

    C.machine_info("bench_recipe: the 7-line recipe against plain Keras 3")
    import torch

    C.say(f"torch intra-op threads {torch.get_num_threads()}; {size} px; {n_train} train + {n_valid} valid "
          f"images; batch {args.batch_size}; {epochs} epochs; baseline data: {args.baseline_data}; mixed precision "
          f"{policy or 'off'}; jit_compile {'True' if args.jit else 'library/Keras default'}")
    with C.workdir(args.out) as work:
        n = n_train + n_valid
        data = C.make_images(os.path.join(work, f"data{max_side}-{n}"), n, max_side,
                             valid_fraction=n_valid / n, seed=args.seed)
        weights = os.path.join(work, f"standin{size}.h5")
        if not os.path.exists(weights):
            from dl1.models.standin import make_standin_weights

            t0 = time.perf_counter()
            make_standin_weights(weights, os.path.join(data, "train"), size=size, n=min(64, n_train),
                                 seed=args.seed, verbose=False)
            C.say(f"stand-in weights made in {time.perf_counter() - t0:.1f} s: {weights}")
        check_same_weights(weights, size)
        C.say("plain keras.applications.VGG16 loaded the stand-in .h5 with the same weights as ours: checked")
        C.say()

        ours_runs, plain_runs, reruns = [], [], []
        for r in range(repeats):  # alternate who goes first: other processes' load comes and goes
            cache_dir = os.path.join(work, f"cache-{time.time_ns()}")
            if r % 2:
                plain = run_plain(data, weights, size, args.batch_size, epochs, args.seed + r, args.baseline_data,
                                  policy, plain_jit)
                describe(f"plain Keras 3, run {r + 1}", plain, epochs)
            ours = run_ours(data, weights, size, args.batch_size, epochs, cache_dir, args.seed + r, options)
            describe(f"ours, run {r + 1} (fresh cache)", ours, epochs)
            if not r % 2:
                plain = run_plain(data, weights, size, args.batch_size, epochs, args.seed + r, args.baseline_data,
                                  policy, plain_jit)
                describe(f"plain Keras 3, run {r + 1}", plain, epochs)
            rerun = run_ours(data, weights, size, args.batch_size, epochs, cache_dir, args.seed + r, options)
            describe(f"ours, run {r + 1} again (cache from the first run)", rerun, epochs)
            C.say()
            ours_runs.append(ours)
            plain_runs.append(plain)
            reruns.append(rerun)
        if not args.no_profile:
            profile_features(data, ours_runs[-1]["vgg"], args.batch_size, work)

    def at_epoch(runs, k):
        return C.median([run["clock"].epochs[k - 1][0] for run in runs])

    def acc(runs, k):
        return C.median([run["clock"].epochs[k - 1][1].get("val_accuracy", float("nan")) for run in runs])

    C.say(f"load average at the end: {C.load_average()}")
    C.say("seconds: ratio = plain Keras seconds / ours (higher is better); accuracy: ratio = ours / plain")
    C.result("recipe_1epoch_vs_plain_keras", at_epoch(ours_runs, 1), at_epoch(plain_runs, 1), lower_is_better=True)
    C.result(f"recipe_{epochs}epoch_vs_plain_keras", at_epoch(ours_runs, epochs), at_epoch(plain_runs, epochs),
             lower_is_better=True)
    C.result(f"recipe_rerun_{epochs}epoch_vs_plain_keras", at_epoch(reruns, epochs), at_epoch(plain_runs, epochs),
             lower_is_better=True)
    C.result("val_accuracy_1epoch_vs_plain_keras", acc(ours_runs, 1), acc(plain_runs, 1))
    C.result(f"val_accuracy_{epochs}epoch_vs_plain_keras", acc(ours_runs, epochs), acc(plain_runs, epochs))


if __name__ == "__main__":
    main()
