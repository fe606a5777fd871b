"""Submission CSVs: ids, sorting, clipping, the validator's refusals, log loss and the clip optimiser."""

import numpy as np
import pandas as pd
import pytest

from dl1.io.errors import SubmissionError
from dl1.kaggle.submission import (
    best_clip,
    binary_submission,
    expected_ids,
    log_loss_score,
    multiclass_submission,
    parse_id,
    validate_submission,
    write_submission,
)


def test_ids_come_from_file_names_not_fixed_offsets():
    assert parse_id("unknown/9292.jpg") == 9292
    assert parse_id("9292.jpg") == 9292  # no unknown/ prefix: 2017's f[8:] slicing would break here
    assert parse_id("test/sub/12.png") == 12
    assert parse_id("img_81.jpg") == "img_81.jpg"  # State Farm ids keep their name


def test_binary_submission_sorted_by_id_and_clipped():
    probs = np.array([[0.99, 0.01], [0.4, 0.6], [0.0, 1.0]])
    df = binary_submission(probs, ["unknown/10.jpg", "unknown/2.jpg", "unknown/1.jpg"])
    assert list(df.columns) == ["id", "label"]
    assert df["id"].tolist() == [1, 2, 10]
    np.testing.assert_allclose(df["label"], [0.95, 0.6, 0.05])
    raw = binary_submission(probs, ["1.jpg", "2.jpg", "3.jpg"], clip=None)
    assert raw["label"].tolist() == [0.01, 0.6, 1.0]
    assert binary_submission(probs, ["1.jpg", "2.jpg", "3.jpg"], clip=0.9)["label"].max() == 0.9


def test_multiclass_submission_has_one_column_per_class():
    probs = np.full((2, 3), 1 / 3)
    df = multiclass_submission(probs, ["c/img_2.jpg", "c/img_1.jpg"], ["c0", "c1", "c2"], clip=0.93)
    assert list(df.columns) == ["img", "c0", "c1", "c2"]
    assert df["img"].tolist() == ["img_1.jpg", "img_2.jpg"]


def _test_dir(tmp_path, ids):
    folder = tmp_path / "test" / "unknown"
    folder.mkdir(parents=True)
    for i in ids:
        (folder / f"{i}.jpg").write_bytes(b"x")
    return tmp_path / "test"


def test_a_good_file_validates_and_is_written(tmp_path):
    test = _test_dir(tmp_path, [1, 2, 3])
    df = binary_submission(np.array([0.1, 0.5, 0.9]), ["3.jpg", "1.jpg", "2.jpg"])
    out = write_submission(df, tmp_path / "sub.csv", expected=test)
    text = open(out).read().splitlines()
    assert text[0] == "id,label" and text[1] == "1,0.50000" and len(text) == 4
    assert len(validate_submission(out, expected=test)) == 3
    assert expected_ids(test) == [1, 2, 3]


@pytest.mark.parametrize("rows, reason", [
    ("id,label\n1,0.5\n2,0.5\n", "2 rows but the test set has 3"),
    ("id,label\n1,0.5\n2,0.5\n2,0.5\n", "duplicate id 2"),
    ("id,label\n1,0.5\n2,0.5\n4,0.5\n", "missing ids [3]"),
    ("id,label\n1,0.5\n2,nan\n3,0.5\n", "NaN"),
    ("id,label\n1,0.5\n2,1.5\n3,0.5\n", "outside [0, 1]"),
    ("id,label\n1,0.5\n2,-0.1\n3,0.5\n", "outside [0, 1]"),
    ("id,label\n1,0.5\n2,dog\n3,0.5\n", "non-numeric"),
    ("id\n1\n2\n3\n", "needs an id column and at least one probability column"),
    ("", "not a readable CSV"),
])
def test_bad_files_are_refused_with_the_reason(tmp_path, rows, reason):
    test = _test_dir(tmp_path, [1, 2, 3])
    path = tmp_path / "bad.csv"
    path.write_text(rows)
    with pytest.raises(SubmissionError) as e:
        validate_submission(path, expected=test)
    assert reason in str(e.value)


def test_writer_refuses_before_writing(tmp_path):
    test = _test_dir(tmp_path, [1, 2])
    df = pd.DataFrame({"id": [1, 2], "label": [0.5, np.nan]})
    with pytest.raises(SubmissionError, match="NaN"):
        write_submission(df, tmp_path / "s.csv", expected=test)
    assert not (tmp_path / "s.csv").exists()


def test_log_loss_and_the_clip_that_minimises_it():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0])
    p = np.array([0.99, 0.98, 0.97, 0.99, 0.02, 0.01, 0.03, 0.02, 0.0, 1.0])  # two confident mistakes
    probs = np.stack([1 - p, p], axis=1)
    raw = log_loss_score(y, probs)
    assert raw > 5  # a confident wrong answer costs ~34 with eps 1e-15
    best, scores = best_clip(y, probs)
    assert scores[best] == min(scores.values()) and scores[best] < raw
    assert 0.8 <= best <= 0.95  # 20% confident mistakes want a conservative clip
    clean = np.stack([1 - np.where(y == 1, 0.99, 0.01), np.where(y == 1, 0.99, 0.01)], axis=1)
    assert best_clip(y, clean)[0] >= 0.99  # an accurate model wants little clipping
