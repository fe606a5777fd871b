#!/usr/bin/env bash
# shellcheck shell=bash
# Shortcuts for the course's AWS box. Source this file (bash or zsh), don't run it:
#     source setup/aws-alias.sh
#     aws-state; aws-start; aws-ssh; aws-nb; aws-stop
#
# The functions find the stack's instance by its tag (dl1:stack=NAME), so they work from any
# directory, and every AWS CLI call passes --output text with a --query, so they work whatever
# output format (json, text, table, yaml) your AWS CLI is configured with.
#
#   DL1_AWS_NAME       the stack to use (default: dl1, as in setup/aws-setup.sh --name)
#   DL1_AWS_STATE_DIR  where aws-setup.sh keeps its state (default: ~/.dl1/aws)
#   DL1_NB_PORT        local port of the Jupyter tunnel (default: 8888)
#
#   aws-get     find the instance; exports instanceId       (aws-get-p2: same, the 2017 name)
#   aws-state   pending / running / stopping / stopped
#   aws-ip      the public IP; exports instanceIp
#   aws-start   start it and wait until it runs; prints the IP
#   aws-stop    stop it (the disk stays, billing for the instance stops)
#   aws-ssh     log in (extra arguments go to ssh, e.g. a command to run)
#   aws-nb      SSH tunnel to Jupyter on the box (localhost:8888 there) and open the local browser
#   aws-nb-stop close that tunnel
#   aws-allow-me  move the SSH rule to the address you have now (a new café, a new IP); starts nothing
#   aws-remove  run the stack's remove.sh (deletes everything the stack created; asks first, --yes doesn't)
#
# aws-ssh, aws-nb and aws-start say so when your public address (looked up at checkip.amazonaws.com, or
# DL1_CHECKIP_URL) is not the one the security group lets in; DL1_CHECK_ADDRESS=0 skips that check.

