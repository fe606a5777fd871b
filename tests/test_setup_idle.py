"""The idle agent that stops the course box (setup/idle-agent.py), decided on recorded inputs: what Jupyter's
/api/kernels, `ss` and `nvidia-smi` said on a box. And setup/box-init.sh, which installs it from the user data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup"
AGENT = SETUP / "idle-agent.py"
NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
BOOT = NOW - 3 * 3600

IDLE_KERNEL = {"id": "3f2a9c1e-0000", "execution_state": "idle", "last_activity": "2025-06-15T12:10:00.000000Z"}
BUSY_KERNEL = {"id": "8b7d6e5f-1111", "execution_state": "busy", "last_activity": "2025-06-15T12:20:00.000000Z"}
RECENT_KERNEL = {"id": "c0ffee00-2222", "execution_state": "idle", "last_activity": "2025-06-15T14:50:00.000000Z"}
SS_TWO = (
    "0      0      172.31.5.10:22     198.51.100.7:50122\n"
    "0      0      172.31.5.10:22     198.51.100.7:50180\n"
)
GPU_BUSY = "97\n"
GPU_IDLE = "0\n"


def agent(tmp_path: Path, *, kernels=(), ssh="", gpu=GPU_IDLE, minutes=60, last_busy=None, dry_run=True):
    (tmp_path / "kernels.json").write_text(json.dumps(list(kernels)))
    (tmp_path / "ss.txt").write_text(ssh)
    (tmp_path / "gpu.txt").write_text(gpu)
    args = [sys.executable, str(AGENT), "--kernels", str(tmp_path / "kernels.json"), "--ssh", str(tmp_path / "ss.txt")]
    args += ["--gpu", str(tmp_path / "gpu.txt"), "--now", str(NOW), "--boot", str(BOOT), "--minutes", str(minutes)]
    args += ["--state", str(tmp_path / "state" / "last-busy")]
    if last_busy is not None:
        args += ["--last-busy", str(last_busy)]
    if dry_run:
        args.append("--dry-run")
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    "inputs, expected",
    [
        (dict(kernels=[IDLE_KERNEL, BUSY_KERNEL]), "busy: kernel 8b7d6e5f busy"),
        (dict(ssh=SS_TWO), "busy: 2 SSH connections open"),
        (dict(gpu="3\n88\n"), "busy: GPU in use (88%)"),
        (dict(kernels=[RECENT_KERNEL]), "wait: idle for 17 of 60 minutes"),  # active 17 minutes ago
        (dict(kernels=[IDLE_KERNEL], gpu=GPU_IDLE), "stop: idle for 177 minutes (limit 60)"),  # since 12:10
        (dict(gpu="5\n"), "stop: idle for 180 minutes (limit 60)"),  # a GPU at 5% is not a job
        (dict(gpu=""), "stop: idle for 180 minutes (limit 60)"),  # no nvidia-smi (a CPU box)
        (dict(ssh=SS_TWO, minutes=0), "off: idle stop is off (dl1:idle-stop is 0)"),
        (dict(last_busy=NOW - 25 * 60), "wait: idle for 25 of 60 minutes"),
        (dict(last_busy=BOOT - 86400, minutes=240), "wait: idle for 180 of 240 minutes"),  # a new boot resets
    ],
    ids=["busy-kernel", "ssh-open", "gpu-in-use", "kernel-active-recently", "idle", "gpu-low", "no-gpu", "off",
         "recently-busy", "rebooted"],
)
def test_decisions_on_recorded_inputs(tmp_path, inputs, expected):
    assert agent(tmp_path, **inputs) == expected
    assert not (tmp_path / "state").exists()  # --dry-run changes nothing


def test_busy_time_is_remembered(tmp_path):
    assert agent(tmp_path, ssh=SS_TWO, dry_run=False).startswith("busy:")
    assert (tmp_path / "state" / "last-busy").read_text().strip() == f"{NOW:.0f}"
    # the SSH session closed: idle since then, not since boot (the state file, not --last-busy)
    assert agent(tmp_path, dry_run=True) == "wait: idle for 0 of 60 minutes"


def test_box_init_installs_the_timer(tmp_path):
    bash = shutil.which("bash") or "bash"
    result = subprocess.run(
        [bash, str(SETUP / "box-init.sh"), "45"], env={"DL1_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "etc/dl1/idle-stop").read_text() == "45\n"
    assert (tmp_path / "usr/local/lib/dl1/idle-agent.py").read_bytes() == AGENT.read_bytes()
    timer = (tmp_path / "etc/systemd/system/dl1-idle.timer").read_text()
    assert "OnUnitActiveSec=5min" in timer and "WantedBy=timers.target" in timer
    service = (tmp_path / "etc/systemd/system/dl1-idle.service").read_text()
    assert "ExecStart=/usr/bin/python3 /usr/local/lib/dl1/idle-agent.py" in service
    bad = subprocess.run([bash, str(SETUP / "box-init.sh"), "soon"], env={"DL1_ROOT": str(tmp_path)},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "MINUTES must be a number" in bad.stderr
