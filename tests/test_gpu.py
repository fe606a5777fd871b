"""GPU checks (``pytest -m gpu``): the recipe, mixed precision, compilation, augmentation on the device,
tensors on CUDA through the preprocessing, and checkpoints moved between GPU and CPU. Skipped where no
CUDA device exists (CI), so the suite stays green there; ``bench/gpu.sh`` runs them on a GPU box.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import dl1  # noqa: F401  (conftest set KERAS_BACKEND)

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (GPU checks run on a GPU box)")]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _on_cuda(model):
    return all("cuda" in str(v.value.device) for v in model.weights)


def test_the_7_line_recipe_trains_on_the_gpu(course_data, standin_weights, seeded):
    from dl1.models.vgg16 import Vgg16

    vgg = Vgg16(weights=str(standin_weights), size=64, verbose=False)
    assert _on_cuda(vgg.model)
    batches = vgg.get_batches(course_data / "train", batch_size=32, verbose=False)
    val = vgg.get_batches(course_data / "valid", batch_size=64, shuffle=False, verbose=False)
    vgg.finetune(batches)
    history = vgg.fit(batches, val, nb_epoch=3, verbose=0)
    assert history.history["val_accuracy"][-1] >= 0.7


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_the_whole_network(course_data, policy, seeded):
    from dl1.models.vgg16 import Vgg16

    vgg = Vgg16(weights=None, size=64, verbose=False, mixed_precision=policy)
    batches = vgg.get_batches(course_data / "train", batch_size=16, verbose=False)
    vgg.finetune(batches)
    for layer in vgg.model.layers:
        layer.trainable = True  # the whole network: float16 gradients need the loss scaling
    vgg.compile(lr=1e-4)
    history = vgg.fit(batches, None, nb_epoch=1, cache=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert vgg.model.layers[-1].compute_dtype == "float32"
    if policy == "mixed_float16":
        assert type(vgg.model.optimizer).__name__ == "LossScaleOptimizer"


def test_jit_compile_gives_the_same_predictions(course_data, standin_weights):
    from dl1.models.vgg16 import Vgg16

    x = next(iter(Vgg16(weights=None, size=64, verbose=False).get_batches(
        course_data / "valid", batch_size=8, shuffle=False, verbose=False)))[0]
    plain = Vgg16(weights=str(standin_weights), size=64, verbose=False)
    compiled = Vgg16(weights=str(standin_weights), size=64, verbose=False, jit_compile=True)
    compiled.compile()
    np.testing.assert_allclose(compiled.model.predict(x, verbose=0), plain.model.predict(x, verbose=0),
                               rtol=1e-3, atol=1e-4)


def test_augmentation_runs_on_the_device_and_matches_the_cpu():
    from dl1.data.batches import ImageDataGenerator

    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    gen = ImageDataGenerator(rotation_range=20, width_shift_range=0.1, zoom_range=0.1, horizontal_flip=True,
                             device="cuda")
    out = gen.apply_batch(x, [np.random.default_rng([0, i]) for i in range(8)], as_numpy=False)
    assert isinstance(out, torch.Tensor) and out.is_cuda
    cpu = ImageDataGenerator(rotation_range=20, width_shift_range=0.1, zoom_range=0.1, horizontal_flip=True,
                             device="cpu").apply_batch(x, [np.random.default_rng([0, i]) for i in range(8)])
    np.testing.assert_allclose(out.cpu().numpy(), cpu, atol=0.5)


def test_vgg_preprocess_in_a_lambda_on_cuda_tensors_under_autograd():
    from dl1.models.vgg16 import vgg_mean, vgg_preprocess

    x = torch.rand(2, 8, 8, 3, device="cuda", requires_grad=True) * 255
    x.retain_grad()
    out = vgg_preprocess(x)
    assert out.is_cuda
    out.sum().backward()
    np.testing.assert_allclose(out.detach().cpu().numpy(), (x.detach().cpu().numpy() - vgg_mean)[..., ::-1],
                               rtol=1e-5)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Lambda(vgg_preprocess)])
    assert model(x.detach()).is_cuda


def _finetune(data, weights, epochs, cuda):
    env = dict(os.environ)
    if not cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, "-m", "dl1", "finetune", str(data), "--weights", str(weights), "--size", "64",
           "--epochs", str(epochs), "--batch-size", "16", "--verbose", "0", "--mixed-precision", "off"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_checkpoints_move_between_the_gpu_and_the_cpu(tmp_path, course_data, standin_weights):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(course_data, data)
    assert "Fine-tuned 1 epoch" in _finetune(data, standin_weights, 1, cuda=True)
    assert "Resuming" in _finetune(data, standin_weights, 2, cuda=False)  # GPU checkpoint, CPU run
    out = _finetune(data, standin_weights, 3, cuda=True)  # CPU checkpoint, GPU run
    assert "Resuming" in out and "Fine-tuned 3 epoch" in out
