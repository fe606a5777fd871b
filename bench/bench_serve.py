"""(f) The app's answer to one photo: ONNX Runtime on the exported file (what ``dl1 app`` serves after ``dl1
export --format onnx``) against the Keras model (what it serves without the export): the same VGG16 with the
same weights (stand-in VGG16 weights, ``dl1.models.standin``), the same photos, the same decoding, in
this run.

- ``app_answer_onnx_vs_keras_seconds``: one photo as the app answers it (``dl1.serve.answer.answer``: open,
  decode at reduced scale, resize to the model's size, predict, rank the classes), median seconds per photo,
  the two engines taken in turn on each photo. The issue's target: under 1 s for a 224-px VGG16 on 2 cores.
- ``batch_onnx_vs_keras_images_per_s``: all the photos, decoded once, in one batch (images/s).
- ``start_onnx_vs_keras_seconds``: a fresh Python process until the model is ready to answer: importing
  ``dl1.serve.engines`` and opening the ONNX session, against importing ``dl1.workflow.steps`` and
  ``load_trained`` (Keras, PyTorch, building VGG16, reading the weights), as ``dl1 app`` does either way.

The largest difference between the two engines' probabilities is printed too.

    python bench/bench_serve.py            # VGG16 at 224 px, 8 photos of up to 500 px, 3 rounds
    python bench/bench_serve.py --quick    # 32 px, 4 photos, 2 rounds (also --tiny)
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

import dl1  # noqa: F401  (picks the Keras backend before Keras is imported)

START_ONNX = """
import time; t = time.perf_counter()
from dl1.serve.engines import OnnxEngine
OnnxEngine({path!r})
print(time.perf_counter() - t)
"""
START_KERAS = """
import time; t = time.perf_counter()
from dl1.workflow.steps import load_trained
load_trained({root!r})
print(time.perf_counter() - t)
"""


def started(code):
    """Wall-clock seconds of a fresh interpreter running ``code`` (which prints its own in-process figure)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", "--tiny", dest="quick", action="store_true", help="smoke-test size")
    p.add_argument("--size", type=int, default=None, help="the model's input side (default 224; --quick 32)")
    p.add_argument("--n", type=int, default=None, help="photos (default 8; --quick 4)")
    p.add_argument("--rounds", type=int, default=None, help="answers per photo and engine (default 3; --quick 2)")
    p.add_argument("--out", default=None, help="keep the data and the model here (default: a temporary folder)")
    args = p.parse_args(argv)
    size = args.size or (32 if args.quick else 224)
    n = args.n or (4 if args.quick else 8)
    rounds = args.rounds or (2 if args.quick else 3)

    import keras
    import numpy as np

    from dl1.data.files import load_images
    from dl1.models.classifier import ImageClassifier
    from dl1.models.record import ModelRecord
    from dl1.models.standin import make_standin_weights
    from dl1.serve.answer import answer
    from dl1.serve.engines import KerasEngine, OnnxEngine
    from dl1.workflow.results import Results

    C.machine_info("bench_serve: one photo through the app's ONNX Runtime engine vs its Keras engine")
    with C.workdir(args.out) as work:
        data = C.make_images(os.path.join(work, f"data{n}"), max(n, 4), 160 if args.quick else 500)
        photos = sorted(os.path.join(r, f) for r, _, fs in os.walk(os.path.join(data, "train")) for f in fs)[:n]
        standin = make_standin_weights(os.path.join(work, "standin.h5"), os.path.join(data, "train"), size=size,
                                       n=16, verbose=False)  # random weights scaled to the photos (LSUV)
        keras.utils.set_random_seed(0)
        model = ImageClassifier("vgg16", weights=standin, size=size, verbose=False)
        model.ft(2)
        model.classes = ["cats", "dogs"]
        root = os.path.join(work, "model")
        results = Results(root)
        model.model.save_weights(results.file("ft1.h5"))
        results.write_model(ModelRecord(classes=model.classes, size=[size, size], arch="vgg16", weights="ft1.h5"))
        t0 = time.perf_counter()
        path = model.export(results.file(Results.EXPORT_ONNX))
        C.say(f"VGG16 at {size} px: exported to ONNX in {time.perf_counter() - t0:.1f} s "
              f"({os.path.getsize(path) / 2**20:.0f} MB); {len(photos)} photos of up to "
              f"{160 if args.quick else 500} px")

        engines = {"onnx": OnnxEngine(path), "keras": KerasEngine(model)}
        for e in engines.values():  # warm-up: first calls allocate
            answer(e, photos[0])
        times = {name: [] for name in engines}
        for r in range(rounds):
            for photo in photos:
                for name in (("onnx", "keras") if r % 2 == 0 else ("keras", "onnx")):
                    times[name].append(answer(engines[name], photo).seconds)
        per_photo = {name: C.median(t) for name, t in times.items()}
        C.say(f"one photo, answered as the app does: ONNX Runtime {per_photo['onnx']:.3f} s, Keras "
              f"{per_photo['keras']:.3f} s (median of {len(times['onnx'])}; target for VGG16 at 224 px: under 1 s)")

        x, _, _ = load_images(photos, (size, size))
        batch = {name: C.timed(lambda e=e: e.predict(x), repeats=rounds)[0] for name, e in engines.items()}
        diff = float(np.abs(engines["onnx"].predict(x) - engines["keras"].predict(x)).max())
        C.say(f"one batch of {len(x)}: ONNX Runtime {len(x) / batch['onnx']:.1f} images/s, Keras "
              f"{len(x) / batch['keras']:.1f} images/s; largest probability difference {diff:.2e}")

        start = {"onnx": started(START_ONNX.format(path=path)), "keras": started(START_KERAS.format(root=root))}
        C.say(f"from a fresh process to a model ready to answer: ONNX Runtime {start['onnx'][0]:.1f} s (imports and "
              f"session {start['onnx'][1]:.1f} s), Keras {start['keras'][0]:.1f} s (imports, build and weights "
              f"{start['keras'][1]:.1f} s)")

        C.result("app_answer_onnx_vs_keras_seconds", per_photo["onnx"], per_photo["keras"], lower_is_better=True)
        C.result("batch_onnx_vs_keras_images_per_s", len(x) / batch["onnx"], len(x) / batch["keras"])
        C.result("start_onnx_vs_keras_seconds", start["onnx"][0], start["keras"][0], lower_is_better=True)


if __name__ == "__main__":
    main()
