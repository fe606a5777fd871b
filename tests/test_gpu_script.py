"""``bench/gpu.sh`` (the GPU run in one command) as far as a CPU allows: its dry run, its one-line refusals,
and ``bench/bench_gpu.py --quick`` giving well-formed RESULT lines."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "gpu.sh")


def _run(*args, env=None):
    env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_dry_run_checks_everything_it_can_here():
    out = _run("--dry-run")
    assert out.returncode == 0, out.stderr
    assert "are in order" in out.stdout and "nvidia-smi" in out.stdout


def test_without_a_gpu_the_real_run_stops_in_one_line(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    out = _run("--out", str(tmp_path / "r.txt"), env={"PATH": f"{fake}:{os.environ['PATH']}"})
    if subprocess.run(["which", "nvidia-smi"], capture_output=True).returncode == 0:
        return  # a GPU box: the real run is not this test's business
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == ["gpu.sh: no NVIDIA GPU here (nvidia-smi missing or failing): "
                                               "run it on the GPU box"]
    assert not (tmp_path / "r.txt").exists()


def test_a_missing_package_is_named_with_the_way_to_carry_it(tmp_path):
    # a Python that cannot import keras: an isolated interpreter without site-packages
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")
    wrapper.chmod(0o755)
    out = _run("--dry-run", env={"PYTHON": str(wrapper)})
    assert out.returncode == 1
    line = out.stderr.strip()
    assert line.startswith("gpu.sh: missing Python packages: keras") and "--list-wheels" in line


def test_list_wheels_names_every_package():
    out = _run("--list-wheels")
    assert out.returncode == 0
    for dist in ("keras", "blosc2", "papermill", "ipykernel", "scikit-learn"):
        assert dist in out.stdout


def test_bench_gpu_quick_gives_result_lines(tmp_path):
    env = dict(os.environ, DL1_OFFLINE="1", MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_gpu.py"), "--quick", "--n", "60",
                          "--size", "32", "--forward-batch", "8", "--batch-size", "16", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    names = re.findall(r"^RESULT (\w+) ours=\S+ baseline=\S+ ratio=\S+$", out.stdout, re.M)
    assert names == ["gpu_recipe_epoch_s", "gpu_decode_vs_forward", "gpu_vgg16_forward_tflops"]


def test_the_bench_shell_scripts_pass_shellcheck():
    shellcheck = os.path.join(os.path.dirname(sys.executable), "shellcheck")
    if not os.path.exists(shellcheck):
        import pytest

        pytest.skip("shellcheck is not installed next to this Python (requirements-dev.txt)")
    scripts = [os.path.join(ROOT, "bench", n) for n in sorted(os.listdir(os.path.join(ROOT, "bench")))
               if n.endswith(".sh")] + [os.path.join(ROOT, ".ci", "run")]
    out = subprocess.run([shellcheck, "--severity=style", *scripts], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
