"""The bench scripts run at a tiny size and end with well-formed RESULT lines (bench/README.md)."""

import importlib.util
import json
import math
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
NUMBER = r"(?:nan|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
RESULT = re.compile(rf"^RESULT (?P<name>[a-z0-9_]+) ours=(?P<ours>{NUMBER}) baseline=(?P<baseline>{NUMBER}) "
                    rf"ratio=(?P<ratio>{NUMBER})$")
HAS_JAX = importlib.util.find_spec("jax") is not None


def _load(script):
    """Import ``bench/<script>`` as a module (the scripts put bench/ on sys.path for their helpers)."""
    name = "dl1_bench_" + script[:-3]
    if name in sys.modules:
        return sys.modules[name]
    path = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, script))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path
    return module


def run_bench(script, capsys, monkeypatch, *args):
    """Run ``bench/<script>``'s main with ``--tiny`` in this process (its subprocesses aside: the imports
    are paid once per test session); returns (stdout, {name: (ours, baseline, ratio)})."""
    for name in ("DL1_WORKERS", "DL1_CACHE_DIR"):
        # set, then removed: monkeypatch records a variable only when it exists, and what a bench sets here
        # (bench_lr_find: DL1_CACHE_DIR in its temporary folder) must not outlive the test (the next tests of
        # this worker wrote their feature caches into that removed folder)
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "argv", [script, "--tiny", *args])
    capsys.readouterr()
    _load(script).main(["--tiny", *args])
    out = capsys.readouterr().out
    results = {}
    for line in out.splitlines():
        if line.startswith("RESULT"):
            m = RESULT.match(line)
            assert m, f"malformed RESULT line from {script}: {line!r}"
            assert m["name"] not in results, f"{script} printed {m['name']} twice"
            results[m["name"]] = tuple(float(m[k]) for k in ("ours", "baseline", "ratio"))
    lines = out.rstrip().splitlines()
    assert lines and lines[-1].startswith("RESULT "), f"{script} does not end with RESULT lines:\n{out[-2000:]}"
    return out, results


def check(results, names, higher_is_better=()):
    missing = [n for n in names if n not in results]
    assert not missing, f"missing RESULT lines: {missing} (got {sorted(results)})"
    for name, (ours, baseline, ratio) in results.items():
        assert ours >= 0 and baseline >= 0 and ratio >= 0, f"{name}: negative figure"
        assert all(math.isfinite(v) for v in (ours, baseline, ratio)), f"{name}: not a number"
    for name in higher_is_better:  # ratio = ours / baseline
        ours, baseline, ratio = results[name]
        assert ratio == pytest.approx(ours / baseline, rel=2e-3, abs=2e-4)


def test_result_line_format():
    _common = _load("_common.py")
    assert RESULT.match(_common.RESULT_FORMAT.format(name="x_y", ours=_common.fmt(1234.5678),
                                                     baseline=_common.fmt(1e-7), ratio=_common.fmt(float("nan"))))
    assert _common.fmt(51380352.0) == "51380352"
    assert float(_common.fmt(0.12345)) == pytest.approx(0.1235)


def test_bench_pipeline_tiny(capsys, monkeypatch):
    out, results = run_bench("bench_pipeline.py", capsys, monkeypatch)
    check(results, ["decode_vs_pil_loop", "decode_vs_torch_dataloader", "decode_next_vs_pil_loop",
                    "decode_1thread_vs_pil_loop"], higher_is_better=["decode_vs_pil_loop"])
    assert "images/s" in out and "cpu:" in out and "per-image profile" in out


def test_bench_recipe_tiny(capsys, monkeypatch):
    out, results = run_bench("bench_recipe.py", capsys, monkeypatch)
    check(results, ["recipe_1epoch_vs_plain_keras", "recipe_3epoch_vs_plain_keras",
                    "recipe_rerun_3epoch_vs_plain_keras", "val_accuracy_1epoch_vs_plain_keras",
                    "val_accuracy_3epoch_vs_plain_keras"], higher_is_better=["val_accuracy_3epoch_vs_plain_keras"])
    ours, baseline, ratio = results["recipe_3epoch_vs_plain_keras"]  # seconds: ratio = baseline / ours
    assert ratio == pytest.approx(baseline / ours, rel=2e-3)
    for name in ("val_accuracy_1epoch_vs_plain_keras", "val_accuracy_3epoch_vs_plain_keras"):
        assert 0 <= results[name][0] <= 1 and 0 <= results[name][1] <= 1
    assert "same weights as ours: checked" in out