if [ -n "${BASH_VERSION:-}" ] && [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "Source this file instead of running it: source ${BASH_SOURCE[0]}" >&2
    exit 1
fi

_dl1_stack() { printf '%s' "${DL1_AWS_NAME:-dl1}"; }

# The default stack's files are in the state folder itself, other stacks' in a sub-folder NAME/
_dl1_dir() {
    local root="${DL1_AWS_STATE_DIR:-$HOME/.dl1/aws}"
    if [ "$(_dl1_stack)" = "dl1" ]; then printf '%s' "$root"; else printf '%s/%s' "$root" "$(_dl1_stack)"; fi
}

# _dl1_state VAR: the value aws-setup.sh recorded for VAR (REGION, KEY_FILE, SSH_USER...)
_dl1_state() {
    local file
    file="$(_dl1_dir)/stack.env"
    [ -f "$file" ] || return 0
    (
        # shellcheck disable=SC1090 # written by aws-setup.sh; its path is only known at run time
        . "$file" >/dev/null 2>&1
        printenv "DL1_$1"
    ) || true
}

# _dl1_aws ARGS...: the AWS CLI in the stack's region with text output ('None' prints nothing)
_dl1_aws() {
    local region out
    if ! command -v aws >/dev/null 2>&1; then
        echo "aws CLI not found on PATH: install it (pip install awscli) and run 'aws configure'." >&2
        return 127
    fi
    region=$(_dl1_state REGION)
    if [ -n "$region" ]; then
        out=$(command aws --region "$region" "$@" --output text) || return
    else
        out=$(command aws "$@" --output text) || return
    fi
    if [ -n "$out" ] && [ "$out" != "None" ]; then
        printf '%s\n' "$out"
    fi
}

# _dl1_find FIELD: finds the stack's instance, exports instanceId and sets _dl1_value to FIELD
# (a JMESPath on the instance, e.g. State.Name), all in one call.
_dl1_find() {
    local out tab
    tab=$(printf '\t')
    _dl1_value=""
    out=$(_dl1_aws ec2 describe-instances \
        --filters "Name=tag:dl1:stack,Values=$(_dl1_stack)" "Name=instance-state-name,Values=pending,running,stopping,stopped" \
        --query "Reservations[].Instances[].[InstanceId, $1 || '-'] | [0]") || return
    if [ -z "$out" ]; then
        echo "No instance found for stack '$(_dl1_stack)'. Create it with setup/aws-setup.sh$([ "$(_dl1_stack)" = dl1 ] || printf ' --name %s' "$(_dl1_stack)"), or set DL1_AWS_NAME." >&2
        return 1
    fi
    instanceId=${out%%"$tab"*}
    export instanceId
    _dl1_value=${out#*"$tab"}
    [ "$_dl1_value" != "-" ] || _dl1_value=""
}

aws-get() {
    _dl1_find InstanceId || return
    printf '%s\n' "$instanceId"
}

aws-get-p2() { aws-get "$@"; }

aws-state() {
    _dl1_find State.Name || return
    printf '%s\n' "$_dl1_value"
}

aws-ip() {
    _dl1_find PublicIpAddress || return
    if [ -z "$_dl1_value" ]; then
        echo "Instance $instanceId has no public IP address (is it running? aws-state)." >&2
        return 1
    fi
    instanceIp=$_dl1_value
    export instanceIp
    printf '%s\n' "$instanceIp"
}

aws-start() {
    _dl1_find InstanceLifecycle || return
    if ! _dl1_aws ec2 start-instances --instance-ids "$instanceId" --query 'StartingInstances[0].CurrentState.Name' >/dev/null; then
        if [ "$_dl1_value" = spot ]; then
            echo "Spot instance $instanceId cannot start now: after a spot interruption it starts only when AWS has spot capacity again (its persistent request restarts it by itself). Try again later." >&2
        fi
        return 1
    fi
    _dl1_check_address
    echo "Starting $instanceId; waiting until it runs..."
    _dl1_aws ec2 wait instance-running --instance-ids "$instanceId" || return
    aws-ip
}

aws-stop() {
    _dl1_find State.Name || return
    _dl1_aws ec2 stop-instances --instance-ids "$instanceId" --query 'StoppingInstances[0].CurrentState.Name'
}

# _dl1_key: the stack's private key file (checked to exist)
_dl1_key() {
    local key
    key=$(_dl1_state KEY_FILE)
    [ -n "$key" ] || key="$(_dl1_dir)/$(_dl1_stack)-key.pem"
    if [ ! -f "$key" ]; then
        echo "Private key $key not found (it is written by setup/aws-setup.sh)." >&2
        return 1
    fi
    printf '%s' "$key"
}

_dl1_user() {
    local user
    user=$(_dl1_state SSH_USER)
    printf '%s' "${user:-ubuntu}"
}

# _dl1_sg_cidrs: the stack's security group id, a tab, and the addresses it lets in on port 22
_dl1_sg() {
    _dl1_aws ec2 describe-security-groups --filters "Name=tag:dl1:stack,Values=$(_dl1_stack)" \
        "Name=tag:Name,Values=$(_dl1_stack)-security-group" \
        --query "SecurityGroups[0].[GroupId, join(' ', IpPermissions[?FromPort==\`22\`].IpRanges[].CidrIp) || '-']"
}

_dl1_my_ip() {
    local ip
    ip=$(command curl -fsS --max-time 5 "${DL1_CHECKIP_URL:-https://checkip.amazonaws.com}" 2>/dev/null | tr -d '[:space:]') || return 1
    case "$ip" in
    *[!0-9.]* | "") return 1 ;;
    esac
    printf '%s' "$ip"
}

# _dl1_check_address: warns (never fails) when the caller's address is not the one allowed in
_dl1_check_address() {
    local ip sg cidrs
    [ "${DL1_CHECK_ADDRESS:-1}" != 0 ] || return 0
    command -v curl >/dev/null 2>&1 || return 0
    ip=$(_dl1_my_ip) || return 0
    sg=$(_dl1_sg 2>/dev/null) || return 0
    cidrs=${sg#*"$(printf '\t')"}
    case " $cidrs " in
    *" $ip/32 "*) return 0 ;;
    esac
    case "$cidrs" in
    */32 | */32\ *) echo "Your address $ip is not allowed to SSH in (allowed: $cidrs): SSH will time out. Run aws-allow-me to move the rule to $ip." >&2 ;;
    *) ;; # a range (--ssh-cidr): not checked here
    esac
    return 0
}

