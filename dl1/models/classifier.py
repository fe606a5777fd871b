"""``ImageClassifier``: the recipe of lesson 1 and today's training aids, for every network of the table.

    model = ImageClassifier('resnet50')            # or Vgg16(), Resnet50(), ... (the same class underneath)
    batches = model.get_batches(path + 'train', batch_size=64)
    val_batches = model.get_batches(path + 'valid', batch_size=64)
    model.finetune(batches)
    model.fit(batches, val_batches, nb_epoch=1)

The 2017 methods (``get_batches``, ``finetune``, ``ft``, ``compile``, ``fit``, ``fit_data``, ``test``,
``predict``, ``classes``, ``model``) and what learners expect since fastai v2 (``lr_find``,
``fit_one_cycle``, ``fine_tune``, ``predict_tta``, ``export``, ``layer_groups``, ``unfreeze``) live here,
once. What differs between networks is the architecture's entry in ``dl1.models.archs`` (facts: size,
preprocessing, weight files) and its network class (``VggNetwork``, ``ApplicationNetwork``: how to build
it, load weights, replace the softmax, group the layers), which this class holds as ``self.network``.

Folders: ``cache_dir`` (the frozen-feature cache) and the ``fname`` of ``lr_find``'s plot are given by the
caller (``dl1.workflow`` passes its ``Results``' folders). Without them, as in a notebook, the cache is
``.dl1-cache`` and the plot ``results/lr_find.png`` in the data folder above the batches' folder.
"""

import os

import numpy as np

from dl1.data.batches import get_batches as _get_batches
from dl1.io.errors import DataError, WeightsError
from dl1.io.log import note
from dl1.models import archs
from dl1.models.config import DEFAULT_LR, ConfigError
from dl1.models.weights import load_class_index
from dl1.nn.layer_rates import group_multipliers, with_layer_rates
from dl1.nn.optimizers import Adam, LossScaleOptimizer, mixed_precision_policy
from dl1.nn.weightfiles import saved_num_classes
from dl1.train import distributed, schedules, tta
from dl1.train import lr_find as range_test
from dl1.train.cachedir import cache_dir_for
from dl1.train.callbacks import merge_histories
from dl1.train.fit import fit_model, predict_batches
from dl1.train.history import HistoryRecorder
from dl1.train.tta import apply_transform, tta_transforms


