"""Fisheries and State Farm data: stand-ins, prepare's driver split and layouts, boxes that survive resizing,
the bad-input lines, gzip submissions, Kaggle downloads of both competitions."""

import csv
import json
import logging
import zipfile

import numpy as np
import pytest
from test_kaggle import fake_kaggle  # noqa: F401, F811 (the stand-in kaggle executable)

from dl1.data.boxes import bbox_array, convert_bb, image_sizes, load_annotations
from dl1.data.datasets import fisheries, statefarm
from dl1.data.images import load_resized
from dl1.data.prepare import prepare_data
from dl1.kaggle.submission import do_clip, multiclass_submission, validate_submission, write_submission


@pytest.fixture
def warnings(caplog):
    caplog.set_level(logging.INFO, logger="dl1")
    return caplog


def test_boxes_survive_resizing(tmp_path):
    fisheries.synthesize(tmp_path, seed=3, n=32, n_test=2)
    annos = json.loads((tmp_path / "annos" / "alb_labels.json").read_text())
    checked = 0
    for item in annos:
        if len(item["annotations"]) != 1:
            continue  # a second fish would blur the colour mask
        f = tmp_path / "train" / "ALB" / item["filename"]
        (w, h), = image_sizes([f])
        bb = load_annotations(str(tmp_path / "annos"), sizes={item["filename"]: (w, h)})[item["filename"]]
        bh, bw, x, y = convert_bb(bb, (w, h), (224, 224))
        img = load_resized(str(f), (224, 224))
        sat = img.max(-1) - img.min(-1)  # the fish is saturated, the deck grey
        ys, xs = np.nonzero(sat > 80)
        assert abs(xs.min() - x) <= 3 and abs(ys.min() - y) <= 3
        assert abs(xs.max() + 1 - (x + bw)) <= 3 and abs(ys.max() + 1 - (y + bh)) <= 3
        checked += 1
    assert checked >= 2


def test_bad_annotations_are_one_line_each(tmp_path, warnings):
    d = tmp_path / "annos"
    d.mkdir()
    (d / "bet_labels.json").write_text(json.dumps([
        {"filename": "img_1.jpg", "annotations": [{"class": "rect", "x": 10, "y": 10, "width": 20, "height": 20},
                                                  {"class": "rect", "x": 0, "y": 0, "width": 5, "height": 5}]},
        {"filename": "img_gone.jpg", "annotations": [{"class": "rect", "x": 1, "y": 1, "width": 2, "height": 2}]},
        {"filename": "img_2.jpg", "annotations": [{"class": "rect", "x": 500, "y": 10, "width": 20, "height": 9}]},
        {"filename": "img_3.jpg", "annotations": [{"class": "rect", "x": 90, "y": 50, "width": 30, "height": 20}]}]))
    (d / "dol_labels.json").write_text("{not json")
    sizes = {"img_1.jpg": (100, 60), "img_2.jpg": (100, 60), "img_3.jpg": (100, 60)}
    bb = load_annotations(str(d), sizes=sizes)
    assert bb["img_1.jpg"]["width"] == 20  # the largest box
    assert "img_2.jpg" not in bb and "img_gone.jpg" not in bb
    assert bb["img_3.jpg"]["width"] == 10 and bb["img_3.jpg"]["height"] == 10  # clipped to the image
    lines = [r.getMessage() for r in warnings.records]
    assert any("bet_labels.json" in m and "img_gone.jpg" in m and "not in the data set" in m for m in lines)
    assert any("bet_labels.json" in m and "img_2.jpg" in m and "outside" in m for m in lines)
    assert any("bet_labels.json" in m and "img_3.jpg" in m and "clipped" in m for m in lines)
    assert any("dol_labels.json" in m and "cannot read" in m for m in lines)
    assert all("\n" not in m for m in lines)
    arr = bbox_array(["BET/img_1.jpg", "NoF/img_9.jpg"], bb, {"img_1.jpg": (100, 60), "img_9.jpg": (50, 50)}, (30, 50))
    assert arr[1].tolist() == [0, 0, 0, 0] and np.allclose(arr[0], [10, 10, 5, 5])
    assert load_annotations(str(tmp_path / "nowhere")) == {}


