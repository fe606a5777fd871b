#!/usr/bin/env python3
"""dl1 idle agent: shuts the course box down (which stops the instance) when it has been idle for a while.

Installed on the box by setup/box-init.sh (from the instance's user-data) and run every 5 minutes by the
systemd timer dl1-idle.timer. The box counts as busy while
  - a Jupyter kernel is busy, or was active in the last MINUTES (its last_activity),
  - an SSH connection is open (a login, an editor's remote session, or the aws-nb tunnel),
  - a GPU is in use (utilization at or above 10%),
  - the CPU is in use (the 5-minute load average at or above 0.5: a job in tmux or nohup after you logged out),
  - a user process runs (a login user's process other than a shell, tmux/screen, sshd or Jupyter: the same
    job while it waits on the network or the disk),
  - something cannot be told (Jupyter does not answer, nvidia-smi, ss or ps fail or print what the agent
    cannot read): not knowing is never taken for idle (the CloudWatch alarm stays the backstop);
otherwise, once nothing has been busy for MINUTES, it runs `shutdown -h now`. MINUTES comes from the
instance's tag dl1:idle-stop (instance metadata; aws-setup.sh --idle-stop sets it), else /etc/dl1/idle-stop,
else 60; 0 turns the agent off. Standard library only (the system python3).

Recorded inputs instead of the live ones (tests, or to see what it would do): --kernels FILE (the JSON of
Jupyter's /api/kernels), --ssh FILE (output of `ss -Htn state established '( sport = :22 )'`), --gpu FILE
(output of `nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits`), --loadavg FILE (a copy of
/proc/loadavg), --ps FILE (output of `ps -eo uid=,pid=,stat=,args=`), --now, --boot and --last-busy
(seconds since the epoch), --minutes. --dry-run prints the decision and changes nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

GPU_BUSY_PERCENT = 10
CPU_BUSY_LOAD = 0.5  # the 5-minute load average: one busy core for half the time
FIRST_LOGIN_UID, NOBODY_UID = 1000, 65534
# a login user's processes that are not work: shells, terminal multiplexers, the SSH session, Jupyter itself
IDLE_PROGRAMS = {"bash", "sh", "zsh", "fish", "dash", "tmux", "tmux:", "screen", "sshd", "sshd:", "systemd",
                 "(sd-pam)", "sftp-server", "dbus-daemon", "gpg-agent", "ssh-agent", "ps", "less", "man"}
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
    """Each GPU's utilization; ValueError for a line that is not a number (nvidia-smi printing an error)."""
    values = []
    for line in smi_output.splitlines():
        line = line.strip().rstrip("%").strip()
        if not line:
            continue
        if not line.isdigit():
            raise ValueError(f"nvidia-smi said {line[:60]!r}")
        values.append(int(line))
    return values


def load_average(loadavg: str) -> float:
    """The 5-minute load average from the text of /proc/loadavg (ValueError when it is not that)."""
    return float(loadavg.split()[1])


def user_processes(ps_output: str) -> list[str]:
    """``program (pid N)`` of each process of a login user that is work (see IDLE_PROGRAMS), from
    ``ps -eo uid=,pid=,stat=,args=``; ValueError for a line that is not such a row."""
    found = []
    for line in ps_output.splitlines():
        if not line.strip():
            continue
        parts = line.split(None, 3)
        if len(parts) < 4 or not parts[0].isdigit() or not parts[1].isdigit():
            raise ValueError(f"ps said {line.strip()[:60]!r}")
        uid, pid, stat, args = int(parts[0]), parts[1], parts[2], parts[3]
        if not FIRST_LOGIN_UID <= uid < NOBODY_UID or stat.startswith("Z"):
            continue
        program = os.path.basename(args.split()[0]).lstrip("-")
        if program in IDLE_PROGRAMS or "jupyter" in args or "ipykernel" in args:
            continue
        found.append(f"{args[:40].strip()} (pid {pid})")
    return found


