"""Every script under setup/ passes shellcheck (the one installed in this virtual environment) and
follows the project's shell conventions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup"
SCRIPTS = sorted(SETUP.glob("*.sh"))
SHELLCHECK = Path(sys.executable).parent / "shellcheck"


def test_the_scripts_are_there():
    assert {p.name for p in SCRIPTS} >= {"aws-setup.sh", "aws-alias.sh", "install-gpu.sh"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    if not SHELLCHECK.exists():
        pytest.skip(f"shellcheck not found next to {sys.executable}: pip install -r requirements-dev.txt")
    result = subprocess.run(
        [str(SHELLCHECK), "--severity=style", str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_conventions(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    if script.name == "aws-alias.sh":  # sourced into the user's shell: must not change its options
        assert "set -e" not in text
    else:
        assert "\nset -euo pipefail\n" in text
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
