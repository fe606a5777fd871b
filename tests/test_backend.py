"""The backend interface (dl1.backend): the PyTorch implementation against the plain one, and the process
group's gradient averaging on a one-process gloo group."""

import os
import socket
from unittest import mock

import keras
import numpy as np
import pytest
from scipy import ndimage

import dl1
from dl1 import backend
from dl1.backend.base import Backend
from dl1.backend.torch_impl import TorchBackend, TorchProcessGroup
from dl1.data.augment import Augmentation


def test_the_running_backend_is_torch_and_unknown_ones_get_the_plain_implementation():
    assert dl1.BACKEND == "torch" and isinstance(backend.current(), TorchBackend)
    assert backend.current() is backend.current()
    plain = Backend("numpy")
    assert not plain.supports_fast_conv2d((3, 3), (1, 1), "same") and plain.process_group() is None
    with plain.device_parallel() as spread:
        assert spread is False
    with pytest.raises(NotImplementedError, match="no automatic differentiation for the numpy backend"):
        plain.value_and_grad(lambda w: w)


@pytest.mark.parametrize("fill", ["nearest", "reflect", "constant", "wrap"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_plain_and_torch_augmentation_give_the_same_pixels(fill, interpolation):
    x = ndimage.gaussian_filter(np.random.default_rng(0).uniform(0, 255, (6, 20, 24, 3)), (0, 2, 2, 0))
    x = x.astype("float32")
    aug = Augmentation(rotation_range=20, width_shift_range=0.1, height_shift_range=0.1, shear_range=0.1,
                       zoom_range=0.1, channel_shift_range=10, horizontal_flip=True, vertical_flip=True,
                       fill_mode=fill, cval=40.0, interpolation=interpolation)
    params = aug.random_params(6, 20, 24, np.random.default_rng(1))
    kw = {"fill_mode": fill, "cval": 40.0, "interpolation": interpolation}
    fast = TorchBackend().warp_images(x, *params, **kw)
    plain = Backend().warp_images(x, *params, **kw)
    assert np.abs(fast - x).max() > 50  # the images did move
    diff = np.abs(fast - plain)
    if fill == "wrap" and interpolation == "bilinear":  # the plain one also blends across the seam
        assert np.median(diff) < 1e-2
    else:
        assert diff.max() < 1e-2


def test_mixed_precision_policy_on_a_cpu():
    b = backend.current()
    assert b.mixed_precision_policy("auto") is None and b.mixed_precision_policy(False) is None
    assert b.mixed_precision_policy(True) == "mixed_bfloat16"
    assert b.mixed_precision_policy("mixed_float16") == "mixed_float16"


def test_the_dtype_policy_context_puts_the_global_policy_back_also_on_errors():
    from dl1.nn.precision import dtype_policy

    before = keras.config.dtype_policy().name
    with dtype_policy("mixed_bfloat16"):
        assert keras.layers.Dense(2).dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == before
    with pytest.raises(RuntimeError), dtype_policy("mixed_float16"):
        raise RuntimeError("building failed")
    assert keras.config.dtype_policy().name == before


@pytest.fixture
def one_process_group(monkeypatch):
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(TorchProcessGroup, "_joined", None)
    group = backend.current().process_group()
    yield group
    dist.destroy_process_group()
    TorchProcessGroup._joined = None


def _model(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_process_group_averages_weighted_gradients_and_puts_the_optimizer_back(one_process_group):
    group = one_process_group
    assert (group.rank, group.world) == (0, 1) and group.all_sum([1.5, 2]) == [1.5, 2.0]
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[np.arange(8) % 2]
    plain, averaged = _model(0), _model(1)
    averaged.set_weights(plain.get_weights())
    group.broadcast_weights(averaged)  # one process: its own weights
    start = [w.copy() for w in plain.get_weights()]
    plain.optimizer.learning_rate = 0.25  # half the rate: what a weight of 0.5 does to plain SGD
    plain.train_on_batch(x, y)
    cls = type(averaged.optimizer)
    with group.averaging_gradients(averaged.optimizer, lambda: 0.5):
        assert type(averaged.optimizer) is not cls
        averaged.train_on_batch(x, y)
    assert type(averaged.optimizer) is cls
    for a, b, s in zip(averaged.get_weights(), plain.get_weights(), start, strict=True):
        assert np.abs(a - s).max() > 1e-4
        np.testing.assert_allclose(a, b, atol=1e-6)
    m = averaged.metrics[-1]
    before = [np.array(v) for v in m.variables]
    group.sum_variables(m.variables)  # one process: the sum is itself
    for v, b in zip(m.variables, before, strict=True):
        np.testing.assert_allclose(np.array(v), b)


def test_without_torchrun_there_is_no_process_group(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(key, raising=False)
    assert backend.current().process_group() is None
    assert "RANK" not in os.environ


# ---- the fused LSTM ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{"return_sequences": True}, {"return_sequences": False},
                                {"return_sequences": True, "go_backwards": True}])
def test_the_fused_lstm_computes_what_keras_lstm_does(kw):
    """dl1's LSTM hands the sequence to torch.nn.LSTM's kernel (Keras 3.15 does only on CUDA): same outputs
    and gradients as Keras' step-by-step loop, with the same weights."""
    import torch

    from dl1.nn.layers import LSTM

    x = np.random.default_rng(0).normal(size=(4, 7, 5)).astype("float32")
    fused, plain = LSTM(6, **kw), keras.layers.LSTM(6, **kw)
    fused.build((None, 7, 5))
    plain.build((None, 7, 5))
    plain.set_weights(fused.get_weights())
    assert fused.on_fast_path(None)
    outputs, grads = [], []
    for layer in (fused, plain):
        t = torch.tensor(x, requires_grad=True)
        y = layer(t)
        (y * torch.arange(y.numel()).reshape(y.shape)).sum().backward()  # not a plain sum: order matters
        outputs.append(y.detach().numpy())
        grads.append([t.grad.numpy()] + [v.value.grad.numpy() for v in layer.trainable_weights])
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)
    for a, b in zip(grads[0], grads[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_the_fused_lstm_is_taken_only_where_keras_would_take_its_own():
    from dl1.nn.layers import LSTM

    def fast(**kw):
        layer = LSTM(4, **kw)
        layer.build((2, 3, 2))
        return layer.on_fast_path(None)

    assert fast() and fast(dropout=0.3) and fast(stateful=True)
    assert not fast(recurrent_dropout=0.2)  # char-rnn's dropout_U: Keras' loop, which draws it every step
    assert not fast(use_cudnn=False) and not fast(activation="relu") and not fast(use_bias=False)
    assert not fast(unroll=True)


def test_an_lstm_with_recurrent_dropout_predicts_through_the_fused_kernel():
    """Out of training a recurrent dropout does nothing: predictions (char-rnn's sampling) take the fused
    kernel and give what Keras' step-by-step loop gives; training keeps Keras' loop, which draws the dropout."""
    import torch

    from dl1.nn.layers import LSTM

    x = np.random.default_rng(2).normal(size=(3, 6, 4)).astype("float32")
    ours, plain = LSTM(5, recurrent_dropout=0.2, dropout=0.2, return_sequences=True), \
        keras.layers.LSTM(5, recurrent_dropout=0.2, dropout=0.2, return_sequences=True)
    for layer in (ours, plain):
        layer.build((None, 6, 4))
    plain.set_weights(ours.get_weights())
    assert ours.on_fast_path(None, training=False) and not ours.on_fast_path(None, training=True)
    calls = []
    real = type(backend.current()).lstm
    with mock.patch.object(type(backend.current()), "lstm", lambda self, *a: calls.append(1) or real(self, *a)):
        got = ours(torch.tensor(x), training=False).detach().numpy()
        assert calls == [1]
        ours(torch.tensor(x), training=True)
        assert calls == [1]  # training: Keras' loop
    np.testing.assert_allclose(got, plain(torch.tensor(x), training=False).detach().numpy(), atol=1e-5)


def test_the_fused_lstm_applies_the_input_dropout_only_in_training():
    import torch

    from dl1.nn.layers import LSTM

    keras.utils.set_random_seed(0)
    x = torch.tensor(np.random.default_rng(1).normal(size=(8, 5, 3)).astype("float32"))
    layer, twin = LSTM(4, dropout=0.5), LSTM(4)
    layer.build((None, 5, 3))
    twin.build((None, 5, 3))
    twin.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x, training=False).detach(), twin(x).detach(), atol=1e-6)
    assert np.abs(layer(x, training=True).detach().numpy() - twin(x).detach().numpy()).max() > 1e-3


# ---- dense layers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{"activation": "relu"}, {}, {"use_bias": False, "activation": "relu"},
                                {"activation": "softmax"}])