def test_annotation_entries_without_a_usable_box_are_named_by_line(tmp_path, warnings):
    d = tmp_path / "annos"
    d.mkdir()
    (d / "alb_labels.json").write_text(
        '[\n'
        '  {"filename": "img_1.jpg", "annotations": [{"x": 1, "y": 1, "width": 5, "height": 5}]},\n'
        '  {"filename": "img_2.jpg", "annotations": [{"x": 1, "y": 1, "width": -5, "height": 5}]},\n'
        '  {"annotations": []},\n'
        '  {"filename": "img_4.jpg",\n'
        '   "annotations": [{"x": "NaN", "y": 1, "width": 5, "height": 5}, {"x": true, "y": 1, "width": 5, "height": 5}]}\n'
        ']\n')
    bb = load_annotations(str(d))
    assert list(bb) == ["img_1.jpg"]
    assert [r.getMessage() for r in warnings.records] == [
        f"{d / 'alb_labels.json'}: 3 entr(y/ies) without a usable box (need x, y, width, height > 0): "
        "img_2.jpg (line 3), line 4, img_4.jpg (line 5)"]
    from dl1.io.errors import DL1Error

    with pytest.raises(DL1Error, match="target must be at least 1, not 0"):
        convert_bb(bb["img_1.jpg"], (10, 10), (0, 224))
    with pytest.raises(DL1Error, match="size must be above 0, not 0"):
        convert_bb(bb["img_1.jpg"], (0, 10))


def test_group_file_rows_without_a_group_or_with_extra_fields_are_named_by_line(tmp_path, warnings):
    from dl1.data.prepare import read_groups

    path = tmp_path / "drivers.csv"
    path.write_text("subject,classname,img\np001,c0,img_1.jpg\n,c0,img_2.jpg\np002,c1,img_3.jpg,extra\n"
                    "p003,c0,img_1.jpg\n\np004,c1,img_5.jpg\n")
    assert read_groups(str(path), "subject") == {"img_1.jpg": "p001", "img_5.jpg": "p004"}
    assert [r.getMessage() for r in warnings.records] == [
        f"{path}: 1 row(s) without an image name or a subject, ignored: line 3",
        f"{path}: 1 row(s) with more fields than the header, ignored: line 4",
        f"{path}: 1 image(s) listed again with another subject, the first kept: img_1.jpg (line 5)"]


def _drivers(path):
    with open(path / "driver_imgs_list.csv") as f:
        return {r["img"]: r["subject"] for r in csv.DictReader(f)}


def test_statefarm_prepare_splits_by_driver_and_is_idempotent(tmp_path):
    statefarm.synthesize(tmp_path, seed=1, n=120, n_test=8, n_drivers=6, size=(64, 48))
    who = _drivers(tmp_path)
    r = prepare_data(tmp_path, valid=25, sample_train=10, sample_valid=5, group_file="driver_imgs_list.csv",
                     group_column="subject", progress=False)
    assert not (tmp_path / "imgs").exists() and (tmp_path / "test" / "unknown").is_dir()
    split = {s: {who[f.name] for f in (tmp_path / s).glob("*/*.jpg")} for s in ("train", "valid")}
    assert split["train"] and split["valid"] and not split["train"] & split["valid"]
    assert sum(r.counts[f"valid/c{i}"] for i in range(10) if f"valid/c{i}" in r.counts) >= 25
    again = prepare_data(tmp_path, valid=25, sample_train=10, sample_valid=5, group_file="driver_imgs_list.csv",
                         group_column="subject", progress=False)
    assert again.already_done and again.counts == r.counts


