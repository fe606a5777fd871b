"""One loader for weight files (``dl1.nn.weightfiles``), behind ``Model.load_weights``, ``Vgg16(weights=F)``
and every command: a file of another class count, input size or architecture, a damaged ``.keras`` archive, a
config that is not a model's, sizes past the bounds and NaN/inf weights are each one line naming the file,
said before anything is built or allocated."""

import json
import shutil
import zipfile

import h5py
import keras
import numpy as np
import pytest

from dl1 import cli
from dl1.io.errors import WeightsError
from dl1.models.vgg16 import Vgg16
from dl1.nn.model import Sequential
from dl1.nn.weightfiles import MAX_CLASSES, describe

RECORD = {"version": 2, "classes": ["cats", "dogs"], "size": [64, 64], "arch": "vgg16", "weights": "ft1.h5",
          "epochs_done": 1, "policy": None}


def _vgg(size, classes, seed=0):
    keras.utils.set_random_seed(seed)
    vgg = Vgg16(weights=None, size=size, verbose=False)
    vgg.ft(classes)
    return vgg


@pytest.fixture(scope="module")
def folder(module_tmp, course_data):
    """A data folder trained 'by hand': its record, its 2-class 64 px weights, and a few test images."""
    root = module_tmp.mktemp("loader") / "data"
    for d in ("train/cats", "train/dogs", "results"):
        (root / d).mkdir(parents=True)
    shutil.copytree(course_data / "test", root / "test")
    (root / "results" / "dl1-model.json").write_text(json.dumps(RECORD))
    _vgg(64, 2).model.save_weights(root / "results" / "ft1.h5")
    return root


@pytest.fixture(scope="module")
def others(module_tmp):
    """Weight files that do not fit the folder's model: 3 classes, 32 px, another architecture, NaN."""
    d = module_tmp.mktemp("others")
    _vgg(64, 3).model.save_weights(d / "three.h5")
    _vgg(32, 2).model.save_weights(d / "at32.h5")
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    small.save_weights(d / "small.weights.h5")
    vgg = _vgg(64, 2)
    kernel = vgg.model.layers[-1].weights[0]
    kernel.assign(np.where(np.arange(kernel.shape[1]) == 1, np.nan, keras.ops.convert_to_numpy(kernel)))
    vgg.model.save_weights(d / "nan.h5")
    return d


