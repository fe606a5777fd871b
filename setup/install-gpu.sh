#!/usr/bin/env bash
# Prepare the GPU box (the AWS Deep Learning AMI, Ubuntu) for the course, from a clone of this
# repository: check the NVIDIA driver, create the project's virtual environment with a CUDA build
# of PyTorch (the Keras backend), install requirements.txt, write ~/.keras/keras.json and configure
# Jupyter to listen on localhost only, with a token or password, and run it as the systemd service
# dl1-jupyter (started on boot, still on localhost only). Warns when the machine has too little memory for
# a lesson. Safe to run again.
# `--dry-run` prints every step and changes nothing. `--help` lists the options.
set -euo pipefail

PROG=${0##*/}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

DRY_RUN=0
CPU=0
CONFIG_ONLY=0
PASSWORD=0
TORCH_INDEX=""
VENV="$REPO/.venv"
JUPYTER_PORT=8888
SERVICE=1
SERVICE_NAME=dl1-jupyter
MEMINFO=${DL1_MEMINFO:-/proc/meminfo}
SYSTEMD_DIR=${DL1_SYSTEMD_DIR:-/etc/systemd/system}
LESSON2_GIB=30 # lesson 2 holds about 14 GB of images in memory, plus the model and the notebook
CPU_TORCH_INDEX="https://download.pytorch.org/whl/cpu"

usage() {
    cat <<EOF
Usage: $PROG [options]

Run on the GPU box, from a clone of this repository.

Options:
  --dry-run           print each step it would take; change nothing
  --torch-index URL   install torch from this wheel index (a specific CUDA build, e.g.
                      https://download.pytorch.org/whl/cu126); default: PyPI, whose Linux
                      wheels are CUDA builds
  --cpu               CPU-only machine: skip the NVIDIA driver check, install the CPU torch build
  --venv DIR          where to create the virtual environment (default: <repo>/.venv)
  --password          protect Jupyter with a password read from stdin (first line) instead of a
                      generated token
  --config-only       only write the Keras and Jupyter configuration (no venv, no installs)
  --no-service        do not install Jupyter as the systemd service $SERVICE_NAME (start it yourself)
  -h, --help          show this help

Jupyter is bound to 127.0.0.1:$JUPYTER_PORT: from your computer, reach it through SSH
(source setup/aws-alias.sh; aws-nb), never directly.
EOF
}

log() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# run CMD...: run a command, or in a dry run print it
run() {
    if ((DRY_RUN)); then
        printf '[dry-run] would run:'
        printf ' %q' "$@"
        printf '\n'
    else
        printf '+'
        printf ' %q' "$@"
        printf '\n'
        "$@"
    fi
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --dry-run) DRY_RUN=1; shift ;;
        --cpu) CPU=1; shift ;;
        --config-only) CONFIG_ONLY=1; shift ;;
        --password) PASSWORD=1; shift ;;
        --no-service) SERVICE=0; shift ;;
        --torch-index)
            [[ $# -ge 2 && -n "$2" ]] || die "--torch-index needs a URL"
            TORCH_INDEX=$2; shift 2 ;;
        --torch-index=*) TORCH_INDEX=${1#*=}; shift ;;
        --venv)
            [[ $# -ge 2 && -n "$2" ]] || die "--venv needs a directory"
            VENV=$2; shift 2 ;;
        --venv=*) VENV=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *)
            printf 'ERROR: unknown option: %s\nRun %s --help for the options.\n' "$1" "$PROG" >&2
            exit 2 ;;
        esac
    done
    if ((CPU)) && [[ -z "$TORCH_INDEX" ]]; then
        TORCH_INDEX=$CPU_TORCH_INDEX
    fi
}

# Lesson 2 keeps its images in memory (about 14 GB at the course's sizes): warn before it runs out.
check_memory() {
    local kib gib
    kib=$(awk '$1 == "MemTotal:" {print $2}' "$MEMINFO" 2>/dev/null || true)
    [[ "$kib" =~ ^[0-9]+$ ]] || return 0
    gib=$(((kib + 524288) / 1048576))
    if ((gib < LESSON2_GIB)); then
        warn "this machine has $gib GiB of memory: lesson 1, lesson 3 and the MNIST notebooks fit, but lesson 2 holds about 14 GB of images in memory at the course's sizes and will run out. Use a 32 GiB machine (setup/aws-setup.sh --instance-type g4dn.2xlarge, the default) or smaller sizes in lesson 2."
    else
        log "Memory: $gib GiB (enough for every lesson)"
    fi
}