def test_driver_list_problems_are_one_line_each(tmp_path, warnings):
    statefarm.synthesize(tmp_path, seed=2, n=60, n_test=3, n_drivers=3, size=(64, 48))
    rows = list(csv.reader(open(tmp_path / "driver_imgs_list.csv")))
    dropped = rows.pop(5)[2]  # an image the list misses
    rows += [["p001", "c11", "img_999991.jpg"], ["p001", "c0", "img_999992.jpg"]]
    with open(tmp_path / "driver_imgs_list.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    prepare_data(tmp_path, valid=10, sample_train=4, sample_valid=2, group_file="driver_imgs_list.csv",
                 group_column="subject", progress=False)
    lines = [r.getMessage() for r in warnings.records]
    assert any("driver_imgs_list.csv" in m and "c11" in m and "classes" in m for m in lines)
    assert any("driver_imgs_list.csv" in m and "img_999992.jpg" in m and "not in train" in m for m in lines)
    assert any("driver_imgs_list.csv does not list 1 image" in m and dropped in m for m in lines)
    assert any((tmp_path / "train").glob(f"*/{dropped}"))  # the unlisted image stays in train


def test_group_column_missing_is_refused(tmp_path):
    from dl1.io.errors import DataError

    statefarm.synthesize(tmp_path, seed=2, n=60, n_test=3, n_drivers=3, size=(64, 48))
    with pytest.raises(DataError, match="driver_imgs_list.csv has no column 'driver'"):
        prepare_data(tmp_path, valid=10, group_file="driver_imgs_list.csv", group_column="driver", progress=False)


def test_fisheries_prepare_and_odd_test_sizes(tmp_path, warnings):
    from PIL import Image

    fisheries.synthesize(tmp_path, seed=0, n=32, n_test=4)
    Image.new("RGB", (77, 55), (9, 9, 9)).save(tmp_path / "test_stg1" / "img_99999.jpg")
    r = prepare_data(tmp_path, valid=8, sample_train=4, sample_valid=2, progress=False)
    assert r.counts["test/unknown"] == 5 and not (tmp_path / "test_stg1").exists()
    assert sum(v for k, v in r.counts.items() if k.startswith("valid/")) == 8
    odd = [m.getMessage() for m in warnings.records if "which no training image has" in m.getMessage()]
    assert len(odd) == 1 and "img_99999.jpg" in odd[0] and "77x55" in odd[0]


def test_prepare_understands_the_competition_zips(tmp_path):
    src = tmp_path / "src"
    fisheries.synthesize(src, seed=0, n=16, n_test=2)
    data = tmp_path / "fish"
    data.mkdir()
    inner = {}
    for folder in ("train", "test_stg1"):
        z = tmp_path / f"{folder}.zip"
        with zipfile.ZipFile(z, "w") as zf:
            for f in (src / folder).rglob("*.jpg"):
                zf.write(f, str(f.relative_to(src)))
        inner[folder] = z
    with zipfile.ZipFile(data / "the-nature-conservancy-fisheries-monitoring.zip", "w") as zf:
        for folder, z in inner.items():
            zf.write(z, f"{folder}.zip")
    r = prepare_data(data, valid=4, sample_train=2, sample_valid=2, progress=False)
    assert r.counts["test/unknown"] == 2 and sum(v for k, v in r.counts.items() if k.startswith("train/")) == 12

    ssrc = tmp_path / "ssrc"
    statefarm.synthesize(ssrc, seed=0, n=60, n_test=2, n_drivers=3, size=(64, 48))
    state = tmp_path / "state"
    state.mkdir()
    with zipfile.ZipFile(state / "state-farm-distracted-driver-detection.zip", "w") as zf:
        for f in ssrc.rglob("*"):
            if f.is_file():
                zf.write(f, str(f.relative_to(ssrc)))
    r = prepare_data(state, valid=10, sample_train=2, sample_valid=2, group_file="driver_imgs_list.csv",
                     group_column="subject", progress=False)
    assert r.counts["test/unknown"] == 2 and (state / "driver_imgs_list.csv").exists()


