#!/usr/bin/env bash
# Removes a stack made by setup/aws-setup.sh: everything in its region that carries the tag
# dl1:stack=NAME (found by that tag, so also what a failed or interrupted setup made but never
# recorded), the persistent spot request, the idle alarm, the ~/.ssh/config entry, and the private key
# file if the stack created it. It asks before deleting the instance and its disk (--yes: don't ask).
# Safe to run again. aws-setup.sh copies this file into the stack's state folder before it creates
# anything, so `bash ~/.dl1/aws/remove.sh` always exists.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=${0##*/}
# shellcheck source-path=SCRIPTDIR
# shellcheck source=aws-lib.sh disable=SC1091
source "$SCRIPT_DIR/aws-lib.sh"
TAG_KEY="dl1:stack"

usage() {
    cat <<EOF
Usage: $PROG [--name NAME] [--yes]

Delete everything stack NAME (default: dl1, or the stack whose state folder holds this copy) has in
AWS: every resource tagged $TAG_KEY=NAME, in the stack's recorded region (else your configured one).

  --name NAME   the stack (as in aws-setup.sh --name)
  --yes, -y     do not ask before deleting the instance and its disk
  -h, --help    show this help
EOF
}

NAME=""
YES=0
while [[ $# -gt 0 ]]; do
    case "$1" in
    --name) [[ $# -ge 2 && -n "$2" ]] || die "--name needs a value"; NAME=$2; shift 2 ;;
    --name=*) NAME=${1#*=}; shift ;;
    -y | --yes) YES=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option: $1 (see $PROG --help)" ;;
    esac
done

if [[ -z "$NAME" && -f "$SCRIPT_DIR/stack.name" ]]; then # the copy in a stack's state folder
    NAME=$(head -n 1 "$SCRIPT_DIR/stack.name")
    STACK_DIR=$SCRIPT_DIR
else
    NAME=${NAME:-dl1}
    STACK_DIR=$(stack_dir "$NAME")
fi
[[ "$NAME" =~ ^[A-Za-z0-9][A-Za-z0-9-]{0,31}$ ]] || die "--name must be 1-32 letters, digits or dashes (got '$NAME')"
STATE="$STACK_DIR/stack.env"

command -v aws >/dev/null 2>&1 || die "aws CLI not found on PATH: install it to remove the stack."
ERR_FILE=$(mktemp)
trap 'rm -f "$ERR_FILE"' EXIT

REGION=$(state_value "$STATE" DL1_REGION)
if [[ -n "$REGION" ]]; then
    export AWS_DEFAULT_REGION="$REGION"
    unset AWS_REGION
else
    REGION=$(configured_region)
fi
KEY_FILE=$(state_value "$STATE" DL1_KEY_FILE)
CREATED_KEY_FILE=$(state_value "$STATE" DL1_CREATED_KEY_FILE)
SSH_HOST=$(state_value "$STATE" DL1_SSH_HOST)
RECORDED_SPOT=$(state_value "$STATE" DL1_SPOT_REQUEST_ID)

# call COMMAND...: an AWS CLI call whose output is not needed. Returns 1 when AWS says the thing is
# already gone (a *.NotFound or *.NotAttached error), so a second run is harmless. It is retried while a
# resource is still in use (AWS needs a moment after an instance terminates).
call() {
    local i
    for i in $(seq 1 30); do
        if aws "$@" --output text >/dev/null 2>"$ERR_FILE"; then return 0; fi
        grep -Eq '[.]NotFound|NotAttached|InvalidAssociationID|does not exist' "$ERR_FILE" && return 1
        grep -Eq 'DependencyViolation|InUse' "$ERR_FILE" || die "aws $1 $2 failed: $(aws_error)"
        log "  (still in use, retrying in 10 s: $i/30)"
        sleep 10
    done
    die "aws $1 $2 still failing: $(aws_error)"
}

removed=0
gone() {
    removed=$((removed + 1))
    log "removed $*"
}

# Every EC2 resource id that carries the stack's tag, in one call
TAGGED=$(awsq ec2 describe-tags --filters "Name=key,Values=$TAG_KEY" "Name=value,Values=$NAME" \
    --query 'Tags[].[ResourceId]' | sort -u)
tagged() { printf '%s\n' "$TAGGED" | grep "^$1" || true; } # tagged PREFIX: those ids, one a line
has() { grep -q "^$1" <<<"$TAGGED"; }
tag_filter="Name=tag:$TAG_KEY,Values=$NAME"

INSTANCES=""
SPOT_REQUESTS=""
if has i-; then
    lines=$(awsq ec2 describe-instances --filters "$tag_filter" \
        "Name=instance-state-name,Values=pending,running,stopping,stopped,shutting-down" \
        --query "Reservations[].Instances[].[InstanceId, SpotInstanceRequestId || '-']")
    INSTANCES=$(printf '%s\n' "$lines" | cut -f1 | grep . || true)
    SPOT_REQUESTS=$(printf '%s\n' "$lines" | cut -s -f2 | grep -v '^-$' | grep . || true)
fi
# Persistent spot requests outlive their instance and launch a new one: cancel them in every state
if has sir- || [[ -n "$RECORDED_SPOT$SPOT_REQUESTS" ]]; then
    SPOT_REQUESTS=$(printf '%s\n' "$SPOT_REQUESTS" "$(tagged sir-)" "$RECORDED_SPOT" | grep . | sort -u || true)
fi
VOLUMES=""
if has vol-; then
    VOLUMES=$(awsq ec2 describe-volumes --filters "$tag_filter" --query 'Volumes[].VolumeId' | tr '\t' '\n' | grep . || true)
fi

if [[ -n "$INSTANCES$VOLUMES" ]] && ((YES == 0)); then
    what=$(printf '%s ' "$INSTANCES" "$VOLUMES" | tr '\n' ' ' | tr -s ' ')
    prompt="Delete stack $NAME in $REGION, with its disk and all data on it ($what)? Type yes: "
    answer=""
    if [[ -t 0 ]]; then
        read -r -p "$prompt" answer || true
    else
        printf '%s' "$prompt"
        read -r answer || true
        printf '\n'
    fi
    case "$answer" in
    y | Y | yes | YES | Yes) ;;
    *) die "not confirmed, nothing deleted: answer yes, or run $PROG --yes." ;;
    esac
