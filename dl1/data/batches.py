"""Batches of images from class sub-folders, with the attributes of the 2017 Keras iterator.

``DirectoryIterator`` is a ``keras.utils.PyDataset``, so ``model.fit``/``predict`` take it directly,
and it is also a Python iterator, so ``imgs, labels = next(batches)`` works as in lesson 1. It keeps
``filenames``, ``classes``, ``class_indices``, ``n``/``samples``/``nb_sample``/``N``,
``num_classes``/``nb_class``, ``batch_size`` and ``reset()``. Images are decoded in parallel threads
(Pillow releases the GIL), written straight into the batch array, and the next batch is prepared while
the current one is used.
"""

import math
import os
import threading

import keras
import numpy as np

from dl1.data.augment import Augmentation
from dl1.data.images import (
    UnreadableImage,
    header_problem,
    is_hidden_or_junk,
    is_image_name,
    list_images,
    load_resized,
    natural_key,
)
from dl1.io.errors import DataError
from dl1.io.log import examples, note, warn
from dl1.io.pools import decode_pool, decode_workers, prefetch_pool  # noqa: F401 (decode_workers: API)


def onehot(x, num_classes=None):
    """One-hot encode integer labels as float32, like ``keras.utils.to_categorical``."""
    x = np.asarray(x, dtype=np.int64).ravel()
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    out = np.zeros((x.size, num_classes), dtype=np.float32)
    out[np.arange(x.size), x] = 1.0
    return out


def _short_list(items):
    return examples(items)


class SampleCountNames:
    """The 2017 and Keras 2 names for the sample count ``n``: ``samples``, ``nb_sample``, ``N``."""

    @property
    def samples(self):
        return self.n

    @property
    def nb_sample(self):
        return self.n

    @property
    def N(self):  # noqa: N802 (the 2017 name)
        return self.n


class BatchIterator(SampleCountNames, keras.utils.PyDataset):
    """Shared machinery: epoch-seeded shuffling, ``next()`` with prefetch, 2017 attribute names. A subclass
    says how to make the batch of given samples (``batch_at``)."""

    def __init__(self, n, batch_size, shuffle, seed, prefetch_workers=2):
        super().__init__(workers=prefetch_workers, use_multiprocessing=False, max_queue_size=4)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)
        self.epoch = 0
        self.batch_index = 0
        self.total_batches_seen = 0
        self.index_array = None
        self._set_index_array()
        self._prefetched = None


    def _set_index_array(self):
        if self.shuffle:
            self.index_array = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            self.index_array = np.arange(self.n)

    def set_epoch(self, epoch):
        """Put the iterator at the start of ``epoch`` (its shuffle order depends only on seed and epoch,
        so a resumed run sees the same order as the run that was interrupted)."""
        self.epoch = int(epoch)
        self._set_index_array()
        self.batch_index = 0
        self._prefetched = None

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    def reset(self):
        self.batch_index = 0
        self._prefetched = None

    def __len__(self):
        return math.ceil(self.n / self.batch_size) if self.n else 0

    @property
    def num_batches(self):
        return len(self)

    def image_rngs(self, index_array, stream=0):
        """One random generator per image, from (seed, epoch, image index): augmentation and the
        substitution of unreadable images do not depend on thread timing, worker count or batch order,
        so a resumed or re-run job sees exactly the same images."""
        return [np.random.default_rng([self.seed, 7919 + stream, self.epoch, int(j)]) for j in index_array]

    def batch_indices(self, idx):
        if idx < 0 or idx >= len(self):
            raise IndexError(f"batch {idx} out of range (0..{len(self) - 1})")
        return self.index_array[idx * self.batch_size:(idx + 1) * self.batch_size]

    def __getitem__(self, idx):
        return self.batch_at(self.batch_indices(idx))

    def batch_at(self, index_array):
        """The batch of the samples ``index_array`` (what ``self[idx]`` gives for ``batch_indices(idx)``)."""
        raise NotImplementedError

    # Python iterator protocol, as Keras 1 iterators had: endless, reshuffles at each epoch end.
    def __iter__(self):
        return self

    def __next__(self):
        if not len(self):
            raise StopIteration
        if self._prefetched is not None and self._prefetched[0] == (self.epoch, self.batch_index):
            batch = self._prefetched[1].result()
        else:
            batch = self[self.batch_index]
        self.batch_index += 1
        self.total_batches_seen += 1
        if self.batch_index >= len(self):
            self.on_epoch_end()
        key, idx = (self.epoch, self.batch_index), self.batch_index
        self._prefetched = (key, prefetch_pool().submit(self.__getitem__, idx))
        return batch

    def next(self):
        """Python 2 spelling, kept for 2017 code."""
        return self.__next__()


