"""``dl1 classify`` and ``ImageClassifier.predict_files``: any image files or folders, decoded as the batches
decode them, one row per image read, unreadable and non-image files named in one line and skipped."""

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from dl1.cli import main
from dl1.data.batches import get_batches
from dl1.data.files import load_images
from dl1.data.sample import write_sample
from dl1.workflow.steps import load_trained


@pytest.fixture(scope="module")
def trained(module_tmp):
    """A tiny trained stand-in: 40 synthetic cats/dogs, VGG16 with random weights at 32 px, one epoch."""
    d = module_tmp.mktemp("classify") / "pets"
    write_sample(str(d), n=40, layout="course", seed=1, max_side=120, progress=False)
    assert main(["finetune", str(d), "--weights", "none", "--size", "32", "--epochs", "1", "--batch-size", "16",
                 "--verbose", "0"]) == 0
    return d


@pytest.fixture(scope="module")
def model(trained):
    return load_trained(str(trained))[0]


def _photos(tmp_path, trained):
    """A folder as users have them: photos at two levels, a text file, an empty and a half JPEG, junk."""
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    shutil.copy(trained / "valid" / "cats" / "cat.16.jpg", folder / "b cat.jpg")
    shutil.copy(trained / "valid" / "dogs" / "dog.16.jpg", folder / "more" / "dog 2.jpg")
    data = (trained / "valid" / "dogs" / "dog.17.jpg").read_bytes()
    (folder / "half.jpg").write_bytes(data[:len(data) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not a photo\n")
    (folder / ".DS_Store").write_bytes(b"\0")
    return folder


def test_predict_files_gives_what_predict_gives_on_the_same_images(trained, model):
    valid = trained / "valid"
    df = model.predict_files([str(valid)])
    batches = get_batches(str(valid), shuffle=False, batch_size=5, target_size=(32, 32), verbose=False)
    want = model.model.predict(batches, verbose=0)
    assert list(df.columns) == ["cats", "dogs"] and df.index.name == "path"
    assert list(df.index) == [os.path.join(str(valid), f) for f in batches.filenames]
    np.testing.assert_allclose(df.to_numpy(), want, atol=1e-5)
    np.testing.assert_allclose(df.to_numpy().sum(axis=1), 1.0, atol=1e-5)
    assert df.attrs["skipped"] == {}


def test_predict_files_tta_is_the_mean_over_the_image_and_its_mirror(trained, model):
    files = [str(trained / "valid" / "cats" / "cat.17.jpg"), str(trained / "test" / "unknown")]
    df = model.predict_files(files, tta=2, batch_size=4)
    x, read, _ = load_images(list(df.index), (32, 32))
    assert read == list(df.index) and len(read) == 1 + len(os.listdir(trained / "test" / "unknown"))
    want = (model.model.predict(x, verbose=0) + model.model.predict(x[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(df.to_numpy(), want, atol=1e-5)
    assert not np.allclose(df.to_numpy(), model.predict_files(files).to_numpy(), atol=1e-7)


def test_the_2017_face_has_it_too(trained):
    from dl1.models.vgg16 import Vgg16

    vgg = Vgg16(weights=None, size=32, verbose=False)
    df = vgg.predict_files(str(trained / "valid" / "cats" / "cat.16.jpg"))
    assert df.shape == (1, 1000) and df.columns[0] == "class_0"


def test_classify_prints_a_table_writes_the_csv_and_names_what_it_skips(trained, model, tmp_path, capsys):
    folder = _photos(tmp_path, trained)
    single = trained / "test" / "unknown" / "1.jpg"
    out = tmp_path / "probs.csv"
    assert main(["classify", str(trained), str(folder), str(single), "--csv", str(out)]) == 0
    captured = capsys.readouterr()
    read = [str(folder / "b cat.jpg"), str(folder / "more" / "dog 2.jpg"), str(single)]
    df = pd.read_csv(out)
    assert list(df.columns) == ["path", "cats", "dogs"] and list(df["path"]) == read
    want = model.predict_files(read)
    np.testing.assert_allclose(df[["cats", "dogs"]].to_numpy(), want.to_numpy(), atol=1e-6)
    lines = captured.out.splitlines()
    assert lines[0].split() == ["image", "class", "probability", "cats", "dogs"]
    for line, path in zip(lines[1:4], read, strict=True):
        p = want.loc[path]
        assert line.startswith(path) and line[len(path):].split() == [
            p.idxmax(), f"{p.max():.4f}", f"{p['cats']:.4f}", f"{p['dogs']:.4f}"]
    assert lines[4] == f"Wrote {out}: 3 rows, one column per class (cats, dogs)"
    assert captured.err.splitlines() == [
        f"Warning: skipped 2 file(s) that are not readable images: {folder / 'notes.txt'} (not an image file "
        f"name), {folder / 'empty.jpg'} (empty file)",
        f"Warning: skipped 1 unreadable image(s): {folder / 'half.jpg'} (truncated image (incomplete download?))"]


def _bomb(path):
    """A PNG header claiming 30000x30000 pixels (900 million: past Pillow's limit) and no pixels."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def test_prediction_table_shows_the_top_classes_past_six(capsys):
    from dl1.workflow.steps import prediction_table

    names = [f"breed{i}" for i in range(8)]
    probs = np.full((2, 8), 0.05, dtype=np.float32)
    probs[0, [6, 2, 4]] = [0.4, 0.2, 0.1]
    probs[1, 0] = 0.65
    df = pd.DataFrame(probs, columns=names, index=pd.Index(["a.jpg", "photos/b.jpg"], name="path"))
    assert prediction_table(df).splitlines() == [
        "image         class   probability  top 3",
        "a.jpg         breed6  0.4000       breed6 0.4000  breed2 0.2000  breed4 0.1000",
        "photos/b.jpg  breed0  0.6500       breed0 0.6500  breed1 0.0500  breed2 0.0500"]


def test_a_file_named_explicitly_is_tried_whatever_its_name(trained, model, tmp_path, capsys):
    jpeg = tmp_path / "photo.download"
    shutil.copy(trained / "valid" / "dogs" / "dog.18.jpg", jpeg)
    text = tmp_path / "photo.jpg"
    text.write_text("<html>a web page saved as .jpg</html>")
    bomb = _bomb(tmp_path / "huge.png")
    df = model.predict_files([jpeg, text, bomb])
    assert list(df.index) == [str(jpeg)]
    too_big = ("image too large to decode safely (Image size (900000000 pixels) exceeds limit of 600000000 "
               "pixels, could be decompression bomb DOS attack.)")
    assert df.attrs["skipped"] == {str(text): "not an image file (Pillow cannot identify it)", str(bomb): too_big}
    assert capsys.readouterr().err.strip() == (f"Warning: skipped 2 file(s) that are not readable images: {text} "
                                               f"(not an image file (Pillow cannot identify it)), {bomb} ({too_big})")


@pytest.mark.parametrize("argv, code, message", [
    (["{d}", "{tmp}/nope.jpg", "{tmp}/gone"], 1, "not found: {tmp}/nope.jpg, {tmp}/gone"),
    (["{d}", "{tmp}/notes.txt"], 1, "no readable image in {tmp}/notes.txt"),
    (["{d}", "{d}/valid", "--tta", "0"], 2, "--tta must be 1 or more, not 0"),
    (["{d}", "{d}/valid", "--batch-size", "0"], 2, "--batch-size must be 1 or more, not 0"),
    (["{tmp}", "{d}/valid"], 1, "no trained model in {tmp}/results: run 'dl1 finetune' first"),
    (["{d}", "{d}/valid", "--weights", "{tmp}/ft9.h5"], 1, "weights file not found: {tmp}/ft9.h5; run 'dl1 "
                                                            "finetune' (or give --weights)"),
])
def test_classify_errors_are_one_line(trained, tmp_path, capsys, argv, code, message):
    (tmp_path / "notes.txt").write_text("not a photo")
    fill = {"d": str(trained), "tmp": str(tmp_path)}
    assert main(["classify"] + [a.format(**fill) for a in argv]) == code
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "dl1: error: " + message.format(**fill)