fi

# The idle-stop alarm (CloudWatch keeps its own tags)
alarm_arn=$(awsq cloudwatch describe-alarms --alarm-names "$NAME-idle-stop" --query 'MetricAlarms[0].AlarmArn')
if [[ -n "$alarm_arn" ]]; then
    tag=$(aws_try cloudwatch list-tags-for-resource --resource-arn "$alarm_arn" \
        --query "Tags[?Key=='$TAG_KEY'].Value | [0]" || true)
    if [[ "$tag" == "$NAME" ]] && call cloudwatch delete-alarms --alarm-names "$NAME-idle-stop"; then
        gone "idle-stop alarm $NAME-idle-stop"
    fi
fi

for request in $SPOT_REQUESTS; do
    state=$(aws_try ec2 describe-spot-instance-requests --spot-instance-request-ids "$request" \
        --query 'SpotInstanceRequests[0].State' || true)
    case "$state" in
    "" | cancelled | closed) ;;
    *)
        if call ec2 cancel-spot-instance-requests --spot-instance-request-ids "$request"; then
            gone "spot request $request (it would have launched a new instance)"
        fi
        ;;
    esac
done

if [[ -n "$INSTANCES" ]]; then
    # shellcheck disable=SC2086 # one id per word
    call ec2 terminate-instances --instance-ids $INSTANCES || true
    log "terminating $(printf '%s' "$INSTANCES" | tr '\n' ' ')(the disk goes with it); waiting..."
    for _ in $(seq 1 120); do
        # shellcheck disable=SC2086
        left=$(aws_try ec2 describe-instances --instance-ids $INSTANCES \
            --query "Reservations[].Instances[?State.Name!='terminated'].InstanceId" || true)
        [[ -n "$left" ]] || break
        sleep 5
    done
    for id in $INSTANCES; do gone "instance $id"; done
