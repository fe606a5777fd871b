"""The digits loader (Kaggle's digit-recognizer train.csv, or scikit-learn's digits) and the `digits` data set."""

import hashlib
import http.server
import io
import os
import threading

import numpy as np
import pandas as pd
import pytest

from dl1.cli import main
from dl1.data import datasets
from dl1.data.digits import PIXEL_COLUMNS, load_digits, read_digits_csv, write_digits_csv
from dl1.io.errors import DataError


def _csv(path, df):
    df.to_csv(path, index=False)
    return path


def _frame(n=5, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.integers(0, 256, (n, 784)), columns=PIXEL_COLUMNS)
    df.insert(0, "label", rng.integers(0, 10, n))
    return df


def test_reads_kaggle_format_pixels_in_row_order(tmp_path):
    df = _frame(4)
    images, labels = read_digits_csv(_csv(tmp_path / "train.csv", df))
    assert images.shape == (4, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, df["label"])
    # pixel28 is the first pixel of the second row
    assert images[2, 1, 0] == df.loc[2, "pixel28"] and images[3, 27, 27] == df.loc[3, "pixel783"]


def test_sklearn_digits_only_when_no_path_is_given(capsys):
    images, labels, source = load_digits(None)
    assert source == "sklearn" and images.shape == (1797, 28, 28) and images.dtype == np.float32
    assert 200 < images.max() <= 255 and images.min() == 0
    assert sorted(set(labels)) == list(range(10))
    assert capsys.readouterr().err == ("Warning: no path given: scikit-learn's 1,797 8x8 digits enlarged, not MNIST "
                                       "(give the folder of Kaggle's train.csv, or run dl1 download digits DIR)\n")


def test_a_folder_without_train_csv_is_refused_not_swapped_for_sklearn(tmp_path, capsys):
    (tmp_path / "test.csv").write_text("pixel0\n0\n")  # Kaggle's unlabelled file alone is not enough
    with pytest.raises(DataError) as e:
        load_digits(tmp_path)
    assert str(e.value) == (f"{tmp_path} holds no train.csv (nor train.csv.zip/.gz): put Kaggle's digit-recognizer "
                            f"train.csv there or run dl1 download digits {tmp_path}; load_digits(None) uses "
                            "scikit-learn's digits")
    assert capsys.readouterr().err == ""  # nothing loaded, nothing to warn about


def test_a_given_path_never_falls_back_to_other_digits(tmp_path):
    with pytest.raises(DataError) as e:
        load_digits(tmp_path / "mnsit")  # mistyped
    assert str(e.value) == (f"{tmp_path / 'mnsit'}: no such file or folder (want Kaggle's digit-recognizer "
                            "train.csv or its folder; load_digits() without a path uses scikit-learn's digits)")
    (tmp_path / "notes.txt").write_text("my notes\n")
    with pytest.raises(DataError, match="notes.txt: no 'label' column"):
        load_digits(tmp_path / "notes.txt")
    # Kaggle's train.csv.zip (and .gz) is read as it is, given or found in the folder
    df = _frame(6, seed=2)
    df.to_csv(tmp_path / "train.csv.zip", index=False)
    images, labels, source = load_digits(tmp_path / "train.csv.zip")
    assert source == "csv" and images.shape == (6, 28, 28) and labels.tolist() == df["label"].tolist()
    assert load_digits(tmp_path)[2] == "csv"


def test_pixel_columns_in_another_order_are_read_by_name(tmp_path):
    df = _frame(3, seed=1)
    shuffled = df[["label"] + PIXEL_COLUMNS[::-1]]
    images, labels = read_digits_csv(_csv(tmp_path / "train.csv", shuffled))
    np.testing.assert_array_equal(images.reshape(3, -1), df[PIXEL_COLUMNS].to_numpy())
    trailing = tmp_path / "trailing.csv"  # data rows that end in a comma do not shift the columns
    trailing.write_text(df.to_csv(index=False).replace("\n", ",\n").replace(",\n", "\n", 1))
    images2, labels2 = read_digits_csv(trailing)
    np.testing.assert_array_equal(images2, images)
    np.testing.assert_array_equal(labels2, labels)