def decide(
    *, now: float, last_busy: float, minutes: int, kernels: list | None, ssh_output: str = "", gpu_output: str = "",
    loadavg: str = "0 0 0 1/1 1", ps_output: str = "", unknown: list | None = None
) -> tuple[str, str, float]:
    """(action, reason, last_busy): action is 'off', 'busy', 'wait' or 'stop'. ``kernels`` None and the
    ``unknown`` list are what could not be told: both count as busy."""
    if minutes <= 0:
        return "off", "idle stop is off (dl1:idle-stop is 0)", last_busy
    reasons = []
    unknown = list(unknown or [])
    for kernel in kernels or []:
        if not isinstance(kernel, dict):
            unknown.append(f"Jupyter's kernels (an entry {str(kernel)[:30]!r})")
            continue
        state = kernel.get("execution_state", "")
        if state in ("busy", "starting"):
            reasons.append(f"kernel {kernel.get('id', '?')[:8]} {state}")
        active = parse_time(kernel.get("last_activity", ""))
        if active is not None:
            last_busy = max(last_busy, min(active, now))
    connections = ssh_connections(ssh_output)
    if connections:
        reasons.append(f"{connections} SSH connection{'s' if connections > 1 else ''} open")
    try:
        busy_gpus = [u for u in gpu_utilization(gpu_output) if u >= GPU_BUSY_PERCENT]
        if busy_gpus:
            reasons.append(f"GPU in use ({max(busy_gpus)}%)")
    except ValueError as e:
        unknown.append(f"GPU use ({e})")
    try:
        load = load_average(loadavg)
        if load >= CPU_BUSY_LOAD:
            reasons.append(f"CPU in use (load {load:.2f})")
    except (ValueError, IndexError):
        unknown.append(f"CPU load (/proc/loadavg said {loadavg.strip()[:40]!r})")
    try:
        work = user_processes(ps_output)
        if work:
            more = f" and {len(work) - 1} more" if len(work) > 1 else ""
            reasons.append(f"user process {work[0]}{more}")
    except ValueError as e:
        unknown.append(f"user processes ({e})")
    if unknown:
        reasons.append("could not tell " + "; ".join(unknown))
    if reasons:
        return "busy", "; ".join(reasons), now
    idle = (now - last_busy) / 60
    if idle >= minutes:
        return "stop", f"idle for {idle:.0f} minutes (limit {minutes})", last_busy
    return "wait", f"idle for {idle:.0f} of {minutes} minutes", last_busy


# ---------------------------------------------------------------------------------------------------------
# Live inputs on the box
# ---------------------------------------------------------------------------------------------------------
def _run(args: list[str], unknown: list) -> str:
    """The output of a command; when it cannot run or fails, what went wrong goes to ``unknown``."""
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        unknown.append(f"{args[0]} ({type(e).__name__}: {e})"[:120])
        return ""
    if result.returncode != 0:
        why = (result.stderr or result.stdout).strip().splitlines()
        unknown.append(f"{args[0]} (exit {result.returncode}: {why[0][:60] if why else 'no message'})")
        return ""
    return result.stdout


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def live_kernels(unknown: list) -> list:
    """Kernels of every Jupyter server running on the box (their runtime files hold the URL and token). A
    runtime file whose server is gone is stale and skipped; a live server that does not answer goes to
    ``unknown``."""
    kernels = []
    files = glob.glob("/home/*/.local/share/jupyter/runtime/jpserver-*.json")
    files += glob.glob("/root/.local/share/jupyter/runtime/jpserver-*.json")
    for path in files:
        try:
            with open(path) as f:
                server = json.load(f)
        except (OSError, ValueError):
            continue  # a runtime file being written or removed
        if not isinstance(server, dict) or not _pid_alive(server.get("pid")):
            continue  # its server is gone
        try:
            request = urllib.request.Request(server["url"].rstrip("/") + "/api/kernels")
            if server.get("token"):
                request.add_header("Authorization", "token " + server["token"])
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.load(response)
            if not isinstance(answer, list):
                raise ValueError("not a list of kernels")
            kernels += answer
        except (OSError, ValueError, KeyError, AttributeError) as e:
            unknown.append(f"Jupyter's kernels ({os.path.basename(path)}: {str(e)[:60]})")
    return kernels


def recorded_kernels(path: str, unknown: list) -> list:
    try:
        kernels = json.loads(read_text(path))
        if not isinstance(kernels, list):
            raise ValueError("not a list of kernels")
        return kernels
    except (OSError, ValueError) as e:
        unknown.append(f"Jupyter's kernels ({str(e)[:60]})")
        return []


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
    parser.add_argument("--loadavg", help="a recorded copy of /proc/loadavg")
    parser.add_argument("--ps", help="recorded output of ps -eo uid=,pid=,stat=,args=")
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

    unknown: list[str] = []
    kernels = recorded_kernels(args.kernels, unknown) if args.kernels else live_kernels(unknown)
    ssh_output = (read_text(args.ssh) if args.ssh
                  else _run(["ss", "-Htn", "state", "established", "( sport = :22 )"], unknown))
    if args.gpu:
        gpu_output = read_text(args.gpu)
    elif shutil.which("nvidia-smi"):
        gpu_output = _run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"], unknown)
    else:
        gpu_output = ""  # no GPU driver: a CPU box
    try:
        loadavg = read_text(args.loadavg or "/proc/loadavg")
    except OSError as e:
        loadavg = f"unreadable: {e.strerror}"
    ps_output = read_text(args.ps) if args.ps else _run(["ps", "-eo", "uid=,pid=,stat=,args="], unknown)

    action, reason, last_busy = decide(
        now=now, last_busy=last_busy, minutes=minutes, kernels=kernels, ssh_output=ssh_output, gpu_output=gpu_output,
        loadavg=loadavg, ps_output=ps_output, unknown=unknown,
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