def test_dl1_dense_computes_what_keras_dense_does_and_uses_onednn_only_without_autograd(kw, monkeypatch):
    """The frozen fc layers' products go to oneDNN (no backward there); a product autograd must follow, a
    softmax and everything else keep Keras' path. Same numbers and gradients either way."""
    import torch

    from dl1.nn.layers import Dense

    calls = []
    real = torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: calls.append(a[3]) or real(*a))
    ours, plain = Dense(6, **kw), keras.layers.Dense(6, **kw)
    ours.build((None, 5))
    plain.build((None, 5))
    plain.set_weights(ours.get_weights())
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    with torch.no_grad():
        got = ours(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, plain(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    fused = kw.get("activation") != "softmax"
    assert calls == ([kw.get("activation", "none")] if fused else [])
    ours.trainable = False  # frozen, and an input that needs no gradient: the head's fc2 in training
    ours(torch.tensor(x))
    assert len(calls) == (2 if fused else 0)
    ours.trainable = True
    grads = []
    for layer in (ours, plain):
        t = torch.tensor(x, requires_grad=True)
        y = layer(t)
        (y * torch.arange(y.numel()).reshape(y.shape)).sum().backward()
        grads.append([t.grad.numpy()] + [v.value.grad.numpy() for v in layer.trainable_weights])
    assert len(calls) == (2 if fused else 0)  # autograd: Keras' matmul
    for a, b in zip(grads[0], grads[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
