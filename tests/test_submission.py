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


# ---- dl1 validate: what Kaggle's sample submission accepts, and nothing else --------------------------------
def _validate(tmp_path, capsys, content, ids=(1, 2, 3), gz=False, name="sub.csv"):
    import gzip

    from dl1.cli import main

    test = tmp_path / "test"
    if not test.exists():
        _test_dir(tmp_path, ids)
    path = tmp_path / name
    data = content.encode() if isinstance(content, str) else content
    path.write_bytes(gzip.compress(data) if gz else data)
    rc = main(["validate", str(path), "--test", str(test)])
    out = capsys.readouterr()
    return rc, (out.out + out.err).strip(), path


@pytest.mark.parametrize("content, reason", [
    ("id,label\n1,0.5\n1.7,0.5\n3,0.5\n", " line 3: id '1.7' is not a whole number (the ids are the test images' "
                                          "numbers)"),
    ("ID,probability\n1,0.5\n2,0.5\n3,0.5\n", ": header ID,probability, expected id,label (the sample submission "
                                              "of Dogs vs Cats Redux)"),
    ("id,label\n1,True\n2,False\n3,0.5\n", " line 2: non-numeric value 'True' in label (id 1); want a probability "
                                           "from 0 to 1"),
    ("id,label\n1,0.5\n,0.5\n3,0.5\n", " line 3: empty id"),
    ("id,label\n1,0.5\n2,0." + "1" * 400 + "e400\n3,0.5\n", " line 3: value outside [0, 1] in label (id 2: a number "
                                                            "of 406 characters)"),
    ("id,label\n1,0.5\n" + "9" * 400 + ",0.5\n3,0.5\n", " line 3: id of 400 digits, not an image number"),
    ("id,label\n1,0.5\n2,inf\n3,0.5\n", " line 3: value outside [0, 1] in label (id 2: inf)"),
    ("id,label\n1,0.5\n2,0.5,0.1\n3,0.5\n", " line 3: 3 values, the header has 2 columns"),
    ("id,label\n1,0.5\n 2,0.5\n3,0.5\n", " line 3: id ' 2' has spaces around it"),
    ("id,label\n1,0.5\n2,0.5\n2,0.5\n", " line 4: duplicate id 2 (first on line 3; 1 duplicates)"),
    ("id,label,label\n1,0.5,0.5\n", ": the header has an empty or repeated column name (id,label,label)"),
    (b"id,label\n1,0.5\n2,\xff\n", " is not a readable CSV file (not UTF-8 text: byte 17)"),
])
def test_dl1_validate_refuses_what_kaggle_refuses_with_exit_1(tmp_path, capsys, content, reason):
    rc, out, path = _validate(tmp_path, capsys, content)
    assert rc == 1 and out == f"INVALID: {path}{reason}"


def test_dl1_validate_on_damaged_gzip_and_zip_data(tmp_path, capsys):
    import gzip

    good = gzip.compress(b"id,label\n1,0.5\n2,0.5\n3,0.5\n")
    rc, out, path = _validate(tmp_path, capsys, good[:-12] + b"\0" * 12, name="sub.csv.gz")
    assert rc == 1 and out.startswith(f"INVALID: {path}: damaged gzip data (") and out.endswith("write the file again")
    rc, out, path = _validate(tmp_path, capsys, b"PK\x03\x04 not really a zip", name="sub.zip")
    assert rc == 1 and out.startswith(f"INVALID: {path}: damaged zip data (")
    rc, out, path = _validate(tmp_path, capsys, "id,label\n1,0.5\n2,0.5\n3,0.5\n", gz=True, name="ok.csv.gz")
    assert rc == 0 and out == f"OK: {path} has 3 rows, columns id, label against {tmp_path / 'test'}"