check_driver() {
    step "Check the NVIDIA driver (nvidia-smi) and the memory"
    check_memory
    if ((CPU)); then
        log "--cpu: skipping the driver check"
        return 0
    fi
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        local msg="nvidia-smi not found: this machine has no NVIDIA driver. Use the AWS Deep Learning AMI (setup/aws-setup.sh picks it), or install a driver (sudo ubuntu-drivers install) and reboot, then run $PROG again. On a machine without a GPU, pass --cpu."
        if ((DRY_RUN)); then
            warn "$msg"
            log "[dry-run] a real run would stop here"
            return 0
        fi
        die "$msg"
    fi
    local out
    if ! out=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1); then
        local msg
        msg="nvidia-smi cannot talk to the NVIDIA driver (${out%%$'\n'*}). This usually means the driver or kernel was just updated: reboot (sudo reboot) and run $PROG again."
        if ((DRY_RUN)); then
            warn "$msg"
            return 0
        fi
        die "$msg"
    fi
    log "GPU: $out"
}

PYTHON=""

check_python() {
    step "Check Python (3.10 or newer, with venv)"
    PYTHON=$(command -v python3 || true)
    [[ -n "$PYTHON" ]] || die "python3 not found: install it (sudo apt-get install -y python3 python3-venv)."
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        die "$("$PYTHON" --version 2>&1) is too old: Python 3.10 or newer is needed."
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        local msg="python3 cannot create virtual environments: install the venv module (sudo apt-get install -y python3-venv)."
        if ((DRY_RUN)); then warn "$msg"; else die "$msg"; fi
    fi
    log "$("$PYTHON" --version 2>&1) at $PYTHON"
}

torch_requirement() { # the torch pin from requirements.txt (so the two never disagree)
    local pin
    pin=$(grep -m 1 -E '^[[:space:]]*torch[[:space:]]*(==|>=|~=)' "$REPO/requirements.txt" | tr -d '[:space:]' || true)
    printf '%s' "${pin:-torch}"
}

install_packages() {
    local vpy="$VENV/bin/python" torch_args
    [[ -f "$REPO/requirements.txt" ]] || die "$REPO/requirements.txt not found: run $PROG from a clone of the repository."

    step "Create the virtual environment $VENV"
    if [[ -x "$vpy" ]] && "$vpy" -c 'import sys' >/dev/null 2>&1; then
        log "exists: reusing it"
    else
        run "$PYTHON" -m venv "$VENV"
    fi

    step "Upgrade pip in the virtual environment"
    run "$vpy" -m pip install --upgrade pip

    step "Install PyTorch, the Keras backend ($(torch_requirement)$([[ -n "$TORCH_INDEX" ]] && printf ' from %s' "$TORCH_INDEX"))"
    torch_args=("$vpy" -m pip install "$(torch_requirement)")
    if [[ -n "$TORCH_INDEX" ]]; then
        torch_args+=(--index-url "$TORCH_INDEX")
    fi
    run "${torch_args[@]}"

    step "Install requirements.txt"
    # requirements.txt installs this repository with '-e .', relative to the current directory
    if ((DRY_RUN)); then
        log "[dry-run] would run: cd $(printf '%q' "$REPO")"
    else
        cd "$REPO"
    fi
    run "$vpy" -m pip install -r "$REPO/requirements.txt"

    step "Check that PyTorch sees the GPU"
    if ((CPU)); then
        log "--cpu: skipped"
    elif ((DRY_RUN)); then
        log "[dry-run] would run: $vpy -c 'import torch; print(torch.cuda.is_available())'"
    elif "$vpy" -c 'import sys, torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPUs:", torch.cuda.device_count()); sys.exit(not torch.cuda.is_available())'; then
        log "PyTorch uses the GPU"
    else
        warn "PyTorch does not see the GPU: its CUDA build may not match the driver. Re-run with --torch-index https://download.pytorch.org/whl/cuXXX matching the CUDA version nvidia-smi shows."
    fi
}

