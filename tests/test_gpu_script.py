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


def _gpu_needs():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import gpu_needs
    finally:
        sys.path.pop(0)
    return gpu_needs


def _fake_site(tmp_path, dists):
    """A folder of installed-looking distributions (name -> (version, [Requires-Dist])), the real
    ``packaging`` (what gpu_needs.py reads requirements with) and an importable stand-in ``torch``."""
    import packaging

    site = tmp_path / "site"
    site.mkdir()
    (site / "packaging").symlink_to(os.path.dirname(packaging.__file__))
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text("")
    for name, (version, requires) in {"torch": ("2.13.0", ["filelock"]), **dists}.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        (info / "METADATA").write_text("\n".join(lines + [f"Requires-Dist: {r}" for r in requires]) + "\n")
    return site


def test_what_is_missing_comes_from_the_installed_metadata(tmp_path):
    """Every root of dl1 (and of its gpu-run extra) installed, but keras needs absl-py, which is not; numpy
    is too old for dl1; blosc2 names numexpr only for Python 2 and papermill names boto3 only for its s3
    extra: neither is asked for. torch's own dependencies (filelock) are the box's business."""
    import importlib.metadata

    dists = {r.name: (importlib.metadata.version(r.name), []) for r in _gpu_needs().roots() if r.name != "torch"}
    dists["keras"] = (dists["keras"][0], ["namex", "absl-py>=1.0"])
    dists["namex"] = ("0.1.0", [])
    dists["numpy"] = ("1.20.0", [])
    dists["blosc2"] = (dists["blosc2"][0], ['numexpr; python_version < "3"', "msgpack"])
    dists["msgpack"] = ("1.0.0", [])
    dists["papermill"] = (dists["papermill"][0], ['boto3; extra == "s3"'])
    site = _fake_site(tmp_path, dists)
    wrapper = tmp_path / "python"  # sees the standard library and the fake site only
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    wrapper.chmod(0o755)
    out = _run("--dry-run", env={"PYTHON": str(wrapper), "PYTHONPATH": str(site)})
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "gpu.sh: missing Python packages: absl-py, numpy 1.20.0 (needs >=1.26) "
        "(carry their wheels: bench/gpu.sh --list-wheels)"]


def test_extras_asked_for_are_followed_and_others_not():
    from packaging.requirements import Requirement

    class Dist:
        def __init__(self, version, requires):
            self.version, self.requires = version, requires

    installed = {"moto": Dist("5.1.0", ['flask; extra == "server"', 'docker; extra == "ec2"', "boto3"]),
                 "boto3": Dist("1.40.0", []), "flask": Dist("3.1.0", ["werkzeug>=3.1"])}
    walk = _gpu_needs().walk
    found, missing, too_old = walk([Requirement("moto[server]>=5.0")], find=installed.get)
    assert set(found) == {"moto", "boto3", "flask"} and missing == ["werkzeug"] and too_old == []
    found, missing, _ = walk([Requirement("moto")], find=installed.get)
    assert set(found) == {"moto", "boto3"} and missing == []
    _, _, too_old = walk([Requirement("boto3>=2")], find=installed.get)
    assert too_old == ["boto3 1.40.0 (needs >=2)"]


def test_without_torch_it_says_so_first(tmp_path):
    wrapper = tmp_path / "python"  # an isolated interpreter without site-packages
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")
    wrapper.chmod(0o755)
    out = _run("--dry-run", env={"PYTHON": str(wrapper)})
    assert out.returncode == 1
    assert out.stderr.strip() == (f"gpu.sh: {wrapper} cannot import torch: install the box's CUDA build of "
                                  "PyTorch first")


def test_list_wheels_pins_what_is_installed_here_from_the_same_walk():
    import importlib.metadata

    out = _run("--list-wheels")
    assert out.returncode == 0, out.stderr
    pins = out.stdout.split("-d .whl ", 1)[1].split()
    for dist in ("keras", "blosc2", "papermill", "ipykernel", "scikit-learn", "six", "nbclient", "pytest"):
        assert f"{dist}=={importlib.metadata.version(dist)}" in pins
    assert not [p for p in pins if p.startswith("torch==")]  # the box's own
    blosc2_needs_numexpr = any(r.startswith("numexpr") and "extra ==" not in r
                               for r in importlib.metadata.requires("blosc2"))
    assert any(p.startswith("numexpr==") for p in pins) == blosc2_needs_numexpr


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
