"""Warnings about many files are one line: the count and three examples (dl1.io.log.warn_files), from every
place that used to print one line per file."""

import logging

from PIL import Image

from dl1.cli import main
from dl1.io.log import examples, warn_files


def test_examples_and_the_one_line(caplog):
    assert examples([]) == "" and examples(["a", "b"]) == "a, b"
    assert examples([f"f{i}" for i in range(10)]) == "f0, f1, f2 and 7 more"
    with caplog.at_level(logging.WARNING, logger="dl1"):
        assert warn_files("skipped {count} unreadable image(s)", []) == []
        warn_files("skipped {count} unreadable image(s)", [f"x{i}.jpg (truncated)" for i in range(5)])
    assert [r.getMessage() for r in caplog.records] == [
        "skipped 5 unreadable image(s): x0.jpg (truncated), x1.jpg (truncated), x2.jpg (truncated) and 2 more"]


def test_prepare_names_odd_test_sizes_in_one_line(tmp_path, capsys):
    d = tmp_path / "redux"
    assert main(["sample", str(d), "--n", "40", "--n-test", "0", "--max-size", "64"]) == 0
    (d / "test").mkdir(exist_ok=True)
    for i in range(6):
        Image.new("RGB", (101 + i, 17), (i, i, i)).save(d / "test" / f"{i + 1}.jpg")
    capsys.readouterr()
    assert main(["prepare", str(d), "--valid", "8", "--sample-train", "8", "--sample-valid", "4"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "no training image has" in line]
    test = d / "test" / "unknown"
    assert len(lines) == 1, err
    assert lines[0].startswith(f"Warning: 6 test image(s) in {d / 'test'} of a size which no training image has (")
    assert lines[0].endswith(f"resized like the others: {test / '1.jpg'} (101x17), {test / '2.jpg'} (102x17), "
                             f"{test / '3.jpg'} (103x17) and 3 more")


def test_unreadable_files_are_one_line(tmp_path, capsys):
    from dl1.data.files import report_skipped

    report_skipped({f"/d/{i}.jpg": "not an image file" for i in range(4)}, "file(s) that are not readable images")
    assert capsys.readouterr().err == ("Warning: skipped 4 file(s) that are not readable images: /d/0.jpg (not an "
                                       "image file), /d/1.jpg (not an image file), /d/2.jpg (not an image file) "
                                       "and 1 more\n")
