"""lr_find's suggestion: fastai's "valley" rule by default, "minimum/10" on request, the same for the same data
and seed, none (and one line saying so, exit 1 from the command) when the loss never fell; the plot marks it."""

import shutil

import numpy as np
import pytest

from dl1.cli import main
from dl1.train.lr_find import LRFinder, longest_valley

LRS = np.logspace(-7, 1, 100)


def _curve():
    """A range test as it looks: flat and noisy at tiny rates, falling from step 40 to 75, then diverging."""
    rng = np.random.default_rng(0)
    flat = 1.0 + 0.002 * rng.standard_normal(40)
    fall = np.linspace(0.99, 0.30, 35)
    rise = 0.30 + 0.05 * np.arange(25) ** 1.5
    return np.concatenate([flat, fall, rise])


def test_the_longest_valley_is_counted_back_from_where_it_ends():
    values = np.array([5.0, 5.0, 5.0, 4.0, 3.0, 2.0, 1.0, 6.0, 0.5, 7.0])
    # the longest decreasing run is 5, 4, 3, 2, 1, 0.5 (six points) ending at index 8
    assert longest_valley(values) == (2, 8)


def test_valley_is_the_default_and_lands_where_the_loss_falls():
    smoothed = _curve()
    found = LRFinder(LRS, smoothed, smoothed, stopped_early=False, cached=True, seconds=1.0)
    assert found.rule == "valley" and found.fell
    i = int(np.flatnonzero(LRS == found.suggestion)[0])
    assert 40 <= i <= 75  # inside the fall, not in the flat noise and not at the bottom
    assert smoothed[i] < smoothed[40] and smoothed[i] > smoothed[75]
    assert found.min_lr == LRS[int(np.argmin(smoothed))]
    assert "Suggested learning rate: " in found.summary() and "(rule valley: " in found.summary()


def test_minimum_over_10_is_kept_as_an_option():
    smoothed = _curve()
    found = LRFinder(LRS, smoothed, smoothed, stopped_early=False, cached=True, seconds=1.0, suggest="minimum/10")
    assert found.rule == "minimum/10"
    assert found.suggestion == pytest.approx(LRS[int(np.argmin(smoothed))] / 10)
    with pytest.raises(ValueError, match="suggest must be one of valley, minimum/10, not 'steepest'"):
        LRFinder(LRS, smoothed, smoothed, False, True, 1.0, suggest="steepest")


@pytest.mark.parametrize("suggest", ["valley", "minimum/10"])
def test_a_loss_that_never_fell_gives_no_suggestion_and_says_so(suggest, tmp_path):
    rising = 1.0 + np.linspace(0, 3, 100) ** 2  # the bottom of the range is the lowest: nothing learned
    found = LRFinder(LRS, rising, rising, stopped_early=True, cached=True, seconds=1.0, suggest=suggest)
    assert found.suggestion is None and not found.fell
    summary = found.summary()
    assert "No suggestion: the loss never fell below its start between 1.0e-07 and 1.0e+01" in summary
    assert "\n" not in summary
    found.plot(str(tmp_path / "lr.png"))  # the plot says it too, and is still written
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"


def test_the_plot_marks_the_suggestion(tmp_path):
    import matplotlib.pyplot as plt

    smoothed = _curve()
    found = LRFinder(LRS, smoothed, smoothed, stopped_early=False, cached=True, seconds=1.0)
    fig, ax = plt.subplots()
    found.plot(ax=ax)
    assert any(line.get_label().startswith(f"suggested {found.suggestion:.1e} (valley)") for line in ax.lines)
    marked = [line for line in ax.lines if line.get_label().startswith("suggested")][0]
    assert marked.get_xdata()[0] == found.suggestion
    plt.close(fig)


@pytest.fixture
def data(course_data, tmp_path):
    d = tmp_path / "data"
    for split in ("train", "valid"):
        shutil.copytree(course_data / split, d / split)
    return d


COMMON = ["--weights", "none", "--size", "32", "--batch-size", "16", "--verbose", "0"]


def test_the_same_data_and_seed_give_the_same_suggestion(data, capsys):
    from dl1.workflow import steps

    first = steps.lr_find(str(data), weights="none", size=32, batch_size=16, verbose=0, num_steps=40)
    second = steps.lr_find(str(data), weights="none", size=32, batch_size=16, verbose=0, num_steps=40)
    np.testing.assert_array_equal(first.losses, second.losses)
    assert first.suggestion == second.suggestion and first.fell
    # and within one process on one model, run twice (the dropout generators are put back too)
    from dl1.models.classifier import build_classifier

    model = build_classifier("vgg16", weights=None, size=32, verbose=False)
    batches = model.get_batches(str(data / "train"), batch_size=16, seed=0)
    model.finetune(batches)
    model.compile()
    a = model.lr_find(batches, num_steps=30, fname=None, verbose=0)
    b = model.lr_find(batches, num_steps=30, fname=None, verbose=0)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert a.suggestion == b.suggestion


def test_the_command_exits_1_when_the_loss_never_fell(data, capsys):
    assert main(["lr-find", str(data), "--start-lr", "100", "--end-lr", "1e6", "--num-steps", "20", *COMMON]) == 1
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if "loss never fell" in line]
    assert len(lines) == 1 and "No suggestion: the loss never fell below its start" in lines[0]
    assert (data / "results" / "lr_find.png").exists()


def test_the_command_takes_suggest(data, capsys):
    assert main(["lr-find", str(data), "--suggest", "minimum/10", "--num-steps", "30", *COMMON]) == 0
    out = capsys.readouterr().out
    assert "(rule minimum/10: the rate at the lowest smoothed loss, divided by 10;" in out