def _predict_error(folder, weights, capsys):
    rc = cli.main(["predict", str(folder), "--weights", str(weights), "--batch-size", "16"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 1, lines  # bad data (exit 1), in one line: no Keras report, no bar
    return lines[0]


def test_predict_with_the_right_weights_works(folder, capsys):
    assert cli.main(["predict", str(folder), "--batch-size", "16"]) == 0
    assert "Predicted 60 test images" in capsys.readouterr().out


def test_predict_weights_of_another_class_count_is_one_line(folder, others, capsys):
    record = folder / "results" / "dl1-model.json"
    assert _predict_error(folder, others / "three.h5", capsys) == (
        f"dl1: error: {others / 'three.h5'} holds a model with 3 outputs but {record} lists 2 classes (cats, "
        "dogs): give the weights trained on these classes")


def test_predict_weights_of_another_size_is_one_line(folder, others, capsys):
    assert _predict_error(folder, others / "at32.h5", capsys) == (
        f"dl1: error: {others / 'at32.h5'} holds weights of shape (512, 4096) where this model has (2048, 4096): "
        "it was saved from another input size or architecture")


def test_predict_weights_of_another_architecture_is_one_line(folder, others, capsys):
    assert _predict_error(folder, others / "small.weights.h5", capsys) == (
        f"dl1: error: {others / 'small.weights.h5'} holds 4 weight arrays and this model has 32: it was saved "
        "from another architecture")


def test_nan_weights_are_refused_with_the_file_named(folder, others, capsys):
    line = (f"{others / 'nan.h5'} holds NaN or infinite weights (in layers/dense_2/vars/0): refused; use the "
            "weights of an earlier epoch, or train again")
    assert _predict_error(folder, others / "nan.h5", capsys) == f"dl1: error: {line}"
    with pytest.raises(WeightsError) as e:
        Vgg16(weights=str(others / "nan.h5"), size=64, verbose=False)
    assert str(e.value) == line


def test_nan_in_a_keras2_file_is_refused_before_any_weight_is_set(tmp_path):
    """Keras-2 files (the ImageNet download's layout) are checked as their arrays are read, not read twice."""
    from dl1.nn.weightfiles import save_legacy_h5

    def model():
        return Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"), keras.layers.Dense(2, name="b")])
    source, target = model(), model()
    save_legacy_h5(source, str(tmp_path / "w.h5"))
    target.load_weights(str(tmp_path / "w.h5"))
    for a, b in zip(target.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with h5py.File(tmp_path / "w.h5", "r+") as f:
        kernel = f["b/b/kernel:0"]
        kernel[0, 1] = np.inf
    target.get_layer("a").set_weights([w + 1 for w in target.get_layer("a").get_weights()])
    before = [w.copy() for w in target.get_weights()]
    with pytest.raises(WeightsError) as e:
        target.load_weights(str(tmp_path / "w.h5"))
    assert str(e.value) == (f"{tmp_path / 'w.h5'} holds NaN or infinite weights (in b/b/kernel:0): refused; use "
                            "the weights of an earlier epoch, or train again")
    for a, b in zip(target.get_weights(), before, strict=True):  # layer a, read first and fine, was not set
        np.testing.assert_array_equal(a, b)


def _keras_file(tmp_path, edit=None):
    """A ``.keras`` file of a small model, its members changed by ``edit(dict of name -> bytes)``."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    path = tmp_path / "model.keras"
    model.save(path)
    if edit:
        with zipfile.ZipFile(path) as z:
            members = {n: z.read(n) for n in z.namelist()}
        edit(members)
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
    return path


def _config(members, change):
    config = json.loads(members["config.json"])
    members["config.json"] = json.dumps(change(config)).encode()


@pytest.mark.parametrize("edit, why", [
    (lambda m: _config(m, lambda c: []), "its config.json is a list, not a Keras model config (an object)"),
    (lambda m: _config(m, lambda c: [c["config"]["layers"][-1]["config"].update(units=10**8), c][1]),
     f"its config.json (layer Dense) claims 100000000 output units (1 to {MAX_CLASSES:,} expected)"),
    (lambda m: m.update({"config.json": b"{not json"}), "its config.json is not valid JSON (Expecting property name "
                                                        "enclosed in double quotes: line 1 column 2 (char 1))"),
])
def test_a_keras_file_whose_config_is_not_a_models_is_one_line(tmp_path, edit, why):
    path = _keras_file(tmp_path, edit)
    with pytest.raises(WeightsError) as e:
        Vgg16(weights=str(path), size=32, verbose=False)  # refused before any layer of 10**8 units is built
    assert str(e.value) == f"{path} cannot be used as weights: {why}"


def test_a_keras_file_with_a_crc_error_is_one_line(tmp_path):
    path = _keras_file(tmp_path)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("model.weights.h5")
        assert info.compress_type == zipfile.ZIP_STORED
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data = bytearray(path.read_bytes())
    data[start + info.file_size // 2] ^= 0xFF  # one flipped byte inside the stored weights
    path.write_bytes(bytes(data))
    ours = Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    with pytest.raises(WeightsError) as e:
        ours.load_weights(path)
    assert str(e.value) == f"{path} cannot be used as weights: the archive is damaged (bad CRC in model.weights.h5)"


def test_an_array_past_the_size_bound_is_refused_before_allocating(tmp_path):
    path = tmp_path / "huge.weights.h5"
    with h5py.File(path, "w") as f:  # a chunked dataset: 40 GB claimed, nothing written
        f.create_dataset("layers/dense/vars/0", shape=(100_000, 100_000), dtype="float32", chunks=(100, 100))
    with pytest.raises(WeightsError) as e:
        describe(path)
    assert str(e.value) == (f"{path} cannot be used as weights: its array layers/dense/vars/0 claims 1e+10 values, "
                            "more than 2,147,483,648 (a damaged or hostile file)")
    with pytest.raises(WeightsError, match="claims 1e"):
        Vgg16(weights=str(path), size=32, verbose=False)