def size_pair(size, default=224):
    """``(height, width)`` from an int, a pair or None (``default``)."""
    if size is None:
        return (default, default)
    if np.isscalar(size):
        return (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ConfigError(f"size must be an int or (height, width), not {size!r}")
    return size


def phase_checkpoint(checkpoint, phase):
    """``ckpt-<phase>.npz`` beside ``checkpoint`` (each phase of ``fine_tune`` resumes on its own)."""
    if not checkpoint:
        return None
    stem, ext = os.path.splitext(os.fspath(checkpoint))
    return f"{stem}-{phase}{ext or '.npz'}"


def data_folder(batches):
    """The data folder above ``batches``' own (``DIR`` for ``DIR/train``): where a notebook's defaults go."""
    directory = getattr(batches, "directory", None)
    return os.path.dirname(os.path.abspath(directory)) if directory else None


def build_classifier(arch=archs.DEFAULT_ARCH, **kwargs):
    """A model of ``arch``: its own class (``Vgg16``, ``Resnet50``, ...) when the table names one, else
    ``ImageClassifier(arch)``; ``kwargs`` as for ``ImageClassifier`` (``weights``, ``size``, ...)."""
    try:
        spec = archs.get(arch)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    face = spec.load("face")
    return face(**kwargs) if face is not None else ImageClassifier(spec.name, **kwargs)


class ImageClassifier:
    """A network of the architecture table (``arch``) with the recipe's methods (see the module docstring).

    ``weights``: 'imagenet', None (random) or a weights file (a fine-tuned one rebuilds its softmax);
    ``size``: an int or (height, width), default the architecture's; ``include_top=False``: the network
    without its classifier; ``dropout``: default the architecture's; ``mixed_precision``: True, 'auto' (on
    a GPU) or a Keras policy name; ``jit_compile``: Keras' setting; ``fast_convs``: dl1's copy-free
    convolutions on PyTorch (False: Keras' own); ``cache_dir``: the frozen-feature cache folder."""

    def __init__(self, arch=archs.DEFAULT_ARCH, weights="imagenet", size=None, include_top=True, class_index=None,
                 dropout=None, verbose=True, mixed_precision=False, jit_compile="auto", fast_convs=True,
                 cache_dir=None):
        try:
            self.spec = archs.get(arch)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.arch = self.spec.name
        self.size = size_pair(size, self.spec.default_size)
        problem = self.spec.size_problem(self.size)
        if problem:
            raise ConfigError(problem)
        self.policy = mixed_precision_policy(mixed_precision)
        self.jit_compile = jit_compile
        self.weights = weights
        self.include_top = include_top
        self.class_index = class_index
        self.dropout = self.spec.dropout if dropout is None else dropout
        self.verbose = verbose
        self.fast_convs = fast_convs
        self.cache_dir = cache_dir
        network = self.spec.load("network")
        self.network = network(self.spec, self.size, policy=self.policy, dropout=self.dropout,
                               include_top=include_top, fast_convs=fast_convs, say=self._say,
                               **dict(self.spec.network_args))
        self.create()
        self.get_classes()

    def __repr__(self):
        w = self.weights if isinstance(self.weights, str) or self.weights is None else "custom"
        arch = "" if type(self) is not ImageClassifier else f"{self.arch!r}, "
        return f"{type(self).__name__}({arch}weights={w!r}, size={self.size}, classes={len(self.classes)})"

    def _say(self, message):
        """A note for the user (the ``dl1`` logger), unless ``verbose=False``."""
        if self.verbose:
            note(message)

    @property
    def base(self):
        """The pretrained base network inside the model (``keras.applications`` networks), else None."""
        return self.network.base

    # ---- building ------------------------------------------------------------------------------------
    def create(self):
        """Build the network and load its weights (``self.weights``)."""
        weights = self.weights
        saved = None
        if isinstance(weights, (str, os.PathLike)) and weights != "imagenet":
            weights = os.fspath(weights)
            if not os.path.isfile(weights):
                raise WeightsError(f"weights file not found: {weights}")
            saved = saved_num_classes(weights)
        self.model = self.network.build(loading=weights is not None)
        if weights == "imagenet":
            self.network.load_imagenet(self.model)
        elif weights is not None:
            if saved and self.include_top and saved != self.model.output_shape[-1]:
                self.ft(saved)  # a fine-tuned model's file: rebuild its head first
            self.network.load_file(self.model, weights)
        return self.model

    def get_classes(self):
        """Set ``self.classes`` to the 1000 ImageNet class names (placeholders ``class_N`` when the model
        has another number of outputs, or without ImageNet weights and the class-index file)."""
        outputs = self.model.output_shape[-1] if len(self.model.output_shape) == 2 else None
        if outputs != 1000:
            self.classes = [f"class_{i}" for i in range(outputs or 0)]
        else:
            self.classes = load_class_index(self.class_index, download=self.weights == "imagenet",
                                            notice=self._say)
        return self.classes

    # ---- the recipe ----------------------------------------------------------------------------------
    def get_batches(self, path, gen=None, shuffle=True, batch_size=8, class_mode="categorical", **kwargs):
        """Batches from ``path``'s class folders at this model's input size."""
        return _get_batches(path, gen, shuffle=shuffle, batch_size=batch_size, class_mode=class_mode,
                            target_size=self.size, **kwargs)

    def ft(self, num):
        """Replace the softmax by a ``num``-way one and freeze every other layer (2017 ``ft``)."""
        self.model = self.network.replace_head(self.model, num)
        self.compile()

    def finetune(self, batches):
        """``ft`` for the classes of ``batches``; ``self.classes`` become its folder names."""
        num = getattr(batches, "num_classes", None) or batches.nb_class
        self.ft(num)
        indices = batches.class_indices
        self.classes = sorted(indices, key=indices.get)

    def compile(self, lr=DEFAULT_LR):
        optimizer = Adam(learning_rate=float(lr))
        if self.policy == "mixed_float16":  # float16 gradients underflow without loss scaling
            optimizer = LossScaleOptimizer(optimizer)
        self.model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"],
                           jit_compile=self.jit_compile)

    def fit_data(self, trn, labels, val, val_labels, nb_epoch=1, batch_size=64, epochs=None, **kwargs):
        """Train on in-memory arrays."""
        return self.model.fit(trn, labels, epochs=nb_epoch if epochs is None else epochs,
                              validation_data=(val, val_labels), batch_size=batch_size, **kwargs)

    def _cache(self, batches):
        """The feature-cache folder for ``batches``: ``cache_dir``, else the data folder's ``.dl1-cache``."""
        return self.cache_dir or cache_dir_for(data_folder(batches))

    def _history(self, batches, history, phase, callbacks=None):
        """``callbacks`` and a ``HistoryRecorder`` writing to ``history`` (a results folder; 'auto': the
        ``results/`` of the data folder above ``batches``; None: no record)."""
        callbacks = list(callbacks or [])
        if history == "auto":
            root = data_folder(batches)
            history = os.path.join(root, "results") if root else None
        if history:  # first: the record and the checkpoint written after it stay close together at epoch end
            callbacks.insert(0, HistoryRecorder(history, phase, main=distributed.is_main()))
        return callbacks

    def fit(self, batches, val_batches, nb_epoch=1, epochs=None, history="auto", callbacks=None, **kwargs):
        """Train on ``batches``, validating on ``val_batches``; returns the Keras History.

        When only the head is trainable (after ``finetune``) the frozen layers' outputs are computed once
        per image and cached (``cache_dir``), so later epochs and re-runs cost a fraction of the first.
        Keyword arguments: ``cache`` (True/False/'auto'), ``checkpoint`` (a file: resume from it and save
        to it), ``checkpoint_every`` (batches), ``callbacks``, ``verbose``; ``history``: the results folder
        whose ``history.csv`` gets one row per epoch and whose ``training_curves.png`` is redrawn ('auto':
        the data folder's ``results/``; None: no record).
        """
        return fit_model(self.model, batches, val_batches, epochs=epochs if epochs is not None else nb_epoch,
                         cache_dir=self._cache(batches), callbacks=self._history(batches, history, "fit", callbacks),
                         **kwargs)

    def test(self, path, batch_size=8, tta=1, **kwargs):
        """``(test_batches, probabilities)`` for the images in ``path`` (one sub-folder, e.g.
        ``test/unknown/``); rows follow ``test_batches.filenames``. ``tta=N``: the mean over the original
        and N-1 flipped/shifted versions (``predict_tta``)."""
        test_batches = self.get_batches(path, shuffle=False, batch_size=batch_size, class_mode=None)
        if tta and tta > 1:
            return test_batches, self.predict_tta(test_batches, n=tta, verbose=kwargs.get("verbose", 1))
        return test_batches, self.predict_batches(test_batches, **kwargs)

    def predict_batches(self, batches, **kwargs):
        """Probabilities for every image of ``batches`` (through cached frozen features when it can)."""
        return predict_batches(self.model, batches, cache_dir=self._cache(batches), **kwargs)

    def predict(self, imgs, details=False):
        """``(max probabilities, class indices, class names)`` for a batch of raw RGB images.

        ``details`` is accepted for 2017 code and ignored, as it was then.
        """
        all_preds = self.model.predict(np.asarray(imgs, dtype=np.float32), verbose=0)
        idxs = np.argmax(all_preds, axis=1)
        preds = all_preds[np.arange(len(idxs)), idxs]
        classes = [self.classes[i] for i in idxs]
        return np.array(preds), idxs, classes

    def predict_files(self, paths, batch_size=32, tta=1):
        """Class probabilities for image files and folders (searched recursively): a pandas DataFrame with
        one row per image read (indexed by its path, in the order given, a folder's images in natural
        order) and one column per class, headed by the class name. Images are decoded and resized as
        ``get_batches`` does; files that are not readable images are named in one warning line and left
        out (``df.attrs['skipped']``: ``{path: reason}``). ``tta=N``: the mean over the original and N-1
        flipped/shifted versions (``predict_tta``)."""
        import pandas as pd

        from dl1.data.files import find_images, load_images, report_skipped

        transforms = tta_transforms(int(tta))
        files, skipped = find_images(paths)
        read, rows, unreadable = [], [], {}
        for start in range(0, len(files), int(batch_size)):
            x, got, bad = load_images(files[start:start + int(batch_size)], self.size)
            unreadable.update(bad)
            if got:
                total = sum(np.asarray(self.model.predict_on_batch(apply_transform(x, t)), dtype=np.float64)
                            for t in transforms)
                rows.append(total / len(transforms))
                read += got
        report_skipped(unreadable, "unreadable image(s)")
        if not read:
            raise DataError("none of the images can be read: " + ", ".join(unreadable))
        df = pd.DataFrame(np.concatenate(rows).astype(np.float32), columns=[str(c) for c in self.classes],
                          index=pd.Index(read, name="path"))
        df.attrs["skipped"] = {**skipped, **unreadable}
        return df

    # ---- the blocks of the network -------------------------------------------------------------------
    def layer_groups(self):
        """Lists of layers from the earliest to the head; each gets its own rate in ``fine_tune``."""
        return self.network.layer_groups(self.model)

    def unfreeze(self, n_groups=None):
        """Make the network trainable (all of it, or its last ``n_groups`` layer groups); call
        ``compile`` afterwards."""
        self.network.unfreeze(self.model, n_groups)

    def _check_classes(self, batches):
        n = getattr(batches, "num_classes", None)
        out = self.model.output_shape[-1]
        if n and n != out:
            raise DataError(f"{batches.directory} has {n} classes but the model has {out} outputs: "
                            "call finetune(batches) first")

    # ---- learning-rate finder ------------------------------------------------------------------------
    def lr_find(self, batches, start_lr=1e-7, end_lr=10.0, num_steps=100, fname="auto", cache="auto",
                stop_div=True, verbose=1, suggest="valley", **kwargs):
        """The learning-rate range test on ``batches`` (see ``dl1.train.lr_find``): the weights and the
        optimizer are left as they were; the plot goes to ``fname`` ('auto': ``results/lr_find.png`` of the
        data folder; None: not saved); the suggestion (rule ``suggest``: ``"valley"`` or ``"minimum/10"``;
        None when the loss never fell) is noted, marked on the plot. Returns the ``LRFinder``."""
        self._check_classes(batches)
        if getattr(self.model, "optimizer", None) is None:
            self.compile()
        found = range_test.lr_find(self.model, batches, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps,
                                   cache=cache, stop_div=stop_div, verbose=verbose, cache_dir=self._cache(batches),
                                   suggest=suggest, **kwargs)
        if fname == "auto":
            root = data_folder(batches)
            fname = os.path.join(root, "results", "lr_find.png") if root else None
        if fname:
            found.plot(fname)
            found.fname = fname
        note(found.summary() + (f"; plot: {fname}" if fname else ""))
        return found

    # ---- one-cycle -----------------------------------------------------------------------------------
    def fit_one_cycle(self, batches, val_batches, epochs=1, max_lr=DEFAULT_LR, pct_start=0.25, div=25.0,
                      div_final=1e5, moms=(0.95, 0.85, 0.95), checkpoint=None, callbacks=None, history="auto",
                      **kwargs):
        """Train ``epochs`` epochs under one cycle: the rate warms up from ``max_lr/div`` to ``max_lr`` over
        ``pct_start`` of the steps, then anneals (cosine) to ``max_lr/div_final``; Adam's ``beta_1`` goes
        the opposite way (``moms``). A fresh optimizer each call; with ``checkpoint=FILE`` a stopped run
        resumes at the same step of the cycle. ``history`` as for ``fit``. Other keywords go to ``fit``
        (``cache``, ``verbose``, ...)."""
        self._check_classes(batches)
        self.compile(max_lr)
        return self._one_cycle(batches, val_batches, epochs, max_lr, pct_start, div, div_final, moms,
                               checkpoint, self._history(batches, history, "one_cycle", callbacks), **kwargs)

    def _one_cycle(self, batches, val_batches, epochs, max_lr, pct_start, div, div_final, moms, checkpoint,
                   callbacks, **kwargs):
        return schedules.fit_one_cycle(self.model, batches, val_batches, epochs=epochs, max_lr=max_lr,
                                       pct_start=pct_start, div=div, div_final=div_final, moms=moms,
                                       callbacks=callbacks, checkpoint=checkpoint, cache_dir=self._cache(batches),
                                       **kwargs)

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
                      jit_compile=getattr(model, "dl1_jit", model.jit_compile))
        return rates

    def fine_tune(self, batches, val_batches, epochs=1, freeze_epochs=1, base_lr=DEFAULT_LR, lr_mult=100.0,
                  checkpoint=None, callbacks=None, history="auto", **kwargs):
        """fastai's ``fine_tune``: ``freeze_epochs`` one-cycle epochs of the head alone (the layers that
        are trainable now, e.g. the new softmax after ``finetune``; everything but the last layer group
        if nothing is frozen), on cached frozen-layer features; then every layer trainable for ``epochs``
        one-cycle epochs at ``base_lr/2`` for the head and geometrically lower rates for earlier blocks
        (down to ``base_lr/2/lr_mult``). ``history`` as for ``fit`` (phases ``head`` and ``unfrozen``).
        Returns the merged History (``history.phases``: the two)."""
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
                                          (0.95, 0.85, 0.95), phase_checkpoint(checkpoint, "head"),
                                          self._history(batches, history, "head", callbacks), **kwargs))
        for layer in layers:
            layer.trainable = True
        if epochs > 0:
            max_lr = base_lr / 2
            self.compile_discriminative(max_lr, lr_mult)
            phases.append(self._one_cycle(batches, val_batches, epochs, max_lr, 0.3, 5.0, 1e5,
                                          (0.95, 0.85, 0.95), phase_checkpoint(checkpoint, "unfrozen"),
                                          self._history(batches, history, "unfrozen", callbacks), **kwargs))
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
        the class names beside it (``fname.classes.json``) and inside; or, for a name ending in ``.onnx``,
        one ONNX file that ONNX Runtime alone runs, the class names in its metadata
        (``dl1.models.onnx_export``). Returns the path."""
        if os.fspath(fname).endswith(".onnx"):
            from dl1.models.onnx_export import export_onnx

            path = export_onnx(self.model, self.classes, fname, arch=self.arch)
        else:
            from dl1.models.export import export_model

            path = export_model(self.model, self.classes, fname)
        note(f"Exported {type(self).__name__} ({len(self.classes)} classes, input {tuple(self.size)}) to {path}")
        return path
