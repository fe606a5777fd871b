"""``dl1 export --format onnx``: a file that ONNX Runtime runs in a process where only onnxruntime and numpy can
be imported (no dl1, Keras, PyTorch or onnx), preprocessing inside, any batch size, the class names in its
metadata, and the same probabilities as the Keras model (within 1e-4)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dl1.cli import main
from dl1.data.batches import get_batches
from dl1.data.sample import write_sample
from dl1.io.errors import DL1Error
from dl1.workflow.steps import load_trained

TOLERANCE = 1e-4  # absolute, on probabilities: float32 sums in another order (measured: up to 1.5e-5)


@pytest.fixture(scope="module")
def trained(module_tmp):
    """A tiny trained stand-in: 40 synthetic cats/dogs, VGG16 on stand-in weights (LSUV-scaled, so that the
    probabilities spread out) at 32 px, two epochs."""
    from dl1.models.standin import make_standin_weights

    root = module_tmp.mktemp("onnx")
    d = root / "pets"
    write_sample(str(d), n=40, layout="course", seed=2, max_side=120, progress=False)
    weights = make_standin_weights(str(root / "standin32.h5"), str(d / "train"), size=32, verbose=False)
    assert main(["finetune", str(d), "--weights", weights, "--size", "32", "--epochs", "2", "--lr", "0.01",
                 "--batch-size", "8", "--verbose", "0"]) == 0
    return d


def _only(tmp_path, packages=("onnxruntime", "numpy", "numpy.libs")):
    """A folder holding links to ``packages`` of this environment and nothing else: the whole sys.path of a
    ``python -I -S`` process."""
    import numpy
    import onnxruntime

    site = {os.path.dirname(os.path.dirname(m.__file__)) for m in (numpy, onnxruntime)}
    folder = tmp_path / "only"
    folder.mkdir()
    for s in site:
        for name in packages:
            if os.path.exists(os.path.join(s, name)) and not (folder / name).exists():
                os.symlink(os.path.join(s, name), folder / name)
    return folder


RUN = """
import json, sys
sys.path[:] = [p for p in sys.path if 'site-packages' not in p and 'dist-packages' not in p]
sys.path.insert(0, {only!r})
absent = []
for name in ('dl1', 'keras', 'torch', 'onnx', 'PIL'):
    try:
        __import__(name)
    except ImportError:
        absent.append(name)
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession({model!r}, providers=['CPUExecutionProvider'])
meta = session.get_modelmeta().custom_metadata_map
x = np.load({x!r})
np.save({y!r}, session.run(None, {{'image': x}})[0])
np.save({y1!r}, session.run(None, {{'image': x[:1]}})[0])
inp, out = session.get_inputs()[0], session.get_outputs()[0]
print(json.dumps({{'absent': absent, 'classes': json.loads(meta['dl1.classes']),
                  'size': json.loads(meta['dl1.input_size']), 'input': [inp.name, inp.shape, inp.type],
                  'output': [out.name, out.shape]}}))