def test_the_header_comes_from_the_competition(tmp_path, capsys):
    # a sample_submission.csv beside the test folder is the authority
    (tmp_path / "sample_submission.csv").write_text("img,c0,c1\nimg_1.jpg,0.5,0.5\n")
    folder = tmp_path / "test" / "unknown"
    folder.mkdir(parents=True)
    for n in ("img_1.jpg", "img_2.jpg"):
        (folder / n).write_bytes(b"x")
    rc, out, path = _validate(tmp_path, capsys, "image,c0,c1\nimg_1.jpg,0.5,0.5\nimg_2.jpg,0.1,0.9\n")
    assert rc == 1 and out == (f"INVALID: {path}: header image,c0,c1, expected img,c0,c1 (the header of "
                               f"{tmp_path / 'sample_submission.csv'})")
    assert _validate(tmp_path, capsys, "img,c0,c1\nimg_1.jpg,0.5,0.5\nimg_2.jpg,0.1,0.9\n")[0] == 0
    # else the competition dl1 kaggle download remembered; a damaged memory is no competition, not a crash
    other = tmp_path / "other"
    other.mkdir()
    _test_dir(other, [1, 2])
    (other / ".dl1-kaggle.json").write_text('{"competition": "state-farm-distracted-driver-detection"}')
    rc, out, path = _validate(other, capsys, "id,label\n1,0.5\n2,0.5\n")
    assert rc == 1 and out.endswith("header id,label, expected img,c0,c1,c2,c3,c4,c5,c6,c7,c8,c9 (the sample "
                                    "submission of state-farm-distracted-driver-detection)")
    (other / ".dl1-kaggle.json").write_text("[1, 2]")
    assert _validate(other, capsys, "id,label\n1,0.5\n2,0.5\n")[0] == 0


def test_a_written_submission_validates_from_its_frame_and_its_file(tmp_path):
    test = _test_dir(tmp_path, [1, 2])
    df = pd.DataFrame({"id": [1, 2], "label": [0.5, True]})
    with pytest.raises(SubmissionError, match="line 3: non-numeric value 'True' in label"):
        write_submission(df, tmp_path / "s.csv", expected=test)
    df = pd.DataFrame({"id": [1, 2], "label": [0.5, np.inf]})
    with pytest.raises(SubmissionError, match=r"line 3: value outside \[0, 1\] in label \(id 2: inf\)"):
        write_submission(df, tmp_path / "s.csv", expected=test)
    assert not (tmp_path / "s.csv").exists()


FISH = ["ALB", "BET", "DOL", "LAG", "NoF", "OTHER", "SHARK", "YFT"]


def test_fisheries_submission_has_the_competitions_id_column(tmp_path, capsys):
    """``dl1 submit`` names the id column as the competition's sample submission does (Fisheries: ``image``,
    State Farm: ``img``), from the one table the validator reads too."""
    from dl1.cli import main
    from dl1.io.arrays import save_array
    from dl1.kaggle.submission import FORMATS, id_column

    for name in FISH:
        (tmp_path / "train" / name).mkdir(parents=True)  # the class names, as a notebook-trained model has
    test = tmp_path / "test" / "unknown"
    test.mkdir(parents=True)
    names = ["img_00002.jpg", "img_00001.jpg"]
    for n in names:
        (test / n).write_bytes(b"x")
    results = tmp_path / "results"
    results.mkdir()
    save_array(results / "test_preds.dat", np.full((2, 8), 1 / 8))
    save_array(results / "filenames.dat", [f"unknown/{n}" for n in names])
    assert main(["submit", str(tmp_path)]) == 0
    csv = results / "submission.csv"
    assert open(csv).readline().strip() == "image," + ",".join(FISH)
    assert pd.read_csv(csv)["image"].tolist() == ["img_00001.jpg", "img_00002.jpg"]
    capsys.readouterr()
    assert main(["validate", str(csv), "--test", str(tmp_path / "test")]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {csv} has 2 rows, columns image, ALB, BET")
    # the table decides; a sample submission beside the test folder overrides it
    assert FORMATS["the-nature-conservancy-fisheries-monitoring"][0] == id_column(FISH) == "image"
    assert id_column([f"c{i}" for i in range(10)]) == "img" and id_column(["a", "b", "c"]) == "img"
    (tmp_path / "sample_submission.csv").write_text("picture,ALB,BET,DOL,LAG,NoF,OTHER,SHARK,YFT\n")
    assert id_column(FISH, expected=str(tmp_path / "test")) == "picture"
