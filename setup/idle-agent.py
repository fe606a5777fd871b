#!/usr/bin/env python3
"""dl1 idle agent: shuts the course box down (which stops the instance) when it has been idle for a while.

Installed on the box by setup/box-init.sh (from the instance's user-data) and run every 5 minutes by the
systemd timer dl1-idle.timer. The box counts as busy while
  - a Jupyter kernel is busy, or was active in the last MINUTES (its last_activity),
  - an SSH connection is open (a login, an editor's remote session, or the aws-nb tunnel),
  - a GPU is in use (utilization at or above 10%);
otherwise, once nothing has been busy for MINUTES, it runs `shutdown -h now`. MINUTES comes from the
instance's tag dl1:idle-stop (instance metadata; aws-setup.sh --idle-stop sets it), else /etc/dl1/idle-stop,
else 60; 0 turns the agent off. Standard library only (the system python3).

Recorded inputs instead of the live ones (tests, or to see what it would do): --kernels FILE (the JSON of
Jupyter's /api/kernels), --ssh FILE (output of `ss -Htn state established '( sport = :22 )'`), --gpu FILE
(output of `nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits`), --now, --boot and
--last-busy (seconds since the epoch), --minutes. --dry-run prints the decision and changes nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import subprocess
import sys
import time
import urllib.request

GPU_BUSY_PERCENT = 10
DEFAULT_MINUTES = 60
STATE_FILE = "/var/lib/dl1/last-busy"
CONFIG_FILE = "/etc/dl1/idle-stop"
IMDS = "http://169.254.169.254/latest"
TAG = "dl1:idle-stop"


def parse_time(text: str) -> float | None:
    """Jupyter's ISO 8601 times (2024-05-01T12:00:00.123456Z) as seconds since the epoch."""
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return None


def ssh_connections(ss_output: str) -> int:
    return sum(1 for line in ss_output.splitlines() if line.strip())


def gpu_utilization(smi_output: str) -> list[int]:
    values = []
    for line in smi_output.splitlines():
        line = line.strip().rstrip("%").strip()
        if line.isdigit():
            values.append(int(line))
    return values


def decide(
    *, now: float, last_busy: float, minutes: int, kernels: list, ssh_output: str = "", gpu_output: str = ""
) -> tuple[str, str, float]:
    """(action, reason, last_busy): action is 'off', 'busy', 'wait' or 'stop'."""
    if minutes <= 0:
        return "off", "idle stop is off (dl1:idle-stop is 0)", last_busy
    reasons = []
    for kernel in kernels:
        state = kernel.get("execution_state", "")
        if state in ("busy", "starting"):
            reasons.append(f"kernel {kernel.get('id', '?')[:8]} {state}")
        active = parse_time(kernel.get("last_activity", ""))
        if active is not None:
            last_busy = max(last_busy, min(active, now))
    connections = ssh_connections(ssh_output)
    if connections:
        reasons.append(f"{connections} SSH connection{'s' if connections > 1 else ''} open")
    busy_gpus = [u for u in gpu_utilization(gpu_output) if u >= GPU_BUSY_PERCENT]
    if busy_gpus:
        reasons.append(f"GPU in use ({max(busy_gpus)}%)")
    if reasons:
        return "busy", "; ".join(reasons), now
    idle = (now - last_busy) / 60
    if idle >= minutes:
        return "stop", f"idle for {idle:.0f} minutes (limit {minutes})", last_busy
    return "wait", f"idle for {idle:.0f} of {minutes} minutes", last_busy


# ---------------------------------------------------------------------------------------------------------
# Live inputs on the box
# ---------------------------------------------------------------------------------------------------------
def _run(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def live_kernels() -> list:
    """Kernels of every Jupyter server running on the box (their runtime files hold the URL and token)."""
    kernels = []
    files = glob.glob("/home/*/.local/share/jupyter/runtime/jpserver-*.json")
    files += glob.glob("/root/.local/share/jupyter/runtime/jpserver-*.json")
    for path in files:
        try:
            with open(path) as f:
                server = json.load(f)
            request = urllib.request.Request(server["url"].rstrip("/") + "/api/kernels")
            if server.get("token"):
                request.add_header("Authorization", "token " + server["token"])
            with urllib.request.urlopen(request, timeout=10) as response:
                kernels += json.load(response)
        except (OSError, ValueError, KeyError):
            continue  # a stale runtime file, or a server that is shutting down
    return kernels


def imds_minutes() -> int | None:
    try:
        token_request = urllib.request.Request(
            IMDS + "/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        with urllib.request.urlopen(token_request, timeout=2) as response:
            token = response.read().decode()
        request = urllib.request.Request(
            f"{IMDS}/meta-data/tags/instance/{TAG}", headers={"X-aws-ec2-metadata-token": token}
        )
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(response.read().decode().strip())
    except (OSError, ValueError):
        return None


def file_minutes(path: str = CONFIG_FILE) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def read_float(path: str) -> float | None:
    try:
        with open(path) as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stop the dl1 box when it is idle (run by dl1-idle.timer).")
    parser.add_argument("--dry-run", action="store_true", help="print the decision, change nothing")
    parser.add_argument("--minutes", type=int, help="idle minutes before stopping (default: tag, config, 60)")
    parser.add_argument("--kernels", help="recorded JSON of Jupyter's /api/kernels")
    parser.add_argument("--ssh", help="recorded output of ss (established connections on port 22)")
    parser.add_argument("--gpu", help="recorded output of nvidia-smi utilization.gpu (csv, noheader, nounits)")
    parser.add_argument("--now", type=float, help="the time (seconds since the epoch)")
    parser.add_argument("--boot", type=float, help="when the box booted (seconds since the epoch)")
    parser.add_argument("--last-busy", type=float, help="when the box was last busy (default: the state file)")
    parser.add_argument("--state", default=STATE_FILE, help=f"where the last busy time is kept ({STATE_FILE})")
    args = parser.parse_args(argv)

    now = args.now if args.now is not None else time.time()
    minutes = args.minutes
    if minutes is None:
        minutes = imds_minutes()
    if minutes is None:
        minutes = file_minutes()
    if minutes is None:
        minutes = DEFAULT_MINUTES
    boot = args.boot
    if boot is None:
        uptime = read_float("/proc/uptime")
        boot = now - uptime if uptime is not None else now
    last_busy = args.last_busy if args.last_busy is not None else read_float(args.state)
    last_busy = max(last_busy or boot, boot)  # a new boot starts a new idle period

    kernels = json.loads(read_text(args.kernels)) if args.kernels else live_kernels()
    ssh_output = read_text(args.ssh) if args.ssh else _run(["ss", "-Htn", "state", "established", "( sport = :22 )"])
    gpu_output = (
        read_text(args.gpu)
        if args.gpu
        else _run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"])
    )

    action, reason, last_busy = decide(
        now=now, last_busy=last_busy, minutes=minutes, kernels=kernels, ssh_output=ssh_output, gpu_output=gpu_output
    )
    print(f"{action}: {reason}")
    if args.dry_run:
        return 0
    try:
        os.makedirs(os.path.dirname(args.state), exist_ok=True)
        with open(args.state + ".tmp", "w") as f:
            f.write(f"{last_busy:.0f}\n")
        os.replace(args.state + ".tmp", args.state)
    except OSError as e:
        print(f"cannot write {args.state}: {e}", file=sys.stderr)
    if action == "stop":
        subprocess.run(["wall", f"dl1 idle agent: {reason}; shutting down (the instance stops)."], check=False)
        subprocess.run(["shutdown", "-h", "now"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
