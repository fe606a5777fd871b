"""Pseudo-labelling's MixIterator is a proper batches object: fit, fit_generator and Vgg16.fit take it
(issue 10 defect 7: Keras refused it with "Unrecognized data type")."""

import numpy as np
import pytest

import utils  # noqa: F401  (the 2017 face installs fit_generator and nb_epoch=)
from dl1.data.batches import ImageDataGenerator, MixIterator, get_batches


@pytest.fixture(scope="module")
def parts(course_data):
    real = get_batches(str(course_data / "train"), batch_size=8, shuffle=True, seed=1, target_size=(16, 16),
                       verbose=False)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (20, 16, 16, 3)).astype(np.float32)
    soft = rng.dirichlet([1, 1], size=20).astype(np.float32)  # pseudo labels are soft probabilities
    pseudo = ImageDataGenerator().flow(x, soft, batch_size=4, shuffle=True, seed=2)
    return real, pseudo


def _tiny_model():
    from keras import layers

    from dl1.compat.keras1 import Sequential

    m = Sequential([layers.Input((16, 16, 3)), layers.Rescaling(1 / 255.), layers.Flatten(),
                    layers.Dense(2, activation="softmax")])
    m.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return m


def test_length_batch_size_and_counts(parts):
    real, pseudo = parts
    mi = MixIterator([real, pseudo])
    assert mi.batch_size == 12 and mi.N == mi.n == real.n + 20
    assert len(mi) == int(np.ceil(mi.N / 12))
    x, y = mi[len(mi) - 1]  # the short part starts over instead of running dry
    assert x.shape == (12, 16, 16, 3) and y.shape == (12, 2)
    assert np.allclose(y.sum(axis=1), 1)
    with pytest.raises(IndexError):
        mi[len(mi)]


def test_model_fit_takes_it(parts):
    mi = MixIterator(list(parts))
    h = _tiny_model().fit(mi, epochs=2, verbose=0)
    assert len(h.history["loss"]) == 2 and all(np.isfinite(h.history["loss"]))


def test_fit_generator_with_the_2017_arguments(parts):
    real, pseudo = parts
    val = get_batches(str(real.directory).replace("train", "valid"), batch_size=16, shuffle=False,
                      target_size=(16, 16), verbose=False)
    mi = MixIterator([real, pseudo])
    h = _tiny_model().fit_generator(mi, mi.N, nb_epoch=2, validation_data=val, verbose=0)
    assert len(h.history["val_accuracy"]) == 2
    assert h.params["steps"] == len(mi)


def test_vgg16_fit_takes_it(course_data):
    from dl1.models.vgg16 import Vgg16

    vgg = Vgg16(weights=None, size=32, verbose=False)
    real = vgg.get_batches(str(course_data / "train"), batch_size=8, seed=1, verbose=False)
    pseudo = ImageDataGenerator().flow(np.zeros((8, 32, 32, 3), np.float32), np.full((8, 2), 0.5, np.float32),
                                       batch_size=4)
    vgg.finetune(real)
    val = vgg.get_batches(str(course_data / "valid"), batch_size=16, shuffle=False, verbose=False)
    h = vgg.fit(MixIterator([real, pseudo]), val, nb_epoch=1, verbose=0)
    assert len(h.history["val_accuracy"]) == 1


def test_things_that_are_not_batches_are_refused():
    with pytest.raises(TypeError, match="batches objects"):
        MixIterator([iter([1, 2, 3])])
    with pytest.raises(ValueError, match="at least one"):
        MixIterator([])