write_keras_config() {
    local file="$HOME/.keras/keras.json"
    step "Write the Keras backend config $file (backend torch, channels_last)"
    if ((DRY_RUN)); then
        log "[dry-run] would set \"backend\": \"torch\" and \"image_data_format\": \"channels_last\" in $file, keeping its other keys"
        return 0
    fi
    mkdir -p "$HOME/.keras"
    "$PYTHON" - "$file" <<'PY'
import json, os, shutil, sys
path = sys.argv[1]
config = {}
if os.path.exists(path):
    try:
        with open(path) as f:
            config = json.load(f)
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        shutil.copy(path, path + ".bak")
        print(f"{path} was not valid JSON ({e}); saved it as {path}.bak")
        config = {}
wanted = {"backend": "torch", "image_data_format": "channels_last"}
if all(config.get(k) == v for k, v in wanted.items()):
    print(f"{path} already set")
else:
    config.setdefault("floatx", "float32")
    config.setdefault("epsilon", 1e-07)
    config.update(wanted)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=4)
        f.write("\n")
    os.replace(tmp, path)
    print(f"wrote {path}: " + ", ".join(f"{k}={v}" for k, v in sorted(config.items())))
PY
}

read_password() {
    local pw=""
    if [[ -t 0 ]]; then
        read -r -s -p "Jupyter password: " pw
        printf '\n' >&2
    else
        IFS= read -r pw || true
    fi
    [[ -n "$pw" ]] || die "--password: no password given on stdin (echo 'my password' | $PROG --password ...)."
    printf '%s' "$pw"
}

write_jupyter_config() {
    local dir="$HOME/.jupyter" file="$HOME/.jupyter/jupyter_server_config.json" hasher="$PYTHON" pw=""
    step "Configure Jupyter: $file (127.0.0.1:$JUPYTER_PORT, no browser, $( ((PASSWORD)) && echo password || echo token))"
    if ((DRY_RUN)); then
        log "[dry-run] would set ServerApp.ip=127.0.0.1, port=$JUPYTER_PORT, open_browser=false in $file (mode 600), keeping its other keys"
        if ((PASSWORD)); then
            log "[dry-run] would read a password from stdin and store only its hash"
        else
            log "[dry-run] would generate a login token (kept if one is already set) and print it once"
        fi
        return 0
    fi
    if ((PASSWORD)); then
        pw=$(read_password)
    fi
    [[ -x "$VENV/bin/python" ]] && hasher="$VENV/bin/python"
    mkdir -p "$dir"
    chmod 700 "$dir"
    # the password goes through the environment, never the command line
    DL1_JUPYTER_PASSWORD="$pw" "$hasher" - "$file" "$JUPYTER_PORT" <<'PY'
import hashlib, json, os, secrets, sys
path, port = sys.argv[1], int(sys.argv[2])
password = os.environ.pop("DL1_JUPYTER_PASSWORD", "")
config = {}
if os.path.exists(path):
    try:
        with open(path) as f:
            config = json.load(f)
    except ValueError:
        os.replace(path, path + ".bak")
        print(f"{path} was not valid JSON; saved it as {path}.bak")
        config = {}
server = config.setdefault("ServerApp", {})
server.update({"ip": "127.0.0.1", "port": port, "port_retries": 0, "open_browser": False})
identity = config.setdefault("IdentityProvider", {})
if password:
    try:
        from jupyter_server.auth import passwd
        hashed = passwd(password)  # argon2
    except ImportError:  # same format jupyter_server checks: algorithm:salt:hexdigest(password + salt)
        salt = secrets.token_hex(6)
        hashed = "sha512:%s:%s" % (salt, hashlib.sha512((password + salt).encode()).hexdigest())
    config.setdefault("PasswordIdentityProvider", {})["hashed_password"] = hashed
    identity["token"] = ""
    print("Jupyter password set (only its hash is stored).")
elif identity.get("token"):
    print(f"Jupyter token already set in {path}: kept.")
elif config.get("PasswordIdentityProvider", {}).get("hashed_password"):
    print(f"Jupyter password already set in {path}: kept (--password sets a new one).")
else:
    identity["token"] = secrets.token_hex(24)
    print(f"Jupyter login token (shown once; it is also in {path}):")
    print(f"    {identity['token']}")
    print(f"    http://localhost:{port}/?token={identity['token']}")
old = os.umask(0o077)
try:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=4)
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
finally:
    os.umask(old)