class DirectoryIterator(BatchIterator):
    """Images from ``directory/<class>/...``; see ``get_batches`` for the arguments."""

    def __init__(self, directory, image_data_generator=None, target_size=(256, 256), color_mode="rgb",
                 classes=None, class_mode="categorical", batch_size=32, shuffle=True, seed=None,
                 interpolation="nearest", follow_links=False, verbose=True, check_files=True,
                 dtype="float32", **ignored):
        if class_mode not in ("categorical", "binary", "sparse", "input", None):
            raise ValueError(f"class_mode must be 'categorical', 'binary', 'sparse', 'input' or None, "
                             f"not {class_mode!r}")
        if color_mode not in ("rgb", "grayscale"):
            raise ValueError(f"color_mode must be 'rgb' or 'grayscale', not {color_mode!r}")
        directory = os.fspath(directory)
        self.directory = directory
        self.image_data_generator = image_data_generator or ImageDataGenerator()
        self.target_size = tuple(int(s) for s in target_size)
        self.color_mode = color_mode
        self.class_mode = class_mode
        self.interpolation = interpolation
        self.dtype = np.dtype(dtype)
        self.image_shape = self.target_size + ((3,) if color_mode == "rgb" else (1,))
        self.bad_files = {}
        self._bad_lock = threading.Lock()

        class_names, filenames, labels, skipped = self._scan(directory, classes, class_mode, follow_links)
        if skipped:
            warn(f"skipped {len(skipped)} file(s) in {directory} that are not images: "
                  f"{_short_list(skipped)}")
        if check_files:
            filenames, labels = self._drop_unreadable(filenames, labels)
        self.class_indices = {name: i for i, name in enumerate(class_names)}
        self.filenames = filenames
        self.filepaths = [os.path.join(directory, f) for f in filenames]
        self.classes = np.asarray(labels, dtype=np.int32)
        super().__init__(len(filenames), batch_size, shuffle, seed)
        if class_mode is None and class_names == ["."]:
            if verbose:
                note("Found %d images.", self.n)
        else:
            if verbose:
                note("Found %d images belonging to %d classes.", self.n, len(class_names))

    # ---- discovering the files -------------------------------------------------------------------
    @staticmethod
    def _scan(directory, classes, class_mode, follow_links):
        if not os.path.exists(directory):
            raise DataError(f"folder not found: {directory}")
        if not os.path.isdir(directory):
            raise DataError(f"not a folder: {directory} (give the folder that holds one sub-folder per class)")
        entries = sorted((e for e in os.scandir(directory) if not is_hidden_or_junk(e.name)),
                         key=lambda e: natural_key(e.name))
        subdirs = [e.name for e in entries if e.is_dir(follow_symlinks=True)
                   and (follow_links or not e.is_symlink())]
        links = [e.name for e in entries if e.is_symlink() and e.is_dir() and not follow_links]
        if links and classes is None:
            warn(f"ignoring linked folder(s) in {directory}: {', '.join(links)} (follow_links=True reads them)")
        loose, loose_skipped = [], []
        for e in entries:
            if e.is_file():
                (loose if is_image_name(e.name) else loose_skipped).append(e.name)
        if classes is None:
            classes = [d for d in sorted(subdirs) if d not in ("__MACOSX",)]
        else:
            missing = [c for c in classes if c not in subdirs]
            if missing:
                raise DataError(f"class folder(s) not found in {directory}: {', '.join(missing)}")
        if not classes:
            if class_mode is None and loose:
                # a test folder without its 'unknown/' level: read the images where they are
                return ["."], sorted(loose, key=natural_key), [0] * len(loose), loose_skipped
            if loose:
                raise DataError(
                    f"{directory} holds {len(loose)} images but no class sub-folders: put each class in "
                    f"its own folder (e.g. {directory}/cats/, {directory}/dogs/); for unlabelled test "
                    f"images use {os.path.join(directory, 'unknown')}/ ('dl1 prepare' does both)")
            raise DataError(f"no images and no class sub-folders in {directory}")
        filenames, labels, skipped = [], [], list(loose_skipped) + list(loose)
        empty = []
        for label, name in enumerate(classes):
            images, other = list_images(os.path.join(directory, name), follow_links=follow_links)
            if not images:
                empty.append(name)
            filenames += [os.path.join(name, f) for f in images]
            labels += [label] * len(images)
            skipped += [os.path.join(name, f) for f in other]
        if empty and class_mode is not None:
            paths = ", ".join(os.path.join(directory, e) for e in empty)
            raise DataError(f"empty class folder: {paths} has no images; add images or remove the folder")
        if not filenames:
            raise DataError(f"no images found under {directory}")
        return list(classes), filenames, labels, skipped

    def _drop_unreadable(self, filenames, labels):
        """Open every file's header in parallel and name the ones Pillow cannot identify; labelled ones are
        dropped, unlabelled (test) ones keep their place."""
        def check(rel):
            return header_problem(os.path.join(self.directory, rel))

        reasons = list(decode_pool().map(check, filenames))
        bad = [(f, r) for f, r in zip(filenames, reasons, strict=True) if r is not None]
        if not bad:
            return filenames, labels
        self.bad_files.update(dict(bad))
        if self.class_mode is None:  # unlabelled (test) images keep their row: every id needs a prediction
            warn(f"{len(bad)} unreadable image(s) in {self.directory} get a black image, so their "
                  "predictions mean nothing: " + _short_list(f"{f} ({r})" for f, r in bad))
            return filenames, labels
        warn(f"skipped {len(bad)} unreadable image(s) in {self.directory}: "
              + _short_list(f"{f} ({r})" for f, r in bad))
        keep = [i for i, r in enumerate(reasons) if r is None]
        if not keep:
            raise DataError(f"none of the images in {self.directory} can be read")
        return [filenames[i] for i in keep], [labels[i] for i in keep]

    # ---- 2017 attribute names ----------------------------------------------------------------------
    @property
    def num_classes(self):
        return len(self.class_indices)

    @property
    def nb_class(self):
        return self.num_classes

    @property
    def class_names(self):
        """Class names in label order (e.g. ['cats', 'dogs'])."""
        return sorted(self.class_indices, key=self.class_indices.get)

    @property
    def gen(self):
        return self.image_data_generator

    def __repr__(self):
        return (f"DirectoryIterator({self.directory!r}, n={self.n}, classes={self.class_names}, "
                f"batch_size={self.batch_size}, target_size={self.target_size}, shuffle={self.shuffle})")

    # ---- building batches --------------------------------------------------------------------------
    def _load_into(self, j, slot):
        """Decode file ``j`` into ``slot``; returns None, or the reason it could not be read."""
        try:
            if self.color_mode == "grayscale":
                rgb = load_resized(self.filepaths[j], self.target_size, self.interpolation)
                slot[..., 0] = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            else:
                load_resized(self.filepaths[j], self.target_size, self.interpolation, out=slot)
            return None
        except UnreadableImage as e:
            return e.reason

    def load_images(self, index_array, substitute=None):
        """Decode the images ``index_array`` in parallel into one (n, h, w, c) array (no augmentation).

        Unreadable files are reported once by name. With ``substitute`` (default: when shuffling, i.e.
        training) another image and its label take their place; otherwise the slot stays black so that
        rows still line up with ``filenames``. Returns ``(x, index_array_used)``.
        """
        substitute = self.shuffle if substitute is None else substitute
        index_array = np.array(index_array)
        x = np.zeros((len(index_array),) + self.image_shape, dtype=self.dtype)
        reasons = list(decode_pool().map(self._load_into, index_array, x))
        for pos, reason in enumerate(reasons):
            if reason is None:
                continue
            j = int(index_array[pos])
            self._report_bad(j, reason, substitute)
            if substitute:
                rng = self.image_rngs([j], stream=1)[0]
                for _ in range(20):
                    k = int(rng.integers(self.n))
                    if self.filenames[k] not in self.bad_files and self._load_into(k, x[pos]) is None:
                        index_array[pos] = k
                        break
        return x, index_array

    def _report_bad(self, j, reason, substitute):
        name = self.filenames[j]
        with self._bad_lock:
            if name in self.bad_files:
                return
            self.bad_files[name] = reason
        what = "replaced by another image in this batch" if substitute else "its slot stays black"
        warn(f"cannot read {os.path.join(self.directory, name)} ({reason}); {what}")

    def batch_at(self, index_array):
        x, used = self.load_images(index_array)
        if not self.image_data_generator.is_identity:
            x = self.image_data_generator.apply_batch(x, self.image_rngs(used))
        if self.class_mode is None:  # images only, as Keras 1/2 gave them (Keras 3 reads a bare array as x)
            return x
        if self.class_mode == "input":
            return x, x
        return x, self.labels_for(used)

    def labels_for(self, index_array):
        """The targets of images ``index_array`` in this iterator's ``class_mode``."""
        labels = self.classes[index_array]
        if self.class_mode in ("sparse", "binary"):
            return labels.astype(np.float32)
        return onehot(labels, self.num_classes)