def test_cli_prepare_has_the_group_options(tmp_path, capsys):
    from dl1.cli import build_parser, main

    help_text = build_parser()._subparsers._group_actions[0].choices["prepare"].format_help()
    assert "--group-file" in help_text and "--group-column" in help_text
    statefarm.synthesize(tmp_path, seed=0, n=60, n_test=2, n_drivers=3, size=(64, 48))
    assert main(["prepare", str(tmp_path), "--valid", "10", "--sample-train", "2", "--sample-valid", "2",
                 "--group-file", "driver_imgs_list.csv", "--group-column", "subject"]) == 0
    assert "valid/c0" in capsys.readouterr().out


def test_gzip_submission_validates(tmp_path):
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=4)
    names = [f"unknown/img_{i}.jpg" for i in range(4)]
    df = multiclass_submission(do_clip(probs, 0.93), names, [f"c{i}" for i in range(10)])
    a = write_submission(df, tmp_path / "subm.gz", expected=[f"img_{i}.jpg" for i in range(4)])
    b = write_submission(df, tmp_path / "subm.csv", compress=True)
    assert b.endswith("subm.csv.gz")
    for p in (a, b):
        assert open(p, "rb").read(2) == b"\x1f\x8b"
        assert validate_submission(p).shape == (4, 11)
    bad = df.copy()
    bad.loc[0, "c3"] = 1.5
    bad.to_csv(tmp_path / "bad.csv.gz", index=False, compression="gzip")
    from dl1.io.errors import SubmissionError
    with pytest.raises(SubmissionError, match="outside"):
        validate_submission(tmp_path / "bad.csv.gz")


def test_do_clip_multiclass_floor():
    out = do_clip(np.array([[1.0] + [0.0] * 7]), 0.82)
    assert np.isclose(out[0, 0], 0.82) and np.allclose(out[0, 1:], 0.18 / 7) and np.isclose(out.sum(), 1)
    two = do_clip(np.array([[0.0, 1.0]]), 0.9)
    assert np.allclose(two, [[0.1, 0.9]])


@pytest.mark.parametrize("slug", ["the-nature-conservancy-fisheries-monitoring",
                                  "state-farm-distracted-driver-detection"])
def test_kaggle_download_of_both_competitions(tmp_path, fake_kaggle, slug):  # noqa: F811
    from dl1.cli import main

    assert main(["kaggle", "download", str(tmp_path / "d"), "--competition", slug]) == 0
    call = fake_kaggle()[0]
    assert call[:3] == ["competitions", "download", slug]
    assert (tmp_path / "d" / f"{slug}.zip").exists()


def test_the_stand_ins_are_registered():
    from dl1.data import datasets

    assert {"fisheries", "statefarm"} <= set(datasets.names())
    from dl1.io.errors import DL1Error
    with pytest.raises(DL1Error, match="dl1 kaggle download"):
        datasets.get("statefarm").download("/tmp/x")


def test_multi_batches_from_images(course_data):
    from dl1.data.batches import get_batches
    from dl1.train.multi import MultiBatches

    b = get_batches(str(course_data / "train"), batch_size=4, target_size=(16, 16), verbose=False)
    extra = np.arange(b.n, dtype=np.float32)[:, None]
    mb = MultiBatches([b, extra], [extra * 2, "labels"], batch_size=5, seed=0)
    (x, e), (y2, lab) = mb[0]
    assert x.shape == (5, 16, 16, 3) and np.allclose(y2, e * 2)
    idx = e[:, 0].astype(int)
    assert np.array_equal(lab.argmax(1), b.classes[idx])  # labels follow the same rows as the extra input
    assert mb.N == b.n and len(mb) == int(np.ceil(b.n / 5))