def test_bench_arrays_tiny(capsys, monkeypatch):
    _, results = run_bench("bench_arrays.py", capsys, monkeypatch)
    names = [f"{kind}{suffix}" for suffix in ("", "_fc", "_images")
             for kind in ("save_array_write_vs_np_save", "load_array_vs_np_load", "save_array_bytes_vs_np_save")]
    check(results, names)
    ours, baseline, ratio = results["save_array_bytes_vs_np_save_images"]  # bytes: ratio = baseline / ours
    assert ratio == pytest.approx(baseline / ours, rel=2e-3) and ratio > 1


def test_bench_backends_torch_only_tiny(capsys, monkeypatch):
    """Without jax (as in CI): torch is measured, the comparisons are SKIP lines with nan baselines."""
    out, results = run_bench("bench_backends.py", capsys, monkeypatch, "--backends", "torch")
    names = ["torch_vs_jax_forward", "torch_vs_jax_train_step", "torch_vs_jax_first_predict_seconds"]
    assert sorted(results) == sorted(names)
    for name in names:
        assert f"SKIP {name}: " in out
        ours, baseline, ratio = results[name]
        assert ours > 0 and math.isnan(baseline) and math.isnan(ratio)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed (bench_backends compares torch with jax)")
def test_bench_backends_tiny(capsys, monkeypatch):
    _, results = run_bench("bench_backends.py", capsys, monkeypatch)
    check(results, ["torch_vs_jax_forward", "torch_vs_jax_train_step"], higher_is_better=["torch_vs_jax_forward"])


def test_bench_lesson7_quick(capsys, monkeypatch):
    out, results = run_bench("bench_lesson7.py", capsys, monkeypatch)
    check(results, ["bn_head_2epoch_vs_recompute_features", "bn_head_val_accuracy_vs_recompute_features"],
          higher_is_better=["bn_head_val_accuracy_vs_recompute_features"])
    for v in results["bn_head_val_accuracy_vs_recompute_features"][:2]:
        assert 0 <= v <= 1
    assert "features" in out


def test_bench_lr_find_quick(capsys, monkeypatch):
    out, results = run_bench("bench_lr_find.py", capsys, monkeypatch, "--quick")
    check(results, ["lr_find_cold_seconds", "lr_find_warm_seconds"])
    assert "cached=True, baseline cached=False" in out

def test_bench_backbones_quick(capsys, monkeypatch):
    out, results = run_bench("bench_backbones.py", capsys, monkeypatch, "--quick")
    check(results, ["resnet50_features_vs_keras_predict", "resnet50_fastconv_vs_keras_conv",
                    "efficientnetv2b0_features_vs_keras_predict"],
          higher_is_better=["resnet50_features_vs_keras_predict"])
    assert "copy-free convs cover 53/53" in out  # every ResNet50 convolution is on dl1's fast path


def test_bench_ddp_quick(capsys, monkeypatch):
    out, results = run_bench("bench_ddp.py", capsys, monkeypatch, "--quick")
    check(results, ["ddp_2proc_vs_1proc"], higher_is_better=["ddp_2proc_vs_1proc"])
    assert "2 process(es): 3 steps" in out and "1 process(es): 3 steps" in out and "no GPU" in out


LESSON_CASES = {"dot_model": "ratings", "bias_model": "ratings", "neural_model": "ratings", "conv_model": "reviews",
                 "multiconv_model": "reviews", "lstm_model": "reviews"}


def test_bench_lessons45_quick(capsys, monkeypatch):
    """Eager and plain PyTorch for every lesson 4-5 model (no compile: that is test_bench_compile_quick's)."""
    out, results = run_bench("bench_lessons45.py", capsys, monkeypatch, "--no-compile", "--epochs", "1")
    names = [f"{key}_{unit}_per_s_vs_plain_torch" for key, unit in LESSON_CASES.items()]
    names.append("tokenize_pad_vs_plain_python")
    assert sorted(results) == sorted(names)  # the historic names among them: dot_model_..., conv_model_...
    check(results, names, higher_is_better=names)
    assert "same ids: checked" in out and "ratings/s" in out and "reviews/s" in out
    assert re.search(r"load average at the end: \S+ \S+ \S+ \(at the start: ", out)


def test_bench_rnn(capsys, monkeypatch):
    out, results = run_bench("bench_rnn.py", capsys, monkeypatch, "--no-compile", "--epochs", "1")
    names = ["char_rnn_loop_chars_per_s_vs_plain_torch", "lstm_train_chars_per_s",
             "stateful_lstm_chars_per_s_vs_plain_torch"]
    assert sorted(results) == names
    check(results, names, higher_is_better=names)
    assert "char_rnn: eager" in out and "stateful_lstm: eager" in out and "char_rnn_loop: eager" in out