fi

if has eipalloc-; then
    while IFS=$'\t' read -r alloc assoc; do
        [[ -n "$alloc" ]] || continue
        [[ "$assoc" == "-" || -z "$assoc" ]] || call ec2 disassociate-address --association-id "$assoc" || true
        if call ec2 release-address --allocation-id "$alloc"; then
            gone "elastic IP $alloc"
        fi
    done < <(awsq ec2 describe-addresses --filters "$tag_filter" --query "Addresses[].[AllocationId, AssociationId || '-']")
fi

for sg in $(tagged sg-); do
    if call ec2 delete-security-group --group-id "$sg"; then gone "security group $sg"; fi
done

if has rtb-; then
    while IFS=$'\t' read -r table assocs; do
        [[ -n "$table" ]] || continue
        for assoc in $assocs; do
            [[ "$assoc" == "-" ]] || call ec2 disassociate-route-table --association-id "$assoc" || true
        done
        if call ec2 delete-route-table --route-table-id "$table"; then gone "route table $table"; fi
    done < <(awsq ec2 describe-route-tables --filters "$tag_filter" \
        --query "RouteTables[].[RouteTableId, join(' ', Associations[?Main!=\`true\`].RouteTableAssociationId) || '-']")
fi

if has igw-; then
    while IFS=$'\t' read -r gateway vpcs; do
        [[ -n "$gateway" ]] || continue
        for vpc in $vpcs; do
            [[ "$vpc" == "-" ]] || call ec2 detach-internet-gateway --internet-gateway-id "$gateway" --vpc-id "$vpc" || true
        done
        if call ec2 delete-internet-gateway --internet-gateway-id "$gateway"; then gone "internet gateway $gateway"; fi
    done < <(awsq ec2 describe-internet-gateways --filters "$tag_filter" \
        --query "InternetGateways[].[InternetGatewayId, join(' ', Attachments[].VpcId) || '-']")
fi

for subnet in $(tagged subnet-); do
    if call ec2 delete-subnet --subnet-id "$subnet"; then gone "subnet $subnet"; fi
done

for vpc in $(tagged vpc-); do
    if call ec2 delete-vpc --vpc-id "$vpc"; then gone "VPC $vpc"; fi
done

if has key-; then
    for key in $(awsq ec2 describe-key-pairs --filters "$tag_filter" --query 'KeyPairs[].KeyName'); do
        if call ec2 delete-key-pair --key-name "$key"; then gone "key pair $key (this stack created it)"; fi
    done
fi

if [[ -n "$VOLUMES" ]]; then # a disk left behind (DeleteOnTermination is set, so normally none)
    for volume in $(awsq ec2 describe-volumes --filters "$tag_filter" Name=status,Values=available --query 'Volumes[].VolumeId'); do
        if call ec2 delete-volume --volume-id "$volume"; then gone "volume $volume"; fi
    done
fi

if [[ -n "$KEY_FILE" && -f "$KEY_FILE" ]]; then
    if [[ "$CREATED_KEY_FILE" == 1 ]]; then
        rm -f "$KEY_FILE"
        gone "private key $KEY_FILE (this stack created it)"
    else
        log "kept $KEY_FILE: this stack did not create it"
    fi
fi
if [[ -n "$SSH_HOST" ]] && ssh_config_remove "$SSH_HOST"; then
    log "removed 'Host $SSH_HOST' from ~/.ssh/config"
fi

rm -f "$STATE" "$STACK_DIR/commands.txt" "$STACK_DIR/known_hosts" "$STACK_DIR/user-data.sh"
if ((removed == 0)); then
    log "Nothing left to remove for stack $NAME in $REGION."
else
    log "Stack $NAME removed from $REGION ($removed resource(s)). $PROG stays in $STACK_DIR; running it again is harmless."
fi
