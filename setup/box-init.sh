#!/usr/bin/env bash
# Installs the dl1 idle agent on the box: /usr/local/lib/dl1/idle-agent.py, run every 5 minutes by the
# systemd timer dl1-idle.timer, stops the box once it has been idle for MINUTES (see idle-agent.py).
# Run as root, by the instance's user-data at first boot (aws-setup.sh writes it), or by hand on a box
# made another way:   sudo bash setup/box-init.sh [MINUTES] [AGENT_FILE]
# MINUTES (default 60; 0: off) goes to /etc/dl1/idle-stop; the instance's tag dl1:idle-stop, when the
# instance metadata shows tags, takes precedence, so aws-setup.sh --idle-stop changes it later.
# DL1_ROOT (default: /) installs into another root and skips systemctl (for tests).
set -euo pipefail

MINUTES=${1:-60}
AGENT=${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/idle-agent.py}
ROOT=${DL1_ROOT:-}
[[ "$MINUTES" =~ ^[0-9]{1,4}$ ]] || { echo "ERROR: MINUTES must be a number of minutes (got '$MINUTES')" >&2; exit 2; }
[[ -f "$AGENT" ]] || { echo "ERROR: $AGENT not found" >&2; exit 1; }

install -d -m 755 "$ROOT/usr/local/lib/dl1" "$ROOT/etc/dl1" "$ROOT/var/lib/dl1" "$ROOT/etc/systemd/system"
if [[ ! "$AGENT" -ef "$ROOT/usr/local/lib/dl1/idle-agent.py" ]]; then
    install -m 755 "$AGENT" "$ROOT/usr/local/lib/dl1/idle-agent.py"
fi
chmod 755 "$ROOT/usr/local/lib/dl1/idle-agent.py"
printf '%s\n' "$MINUTES" >"$ROOT/etc/dl1/idle-stop"

cat >"$ROOT/etc/systemd/system/dl1-idle.service" <<'UNIT'
[Unit]
Description=dl1 idle agent: stop the box when no kernel, SSH session or GPU job is busy
After=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/bin/python3 /usr/local/lib/dl1/idle-agent.py
UNIT

cat >"$ROOT/etc/systemd/system/dl1-idle.timer" <<'UNIT'
[Unit]
Description=Run the dl1 idle agent every 5 minutes

[Timer]
OnBootSec=5min
OnUnitActiveSec=5min

[Install]
WantedBy=timers.target
UNIT

if [[ -z "$ROOT" ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
    systemctl enable --now dl1-idle.timer
fi
echo "dl1 idle agent installed: stops the box after $MINUTES idle minutes (0: never)."
