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
LOAD_IDLE = "0.02 0.04 0.01 1/183 4321\n"
LOAD_BUSY = "1.01 0.98 0.52 2/190 4400\n"  # one core busy for the last 5 minutes
PS_IDLE = (  # root's daemons, the login user's shells, tmux, the SSH session, Jupyter and its kernel
    "    0     1 Ss   /sbin/init\n"
    "    0   812 Ss   sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups\n"
    " 1000  1201 Ss   /lib/systemd/systemd --user\n"
    " 1000  1202 S    (sd-pam)\n"
    " 1000  1310 Ss   tmux new -s work\n"
    " 1000  1311 Ss+  -bash\n"
    " 1000  1400 Ssl  /opt/conda/bin/python /opt/conda/bin/jupyter-lab --no-browser --port 8888\n"
    " 1000  1500 Ssl  /opt/conda/bin/python -m ipykernel_launcher -f /run/user/1000/kernel-1.json\n"
    " 1000  1600 Z    [python] <defunct>\n"
    "65534  1700 S    /usr/bin/dnsmasq\n"
)
PS_JOB = PS_IDLE + " 1000  1312 S+   python train.py --epochs 30\n"  # left running in tmux after logout


def agent(tmp_path: Path, *, kernels=(), ssh="", gpu=GPU_IDLE, load=LOAD_IDLE, ps=PS_IDLE, minutes=60, last_busy=None,
          dry_run=True):
    (tmp_path / "kernels.json").write_text(kernels if isinstance(kernels, str) else json.dumps(list(kernels)))
    (tmp_path / "ss.txt").write_text(ssh)
    (tmp_path / "gpu.txt").write_text(gpu)
    (tmp_path / "loadavg").write_text(load)
    (tmp_path / "ps.txt").write_text(ps)
    args = [sys.executable, str(AGENT), "--kernels", str(tmp_path / "kernels.json"), "--ssh", str(tmp_path / "ss.txt")]
    args += ["--gpu", str(tmp_path / "gpu.txt"), "--now", str(NOW), "--boot", str(BOOT), "--minutes", str(minutes)]
    args += ["--loadavg", str(tmp_path / "loadavg"), "--ps", str(tmp_path / "ps.txt")]
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
        (dict(load=LOAD_BUSY), "busy: CPU in use (load 0.98)"),  # a CPU job in tmux after logging out
        (dict(ps=PS_JOB), "busy: user process python train.py --epochs 30 (pid 1312)"),  # ... waiting on I/O
        (dict(load=LOAD_BUSY, ps=PS_JOB), "busy: CPU in use (load 0.98); user process python train.py --epochs 30 "
                                          "(pid 1312)"),
        (dict(gpu="NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"),
         "busy: could not tell GPU use (nvidia-smi said \"NVIDIA-SMI has failed because it couldn't communicate with t\")"),
        (dict(kernels="<html>502 Bad Gateway</html>"),
         "busy: could not tell Jupyter's kernels (Expecting value: line 1 column 1 (char 0))"),
        (dict(kernels='{"message": "Forbidden"}'), "busy: could not tell Jupyter's kernels (not a list of kernels)"),
        (dict(load=""), "busy: could not tell CPU load (/proc/loadavg said '')"),
        (dict(ps="error: unsupported option\n"), "busy: could not tell user processes (ps said 'error: unsupported "
                                                 "option')"),
        (dict(gpu="[N/A]\n", minutes=0), "off: idle stop is off (dl1:idle-stop is 0)"),
    ],
    ids=["busy-kernel", "ssh-open", "gpu-in-use", "kernel-active-recently", "idle", "gpu-low", "no-gpu", "off",
         "recently-busy", "rebooted", "cpu-load", "user-process", "both", "nvidia-smi-error", "jupyter-error",
         "jupyter-refuses", "no-loadavg", "ps-error", "off-whatever"],
)
def test_decisions_on_recorded_inputs(tmp_path, inputs, expected):
    assert agent(tmp_path, **inputs) == expected
    assert not (tmp_path / "state").exists()  # --dry-run changes nothing


def test_failing_live_commands_count_as_could_not_tell(tmp_path):
    """The live path: nvidia-smi present but failing, ss missing; kernels, load and processes recorded."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'Failed to initialize NVML: Driver/library version mismatch' >&2\nexit 18\n")
    smi.chmod(0o755)
    for name, path in (("ps.txt", PS_IDLE), ("loadavg", LOAD_IDLE), ("kernels.json", "[]")):
        (tmp_path / name).write_text(path)
    result = subprocess.run(
        [sys.executable, str(AGENT), "--kernels", str(tmp_path / "kernels.json"), "--loadavg", str(tmp_path / "loadavg"),
         "--ps", str(tmp_path / "ps.txt"), "--now", str(NOW), "--boot", str(BOOT), "--minutes", "60", "--dry-run"],
        capture_output=True, text=True, timeout=60, env={"PATH": str(bin_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("busy: could not tell ss (FileNotFoundError")
    assert "; nvidia-smi (exit 18: Failed to initialize NVML: Driver/library version mismatch)" in result.stdout


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