"""


def test_the_onnx_file_runs_with_onnxruntime_and_numpy_alone(trained, tmp_path, capsys):
    assert main(["export", str(trained), "--format", "onnx"]) == 0
    path = trained / "results" / "model.onnx"
    assert f"to {path}" in capsys.readouterr().out
    model = load_trained(str(trained))[0]
    batches = get_batches(str(trained / "valid"), shuffle=False, batch_size=4, target_size=(32, 32),
                          class_mode=None, verbose=False)
    x = np.concatenate([batches[i] for i in range(len(batches))])  # raw 0-255 RGB, as get_batches gives it
    assert x.shape == (8, 32, 32, 3) and x.max() > 200
    np.save(tmp_path / "x.npy", x)
    code = RUN.format(only=str(_only(tmp_path)), model=str(path), x=str(tmp_path / "x.npy"),
                      y=str(tmp_path / "y.npy"), y1=str(tmp_path / "y1.npy"))
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, env=env,
                       cwd=str(tmp_path), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["absent"] == ["dl1", "keras", "torch", "onnx", "PIL"]
    assert seen["classes"] == ["cats", "dogs"] and seen["size"] == [32, 32]
    assert seen["input"] == ["image", ["batch", 32, 32, 3], "tensor(float)"]
    assert seen["output"] == ["probabilities", ["batch", 2]]
    want = model.model.predict(x, verbose=0)
    assert np.ptp(want[:, 0]) > 0.2, "the stand-in model's probabilities should spread out"
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(np.load(tmp_path / "y1.npy"), want[:1], atol=TOLERANCE, rtol=0)


def test_export_options_and_one_line_errors(trained, tmp_path, capsys):
    out = tmp_path / "sub" / "pets.onnx"
    assert main(["export", str(trained), "--format", "onnx", "-o", str(out)]) == 0
    from dl1.serve.engines import OnnxEngine

    engine = OnnxEngine(out)
    assert engine.classes == ["cats", "dogs"] and engine.size == (32, 32)
    capsys.readouterr()
    assert main(["export", str(trained), "--format", "onnx", "-o", str(tmp_path / "m.keras")]) == 2
    assert capsys.readouterr().err.strip() == (f"dl1: error: -o {tmp_path / 'm.keras'}: the file name must end in "
                                               ".onnx (--format onnx)")
    assert main(["export", str(trained), "-o", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err.strip() == (f"dl1: error: -o {tmp_path / 'm.onnx'}: the file name must end in "
                                               ".keras (--format keras)")
    with pytest.raises(SystemExit):
        main(["export", str(trained), "--format", "tflite"])
    assert "argument --format: invalid choice: 'tflite'" in capsys.readouterr().err


def test_a_file_that_is_not_an_exported_model_is_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from dl1.serve.engines import OnnxEngine

    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["probabilities"])], "plain",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
              tmp_path / "plain.onnx")
    with pytest.raises(DL1Error) as e:
        OnnxEngine(tmp_path / "plain.onnx")
    assert str(e.value) == (f"{tmp_path / 'plain.onnx'} has no dl1 metadata (class names and input size): write it "
                            "with 'dl1 export DIR --format onnx'")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07not a protobuf at all")
    with pytest.raises(DL1Error) as e:
        OnnxEngine(tmp_path / "junk.onnx")
    assert str(e.value).startswith(f"{tmp_path / 'junk.onnx'} is not a model ONNX Runtime can run (")
    assert str(e.value).endswith("): write it again with 'dl1 export DIR --format onnx'") and "\n" not in str(e.value)


def test_without_the_exporters_packages_export_names_them(monkeypatch, tmp_path):
    from dl1.models.classifier import ImageClassifier

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if it were not installed
    model = ImageClassifier("vgg16", weights=None, size=32, verbose=False)
    with pytest.raises(DL1Error) as e:
        model.export(str(tmp_path / "model.onnx"))
    assert str(e.value) == "ONNX export needs onnxscript: pip install 'dl1[onnx]' (or pip install onnxscript)"
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.slow
def test_convnext_exports_too(tmp_path):
    """ConvNeXt's LayerNormalization is what Keras' own ONNX export (TorchScript, for a dynamic batch) cannot
    convert; through torch.export it exports like every other architecture of the table."""
    import onnxruntime as ort

    from dl1.models.classifier import ImageClassifier

    model = ImageClassifier("convnext_tiny", weights=None, size=32, verbose=False)
    model.ft(3)
    model.classes = ["a", "b", "c"]
    path = model.export(str(tmp_path / "convnext.onnx"))
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["dl1.classes"]) == ["a", "b", "c"]
    np.testing.assert_allclose(session.run(None, {"image": x})[0], model.model.predict(x, verbose=0),
                               atol=TOLERANCE, rtol=0)