def test_write_read_round_trip_and_resize(tmp_path):
    images, labels, _ = load_digits(None)
    write_digits_csv(tmp_path / "train.csv", images[:30], labels[:30])
    back, back_labels, source = load_digits(tmp_path)
    assert source == "csv"
    np.testing.assert_array_equal(back, np.round(images[:30]))
    np.testing.assert_array_equal(back_labels, labels[:30])
    small, _, _ = load_digits(tmp_path, side=14)
    assert small.shape == (30, 14, 14)


@pytest.mark.parametrize("change, message", [
    (lambda df: df.drop(columns="label"), "no 'label' column"),
    (lambda df: df.drop(columns=["pixel783", "pixel782"]), "782 pixel columns, want 784"),
    (lambda df: df.assign(pixel5=["x"] * len(df)), "column pixel5 holds values that are not numbers"),
    (lambda df: df.assign(label=[3, 12, 1, 0, 2]), "line 3 has label '12', want a digit 0-9"),
    (lambda df: df.assign(label=[3, 1.7, 1, 0, 2]), "line 3 has label '1.7', want a digit 0-9"),
    (lambda df: df.assign(pixel0=[0, 0, 0, 300, 0]), "line 5 has pixel values outside 0-255"),
    (lambda df: df.assign(pixel9=[0, 0.5, 0, 0, 0]), "line 3 has pixel values that are not whole numbers"),
    (lambda df: df.rename(columns={"pixel9": "px9"}), "column 'px9' is not one of pixel0..pixel783"),
    (lambda df: df.iloc[:0], "no rows after the header"),
])
def test_bad_csv_is_one_line_naming_the_file(tmp_path, change, message):
    path = _csv(tmp_path / "train.csv", change(_frame(5)))
    with pytest.raises(DataError) as e:
        load_digits(tmp_path)
    text = str(e.value)
    assert message in text and str(path) in text and "\n" not in text


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "train.csv").write_text("")
    with pytest.raises(DataError, match="train.csv: the file is empty"):
        load_digits(tmp_path)
    with pytest.raises(DataError, match="nope.csv: no such file or folder"):
        load_digits(tmp_path / "nope.csv")


def test_test_csv_without_labels(tmp_path):
    df = _frame(3).drop(columns="label")
    images, labels = read_digits_csv(_csv(tmp_path / "test.csv", df), labelled=False)
    assert images.shape == (3, 28, 28) and labels is None


def test_digits_dataset_is_registered_and_synthesizes_kaggle_format(tmp_path, capsys):
    assert "digits" in datasets.names()
    assert main(["sample", str(tmp_path / "d"), "--dataset", "digits", "--n", "50", "--seed", "3"]) == 0
    df = pd.read_csv(tmp_path / "d" / "train.csv")
    assert list(df.columns) == ["label"] + PIXEL_COLUMNS and len(df) == 50
    images, labels, source = load_digits(tmp_path / "d")
    assert source == "csv" and images.shape == (50, 28, 28)
    counts = datasets.get("digits").synthesize(str(tmp_path / "all"), seed=0)
    assert counts == {"train.csv": 1797}


def test_digits_download_converts_mnist_npz_to_kaggle_csvs(tmp_path, monkeypatch):
    """The download path against a local server holding a small mnist.npz (checksummed, then converted)."""

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x_train=rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 12),
             x_test=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 5))
    payload = buf.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("DL1_OFFLINE", "0")
        url = f"http://127.0.0.1:{server.server_port}/mnist.npz#sha256={hashlib.sha256(payload).hexdigest()}"
        counts = datasets.get("digits").download(str(tmp_path), verbose=False, urls=[url])
    finally:
        server.shutdown()
    assert counts == {"train.csv": 12, "test.csv": 5}
    images, labels = read_digits_csv(tmp_path / "train.csv")
    with np.load(io.BytesIO(payload)) as f:
        np.testing.assert_array_equal(images, f["x_train"])
        np.testing.assert_array_equal(labels, f["y_train"])
    assert "label" not in pd.read_csv(tmp_path / "test.csv", nrows=1).columns
    assert not any(n.endswith(".part") for n in os.listdir(tmp_path))
