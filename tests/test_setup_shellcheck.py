"""Every script under setup/ passes shellcheck (the one installed in this virtual environment) and
follows the project's shell conventions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup"
SCRIPTS = sorted(SETUP.glob("*.sh"))
SHELLCHECK = Path(sys.executable).parent / "shellcheck"


def test_the_scripts_are_there():
    assert {p.name for p in SCRIPTS} >= {
        "aws-setup.sh",
        "aws-alias.sh",
        "install-gpu.sh",
        "aws-lib.sh",  # the helpers the others source
        "remove.sh",
        "box-init.sh",
    }


def test_helpers_live_in_one_sourced_file():
    """aws-setup.sh and remove.sh source aws-lib.sh; neither defines the shared helpers again."""
    for name in ("aws-setup.sh", "remove.sh"):
        text = (SETUP / name).read_text()
        assert 'source "$SCRIPT_DIR/aws-lib.sh"' in text
        for helper in ("die()", "aws_try()", "awsq()", "field()", "shquote()", "write_file()"):
            assert f"\n{helper} {{" not in text, f"{name} defines {helper} again"
    assert "<<'REMOVE'" not in (SETUP / "aws-setup.sh").read_text()  # no generated remove script


@pytest.mark.parametrize("follow", [False, True], ids=["alone", "following-source"])
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script, follow):
    """Each file alone, and with the sourced aws-lib.sh followed (-x), so shellcheck sees the helpers too."""
    if not SHELLCHECK.exists():
        pytest.skip(f"shellcheck not found next to {sys.executable}: pip install -r requirements-dev.txt")
    args = [str(SHELLCHECK), "--severity=style", *(["-x"] if follow else []), str(script)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=SETUP)
    assert result.returncode == 0, result.stdout + result.stderr


def test_idle_agent_compiles():
    source = (SETUP / "idle-agent.py").read_text()
    compile(source, "idle-agent.py", "exec")
    assert source.startswith("#!/usr/bin/env python3\n")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_conventions(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    if script.name == "aws-alias.sh":  # sourced into the user's shell: must not change its options
        assert "set -e" not in text
    else:
        assert "\nset -euo pipefail\n" in text
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"


EARLY_EXIT_READER = re.compile(r"\|\s*(head\b|grep\s+-\w*[qm])")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_pipe_into_a_reader_that_stops_early(script):
    """Under pipefail, `producer | head -n 1` or `producer | grep -q` fails at random: the reader exits at its
    first match and the producer, still writing, dies of SIGPIPE (exit 141). A CI run lost aws-setup.sh that way;
    such lookups read a variable with a here-string or a parameter expansion instead."""
    offending = [
        f"{script.name}:{n}: {line.strip()}"
        for n, line in enumerate(script.read_text().splitlines(), 1)
        if EARLY_EXIT_READER.search(line) and not line.lstrip().startswith("#")
    ]
    assert not offending, "\n".join(offending)
