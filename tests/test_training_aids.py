"""Issue 14: lr_find, one-cycle, fine_tune with discriminative rates, TTA, top losses, export, the commands."""

import json
import os
import signal
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest

import dl1  # noqa: F401
from dl1 import cli
from dl1.inspect.losses import Interpretation, most_confused, top_losses
from dl1.models.vgg16 import Vgg16
from dl1.train.schedules import OneCycle, group_rates, one_cycle_values
from dl1.train.tta import apply_transform, tta_transforms


@pytest.fixture(scope="module")
def tiny(module_tmp):
    """48 train / 12 valid / 15 test synthetic images in the course layout."""
    from dl1.data.sample import write_sample

    path = module_tmp.mktemp("aids") / "data"
    write_sample(str(path), n=60, layout="course", seed=0, max_side=80, progress=False)
    return path


def _vgg(tiny, batch_size=8, seed=0, **kw):
    keras.utils.set_random_seed(seed)
    vgg = Vgg16(weights=kw.pop("weights", None), size=kw.pop("size", 32), verbose=False)
    b = vgg.get_batches(str(tiny / "train"), batch_size=batch_size, seed=0)
    vb = vgg.get_batches(str(tiny / "valid"), batch_size=batch_size, shuffle=False)
    vgg.finetune(b)
    return vgg, b, vb


def _w(vgg, name):
    return np.array(keras.ops.convert_to_numpy(vgg.model.get_layer(name).kernel))