aws-allow-me() {
    local ip sg group cidrs cidr tab
    tab=$(printf '\t')
    ip=$(_dl1_my_ip) || {
        echo "Could not look up your public address at ${DL1_CHECKIP_URL:-https://checkip.amazonaws.com} (offline?)." >&2
        return 1
    }
    sg=$(_dl1_sg) || return
    group=${sg%%"$tab"*}
    cidrs=${sg#*"$tab"}
    if [ -z "$sg" ] || [ -z "$group" ]; then
        echo "No security group found for stack '$(_dl1_stack)'." >&2
        return 1
    fi
    [ "$cidrs" != "-" ] || cidrs=""
    case " $cidrs " in
    *" $ip/32 "*) ;;
    *)
        _dl1_aws ec2 authorize-security-group-ingress --group-id "$group" \
            --ip-permissions "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=$ip/32,Description=ssh-from-dl1-setup}]" \
            --query Return >/dev/null || return
        ;;
    esac
    for cidr in $cidrs; do
        if [ "$cidr" != "$ip/32" ]; then
            _dl1_aws ec2 revoke-security-group-ingress --group-id "$group" --protocol tcp --port 22 --cidr "$cidr" \
                --query Return >/dev/null || return
        fi
    done
    echo "SSH to stack '$(_dl1_stack)' is now allowed from $ip/32 only (security group $group); nothing was started."
}

aws-ssh() {
    local key
    key=$(_dl1_key) || return
    aws-ip >/dev/null || return
    _dl1_check_address
    command ssh -i "$key" -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="$(_dl1_dir)/known_hosts" \
        "$(_dl1_user)@$instanceIp" "$@"
}

_dl1_open() { # open URL in the local browser, or say where to go
    case "$(uname -s 2>/dev/null)" in
    Darwin) command -v open >/dev/null 2>&1 && open "$1" && return 0 ;;
    CYGWIN* | MINGW* | MSYS*) command -v cygstart >/dev/null 2>&1 && cygstart "$1" && return 0 ;;
    esac
    if command -v xdg-open >/dev/null 2>&1; then
        xdg-open "$1" >/dev/null 2>&1 && return 0
    fi
    echo "Open $1 in your browser."
}

aws-nb() {
    local key port sock url
    key=$(_dl1_key) || return
    aws-ip >/dev/null || return
    _dl1_check_address
    port=${DL1_NB_PORT:-8888}
    sock="$(_dl1_dir)/nb-tunnel.sock"
    url="http://localhost:$port/"
    if ! command ssh -S "$sock" -O check "$(_dl1_user)@$instanceIp" >/dev/null 2>&1; then
        echo "SSH tunnel: localhost:$port here -> Jupyter on $instanceIp (its localhost:8888; not open to the internet)"
        # -f: ssh goes to the background once the tunnel works, so the browser opens on a live port
        if ! command ssh -i "$key" -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="$(_dl1_dir)/known_hosts" \
            -o ExitOnForwardFailure=yes -f -N -M -S "$sock" -L "${port}:localhost:8888" "$(_dl1_user)@$instanceIp"; then
            echo "The tunnel did not open: is the instance running (aws-state) and is port $port free here? (DL1_NB_PORT picks another)" >&2
            return 1
        fi
    fi
    _dl1_open "$url"
    echo "Jupyter: $url (on the box it runs as the service dl1-jupyter once setup/install-gpu.sh has run). Close the tunnel with aws-nb-stop."
}

aws-nb-stop() {
    local sock
    sock="$(_dl1_dir)/nb-tunnel.sock"
    if [ -S "$sock" ] || [ -e "$sock" ]; then
        command ssh -S "$sock" -O exit "$(_dl1_user)@${instanceIp:-box}" || return
    else
        echo "No tunnel open for stack '$(_dl1_stack)'."
    fi
}

aws-remove() {
    local script
    script="$(_dl1_dir)/remove.sh"
    if [ ! -f "$script" ]; then
        echo "No ${script}: nothing recorded for stack '$(_dl1_stack)'." >&2
        return 1
    fi
    bash "$script" "$@"
}
