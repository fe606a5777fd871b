"""``dl1 app``, tested as a user would: the command started on a trained stand-in model, driven in a real headless
Chromium (``tests/browser.py``): an upload and a validation image give the class and probabilities ``dl1
classify`` gives; a text file, a truncated JPEG, a 6000x4000 photo and a 16-bit PNG each get a message in the
page and the app goes on serving. The app serves the exported ONNX file without PyTorch in the process, reaches
nothing outside this machine, warns off the loopback, and says which extra to install without Gradio."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import browser
import numpy as np
import pandas as pd
import pytest

from dl1.cli import main
from dl1.data.sample import write_sample
from dl1.io.errors import DL1Error

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCREENSHOT = os.path.join(REPO, "docs", "app.png")  # the README's picture; DL1_UPDATE_SCREENSHOT=1 retakes it
CLOSE = 1.5e-4  # the page shows 4 decimals (5e-5), the CSV 6 digits, ONNX Runtime vs Keras within 1e-4


@pytest.fixture(scope="module")
def served(module_tmp):
    """A trained stand-in (60 synthetic cats/dogs, VGG16 on stand-in weights at 32 px, three epochs), exported
    to ONNX as the README says: what ``dl1 app`` serves."""
    from dl1.models.standin import make_standin_weights

    root = module_tmp.mktemp("app")
    d = root / "pets"
    write_sample(str(d), n=60, layout="course", seed=4, max_side=160, progress=False)
    weights = root / "standin32.h5"
    make_standin_weights(str(weights), str(d / "train"), size=32, seed=0, verbose=False)
    assert main(["finetune", str(d), "--weights", str(weights), "--size", "32", "--epochs", "3", "--lr", "0.01",
                 "--batch-size", "8", "--verbose", "0"]) == 0
    assert main(["export", str(d), "--format", "onnx"]) == 0
    return d


def _uploads(folder, served):
    """A photo, and the four files a web app gets that are not what it expects."""
    from PIL import Image, ImageDraw

    folder.mkdir()
    shutil.copy(served / "test" / "unknown" / "1.jpg", folder / "photo.jpg")
    (folder / "notes.txt").write_text("a shopping list, not a photo\n")
    data = (served / "test" / "unknown" / "2.jpg").read_bytes()
    (folder / "half.jpg").write_bytes(data[:len(data) // 2])
    yy, xx = np.mgrid[0:500, 0:750]
    small = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    big = Image.fromarray(small).resize((6000, 4000), Image.Resampling.NEAREST)
    ImageDraw.Draw(big).ellipse((2000, 1000, 4000, 3000), fill=(210, 60, 40))
    big.save(folder / "big.jpg", quality=80)
    Image.fromarray(np.linspace(0, 65535, 96 * 64).reshape(64, 96).astype(np.uint16)).save(folder / "deep.png")
    assert Image.open(folder / "deep.png").mode == "I;16"
    return folder


def _dl1():
    exe = os.path.join(os.path.dirname(sys.executable), "dl1")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "dl1"]


class Page:
    """The app in the browser: upload a file, pick a gallery image, read the answer."""

    def __init__(self, driver):
        from selenium.webdriver.common.by import By

        self.driver, self.by = driver, By

    def find(self, css):
        return self.driver.find_elements(self.by.CSS_SELECTOR, css)

    def upload(self, path):
        browser.wait_for(lambda: self.find("#dl1-upload input[type=file]"), 30, "the upload field")
        self.find("#dl1-upload input[type=file]")[0].send_keys(str(path))
        return self.answer(os.path.basename(path))

    def pick(self, caption):
        thumbs = browser.wait_for(lambda: [t for t in self.find("#dl1-examples button.thumbnail-item")
                                           if caption in t.text], 30, f"the thumbnail {caption}")
        thumbs[0].click()
        return self.answer(caption)

    def answer(self, name):
        """``(text, {class: probability}, bars text)`` once the answer names ``name``."""
        text = browser.wait_for(lambda: " ".join(self.find("#dl1-answer")[0].text.split())
                                if name in self.find("#dl1-answer")[0].text else None, 90, f"the answer for {name}")
        rows = [r.find_elements(self.by.TAG_NAME, "td") for r in self.find("#dl1-answer table tbody tr")]
        probs = {cells[0].text: float(cells[1].text) for cells in rows}
        return text, probs, self.find("#dl1-bars")[0].text

    def seen_size(self):
        imgs = self.find("#dl1-seen img")
        return tuple(self.driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]",
                                                imgs[0])) if imgs else None


def _same(probs, row):
    assert set(probs) == set(row.index), (probs, row)
    for name, p in probs.items():
        assert abs(p - row[name]) <= CLOSE, (name, p, row[name])


def test_the_app_in_a_browser_answers_as_classify_does(served, tmp_path):
    browser.ensure_chromium()
    up = _uploads(tmp_path / "uploads", served)
    example = served / "valid" / "dogs" / sorted(os.listdir(served / "valid" / "dogs"))[0]
    csv = tmp_path / "classify.csv"
    assert main(["classify", str(served), str(up), str(example), "--csv", str(csv)]) == 0
    expected = pd.read_csv(csv, index_col="path")
    assert sorted(os.path.basename(p) for p in expected.index) == sorted(["big.jpg", "deep.png", "photo.jpg",
                                                                          example.name])

    port = browser.free_port()
    log = open(tmp_path / "app.log", "w+")
    started = time.perf_counter()
    server = subprocess.Popen(_dl1() + ["app", str(served), "--port", str(port)], stdout=log,
                              stderr=subprocess.STDOUT, cwd=str(tmp_path))
    try:
        url = f"http://127.0.0.1:{port}/"
        browser.wait_for_http(url, timeout=180, process=server)
        print(f"dl1 app answered after {time.perf_counter() - started:.1f} s")
        maps = open(f"/proc/{server.pid}/maps").read()
        assert "onnxruntime" in maps and "libtorch" not in maps, "the ONNX path must not load PyTorch"
        with browser.chromium(window=(1280, 860)) as driver:
            driver.get(url)
            page = Page(driver)
            text, probs, bars = page.upload(up / "photo.jpg")
            row = expected.loc[str(up / "photo.jpg")]
            _same(probs, row)
            best = row.idxmax()
            assert list(probs)[0] == best and text.startswith(f"{best} ({row[best]:.1%})") and best in bars
            assert page.seen_size() == (224, 224)  # the 32x32 the model saw, each pixel shown 7x7

            for name, reason in (("notes.txt", "not an image file (Pillow cannot identify it)"),
                                 ("half.jpg", "truncated image (incomplete download?)")):
                text, probs, bars = page.upload(up / name)
                assert text.replace(" :", ":") == f"Cannot classify {name}: {reason}. Try another photo."
                assert probs == {} and page.seen_size() is None and "cats" not in bars
            for name, what in (("big.jpg", "6000x4000 JPEG, RGB, resized to 32x32"),
                               ("deep.png", "96x64 PNG, 16-bit grayscale, converted to 8-bit RGB, resized to 32x32")):
                text, probs, _ = page.upload(up / name)
                assert what in text
                _same(probs, expected.loc[str(up / name)])

            text, probs, bars = page.pick(f"dogs/{example.name}")  # a validation image from the gallery
            row = expected.loc[str(example)]
            _same(probs, row)
            assert text.startswith(f"{row.idxmax()} (") and row.idxmax() in bars and page.seen_size() == (224, 224)
            assert server.poll() is None, "the app stopped"

            fetched = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
            outside = [u for u in fetched if not u.startswith((url, "data:", "blob:"))]
            assert not outside, f"the page fetched from outside this machine: {outside}"
            driver.save_screenshot(str(tmp_path / "app.png"))
    finally:
        server.terminate()
        server.wait(timeout=30)
    log.seek(0)
    out = log.read()
    assert f"Serving 2 classes (cats, dogs) with ONNX Runtime at {url} (Ctrl-C stops)" in out, out
    assert "share=True" not in out and "Traceback" not in out, out
    if os.environ.get("DL1_UPDATE_SCREENSHOT"):
        from PIL import Image

        Image.open(tmp_path / "app.png").convert("RGB").quantize(256, dither=Image.Dither.NONE).save(
            SCREENSHOT, optimize=True)


def test_the_readme_screenshot_is_small():
    from PIL import Image

    assert os.path.getsize(SCREENSHOT) < 200_000
    with Image.open(SCREENSHOT) as img:
        assert img.format == "PNG" and img.width >= 1000


def test_the_app_reaches_nothing_outside_and_warns_off_the_loopback(served, tmp_path):
    """Gradio's analytics and version check are off: a process that starts the app (on 0.0.0.0) and loads its
    page connects to, or looks up, no other host, and imports neither Keras nor PyTorch; a port in use is one
    line."""
    port = browser.free_port()
    example = served / "valid" / "cats" / sorted(os.listdir(served / "valid" / "cats"))[0]
    code = textwrap.dedent(f"""
        import json, sys, urllib.request
        hosts = set()
        def audit(event, args):
            if event == "socket.connect" and isinstance(args[1], tuple):
                hosts.add(str(args[1][0]))
            elif event == "socket.getaddrinfo":
                hosts.add(str(args[0]))
        sys.addaudithook(audit)
        import socket
        from dl1.io.errors import DL1Error
        from dl1.serve.app import serve
        from dl1.serve.engines import OnnxEngine
        engine = OnnxEngine({str(served / 'results' / 'model.onnx')!r})
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            try:
                serve(engine, host="127.0.0.1", port=busy)
                refused = None
            except DL1Error as e:
                refused = str(e).replace(str(busy), "PORT")
        running = serve(engine, [{str(example)!r}], host="0.0.0.0", port={port})
        for path in ("", "config", "theme.css"):
            urllib.request.urlopen("http://127.0.0.1:{port}/" + path, timeout=60).read()
        running.close()
        print(json.dumps({{"hosts": sorted(hosts), "stack": [m for m in ("keras", "torch") if m in sys.modules],
                          "refused": refused}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(seen["hosts"]) <= {"127.0.0.1", "0.0.0.0", "localhost", "::1"}, seen
    assert seen["stack"] == []
    assert seen["refused"] == "cannot serve on 127.0.0.1:PORT: it is in use (try another --port)"
    assert (f"Warning: serving on 0.0.0.0: anyone who can reach this machine on port {port} can use the app and "
            "upload files to it (the default, 127.0.0.1, is this machine only)") in r.stderr.splitlines()


def test_the_app_serves_onnx_when_it_is_up_to_date_and_keras_otherwise(served, tmp_path, capsys):
    from dl1.serve.answer import answer
    from dl1.serve.engines import KerasEngine, OnnxEngine
    from dl1.workflow.steps import app_engine, load_trained

    d = tmp_path / "pets"
    shutil.copytree(served, d, ignore=shutil.ignore_patterns(".dl1-cache"))
    onnx_engine = app_engine(str(d))
    assert isinstance(onnx_engine, OnnxEngine) and onnx_engine.classes == ["cats", "dogs"]
    record = json.loads((d / "results" / "dl1-model.json").read_text())
    weights = d / "results" / record["weights"]
    later = os.path.getmtime(d / "results" / "model.onnx") + 10
    os.utime(weights, (later, later))  # trained again after the export
    capsys.readouterr()
    keras_engine = app_engine(str(d))
    assert isinstance(keras_engine, KerasEngine)
    assert capsys.readouterr().out.strip() == (f"Note: {d / 'results' / 'model.onnx'} is older than {weights}: "
                                               "serving the Keras model ('dl1 export DIR --format onnx' updates it)")
    assert isinstance(app_engine(str(d), engine="onnx"), OnnxEngine)
    assert isinstance(app_engine(str(served), engine="keras"), KerasEngine)
    photo = served / "test" / "unknown" / "3.jpg"
    a, b = answer(onnx_engine, photo), answer(keras_engine, photo)
    assert a.description == b.description and a.description.endswith(" JPEG, RGB, resized to 32x32")
    assert list(a.probabilities) == list(b.probabilities)
    np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4)
    np.testing.assert_array_equal(a.seen, b.seen)
    want = load_trained(str(served))[0].predict_files([photo]).iloc[0]
    np.testing.assert_allclose([a.probabilities[c] for c in want.index], want.to_numpy(), atol=1e-4)
    bomb = tmp_path / "huge.png"  # a header claiming 30000x30000 pixels, and no pixels
    bomb.write_bytes(bytes.fromhex("89504e470d0a1a0a0000000d49484452000075300000753001000000004e5cc517000000"
                                   "0849444154789c030000000001480689d20000000049454e44ae426082"))
    refused = answer(onnx_engine, bomb)
    assert refused.probabilities == {} and refused.seen is None and refused.problem == (
        "image too large to decode safely (Image size (900000000 pixels) exceeds limit of 600000000 pixels, could "
        "be decompression bomb DOS attack.)")
    os.remove(d / "results" / "model.onnx")
    with pytest.raises(DL1Error) as e:
        app_engine(str(d), engine="onnx")
    assert str(e.value) == f"no {d / 'results' / 'model.onnx'} to serve: run 'dl1 export DIR --format onnx' first"


def test_without_gradio_the_app_names_the_extra(served, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if it were not installed
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    assert main(["app", str(served)]) == 1  # the environment lacks it: exit 1
    assert capsys.readouterr().err.strip() == ("dl1: error: dl1 app needs Gradio, the optional extra dl1[app]: pip "
                                               "install 'dl1[app]' (or pip install gradio)")


@pytest.mark.parametrize("argv, message", [
    (["--port", "70000"], "--port must be 65535 or less, not 70000"),
    (["--port", "0"], "--port must be 1 or more, not 0"),
    (["--engine", "onnx", "--weights", "{d}/results/ft3.h5"], "--weights picks the Keras model's weights and the "
                                                              "ONNX file holds its own: give one of --weights and "
                                                              "--engine onnx"),
])
def test_app_options_are_checked_in_one_line(served, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    assert main(["app", str(served)] + [a.format(d=served) for a in argv]) == 2
    assert capsys.readouterr().err.strip() == "dl1: error: " + message.format(d=served)
