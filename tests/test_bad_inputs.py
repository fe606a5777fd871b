"""The bad-input corpus, end to end: what users' scraped folders and half downloads contain, through
`dl1 prepare`, `finetune`, `predict` and `submit`. Each case is handled (converted, read, or skipped and
named) or stopped with one line naming the path; never a traceback. Generated here, nothing committed."""

import errno
import io
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dl1.cli import main


def _jpeg(img, **kw):
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png(img):
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def corpus():
    """file name -> bytes: every kind of awkward file from the issue, with a class prefix."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    full = _jpeg(photo, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "cat.900.jpg": b"",                                              # zero bytes
        "dog.901.jpg": full[: len(full) // 2],                           # truncated download
        "cat.902.jpg": b"<html><body>404 Not Found</body></html>",      # text named .jpg
        "dog.903.png": _png(Image.new("RGBA", (50, 40), (255, 0, 0, 60))),  # alpha
        "cat.904.png": _png(photo.convert("P")),                         # palette
        "dog.905.png": _png(Image.fromarray(rng.integers(0, 65535, (40, 50), dtype=np.uint16))),  # 16-bit
        "cat.906.jpg": _jpeg(photo.convert("CMYK")),                     # CMYK
        "dog.907.jpg": _jpeg(photo.convert("L")),                        # grayscale
        "cat.908.jpg": _jpeg(photo, exif=exif),                          # EXIF-rotated
        "dog.909.jpg": _jpeg(Image.new("RGB", (6000, 4000), (9, 99, 199)), quality=30),  # very large
        "cat.910.png": _png(Image.new("RGB", (1, 1), (1, 2, 3))),        # 1x1
        "cat.911 é ü.jpg": full,                                         # non-ASCII and spaces
        "dog.912 copy (2).jpg": full,
        ".DS_Store": b"\0\0\0\1Bud1",                                    # hidden files
        "Thumbs.db": b"\xd0\xcf\x11\xe0",
    }


@pytest.fixture
def messy(tmp_path):
    """A raw Kaggle-layout synthetic set with the whole corpus mixed into train/ and test/."""
    from dl1.data.sample import write_sample

    root = tmp_path / "messy"
    write_sample(str(root), n=60, n_test=12, seed=2, max_side=120, progress=False)
    for name, data in corpus().items():
        (root / "train" / name).write_bytes(data)
    for name, data in [("100.jpg", b""), ("101.jpg", corpus()["dog.901.jpg"]), ("102.png",
                       corpus()["dog.905.png"]), (".DS_Store", b"x")]:
        (root / "test" / name).write_bytes(data)
    os.symlink(root / "train", root / "train" / "loop")  # a symlink loop inside the data
    return root


def test_the_whole_flow_survives_the_corpus(messy, capsys, seeded):
    d = str(messy)
    assert main(["prepare", d, "--valid", "12", "--sample-train", "6", "--sample-valid", "3"]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    aside = sorted(os.path.relpath(os.path.join(r, f), messy / "unreadable")
                   for r, _, fs in os.walk(messy / "unreadable") for f in fs)
    assert aside == [os.path.join("train", "cats", "cat.900.jpg"), os.path.join("train", "cats", "cat.902.jpg")]
    # (the empty file and the text file are set aside, named, never deleted)
    assert "cat.900.jpg" in out.out and "cat.902.jpg" in out.out
    assert sorted(os.listdir(messy / "test" / "unknown")) == sorted(
        [f"{i}.jpg" for i in range(1, 13)] + ["100.jpg", "101.jpg", "102.png"])

    assert main(["finetune", d, "--weights", "none", "--size", "32", "--epochs", "1", "--batch-size", "8",
                 "--verbose", "0"]) == 0
    out = capsys.readouterr()
    assert "dog.901.jpg" in out.err and "truncated" in out.err  # found while decoding, named, skipped
    assert "Traceback" not in out.out + out.err

    assert main(["predict", d]) == 0
    out = capsys.readouterr()
    assert "100.jpg (empty file)" in out.err  # an unreadable test image keeps its row, with a warning
    assert main(["submit", d]) == 0
    df = pd.read_csv(messy / "results" / "submission.csv")
    assert sorted(df["id"]) == list(range(1, 13)) + [100, 101, 102]  # every test id has a prediction


def test_every_odd_image_decodes_to_a_sane_rgb_array(tmp_path):
    from dl1.data.images import UnreadableImage, load_resized

    readable, unreadable = {}, []
    for name, data in corpus().items():
        if name.startswith(".") or name == "Thumbs.db":
            continue
        path = tmp_path / name
        path.write_bytes(data)
        try:
            readable[name] = load_resized(str(path), (24, 24))
        except UnreadableImage as e:
            assert name in str(e)
            unreadable.append(name)
    assert sorted(unreadable) == ["cat.900.jpg", "cat.902.jpg", "dog.901.jpg"]
    for name, arr in readable.items():
        assert arr.shape == (24, 24, 3) and 0 <= arr.min() and arr.max() <= 255, name
    assert readable["dog.909.jpg"][..., 2].mean() > 190  # the 24-megapixel image, decoded at reduced scale


@pytest.mark.parametrize("break_it, message", [
    (lambda d: os.makedirs(d / "train" / "birds"), "empty class folder: {d}/train/birds"),
    (lambda d: os.rename(d / "valid" / "dogs", d / "valid" / "puppies"),
     "training and validation class folders differ (only in {d}/train: dogs; only in {d}/valid: puppies)"),
    (lambda d: shutil.rmtree(d / "valid"), "folder not found: {d}/valid"),
])
def test_folder_problems_stop_with_one_line(tmp_path, course_data, capsys, break_it, message):
    d = tmp_path / "d"
    for split in ("train", "valid"):
        shutil.copytree(course_data / split, d / split)
    break_it(d)
    assert main(["finetune", str(d), "--weights", "none", "--size", "32", "--verbose", "0"]) == 1
    err = capsys.readouterr().err
    assert message.format(d=d) in err and err.count("\n") == 1


def test_a_crash_while_saving_weights_keeps_the_old_file(tmp_path, monkeypatch):
    import keras

    from dl1.nn.model import Sequential

    m = Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    target = tmp_path / "ft1.h5"
    m.save_weights(str(target))
    before = target.read_bytes()
    m.layers[0].set_weights([w + 1 for w in m.layers[0].get_weights()])

    real_write = os.write

    def explode(fd, data):  # half the bytes reach the disk, then it is full
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "write", explode)
    with pytest.raises(OSError, match="the disk is full: cannot write the weights ft1.h5 in "):
        m.save_weights(str(target))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["ft1.h5"]
