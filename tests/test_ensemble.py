"""Ensembles: the averaged predictions beat the best member on validation log loss; save and reload."""

import json
import os

import numpy as np
import pytest


@pytest.fixture(scope="module")
def digits_split():
    from sklearn.model_selection import train_test_split

    from dl1.data.batches import onehot
    from dl1.data.digits import load_digits

    images, labels, _ = load_digits(None, side=8)
    x = (images / 255.0).reshape(len(images), -1).astype("float32")
    return train_test_split(x, onehot(labels, 10), train_size=600, stratify=labels, random_state=0)


def _model():
    import keras

    from dl1.nn.model import Sequential

    m = Sequential([keras.Input(shape=(64,)), keras.layers.Dense(128, activation="relu"),
                    keras.layers.Dense(10, activation="softmax")])
    m.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"])
    return m


@pytest.fixture(scope="module")
def members(digits_split):
    """Five members, each trained on its own bootstrap resample of the training set (in the notebooks each
    member sees its own randomly augmented images and dropout masks: diversity of the same kind)."""
    import keras

    x_trn, x_val, y_trn, y_val = digits_split
    out = []
    for seed in range(5):
        keras.utils.set_random_seed(seed)
        idx = np.random.default_rng(seed).integers(0, len(x_trn), len(x_trn))
        m = _model()
        m.fit(x_trn[idx], y_trn[idx], epochs=40, batch_size=200, verbose=0)
        out.append(m)
    return out


def test_ensemble_log_loss_no_worse_than_its_best_member(members, digits_split):
    from dl1.models.ensemble import Ensemble, log_loss

    _, x_val, _, y_val = digits_split
    ens = Ensemble(members)
    evals = ens.evaluate_members(x_val, y_val)
    assert evals.shape == (5, 2)
    ens_loss, ens_acc = ens.evaluate(x_val, y_val)
    assert ens_loss <= evals[:, 0].min()
    assert ens_acc >= np.median(evals[:, 1])
    # the averaged predictions are the mean of the members'
    all_preds = ens.predict_all(x_val)
    np.testing.assert_allclose(ens.predict(x_val), all_preds.mean(axis=0), rtol=1e-6)
    # our log loss is Keras' categorical cross-entropy
    keras_loss = members[0].evaluate(x_val, y_val, verbose=0, batch_size=256)[0]
    assert log_loss(y_val, all_preds[0]) == pytest.approx(keras_loss, rel=1e-4)


def test_save_and_reload_predicts_the_same(members, digits_split, tmp_path):
    from dl1.models.ensemble import Ensemble

    _, x_val, _, _ = digits_split
    ens = Ensemble(members)
    files = ens.save(tmp_path, prefix="cnn-mnist23-", ext=".pkl")
    assert [os.path.basename(f) for f in files] == [f"cnn-mnist23-{i}.pkl" for i in range(5)]
    index = json.loads((tmp_path / "ensemble.json").read_text())
    assert index["members"] == [os.path.basename(f) for f in files] and index["combine"] == "mean"
    back = Ensemble.load(tmp_path, _model)
    assert len(back) == 5
    np.testing.assert_allclose(back.predict(x_val), ens.predict(x_val), atol=1e-6)
    # each member file is an ordinary weights file, as in 2017
    one = _model()
    one.load_weights(files[2])
    np.testing.assert_allclose(one.predict(x_val, verbose=0), members[2].predict(x_val, verbose=0), atol=1e-6)


def test_reload_errors_name_the_file(members, tmp_path):
    from dl1.io.errors import DL1Error
    from dl1.models.ensemble import Ensemble

    with pytest.raises(DL1Error, match="ensemble.json: not found"):
        Ensemble.load(tmp_path, _model)
    Ensemble(members[:2]).save(tmp_path)
    os.remove(tmp_path / "member1.h5")
    with pytest.raises(DL1Error, match=r"ensemble.json: member weights file .*member1.h5 is missing"):
        Ensemble.load(tmp_path, _model)
    (tmp_path / "ensemble.json").write_text("{not json")
    with pytest.raises(DL1Error, match="ensemble.json: not valid JSON"):
        Ensemble.load(tmp_path, _model)
    (tmp_path / "ensemble.json").write_text('{"members": []}')
    with pytest.raises(DL1Error, match="not an ensemble index"):
        Ensemble.load(tmp_path, _model)