# ---- one-cycle --------------------------------------------------------------------------------------------
def test_one_cycle_schedule_shape():
    total, top = 40, 0.01
    vals = [one_cycle_values(s, total, top) for s in range(total)]
    lrs, moms = np.array([v[0] for v in vals]), np.array([v[1] for v in vals])
    peak = int(lrs.argmax())
    assert peak == 10 and lrs[peak] == pytest.approx(top)           # 25% warm-up
    assert lrs[0] == pytest.approx(top / 25) and lrs[-1] == pytest.approx(top / 1e5)
    assert np.all(np.diff(lrs[:peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)
    assert moms[0] == pytest.approx(0.95) and moms[peak] == pytest.approx(0.85) and moms[-1] == pytest.approx(0.95)
    assert np.all(np.diff(moms[:peak + 1]) < 0) and np.all(np.diff(moms[peak:]) > 0)
    assert group_rates(3, 1e-3, 100) == pytest.approx([1e-5, 1e-4, 1e-3])


class _Seen(keras.callbacks.Callback):
    """What the optimizer really uses during each step (read after OneCycle set it)."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.seen, self.stop_at = [], stop_at

    def on_train_batch_begin(self, batch, logs=None):
        opt = self.model.optimizer
        self.seen.append((int(keras.ops.convert_to_numpy(opt.iterations)),
                          float(keras.ops.convert_to_numpy(opt.learning_rate)), float(opt.beta_1)))

    def on_train_batch_end(self, batch, logs=None):
        if self.stop_at is not None and len(self.seen) == self.stop_at:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: fit finishes the batch, checkpoints, stops


def test_one_cycle_follows_schedule_step_by_step_and_resumes_mid_cycle(tiny, tmp_path):
    epochs, max_lr = 2, 3e-3
    vgg, b, vb = _vgg(tiny)
    whole = _Seen()
    h = vgg.fit_one_cycle(b, vb, epochs, max_lr, callbacks=[whole], verbose=0)
    total = epochs * len(b)
    assert isinstance(h.one_cycle, OneCycle) and len(whole.seen) == total
    expected = [(s,) + tuple(one_cycle_values(s, total, max_lr)) for s in range(total)]
    np.testing.assert_allclose(np.array(whole.seen), np.array(expected), rtol=1e-6)

    ckpt = str(tmp_path / "ckpt.npz")
    vgg, b, vb = _vgg(tiny)
    first = _Seen(stop_at=len(b) + 2)  # half way through the second epoch
    with pytest.raises(KeyboardInterrupt):
        vgg.fit_one_cycle(b, vb, epochs, max_lr, callbacks=[first], checkpoint=ckpt, verbose=0)
    vgg, b, vb = _vgg(tiny)  # a new process would start the same way
    rest = _Seen()
    vgg.fit_one_cycle(b, vb, epochs, max_lr, callbacks=[rest], checkpoint=ckpt, verbose=0)
    assert rest.seen[0][0] == len(b) + 2
    np.testing.assert_allclose(np.array(first.seen + rest.seen), np.array(whole.seen), rtol=1e-6)


# ---- discriminative rates, fine_tune ---------------------------------------------------------------------
def test_vgg_layer_groups_are_the_five_blocks_and_the_head(tiny):
    vgg = Vgg16(weights=None, size=32, verbose=False)
    groups = vgg.layer_groups()
    assert len(groups) == 6
    assert [g[-1].name for g in groups[:5]] == [f"block{i}_pool" for i in range(1, 6)]
    assert groups[0][0].name == "vgg_preprocess" and groups[-1][-1].name == "predictions"


def test_discriminative_rates_move_early_blocks_less(tiny):
    vgg, b, _ = _vgg(tiny)
    for layer in vgg.model.layers:
        layer.trainable = True
    rates = vgg.compile_discriminative(1e-3, lr_mult=100)
    assert rates[0] == pytest.approx(1e-5) and rates[-1] == pytest.approx(1e-3)
    names = ["block1_conv1", "block3_conv1", "block5_conv1", "fc1", "predictions"]
    before = {n: _w(vgg, n) for n in names}
    x, y = b[0]
    vgg.model.train_on_batch(x, y)  # Adam's first step moves each weight by about its rate
    moved = {n: float(np.abs(_w(vgg, n) - before[n]).max()) for n in names}
    assert moved["block1_conv1"] == pytest.approx(1e-5, rel=0.05)
    assert moved["block3_conv1"] == pytest.approx(rates[2], rel=0.05)
    assert moved["predictions"] == pytest.approx(1e-3, rel=0.05)
    assert moved["block1_conv1"] < moved["block3_conv1"] < moved["block5_conv1"] < moved["fc1"]


def test_fine_tune_changes_early_layers_only_after_the_head_epochs(tiny):
    vgg, b, vb = _vgg(tiny)
    start = {n: _w(vgg, n) for n in ("block1_conv1", "predictions")}
    log = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            log.append((all(layer.trainable for layer in vgg.model.layers),
                        {n: _w(vgg, n) for n in start}))

    h = vgg.fine_tune(b, vb, epochs=1, freeze_epochs=1, callbacks=[Record()], verbose=0)
    assert [unfrozen for unfrozen, _ in log] == [False, True] and len(h.phases) == 2
    (_, head), (_, after) = log
    np.testing.assert_array_equal(head["block1_conv1"], start["block1_conv1"])  # frozen during the head epoch
    assert not np.array_equal(head["predictions"], start["predictions"])
    assert not np.array_equal(after["block1_conv1"], head["block1_conv1"])
    assert all(layer.trainable for layer in vgg.model.layers)


# ---- learning-rate finder -------------------------------------------------------------------------------
def test_lr_find_suggests_a_rate_that_trains_and_restores_everything(course_data, standin_weights, tmp_path,
                                                                      capsys):
    vgg, b, vb = _vgg(course_data, batch_size=16, weights=str(standin_weights), size=64)
    w0 = [np.array(keras.ops.convert_to_numpy(w)) for w in vgg.model.weights]
    found = vgg.lr_find(b, fname=str(tmp_path / "lr.png"), verbose=0)
    out = capsys.readouterr().out
    assert "Suggested learning rate" in out and found.rule in out
    assert found.cached and os.path.getsize(tmp_path / "lr.png") > 1000
    assert 1e-7 < found.suggestion < 10 and np.isfinite(found.suggestion)
    for w, before in zip(vgg.model.weights, w0, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), before)
    assert int(keras.ops.convert_to_numpy(vgg.model.optimizer.iterations)) == 0
    # training at the suggestion converges: the loss falls and the model beats chance
    vgg.compile(found.suggestion)
    h = vgg.fit(b, vb, nb_epoch=3, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert h.history["val_accuracy"][-1] > 0.6
    # the default plot goes to the data folder's results/
    assert vgg.lr_find(b, num_steps=10, verbose=0).fname == os.path.join(
        os.path.dirname(str(b.directory)), "results", "lr_find.png")


def test_lr_find_through_the_whole_model_restores_weights(tiny):
    vgg, b, _ = _vgg(tiny)
    for layer in vgg.model.layers:
        layer.trainable = True
    vgg.compile()
    w0 = [np.array(keras.ops.convert_to_numpy(w)) for w in vgg.model.weights]
    found = vgg.lr_find(b, num_steps=6, fname=None, verbose=0)
    assert not found.cached and len(found.lrs) <= 6
    for w, before in zip(vgg.model.weights, w0, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), before)


# ---- TTA ---------------------------------------------------------------------------------------------------
def test_tta_one_is_plain_prediction_and_two_is_the_mean_with_the_mirror(tiny):
    vgg, _, _ = _vgg(tiny)
    test = str(tiny / "test")
    tb, plain = vgg.test(test, verbose=0)
    tb1, one = vgg.test(test, tta=1, verbose=0)
    np.testing.assert_allclose(one, plain, atol=1e-6)
    tb2, two = vgg.test(test, tta=2, verbose=0)
    assert tb2.filenames == tb.filenames and two.shape == plain.shape
    x = np.concatenate([tb2[i] for i in range(len(tb2))])
    m = vgg.model
    expected = (m.predict(x, verbose=0) + m.predict(x[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(two, expected, atol=1e-5)
    _, four = vgg.test(test, tta=4, verbose=0)
    assert four.shape == plain.shape and not np.allclose(four, two, atol=1e-7)
    assert tta_transforms(4)[:2] == [(False, 0.0, 0.0), (True, 0.0, 0.0)]
    img = np.arange(2 * 8 * 8 * 3, dtype=np.float32).reshape(2, 8, 8, 3)
    shifted = apply_transform(img, (False, 0.25, 0.0))  # 2 pixels down, top rows repeat the edge
    np.testing.assert_array_equal(shifted[:, 2:], img[:, :6])
    np.testing.assert_array_equal(shifted[:, 0], img[:, 0])


# ---- top losses, most confused -------------------------------------------------------------------------
def test_top_losses_and_most_confused(tiny, tmp_path):
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.99, 0.01], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 0, 1, 1, 1])
    loss, idx = top_losses(probs, labels, 3)
    assert list(idx) == [2, 1, 3] and loss[0] == pytest.approx(-np.log(0.01))
    assert most_confused(probs, labels, ["cats", "dogs"]) == [("dogs", "cats", 2), ("cats", "dogs", 1)]
    assert most_confused(probs, labels, ["cats", "dogs"], min_count=2) == [("dogs", "cats", 2)]
    vgg, _, vb = _vgg(tiny)
    interp = Interpretation.from_model(vgg, vb)
    shown = interp.plot_top_losses(4, fname=str(tmp_path / "top.png"))
    assert len(shown) == 4 and os.path.getsize(tmp_path / "top.png") > 1000


# ---- export ----------------------------------------------------------------------------------------------
_NEEDED = {"keras", "torch", "numpy", "h5py", "absl", "rich", "namex", "optree", "ml_dtypes", "packaging",
           "markdown_it", "mdurl", "pygments", "typing_extensions", "sympy", "mpmath", "networkx", "jinja2",
           "markupsafe", "filelock", "fsspec", "numpy.libs", "h5py.libs", "torch.libs", "torchgen", "functorch"}


def test_exported_file_loads_without_dl1_and_predicts_the_same(tiny, tmp_path):
    vgg, b, vb = _vgg(tiny)
    vgg.fit(b, vb, nb_epoch=1, verbose=0)
    path = vgg.export(str(tmp_path / "out" / "model.keras"))
    meta = json.loads((tmp_path / "out" / "model.keras.classes.json").read_text())
    assert meta["classes"] == ["cats", "dogs"]
    config = (tmp_path / "cfg").as_posix()
    import zipfile

    with zipfile.ZipFile(path) as z:
        text = z.read("config.json").decode()
    assert "dl1" not in text, "the saved configuration must name plain Keras classes only"
    x = np.concatenate([vb[i][0] for i in range(len(vb))])  # raw 0-255 RGB images
    np.save(tmp_path / "x.npy", x)
    want = vgg.model.predict(x, verbose=0)

    site = os.path.dirname(os.path.dirname(keras.__file__))
    only = tempfile.mkdtemp(dir=tmp_path)
    for name in os.listdir(site):
        if (name[:-3] if name.endswith(".py") else name) in _NEEDED:
            os.symlink(os.path.join(site, name), os.path.join(only, name))
    code = f"""
import os, sys
sys.path.insert(0, {only!r})
os.environ['KERAS_BACKEND'] = 'torch'
try:
    import dl1
    sys.exit('dl1 is importable here')
except ImportError:
    pass
import numpy as np, keras
m = keras.saving.load_model({path!r})
np.save({str(tmp_path / 'y.npy')!r}, m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0))
"""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "KERAS_HOME", "TMPDIR")}
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, env=env,
                       cwd=str(tmp_path), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=1e-5)
    del config


# ---- the commands ----------------------------------------------------------------------------------------
def test_cli_help_lists_the_new_options(capsys):
    for argv, words in ((["lr-find", "--help"], ["--num-steps", "--sample", "--weights", "--no-cache"]),
                        (["finetune", "--help"], ["--one-cycle", "--unfreeze", "--freeze-epochs"]),
                        (["predict", "--help"], ["--tta"]), (["export", "--help"], ["-o", "model.keras"])):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert all(w in out for w in words), (argv, out)


def test_cli_one_line_errors(tmp_path, capsys):
    assert cli.main(["lr-find", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dl1: error: folder not found:") and "nope" in err and "\n" not in err
    assert cli.main(["export", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "no trained model" in err and "\n" not in err


def test_cli_flow_one_cycle_lr_find_tta_inspect_export(tiny, tmp_path, capsys):
    import shutil

    d = tmp_path / "d"
    shutil.copytree(tiny, d)
    common = ["--weights", "none", "--size", "32", "--batch-size", "8", "--verbose", "0"]
    assert cli.main(["lr-find", str(d), "--num-steps", "20", *common]) == 0
    out = capsys.readouterr().out
    assert "Suggested learning rate" in out and (d / "results" / "lr_find.png").exists()
    assert cli.main(["finetune", str(d), "--one-cycle", "--lr", "0.003", "--epochs", "1", *common]) == 0
    assert json.loads((d / "results" / "dl1-model.json").read_text())["schedule"] == "one_cycle"
    assert cli.main(["finetune", str(d), "--unfreeze", "--epochs", "1", "--restart", "--keep", "0",
                     *common]) == 0
    assert (d / "results" / "ft2.h5").exists() and (d / "results" / "ft1.h5").exists()
    assert cli.main(["predict", str(d), "--tta", "0"]) == 2
    assert "--tta must be 1 or more" in capsys.readouterr().err
    assert cli.main(["predict", str(d), "--tta", "2", "--batch-size", "8"]) == 0
    assert "TTA x2" in capsys.readouterr().out
    assert cli.main(["inspect", str(d)]) == 0
    out = capsys.readouterr().out
    assert "Most confused" in out and (d / "results" / "top_losses.png").exists()
    assert (d / "results" / "most_confused.csv").read_text().startswith("actual,predicted,count")
    assert cli.main(["export", str(d)]) == 0 and (d / "results" / "model.keras").exists()
    assert cli.main(["export", str(d), "-o", str(tmp_path / "m.keras")]) == 0
    assert (tmp_path / "m.keras.classes.json").exists()
    assert cli.main(["export", str(d), "-o", str(tmp_path / "m.h5")]) == 2