class ArrayIterator(BatchIterator):
    """Batches from in-memory arrays (``ImageDataGenerator().flow(x, y)``), augmented per batch."""

    def __init__(self, x, y=None, image_data_generator=None, batch_size=32, shuffle=True, seed=None,
                 **ignored):
        x = np.asarray(x)
        if y is not None and len(y) != len(x):
            raise ValueError(f"x and y have different lengths ({len(x)} and {len(y)})")
        self.x = x
        self.y = None if y is None else np.asarray(y)
        self.image_data_generator = image_data_generator or ImageDataGenerator()
        # in-memory slices need no prefetch threads (Keras would start a pool every epoch)
        workers = 2 if self.image_data_generator.is_random else 1
        super().__init__(len(x), batch_size, shuffle, seed, prefetch_workers=workers)

    def batch_at(self, index_array):
        x = self.x[index_array].astype(np.float32, copy=False)
        x = self.image_data_generator.apply_batch(x, self.image_rngs(index_array))
        if self.y is None:
            return x
        return x, self.y[index_array]


def _concat(parts):
    """Concatenate batches that are arrays, or tuples/lists of arrays (multi-input/multi-output)."""
    first = parts[0]
    if isinstance(first, (tuple, list)):
        return type(first)(_concat([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    return np.concatenate([np.asarray(p) for p in parts])


class MixIterator(SampleCountNames, keras.utils.PyDataset):
    """Batches made of one batch from each of several iterators, concatenated (2017 ``MixIterator``,
    used for pseudo-labelling: real labelled batches mixed with batches of pseudo-labelled images).

    A proper batches object: ``len(mi)`` batches per epoch, ``mi.batch_size`` (the sum of the parts'),
    ``mi.n``/``mi.N`` (the sum of their sizes), so ``model.fit(mi)``, ``fit_generator(mi, mi.N,
    nb_epoch=...)`` and ``Vgg16.fit(mi, val_batches)`` take it, and ``next(mi)`` works as in 2017. An epoch
    is ``ceil(N / batch_size)`` mixed batches; a part with fewer batches starts over when it runs out. The 2017 class had no
    ``__next__`` (Python 2 only), no length, and mistook any list for a list of lists.
    """

    def __init__(self, iters):
        super().__init__()
        self.iters = list(iters)
        if not self.iters:
            raise ValueError("MixIterator needs at least one iterator")
        for it in self.iters:
            if not hasattr(it, "__getitem__") or not hasattr(it, "__len__") or not hasattr(it, "batch_size"):
                raise TypeError(f"MixIterator mixes batches objects (get_batches, ImageDataGenerator().flow), "
                                f"not {type(it).__name__}")
        self.n = sum(int(getattr(it, "n", 0)) for it in self.iters)
        self.batch_size = sum(int(it.batch_size) for it in self.iters)
        self.shuffle = any(getattr(it, "shuffle", False) for it in self.iters)
        self.seed = getattr(self.iters[0], "seed", 0)
        self.epoch = 0
        self.batch_index = 0


    @property
    def class_indices(self):
        return getattr(self.iters[0], "class_indices", None)

    def __len__(self):
        return math.ceil(self.n / self.batch_size) if self.n else 0

    def __getitem__(self, idx):
        if idx < 0 or idx >= len(self):
            raise IndexError(f"batch {idx} out of range (0..{len(self) - 1})")
        parts = []
        for it in self.iters:
            k = len(it)
            if not k:
                continue
            parts.append(it[idx % k])
        return _concat(parts)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)
        self.batch_index = 0
        for it in self.iters:
            if hasattr(it, "set_epoch"):
                it.set_epoch(epoch)

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    def reset(self):
        self.batch_index = 0
        for it in self.iters:
            it.reset()

    def __iter__(self):
        return self

    def __next__(self):
        if not len(self):
            raise StopIteration
        batch = self[self.batch_index]
        self.batch_index += 1
        if self.batch_index >= len(self):
            self.on_epoch_end()
        return batch

    next = __next__

    def __repr__(self):
        return f"MixIterator(n={self.n}, batch_size={self.batch_size}, parts={len(self.iters)})"


class ImageDataGenerator(Augmentation):
    """The 2017 ``ImageDataGenerator``: augmentation settings (see ``Augmentation``) and the iterators
    that apply them, ``flow`` (arrays) and ``flow_from_directory`` (class folders)."""

    def flow(self, x, y=None, batch_size=32, shuffle=True, seed=None, **kwargs):
        """Augmented batches from in-memory arrays, like Keras' ``NumpyArrayIterator``."""
        return ArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle, seed=seed, **kwargs)

    def flow_from_directory(self, directory, target_size=(256, 256), color_mode="rgb", classes=None,
                            class_mode="categorical", batch_size=32, shuffle=True, seed=None, **kwargs):
        """Batches of images read from class sub-folders of ``directory`` (see ``get_batches``)."""
        return DirectoryIterator(directory, self, target_size=target_size, color_mode=color_mode,
                                 classes=classes, class_mode=class_mode, batch_size=batch_size,
                                 shuffle=shuffle, seed=seed, **kwargs)


# ---- the 2017 helper functions ---------------------------------------------------------------------
def get_batches(dirname, gen=None, shuffle=True, batch_size=4, class_mode="categorical",
                target_size=(224, 224), **kwargs):
    """Batches of images from ``dirname``'s class sub-folders (2017 ``utils.get_batches``).

    Images are resized with ``interpolation='nearest'``, as Keras 1/2 did; JPEGs are first decoded at
    a reduced scale (a DCT-domain average), so large downscales stay smooth. 'bilinear', 'bicubic',
    'lanczos' or 'box' resize more smoothly and cost more (``bench/bench_pipeline.py``).

    ``gen`` is an ``ImageDataGenerator`` for augmentation (default: none); ``class_mode=None`` for
    unlabelled test images; extra keyword arguments go to :class:`DirectoryIterator`
    (``seed``, ``interpolation``, ``verbose``, ...).
    """
    gen = gen if gen is not None else ImageDataGenerator()
    return gen.flow_from_directory(dirname, target_size=target_size, class_mode=class_mode,
                                   shuffle=shuffle, batch_size=batch_size, **kwargs)


def get_data(path, target_size=(224, 224), batch_size=64, **kwargs):
    """Every image under ``path``'s class folders as one float32 array (N, h, w, 3), in
    ``filenames`` order (2017 ``utils.get_data``)."""
    batches = get_batches(path, shuffle=False, batch_size=batch_size, class_mode=None,
                          target_size=target_size, **kwargs)
    return batches.load_images(np.arange(batches.n))[0]


def _with_slash(path):
    path = os.fspath(path)
    return path if path.endswith(os.sep) else path + os.sep


def get_classes(path, target_size=(224, 224)):
    """Labels and file names of ``path``'s train, valid and test folders (2017 ``utils.get_classes``).

    Returns ``(val_classes, trn_classes, val_labels, trn_labels, val_filenames, filenames,
    test_filenames)`` with the labels one-hot encoded.
    """
    path = _with_slash(path)
    kw = {"shuffle": False, "batch_size": 1, "target_size": target_size, "check_files": False}
    batches = get_batches(path + "train", **kw)
    val_batches = get_batches(path + "valid", **kw)
    test_batches = get_batches(path + "test", class_mode=None, **kw)
    n = batches.num_classes
    return (val_batches.classes, batches.classes, onehot(val_batches.classes, n),
            onehot(batches.classes, n), val_batches.filenames, batches.filenames, test_batches.filenames)
