"""setup/install-gpu.sh on this machine: the dry run shows every step and changes nothing, a missing or
broken NVIDIA driver stops it with a clear message, and the Keras and Jupyter configuration it writes
(--config-only) is merged, private, bound to localhost and safe to write again."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "setup" / "install-gpu.sh"
BASH = shutil.which("bash") or "bash"


def path_without(tool: str, shadow: Path, extra: Path | None = None) -> str:
    """PATH without `tool`: each directory that holds it is replaced by `shadow`, a folder of links to
    everything else in it (on a GPU machine nvidia-smi sits in /usr/bin, beside bash and python3)."""
    dirs = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if d and (Path(d) / tool).exists():
            shadow.mkdir(exist_ok=True)
            for entry in Path(d).iterdir():
                if entry.name != tool and not (shadow / entry.name).exists():
                    (shadow / entry.name).symlink_to(entry)
            d = str(shadow)
        if d and d not in dirs:
            dirs.append(d)
    if extra is not None:
        dirs.insert(0, str(extra))
    return os.pathsep.join(dirs)


def install(tmp_path: Path, *args: str, path: str | None = None, stdin: str | None = None, **extra: str):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DL1_", "JUPYTER_", "KERAS_"))}
    env.update(HOME=str(home), PATH=path or env.get("PATH", ""), **extra)
    result = subprocess.run(
        [BASH, str(SCRIPT), "--venv", str(tmp_path / "venv"), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin or "",
    )
    result.output = result.stdout + result.stderr  # type: ignore[attr-defined]
    return result, home


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def torch_pin() -> str:
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if re.match(r"\s*torch\s*(==|>=|~=)", line):
            return line.strip().replace(" ", "")
    pytest.fail("requirements.txt does not pin torch")


def test_dry_run_shows_the_steps_and_changes_nothing(tmp_path):
    repo_before = files_under(REPO / "setup")
    index = "https://download.pytorch.org/whl/cu126"
    result, home = install(tmp_path, "--dry-run", "--torch-index", index)
    assert result.returncode == 0, result.output
    out = result.output
    steps = [line[4:] for line in out.splitlines() if line.startswith("==> ")]
    assert [s.split()[0] for s in steps] == [
        "Check",
        "Check",
        "Create",
        "Upgrade",
        "Install",
        "Install",
        "Check",
        "Write",
        "Configure",
        "Register",
        "Done",
    ]
    assert "nvidia-smi" in steps[0]
    assert f"-m venv {tmp_path / 'venv'}" in out
    assert f"pip install {torch_pin()} --index-url {index}" in out
    assert f"pip install -r {REPO / 'requirements.txt'}" in out
    assert '"backend": "torch"' in out and '"image_data_format": "channels_last"' in out
    assert "ServerApp.ip=127.0.0.1" in out
    assert "ipykernel install --user" in out
    # Jupyter as a systemd service, still on localhost only
    assert "dl1-jupyter.service (jupyter lab --ip=127.0.0.1 --port=8888" in out
    assert "systemctl enable --now dl1-jupyter" in out
    assert "nothing was changed" in out
    # nothing was created: no venv, nothing in HOME, nothing new in the repository
    assert not (tmp_path / "venv").exists()
    assert files_under(home) == []
    assert files_under(REPO / "setup") == repo_before


def test_stops_without_nvidia_driver(tmp_path):
    result, home = install(tmp_path, path=path_without("nvidia-smi", tmp_path / "shadow"))
    assert result.returncode != 0
    assert "nvidia-smi not found" in result.output
    assert "--cpu" in result.output
    assert not (tmp_path / "venv").exists()
    assert files_under(home) == []


def test_stops_when_the_driver_does_not_answer(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'Failed to initialize NVML: Driver/library version mismatch'\nexit 18\n")
    smi.chmod(0o755)
    result, home = install(tmp_path, path=path_without("nvidia-smi", tmp_path / "shadow", extra=fake))
    assert result.returncode != 0
    assert "cannot talk to the NVIDIA driver" in result.output
    assert "Driver/library version mismatch" in result.output
    assert "reboot" in result.output
    assert not (tmp_path / "venv").exists()
    assert files_under(home) == []


def test_config_is_merged_private_and_kept_on_rerun(tmp_path):
    home = tmp_path / "home"
    (home / ".keras").mkdir(parents=True)
    (home / ".keras" / "keras.json").write_text(
        json.dumps({"backend": "tensorflow", "floatx": "float16", "image_data_format": "channels_first"})
    )
    result, _ = install(tmp_path, "--config-only")
    assert result.returncode == 0, result.output

    keras = json.loads((home / ".keras" / "keras.json").read_text())
    assert keras == {
        "backend": "torch",
        "image_data_format": "channels_last",
        "floatx": "float16",
        "epsilon": 1e-07,
    }

    config_file = home / ".jupyter" / "jupyter_server_config.json"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    config = json.loads(config_file.read_text())
    assert config["ServerApp"]["ip"] == "127.0.0.1"
    assert config["ServerApp"]["open_browser"] is False
    assert config["ServerApp"]["port"] == 8888
    token = config["IdentityProvider"]["token"]
    assert len(token) >= 32
    assert result.stdout.count(token) == 2  # shown once, with the URL that uses it

    again, _ = install(tmp_path, "--config-only")
    assert again.returncode == 0, again.output
    assert token not in again.output
    assert "already set" in again.output
    assert json.loads(config_file.read_text()) == config
    assert json.loads((home / ".keras" / "keras.json").read_text()) == keras


def test_password_from_stdin_is_stored_hashed(tmp_path):
    result, home = install(tmp_path, "--config-only", "--password", stdin="correct horse\n")
    assert result.returncode == 0, result.output
    text = (home / ".jupyter" / "jupyter_server_config.json").read_text()
    assert "correct horse" not in text and "correct horse" not in result.output
    config = json.loads(text)
    hashed = config["PasswordIdentityProvider"]["hashed_password"]
    assert config["IdentityProvider"]["token"] == ""
    algorithm, _, rest = hashed.partition(":")
    if algorithm == "argon2":
        passwd_check = pytest.importorskip("jupyter_server.auth").passwd_check
        assert passwd_check(hashed, "correct horse")
    else:  # jupyter_server's salted-hash format: algorithm:salt:hexdigest(password + salt)
        salt, digest = rest.split(":")
        assert hashlib.new(algorithm, ("correct horse" + salt).encode()).hexdigest() == digest

    empty, _ = install(tmp_path, "--config-only", "--password", stdin="")
    assert empty.returncode != 0
    assert "no password given" in empty.output


def test_help_and_unknown_option(tmp_path):
    result, _ = install(tmp_path, "--help")
    assert result.returncode == 0
    for option in ("--dry-run", "--torch-index", "--password", "--cpu", "--venv", "--config-only"):
        assert option in result.stdout
    result, _ = install(tmp_path, "--frobnicate")
    assert result.returncode != 0
    assert "unknown option: --frobnicate" in result.output


@pytest.mark.parametrize("gib, warned", [(15.4, True), (31.0, False)])
def test_memory_check_warns_before_lesson_2_runs_out(tmp_path, gib, warned):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal:       {int(gib * 1048576)} kB\nMemFree:        1000 kB\n")
    result, _ = install(tmp_path, "--dry-run", DL1_MEMINFO=str(meminfo))
    assert result.returncode == 0, result.output
    assert ("lesson 2 holds about 14 GB of images" in result.stderr) == warned
    if not warned:
        assert "enough for every lesson" in result.stdout


def test_service_unit_binds_to_localhost(tmp_path):
    """The unit itself, written by a real run of the service step (the installs are stubbed)."""
    text = SCRIPT.read_text()
    start = text.index("service_unit() {")
    end = text.index("\n}\n", start) + 3
    script = "set -euo pipefail\nJUPYTER_PORT=8888\nREPO=/srv/dl1\nVENV=/srv/dl1/.venv\n" + text[start:end] + "service_unit\n"
    unit = subprocess.run([BASH, "-c", script], capture_output=True, text=True, timeout=30).stdout
    assert "ExecStart=\"/srv/dl1/.venv/bin/jupyter\" lab --ip=127.0.0.1 --port=8888 --no-browser" in unit
    assert "WantedBy=multi-user.target" in unit and "Restart=on-failure" in unit
