"""A record of training: results/history.csv (one row per epoch, counting on across resumed runs and phases)
and results/training_curves.png, written by dl1 finetune and by fit, fit_one_cycle and fine_tune; shown by
dl1 inspect; drawn by plot_history in one call."""

import csv
import math
import shutil

import numpy as np
import pytest

from dl1.cli import main

COLUMNS = ["epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
COMMON = ["--size", "32", "--batch-size", "16", "--verbose", "0"]


def _rows(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, list(reader)


@pytest.fixture
def data(course_data, tmp_path):
    d = tmp_path / "data"
    for split in ("train", "valid"):
        shutil.copytree(course_data / split, d / split)
    return d


def test_finetune_appends_one_row_per_epoch_across_a_resumed_run(data, standin_weights, capsys):
    weights = ["--weights", str(standin_weights)]
    assert main(["finetune", str(data), "--epochs", "1", *weights, *COMMON]) == 0
    results = data / "results"
    header, rows = _rows(results / "history.csv")
    assert header == COLUMNS and [r[0] for r in rows] == ["1"]
    png = results / "training_curves.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    # the same command with more epochs resumes from the checkpoint: the record counts on
    assert main(["finetune", str(data), "--epochs", "3", *weights, *COMMON]) == 0
    header, rows = _rows(results / "history.csv")
    assert header == COLUMNS and [r[0] for r in rows] == ["1", "2", "3"]
    assert {r[1] for r in rows} == {"fit"}
    for r in rows:
        loss, acc, val_loss, val_acc, lr, seconds = map(float, r[2:])
        assert loss > 0 and 0 <= acc <= 1 and val_loss > 0 and 0 <= val_acc <= 1
        assert lr == pytest.approx(0.001) and seconds > 0
    # nothing trained, nothing appended
    assert main(["finetune", str(data), "--epochs", "3", *weights, *COMMON]) == 0
    assert len(_rows(results / "history.csv")[1]) == 3
    capsys.readouterr()
    # --restart starts the record again at epoch 1, as its weight files do; the earlier one is kept aside
    assert main(["finetune", str(data), "--epochs", "1", "--restart", *weights, *COMMON]) == 0
    assert [r[0] for r in _rows(results / "history.csv")[1]] == ["1"]
    kept = sorted(results.glob("history-*.csv"))
    assert len(kept) == 1 and [r[0] for r in _rows(kept[0])[1]] == ["1", "2", "3"]
    assert len(list(results.glob("training_curves-*.png"))) == 1 and png.is_file()
    shown = capsys.readouterr()
    assert f"Note: --restart: the earlier run's history.csv is kept as {kept[0].name}" in shown.out + shown.err


def test_inspect_shows_the_history(data, standin_weights, capsys):
    assert main(["finetune", str(data), "--epochs", "2", "--weights", str(standin_weights), *COMMON]) == 0
    (data / "test" / "unknown").mkdir(parents=True)
    shutil.copy(next((data / "valid" / "cats").iterdir()), data / "test" / "unknown" / "1.jpg")
    assert main(["predict", str(data), "--batch-size", "16"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(data)]) == 0
    out = capsys.readouterr().out
    results = data / "results"
    assert f"Training history (2 epoch(s), {results / 'history.csv'}; last 2):" in out
    lines = out.splitlines()
    head = lines.index(f"Training history (2 epoch(s), {results / 'history.csv'}; last 2):")
    assert lines[head + 1].split() == COLUMNS
    assert [line.split()[:2] for line in lines[head + 2:head + 4]] == [["1", "fit"], ["2", "fit"]]
    assert f"Training curves: {results / 'training_curves.png'}" in lines


def test_fit_one_cycle_and_fine_tune_count_on_with_their_phases(course_data, tmp_path):
    import keras

    from dl1 import plot_history as from_dl1
    from dl1.models.vgg16 import Vgg16
    from utils import plot_history

    assert plot_history is from_dl1
    keras.utils.set_random_seed(0)
    results = tmp_path / "results"
    vgg = Vgg16(weights=None, size=32, verbose=False)
    b = vgg.get_batches(str(course_data / "train"), batch_size=16, seed=0)
    vb = vgg.get_batches(str(course_data / "valid"), batch_size=32, shuffle=False)
    vgg.finetune(b)
    vgg.fit(b, vb, nb_epoch=1, verbose=0, history=str(results))
    vgg.fit_one_cycle(b, vb, 1, max_lr=0.003, verbose=0, history=str(results))
    vgg.fine_tune(b, vb, epochs=1, freeze_epochs=1, verbose=0, history=str(results))
    header, rows = _rows(results / "history.csv")
    assert header == COLUMNS
    assert [(r[0], r[1]) for r in rows] == [("1", "fit"), ("2", "one_cycle"), ("3", "head"), ("4", "unfrozen")]
    assert all(not math.isnan(float(r[5])) for r in rows)
    # one call draws it, from the results folder, the data folder or the file
    fig = plot_history(str(results), fname=str(tmp_path / "curves.png"))
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]
    assert [line.get_label() for line in fig.axes[0].lines if not line.get_label().startswith("_")] == \
        ["train", "validation"]
    assert len(fig.axes[0].lines[0].get_xdata()) == 4
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert plot_history(str(tmp_path)).axes[0].lines[0].get_xdata().tolist() == [1, 2, 3, 4]
    assert plot_history(str(results / "history.csv")) is not None


def test_plot_history_without_a_record_is_one_line(tmp_path):
    from dl1 import plot_history
    from dl1.io.errors import DL1Error

    with pytest.raises(DL1Error) as e:
        plot_history(str(tmp_path))
    assert str(e.value) == (f"no training history in {tmp_path / 'history.csv'}: train with fit(), "
                            "fit_one_cycle(), fine_tune() or 'dl1 finetune' first")


def test_a_history_that_cannot_be_written_does_not_stop_training(tmp_path, caplog):
    import keras

    from dl1.train.history import HistoryRecorder

    (tmp_path / "file").write_text("not a folder")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    recorder = HistoryRecorder(tmp_path / "file" / "results")
    with caplog.at_level("WARNING", logger="dl1"):
        model.fit(np.ones((4, 2), "float32"), np.ones((4, 1), "float32"), epochs=2, verbose=0, callbacks=[recorder])
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and warned[0].startswith(f"cannot write the training history in {tmp_path / 'file'}")


def test_the_curves_are_drawn_at_the_end_every_redraw_interval_and_when_inspect_finds_them_behind(
        tmp_path, monkeypatch, capsys):
    """Drawing takes ~0.3 s: short epochs redraw at the end of training only, long ones after an epoch when the
    last drawing is REDRAW_SECONDS old; a run stopped in between leaves the record ahead of the picture, and
    dl1 inspect's history brings the picture up to date."""
    import os

    import keras

    from dl1.train.history import CURVES_NAME, HistoryRecorder, append_epoch
    from dl1.workflow.results import Results
    from dl1.workflow.steps import show_history

    results = tmp_path / "data" / "results"
    png = results / CURVES_NAME
    seen = []

    class Look(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(png.exists())

    def fit(epochs):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(np.ones((4, 2), "float32"), np.ones((4, 1), "float32"), epochs=epochs, verbose=0,
                  callbacks=[HistoryRecorder(results), Look()])

    fit(3)
    assert seen == [False, False, False] and png.is_file()  # drawn once, at the end
    assert len(_rows(results / "history.csv")[1]) == 3
    monkeypatch.setattr(HistoryRecorder, "REDRAW_SECONDS", 0.0)
    png.unlink()
    seen.clear()
    fit(2)
    assert seen == [True, True]
    # a run killed after an epoch's row and before its drawing
    drawn = png.stat().st_mtime
    append_epoch(results, "fit", {"loss": 0.5}, 0.01, 1.0)
    os.utime(png, (drawn - 10, drawn - 10))
    assert len(show_history(Results(tmp_path / "data"))) == 6
    assert png.stat().st_mtime > drawn - 10 and f"Training curves: {png}" in capsys.readouterr().out