def test_bench_compile_own_cases_quick(capsys, monkeypatch):
    out, results = run_bench("bench_compile.py", capsys, monkeypatch, "--no-compile", "--epochs", "1",
                             "--cases", "recipe_head,bn_head,vgg16_unfrozen")
    names = ["bn_head_samples_per_s_vs_plain_torch", "recipe_head_samples_per_s_vs_plain_torch",
             "vgg16_unfrozen_images_per_s_vs_plain_torch"]
    assert sorted(results) == names
    check(results, names, higher_is_better=names)


def test_compile_figures_from_epoch_times():
    """Compile seconds and break-even from made-up epoch times: 10 steps an epoch, eager 1.0 s an epoch, compiled
    0.5 s, first epochs 1.5 s eager (0.5 s of Keras set-up) and 20.5 s compiled (the set-up, 19.5 s of compiling)."""
    K = _load("_compile.py")
    case = K.Case("toy", "toy", "rows", None, None, 10, None, None, samples=95)  # 10 steps, the last one short
    cold = {"eager": [1.5, 1.0, 1.0], "compiled": [20.5, 0.5, 0.5], "torch": [0.3, 0.25, 0.25],
            "default_mode": "eager", "errors": {}}
    warm = dict(cold, compiled=[5.5, 0.5, 0.5])
    s = K.summarise(case, cold, warm)
    assert s["steps_per_epoch"] == 10
    assert s["compile_seconds"]["cold"] == pytest.approx(19.5) and s["compile_seconds"]["warm"] == pytest.approx(4.5)
    # 0.05 s saved a step: 19.5 s of compiling pays after 390 steps, 4.5 s after 90
    assert s["break_even_steps"]["cold"] == pytest.approx(390) and s["break_even_steps"]["warm"] == pytest.approx(90)
    assert s["per_s"] == pytest.approx({"eager": 95.0, "compiled": 190.0, "torch": 380.0})
    slower = dict(cold, compiled=[20.5, 1.2, 1.2])
    assert K.summarise(case, slower)["break_even_steps"] == {"cold": None, "warm": None}  # never pays


def test_error_text_keeps_the_wrapped_error():
    K = _load("_compile.py")
    wrapped = RuntimeError("Exception encountered when calling Sequential.call().\n\n\x1b[1mTypeError: cannot "
                           "determine truth value of Relational\n\x1b[0m\nArguments received by Sequential.call():")
    assert K.error_text(wrapped) == ("RuntimeError: Exception encountered when calling Sequential.call(). TypeError: "
                                     "cannot determine truth value of Relational Arguments received by "
                                     "Sequential.call():")
    assert K.error_text(ValueError()) == "ValueError: "


@pytest.mark.slow
def test_bench_compile_quick(capsys, monkeypatch, tmp_path):
    """The tiny dot model compiled in a new process with an empty inductor cache (the warm second process, the
    same code again, is left out to save a minute)."""
    path = tmp_path / "compile.json"
    out, results = run_bench("bench_compile.py", capsys, monkeypatch, "--cases", "dot_model", "--epochs", "1",
                             "--no-warm", "--json", str(path))
    names = ["dot_model_ratings_per_s_vs_plain_torch", "dot_model_compiled_vs_plain_torch",
             "dot_model_compiled_vs_eager"]
    check({k: v for k, v in results.items() if k in names}, names, higher_is_better=names)
    assert "[cold cache] compiled epoch 1:" in out and "[warm cache]" not in out
    assert "SKIP dot_model_compile_seconds: no warm-cache process" in out
    doc = json.loads(path.read_text())
    assert doc["version"] == 1 and set(doc["cases"]) == {"dot_model"} and doc["load_average"]["end"]
    fig = doc["cases"]["dot_model"]
    assert fig["steps_per_epoch"] == 10 and fig["default_mode"] == "eager" and not fig["errors"]
    cold = fig["compile_seconds"]["cold"]
    assert cold > 0 and fig["compile_seconds"]["warm"] is None
    e, c = fig["step_seconds"]["eager"], fig["step_seconds"]["compiled"]
    if c < e:  # the break-even follows from the figures
        assert fig["break_even_steps"]["cold"] == pytest.approx(cold / (e - c), rel=1e-6)
    else:
        assert fig["break_even_steps"]["cold"] is None
