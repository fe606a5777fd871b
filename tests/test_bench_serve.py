"""``bench/bench_serve.py --quick`` runs and ends with well-formed RESULT lines (bench/README.md)."""

import importlib.util
import math
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMBER = r"(?:nan|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
RESULT = re.compile(rf"^RESULT (?P<name>[a-z0-9_]+) ours=(?P<ours>{NUMBER}) baseline=(?P<baseline>{NUMBER}) "
                    rf"ratio=(?P<ratio>{NUMBER})$")


@pytest.mark.slow
def test_bench_serve_quick(capsys, monkeypatch):
    path = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("dl1_bench_serve", os.path.join(ROOT, "bench", "bench_serve.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setattr(sys, "argv", ["bench_serve.py", "--quick"])
        capsys.readouterr()
        module.main(["--quick"])
    finally:
        sys.path[:] = path
    out = capsys.readouterr().out
    lines = out.rstrip().splitlines()
    results = {}
    for line in lines[-3:]:
        m = RESULT.match(line)
        assert m, f"not a RESULT line: {line!r}"
        results[m["name"]] = tuple(float(m[k]) for k in ("ours", "baseline", "ratio"))
    assert sorted(results) == ["app_answer_onnx_vs_keras_seconds", "batch_onnx_vs_keras_images_per_s",
                               "start_onnx_vs_keras_seconds"]
    for name, (ours, baseline, ratio) in results.items():
        assert all(math.isfinite(v) and v > 0 for v in (ours, baseline, ratio)), name
        want = ours / baseline if name.endswith("_per_s") else baseline / ours
        assert math.isclose(ratio, want, rel_tol=2e-3), name
    diff = float(re.search(r"largest probability difference (\S+)", out).group(1))
    assert diff < 1e-4, "the two engines must answer alike"
    assert "one photo, answered as the app does: ONNX Runtime" in out and "load average" in out
