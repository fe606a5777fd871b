"""The lock files `make demo` and `make test` install from (README, "The two commands"): complete, in
agreement with each other and with the ranges, installable on a CPU machine and on a GPU box, and the
environment running this suite is exactly the locked one."""

import importlib.metadata
import os
import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


def _lines(name):
    with open(os.path.join(REPO, name), encoding="utf-8") as f:
        return f.read().splitlines()


def _pins(name):
    return {canonicalize_name(m.group(1)): m.group(2) for m in map(PIN.match, _lines(name)) if m}


def _requirements(name):
    """The requirement names of a requirements file (options, comments and `-e .` aside)."""
    out = []
    for line in _lines(name):
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(canonicalize_name(Requirement(line).name))
    return out


def test_the_demo_lock_is_the_test_lock_less_the_test_tools():
    demo, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert demo and demo.items() <= dev.items(), {k: (v, dev.get(k)) for k, v in demo.items() if dev.get(k) != v}
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = _lines(lock)
        # pip matches torch==2.13.0 with the CPU wheel here and PyPI's CUDA build on a GPU box; a local
        # label (+cpu) is a version PyPI lacks, and the project's own path is no pin
        assert "torch==2.13.0" in text, lock
        assert not [line for line in text if line.startswith(("-e", "file:")) or "file://" in line], lock
        assert not [n for n in _pins(lock) if n.startswith("nvidia-") or n == "triton"], lock


def test_every_declared_requirement_is_locked():
    import tomllib

    demo, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    declared = [canonicalize_name(Requirement(r).name) for r in project["dependencies"]]
    assert set(declared + _requirements("requirements.txt")) - set(demo) == set()
    assert set(_requirements("requirements-dev.txt")) - set(dev) == set()
    assert "six" in demo  # the kaggle command imports it without declaring it


def test_this_environment_is_the_locked_one():
    """What `make test` installs is what runs the suite: a package at another version than the lock says
    means the lock no longer records what was tested (run `make dev-venv`, or `make lock` after a change)."""
    differ = []
    for name, locked in _pins("requirements-dev.lock").items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or installed.split("+")[0] != locked:
            differ.append(f"{name}: locked {locked}, installed {installed}")
    assert not differ, "\n".join(differ)
