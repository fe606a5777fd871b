"""`dl1 prepare` without --valid on a set smaller than the course's: the README's walk-through
(`dl1 sample data/redux` writes 200 images, then `dl1 prepare data/redux`) gets a split scaled to the data,
with a note; a --valid the user gave and that is too large stays an error."""

import os
import subprocess
import sys

from dl1.data.prepare import scaled_sizes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dl1(*args, cwd):
    return subprocess.run([sys.executable, "-m", "dl1", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def _count(folder):
    return sum(len(files) for _, _, files in os.walk(folder))


def test_the_course_split_scales_down_to_a_small_set_and_not_for_a_big_one():
    asked = {"valid": 2000, "sample_train": 200, "sample_valid": 50}
    assert scaled_sizes(25000) == asked
    assert scaled_sizes(4000) == asked  # half of it still trains
    assert scaled_sizes(200) == {"valid": 40, "sample_train": 53, "sample_valid": 20}
    assert scaled_sizes(3999) == {"valid": 799, "sample_train": 200, "sample_valid": 50}
    assert scaled_sizes(0) == asked


def test_prepare_without_valid_scales_the_split_with_a_note(tmp_path):
    data = tmp_path / "data" / "redux"
    made = _dl1("sample", "data/redux", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    out = _dl1("prepare", "data/redux", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert ("Note: data/redux has 200 labelled images, fewer than the split asks for (valid=2000, "
            "sample_train=200, sample_valid=50): using valid=40, sample_train=53, sample_valid=20") \
        in out.stdout.splitlines()
    assert _count(data / "valid") == 40 and _count(data / "train") == 160
    assert _count(data / "sample" / "train") == 53 and _count(data / "sample" / "valid") == 20
    again = _dl1("prepare", "data/redux", cwd=tmp_path)  # the same images give the same split: accepted
    assert again.returncode == 0, again.stderr
    assert "data/redux: already prepared" in again.stdout


def test_a_valid_given_and_too_large_is_still_an_error(tmp_path):
    assert _dl1("sample", "data/redux", cwd=tmp_path).returncode == 0
    out = _dl1("prepare", "data/redux", "--valid", "2000", cwd=tmp_path)
    assert out.returncode == 1  # the data has too few images: exit 1 (not a usage error)
    assert out.stderr.splitlines()[-1] == ("dl1: error: asked for 2000 validation images but train has only 200 "
                                           "readable images; use a smaller --valid")  # after the progress bar
    assert not (tmp_path / "data" / "redux" / "valid").exists()
