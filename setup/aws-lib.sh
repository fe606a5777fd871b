#!/usr/bin/env bash
# shellcheck shell=bash
# Helpers shared by setup/aws-setup.sh and setup/remove.sh. Sourced, never run:
#     source "$SCRIPT_DIR/aws-lib.sh"
# Every AWS CLI call goes through aws_try / awsq, which pass --output text (with the caller's --query),
# so the user's configured output format (json, table, yaml...) never matters.
set -euo pipefail

export AWS_PAGER="" # AWS CLI v2 would otherwise page some output
DL1_STATE_ROOT=${DL1_AWS_STATE_DIR:-$HOME/.dl1/aws}
PROG=${PROG:-${0##*/}}
ERR_FILE=${ERR_FILE:-}
DIE_HINT=${DIE_HINT:-}

log() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }

# die MESSAGE: one line on stderr (newlines in MESSAGE, e.g. from the CLI, are folded), then exit 1.
# DIE_HINT, when set, is appended to that same line (what to do about a half-made stack).
die() {
    local msg
    msg=$(printf '%s' "$*" | tr '\n\t' '  ' | tr -s ' ')
    printf 'ERROR: %s%s\n' "$msg" "${DIE_HINT:+ $DIE_HINT}" >&2
    if [[ -n "${DIED:-}" ]]; then : >"$DIED" 2>/dev/null || true; fi # tells the EXIT trap it was said
    exit 1
}

# aws_try ARGS...: run the CLI with text output; prints the result ('None' becomes empty).
# On failure returns the CLI's status; the error text is then in $ERR_FILE (see aws_error).
aws_try() {
    local out
    out=$(aws "$@" --output text 2>"$ERR_FILE") || return $?
    [[ "$out" == "None" ]] && out=""
    [[ -z "$out" ]] || printf '%s\n' "$out"
}

# aws_error: the CLI's last error, on one line (without the CLI's blank lines).
aws_error() { grep -v '^[[:space:]]*$' "$ERR_FILE" 2>/dev/null | tail -n 3 | tr '\n' ' ' | sed 's/ *$//' || true; }

# aws_error_code: the AWS error code of the last failure (e.g. VcpuLimitExceeded), or empty.
aws_error_code() { sed -n 's/.*An error occurred (\([A-Za-z0-9.]*\)).*/\1/p' "$ERR_FILE" 2>/dev/null | tail -n 1 || true; }

# awsq ARGS...: like aws_try, but a failure stops the script with the CLI's message.
awsq() {
    local out
    if ! out=$(aws_try "$@"); then
        die "aws $1 $2 failed: $(aws_error)"
    fi
    [[ -z "$out" ]] || printf '%s\n' "$out"
}

field() { # field N LINE: the Nth tab-separated field, with '-' (our placeholder for null) as empty
    local fields value
    IFS=$'\t' read -r -a fields <<<"$2" || true
    value=${fields[$(($1 - 1))]:-}
    [[ "$value" == "-" || "$value" == "None" ]] && value=""
    printf '%s' "$value"
}

shquote() { # shquote VALUE: VALUE in single quotes, safe to paste into a shell script
    local q="'\\''"
    printf "'%s'" "${1//\'/$q}"
}

write_file() { # write_file PATH MODE: stdin to PATH atomically
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat >"$tmp"
    chmod "$2" "$tmp"
    mv -f "$tmp" "$1"
}

# The default stack keeps its files right in the state folder ($DL1_STATE_ROOT/remove.sh, as
# documented); any other --name gets a sub-folder of its own, so several stacks can coexist.
stack_dir() {
    if [[ "$1" == "dl1" ]]; then printf '%s' "$DL1_STATE_ROOT"; else printf '%s/%s' "$DL1_STATE_ROOT" "$1"; fi
}

state_value() { # state_value FILE VAR: VAR as recorded in the stack.env FILE (read in a subshell)
    [[ -f "$1" ]] || return 0
    (
        # shellcheck disable=SC1090 # written by aws-setup.sh; its path is only known at run time
        . "$1" >/dev/null 2>&1 || true
        printf '%s' "${!2:-}"
    )
}

# configured_region: AWS_REGION, AWS_DEFAULT_REGION or `aws configure get region`; exports it.
configured_region() {
    local region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
    if [[ -z "$region" ]]; then
        region=$(aws configure get region 2>/dev/null || true)
    fi
    [[ -n "$region" ]] ||
        die "no AWS region configured. Set one with 'aws configure set region eu-west-1' (or export AWS_DEFAULT_REGION=...), choosing a region near you that offers GPU instances."
    export AWS_DEFAULT_REGION="$region"
    unset AWS_REGION
    printf '%s' "$region"
}

# ssh_config_remove HOST: removes the block aws-setup.sh wrote for HOST from ~/.ssh/config.
ssh_config_remove() {
    local file="$HOME/.ssh/config" begin="# >>> dl1 $1 (written by setup/aws-setup.sh) >>>" end="# <<< dl1 $1 <<<"
    if [[ ! -f "$file" ]] || ! grep -qxF -- "$begin" "$file"; then
        return 1
    fi
    awk -v b="$begin" -v e="$end" '$0 == b {skip = 1; next} skip && $0 == e {skip = 0; next} !skip' "$file" |
        write_file "$file" 600
}