print(f"wrote {path}: Jupyter listens on 127.0.0.1:{port} only")
PY
    if [[ -f "$dir/jupyter_server_config.py" ]] && grep -Eq "^[^#]*\.ip *= *['\"](\*|0\.0\.0\.0)" "$dir/jupyter_server_config.py"; then
        warn "$dir/jupyter_server_config.py sets ip to all interfaces; the JSON file above overrides it, but better remove that line."
    fi
}

register_kernel() {
    step "Register the virtual environment as the Jupyter kernel 'Python (dl1)'$( ((SERVICE)) && printf ' and run Jupyter as the service %s' "$SERVICE_NAME")"
    run "$VENV/bin/python" -m ipykernel install --user --name dl1 --display-name "Python (dl1)"
    if ((SERVICE)); then
        install_service
    fi
}

service_unit() {
    cat <<UNIT
[Unit]
Description=Jupyter for the dl1 course (127.0.0.1:$JUPYTER_PORT only: reach it through SSH, aws-nb)
After=network.target

[Service]
User=$(id -un)
WorkingDirectory="$REPO/nbs"
Environment=KERAS_BACKEND=torch
ExecStart="$VENV/bin/jupyter" lab --ip=127.0.0.1 --port=$JUPYTER_PORT --no-browser "--notebook-dir=$REPO/nbs"
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
}

# Jupyter as a systemd service, started on boot and bound to localhost, so it is there after every start
install_service() {
    local unit="$SYSTEMD_DIR/$SERVICE_NAME.service" sudo=() tmp
    if ((DRY_RUN)); then
        log "[dry-run] would write $unit (jupyter lab --ip=127.0.0.1 --port=$JUPYTER_PORT, as $(id -un)) and run systemctl enable --now $SERVICE_NAME"
        return 0
    fi
    if [[ -n "${DL1_SYSTEMD_DIR:-}" ]]; then # tests: write the unit only
        service_unit >"$unit"
        log "wrote $unit"
        return 0
    fi
    if ! command -v systemctl >/dev/null 2>&1; then
        warn "no systemd here: start Jupyter yourself: tmux new -s nb '$VENV/bin/jupyter lab --notebook-dir $REPO/nbs'"
        return 0
    fi
    ((EUID == 0)) || sudo=(sudo)
    tmp=$(mktemp)
    service_unit >"$tmp"
    run "${sudo[@]}" install -m 644 "$tmp" "$unit"
    rm -f "$tmp"
    run "${sudo[@]}" systemctl daemon-reload
    run "${sudo[@]}" systemctl enable "$SERVICE_NAME"
    run "${sudo[@]}" systemctl restart "$SERVICE_NAME"
    log "Jupyter runs as the service $SERVICE_NAME on 127.0.0.1:$JUPYTER_PORT (systemctl status $SERVICE_NAME; journalctl -u $SERVICE_NAME)"
}

main() {
    parse_args "$@"
    ((DRY_RUN)) && log "Dry run: printing the steps, changing nothing."
    log "Repository: $REPO"
    if ((CONFIG_ONLY)); then
        PYTHON=$(command -v python3 || true)
        [[ -n "$PYTHON" ]] || die "python3 not found."
    else
        check_driver
        check_python
        install_packages
    fi
    write_keras_config
    write_jupyter_config
    ((CONFIG_ONLY)) || register_kernel

    step "Done$( ((DRY_RUN)) && printf ' (dry run: nothing was changed)')"
    if ((SERVICE && !CONFIG_ONLY)); then
        log "Jupyter runs on the box as the service $SERVICE_NAME (started on boot, 127.0.0.1:$JUPYTER_PORT only)."
    else
        log "Start Jupyter on the box (in tmux, so it survives logging out):"
        log "    tmux new -s nb '$VENV/bin/jupyter lab --notebook-dir $REPO/nbs'"
    fi
    log "Then on your computer: source setup/aws-alias.sh; aws-nb   (opens http://localhost:$JUPYTER_PORT/ through SSH)"
}

main "$@"
