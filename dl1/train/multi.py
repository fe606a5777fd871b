"""Multi-input and multi-output training data: several inputs (image + image size), several targets
(class + bounding box), from batches of images on disk or from arrays.

With arrays, Keras' own ``model.fit([x1, x2], [y1, y2])`` is all lesson 7 needs. ``MultiBatches`` does the
same for images read from class folders: ``MultiBatches([batches, sizes], [bboxes, 'labels'])`` yields
``([images, sizes], [bboxes, one-hot labels])`` batches, where each array is aligned with
``batches.filenames`` and ``'labels'`` stands for the folders' classes. It is a ``PyDataset`` with the 2017
attributes (``n``/``N``, ``batch_size``), so ``fit``, ``fit_generator(mb, mb.N, ...)`` and ``predict`` take it.
Augmentation would move the objects but not their boxes, so ``MultiBatches`` applies none.
"""

import numpy as np

from dl1.data.batches import BatchIterator, DirectoryIterator

LABELS = "labels"


class MultiBatches(BatchIterator):
    """Batches of several inputs and outputs, shuffled together (see the module docstring)."""

    def __init__(self, inputs, outputs=None, batch_size=32, shuffle=True, seed=None):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outputs = None if outputs is None else (list(outputs) if isinstance(outputs, (list, tuple))
                                                else [outputs])
        self.single_input = len(inputs) == 1
        self.single_output = outputs is not None and len(outputs) == 1
        everything = inputs + (outputs or [])
        dirs = [d for d in everything if isinstance(d, DirectoryIterator)]
        if len({id(d) for d in dirs}) > 1:
            raise ValueError("MultiBatches reads images from one batches object at most")
        self.images = dirs[0] if dirs else None
        if any(isinstance(e, str) and e == LABELS for e in everything) and self.images is None:
            raise ValueError("'labels' needs a batches object (get_batches) among the inputs")
        sizes = {len(e) for e in everything if not isinstance(e, (str, DirectoryIterator))}
        if self.images is not None:
            sizes.add(self.images.n)
        if len(sizes) != 1:
            raise ValueError(f"inputs and outputs must all have the same number of samples, got {sorted(sizes)}")
        self.inputs = [self._prep(e) for e in inputs]
        self.outputs = None if outputs is None else [self._prep(e) for e in outputs]
        super().__init__(sizes.pop(), batch_size, shuffle, seed, prefetch_workers=2 if self.images else 1)

    def _prep(self, e):
        return e if isinstance(e, (str, DirectoryIterator)) else np.asarray(e)

    @property
    def filenames(self):
        return self.images.filenames if self.images is not None else None

    @property
    def class_indices(self):
        return self.images.class_indices if self.images is not None else None

    def _part(self, e, idx, images):
        if isinstance(e, DirectoryIterator):
            return images
        if isinstance(e, str):
            return self.images.labels_for(idx)
        return e[idx]

    def batch_at(self, index_array):
        images, used = (None, index_array)
        if self.images is not None:
            images, used = self.images.load_images(index_array, substitute=self.shuffle)
        xs = [self._part(e, used, images) for e in self.inputs]
        x = xs[0] if self.single_input else xs
        if self.outputs is None:
            return x
        ys = [self._part(e, used, images) for e in self.outputs]
        return x, (ys[0] if self.single_output else ys)


def multi_arrays(inputs, outputs=None, batch_size=32, shuffle=True, seed=None):
    """``MultiBatches`` over arrays only (lists of inputs and targets, shuffled together)."""
    return MultiBatches(inputs, outputs, batch_size=batch_size, shuffle=shuffle, seed=seed)
