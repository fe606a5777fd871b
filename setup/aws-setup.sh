#!/usr/bin/env bash
# Provision a cloud GPU box on AWS for the course: VPC, subnet, internet gateway, route table,
# security group (SSH from your address only), key pair, instance (AWS Deep Learning AMI) and
# Elastic IP, all tagged dl1:stack=<name>, plus an idle agent on the box that stops it when nothing
# runs. Re-running reuses what exists. Before it creates anything it writes, in the stack's state
# folder, remove.sh (a copy of setup/remove.sh: tears down everything tagged with the stack); at the
# end commands.txt (how to reach the box) and a `Host dl1` entry in ~/.ssh/config.
# Run `setup/aws-setup.sh --help` for the options; setup/README.md has the walkthrough.
set -euo pipefail

PROG=${0##*/}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR
# shellcheck source=aws-lib.sh disable=SC1091
source "$SCRIPT_DIR/aws-lib.sh"
TAG_KEY="dl1:stack"
IDLE_TAG_KEY="dl1:idle-stop" # read by the idle agent on the box (instance metadata tags)
VPC_CIDR="10.0.0.0/16"
SUBNET_CIDR="10.0.0.0/24"
CHECKIP_URL=${DL1_CHECKIP_URL:-https://checkip.amazonaws.com}
STATE_ROOT=${DL1_AWS_STATE_DIR:-$HOME/.dl1/aws}
DEFAULT_IDLE_STOP=60

# Options and their defaults
NAME="dl1"
INSTANCE_TYPE="g4dn.2xlarge" # 32 GiB: lesson 2 holds ~14 GB of images in memory (g4dn.xlarge: 16 GiB)
DISK_GB=100
SPOT=0
AMI_OPT=""
SSH_CIDR=""
IDLE_STOP=""
AZ_OPT=""
UPDATE_SSH_ONLY=0
SSH_CONFIG=1

usage() {
    cat <<EOF
Usage: $PROG [options]

Create (or find again and reuse) everything a course GPU box needs on AWS, in the region of your
AWS CLI configuration, and write commands.txt and remove.sh into the stack's state folder.

Options:
  --name NAME           stack name (default: dl1); every resource is tagged $TAG_KEY=NAME and
                        Name=NAME-<kind>; several stacks with different names can coexist
  --instance-type TYPE  EC2 instance type (default: g4dn.2xlarge, 32 GiB memory, enough for every
                        lesson; g4dn.xlarge has 16 GiB, too little for lesson 2); any type is accepted
  --disk GB             root disk size in GB, gp3 (default: 100)
  --spot                use a persistent spot instance (cheaper; stopped, not lost, on interruption)
  --ami ID              use this AMI instead of the latest AWS Deep Learning AMI
  --az ZONE             create the box in this availability zone (default: the first zone that has
                        capacity for the type, trying each zone of the region that offers it)
  --ssh-cidr CIDR       address or range allowed to SSH in (default: your public IP, looked up at
                        $CHECKIP_URL, or at \$DL1_CHECKIP_URL)
  --idle-stop MINUTES   stop the box after MINUTES (5-1440; default $DEFAULT_IDLE_STOP, or what the last run
                        set) with no busy Jupyter kernel, no SSH session and an idle GPU, decided by
                        an agent on the box, with a CloudWatch CPU alarm as backstop; 0 turns it off
  --update-ssh-only     only move the SSH rule to your current address (or --ssh-cidr); create,
                        start or change nothing else
  --no-ssh-config       do not write the 'Host dl1' entry into ~/.ssh/config
  -h, --help            show this help

State folder: \${DL1_AWS_STATE_DIR:-~/.dl1/aws}/ holds commands.txt, remove.sh, stack.env and the
private key dl1-key.pem (mode 600, never overwritten) of the default stack; a stack with another
--name keeps the same files in a sub-folder NAME/. ~/.ssh/config gets 'Host dl1' (another stack:
'Host dl1-NAME'), so 'ssh dl1' and editors' remote modes reach the box.
Region: AWS_REGION, AWS_DEFAULT_REGION or \`aws configure get region\`, in that order.
Jupyter is never opened to the internet: reach it through SSH (source setup/aws-alias.sh; aws-nb).
EOF
}

usage_error() {
    printf 'ERROR: %s\n' "$*" >&2
    printf 'Run %s --help for the options.\n' "$PROG" >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
need_value() { [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || usage_error "$1 needs a value"; }

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --name) need_value "$@"; NAME=$2; shift 2 ;;
        --name=*) NAME=${1#*=}; shift ;;
        --instance-type) need_value "$@"; INSTANCE_TYPE=$2; shift 2 ;;
        --instance-type=*) INSTANCE_TYPE=${1#*=}; shift ;;
        --disk) need_value "$@"; DISK_GB=$2; shift 2 ;;
        --disk=*) DISK_GB=${1#*=}; shift ;;
        --spot) SPOT=1; shift ;;
        --ami) need_value "$@"; AMI_OPT=$2; shift 2 ;;
        --ami=*) AMI_OPT=${1#*=}; shift ;;
        --ssh-cidr) need_value "$@"; SSH_CIDR=$2; shift 2 ;;
        --ssh-cidr=*) SSH_CIDR=${1#*=}; shift ;;
        --idle-stop) need_value "$@"; IDLE_STOP=$2; shift 2 ;;
        --idle-stop=*) IDLE_STOP=${1#*=}; shift ;;
        --az) need_value "$@"; AZ_OPT=$2; shift 2 ;;
        --az=*) AZ_OPT=${1#*=}; shift ;;
        --update-ssh-only) UPDATE_SSH_ONLY=1; shift ;;
        --no-ssh-config) SSH_CONFIG=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown option: $1" ;;
        esac
    done

    [[ "$NAME" =~ ^[A-Za-z0-9][A-Za-z0-9-]{0,31}$ ]] ||
        usage_error "--name must be 1-32 letters, digits or dashes (got '$NAME')"
    [[ "$INSTANCE_TYPE" =~ ^[a-z0-9-]+\.[a-z0-9-]+$ ]] ||
        usage_error "unknown instance type '$INSTANCE_TYPE' (expected something like g4dn.xlarge)"
    if ! [[ "$DISK_GB" =~ ^[0-9]{1,5}$ ]] || ((10#$DISK_GB < 8 || 10#$DISK_GB > 16384)); then
        usage_error "--disk must be a size in GB between 8 and 16384 (got '$DISK_GB')"
    fi
    DISK_GB=$((10#$DISK_GB))
    if [[ -n "$AMI_OPT" && ! "$AMI_OPT" =~ ^ami-[0-9a-f]+$ ]]; then
        usage_error "--ami must be an AMI id like ami-0123456789abcdef0 (got '$AMI_OPT')"
    fi
    if [[ -n "$IDLE_STOP" ]]; then
        if ! [[ "$IDLE_STOP" =~ ^[0-9]{1,4}$ ]] || ((10#$IDLE_STOP != 0 && (10#$IDLE_STOP < 5 || 10#$IDLE_STOP > 1440))); then
            usage_error "--idle-stop takes minutes between 5 and 1440, or 0 to turn idle stop off (got '$IDLE_STOP')"
        fi
        IDLE_STOP=$((10#$IDLE_STOP))
    fi
    if [[ -n "$AZ_OPT" && ! "$AZ_OPT" =~ ^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$ ]]; then
        usage_error "--az must be an availability zone like eu-west-1b (got '$AZ_OPT')"
    fi
    if [[ -n "$SSH_CIDR" ]]; then
        [[ "$SSH_CIDR" == */* ]] || SSH_CIDR="$SSH_CIDR/32"
        valid_cidr "$SSH_CIDR" || usage_error "--ssh-cidr must be an IPv4 address or range like 203.0.113.7/32 (got '$SSH_CIDR')"
    fi
    return 0
}

valid_ipv4() {
    local ip=$1 part
    [[ "$ip" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
    for part in ${ip//./ }; do
        ((10#$part <= 255)) || return 1
    done
}

valid_cidr() {
    local ip=${1%/*} bits=${1#*/}
    valid_ipv4 "$ip" && [[ "$bits" =~ ^[0-9]{1,2}$ ]] && ((bits <= 32))
}

# ---------------------------------------------------------------------------------------------
# AWS CLI helpers (aws_try, awsq, aws_error, field... are in aws-lib.sh)
# ---------------------------------------------------------------------------------------------
TMP_DIR=""

# Shorthand for --tag-specifications: tagspec RESOURCE_TYPE KIND
tagspec() { # tagspec RESOURCE_TYPE KIND [IDLE_MINUTES]
    local extra=""
    [[ -z "${3:-}" ]] || extra=",{Key=$IDLE_TAG_KEY,Value=$3}"
    printf 'ResourceType=%s,Tags=[{Key=Name,Value=%s-%s},{Key=%s,Value=%s}%s]' "$1" "$NAME" "$2" "$TAG_KEY" "$NAME" "$extra"
}

# Ids of every EC2 resource that carries our stack tag (one describe-tags call), so that lookups of
# kinds the stack does not have yet (all of them, on a first run) cost nothing.
TAGGED=""
load_tagged() {
    TAGGED=$(awsq ec2 describe-tags --filters "Name=key,Values=$TAG_KEY" "Name=value,Values=$NAME" \
        --query 'Tags[].ResourceId' | tr '\t' '\n')
}

# find_tagged DESCRIBE_COMMAND KIND ID_PREFIX QUERY [FILTER...]: the first resource carrying both our
# stack tag and Name=NAME-KIND (printed as the query's fields). Warns when there are several.
find_tagged() {
    local cmd=$1 kind=$2 prefix=$3 query=$4 out
    shift 4
    grep -q "^$prefix" <<<"$TAGGED" || return 0
    out=$(awsq ec2 "$cmd" --filters "Name=tag:$TAG_KEY,Values=$NAME" "Name=tag:Name,Values=$NAME-$kind" "$@" --query "$query")
    if [[ $(printf '%s\n' "$out" | grep -c .) -gt 1 ]]; then
        warn "found several resources tagged Name=$NAME-$kind; using the first: $(cut -f1 <<<"${out%%$'\n'*}")"
    fi
    printf '%s\n' "${out%%$'\n'*}"
}

# ---------------------------------------------------------------------------------------------
# Checks, all done before anything is created
# ---------------------------------------------------------------------------------------------
REGION=""
PARTITION="aws"
ACCOUNT=""
ARCH=""
AZ=""
AZS=""
VCPUS=""
MEMORY_MIB=""
AMI_ID=""
AMI_NAME=""
AMI_ROOT_DEVICE=""
AMI_SNAPSHOT_GB=""
SSH_USER="ubuntu"
STACK_DIR=""
KEY_NAME=""
KEY_FILE=""
KEY_ACTION=""

check_cli() {
    command -v aws >/dev/null 2>&1 ||
        die "aws CLI not found on PATH. Install it (pip install awscli, or https://aws.amazon.com/cli/), run 'aws configure', then run $PROG again."
}

resolve_region() {
    REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
    if [[ -z "$REGION" ]]; then
        REGION=$(aws configure get region 2>/dev/null || true)
    fi
    [[ -n "$REGION" ]] ||
        die "no AWS region configured. Set one with 'aws configure set region eu-west-1' (or export AWS_DEFAULT_REGION=...), choosing a region near you that offers GPU instances."
    export AWS_DEFAULT_REGION="$REGION"
    case "$REGION" in
    cn-*) PARTITION=aws-cn ;;
    us-gov-*) PARTITION=aws-us-gov ;;
    *) PARTITION=aws ;;
    esac
}

# Checks credentials and region with one call: the region must be a real one, enabled for the account.
check_region_and_credentials() {
    local status err known
    if status=$(aws_try ec2 describe-regions --all-regions --query "Regions[?RegionName=='$REGION'].OptInStatus | [0]"); then
        case "$status" in
        "") die "unknown region '$REGION': EC2 does not list it. Check 'aws configure get region'." ;;
        not-opted-in) die "region '$REGION' is not enabled for your account: enable it in the AWS console (Account > AWS Regions) or choose another region." ;;
        esac
    else
        err=$(aws_error)
        case "$err" in
        *"Unable to locate credentials"* | *NoCredentials* | *"credentials"*"not found"*)
            die "no AWS credentials found. Run 'aws configure' (access key id and secret) or set AWS_PROFILE, then run $PROG again." ;;
        *AuthFailure* | *InvalidClientTokenId* | *UnrecognizedClient* | *SignatureDoesNotMatch* | *ExpiredToken* | *RequestExpired*)
            die "AWS rejected your credentials: $err" ;;
        esac
        # Is the region unknown, or is EC2 unreachable? Ask a region that always exists.
        if known=$(aws_try ec2 describe-regions --region us-east-1 --query 'Regions[].RegionName'); then
            if ! grep -qx -- "$REGION" <<<"${known//$'\t'/$'\n'}"; then
                die "unknown region '$REGION'. Known regions: $(printf '%s' "$known" | tr '\t' ' ')"
            fi
        fi
        die "cannot reach EC2 in region '$REGION': $err"
    fi
}

check_instance_type() {
    local info gpu
    if ! info=$(aws_try ec2 describe-instance-types --instance-types "$INSTANCE_TYPE" \
        --query "InstanceTypes[0].[join(' ', ProcessorInfo.SupportedArchitectures), GpuInfo.Gpus[0].Name || '-', VCpuInfo.DefaultVCpus || '-', MemoryInfo.SizeInMiB || '-']"); then
        case "$(aws_error)" in
        *InvalidInstanceType* | *"does not exist"* | *InvalidParameterValue*)
            die "unknown instance type '$INSTANCE_TYPE' in region $REGION. See 'aws ec2 describe-instance-types' or https://aws.amazon.com/ec2/instance-types/ (GPU: g4dn.xlarge, g5.xlarge, g6.xlarge...)." ;;
        *) die "cannot check instance type '$INSTANCE_TYPE': $(aws_error)" ;;
        esac
    fi
    [[ -n "$info" ]] || die "unknown instance type '$INSTANCE_TYPE' in region $REGION."
    case " $(field 1 "$info") " in
    *" x86_64 "*) ARCH="x86_64" ;;
    *" arm64 "*) ARCH="arm64" ;;
    *) die "instance type '$INSTANCE_TYPE' has an unsupported architecture: $(field 1 "$info")" ;;
    esac
    gpu=$(field 2 "$info")
    VCPUS=$(field 3 "$info")
    MEMORY_MIB=$(field 4 "$info")
    if [[ -z "$gpu" ]]; then
        warn "$INSTANCE_TYPE has no GPU: fine for trying things out, slow for training."
    fi
    if [[ "$MEMORY_MIB" =~ ^[0-9]+$ ]] && ((MEMORY_MIB < 30 * 1024)); then
        log "Note: $INSTANCE_TYPE has $((MEMORY_MIB / 1024)) GiB of memory: enough for lessons 1 and 3 and the MNIST notebooks, not for lesson 2 at the course's sizes (about 14 GB of images in memory; g4dn.2xlarge has 32 GiB)."
    fi
    # Every zone that offers the type, sorted; --az must be one of them. The launch tries them in turn.
    AZS=$(awsq ec2 describe-instance-type-offerings --location-type availability-zone \
        --filters "Name=instance-type,Values=$INSTANCE_TYPE" --query 'sort(InstanceTypeOfferings[].Location)' |
        tr '\t' '\n' | grep . || true)
    [[ -n "$AZS" ]] ||
        die "instance type '$INSTANCE_TYPE' is not offered in region $REGION. Pick another type (--instance-type) or region."
    if [[ -n "$AZ_OPT" ]]; then
        grep -qxF -- "$AZ_OPT" <<<"$AZS" ||
            die "availability zone $AZ_OPT does not offer $INSTANCE_TYPE (zones that do in $REGION: $(printf '%s' "$AZS" | tr '\n' ' ')). Pick one of those with --az, or leave --az out."
        AZ=$AZ_OPT
    else
        AZ=${AZS%%$'\n'*}
    fi
    log "Instance type: $INSTANCE_TYPE ($ARCH${gpu:+, GPU $gpu}${VCPUS:+, $VCPUS vCPUs}${MEMORY_MIB:+, $((MEMORY_MIB / 1024)) GiB})"
}

# quota_for_type: sets QUOTA_CODE and QUOTA_LABEL for the vCPU quota that limits INSTANCE_TYPE (on-demand or
# spot). Returns 1 for families whose quota this script does not know.
QUOTA_CODE=""
QUOTA_LABEL=""
quota_for_type() {
    local family=${INSTANCE_TYPE%%.*} od sp label
    case "$family" in
    inf* | trn* | dl* | f* | x* | u-* | mac* | hpc*) return 1 ;;
    g* | vt*) od=L-DB2E81BA sp=L-3819A6DF label="G and VT" ;;
    p*) od=L-417A185B sp=L-7212CCBC label="P" ;;
    [acdhimrtz]*) od=L-1216C47A sp=L-34B43A08 label="Standard (A, C, D, H, I, M, R, T, Z)" ;;
    *) return 1 ;;
    esac
    if [[ "$SPOT" == 1 ]]; then
        QUOTA_CODE=$sp
        QUOTA_LABEL="All $label Spot Instance Requests"
    else
        QUOTA_CODE=$od
        QUOTA_LABEL="Running On-Demand $label instances"
    fi
}

quota_fix() { # how to ask for more of QUOTA_CODE, in one sentence
    printf "ask for at least %s vCPUs of '%s' (Service Quotas > Amazon EC2 in the console, or: aws service-quotas request-service-quota-increase --region %s --service-code ec2 --quota-code %s --desired-value %s); approval can take a day, then run %s again" \
        "${VCPUS:-4}" "$QUOTA_LABEL" "$REGION" "$QUOTA_CODE" "${VCPUS:-4}" "$PROG"
}

# The vCPU quota, checked before anything is created: new accounts start at 0 for GPU instances, and
# otherwise the first run would fail after six resources exist. Skipped when the stack has an instance.
check_quota() {
    local value
    quota_for_type || return 0
    if grep -q '^i-' <<<"$TAGGED"; then
        return 0
    fi
    if ! value=$(aws_try service-quotas get-service-quota --service-code ec2 --quota-code "$QUOTA_CODE" --query 'Quota.Value'); then
        log "Quota: could not read '$QUOTA_LABEL' from Service Quotas ($(aws_error_code)); not checked."
        return 0
    fi
    value=${value%%.*}
    [[ "$value" =~ ^[0-9]+$ && "$VCPUS" =~ ^[0-9]+$ ]] || return 0
    if ((value < VCPUS)); then
        die "your quota '$QUOTA_LABEL' in $REGION is $value vCPUs and $INSTANCE_TYPE needs $VCPUS: $(quota_fix). Nothing was created."
    fi
    log "Quota: '$QUOTA_LABEL' is $value vCPUs ($INSTANCE_TYPE needs $VCPUS)"
}

# The AMI: --ami, else the AWS Deep Learning AMI from its public SSM parameter, else the newest
# Deep Learning AMI found by describe-images, else (announced loudly) plain Ubuntu.
find_ami() {
    local params=() found info
    if [[ -n "$AMI_OPT" ]]; then
        info=$(aws_try ec2 describe-images --image-ids "$AMI_OPT" \
            --query "Images[0].[ImageId, Name || '-', RootDeviceName, max(BlockDeviceMappings[].Ebs.VolumeSize) || '-', Architecture]") || info=""
        [[ -n "$info" ]] || die "AMI $AMI_OPT not found in region $REGION (AMI ids differ between regions)."
        set_ami "$info" "given with --ami"
        [[ "$(field 5 "$info")" == "$ARCH" ]] ||
            warn "AMI $AMI_OPT is for $(field 5 "$info"), instance type $INSTANCE_TYPE is $ARCH."
        return 0
    fi

    # newest Ubuntu first; the parameter names follow the AMI names (see the DLAMI release notes)
    params=("/aws/service/deeplearning/ami/$ARCH/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
        "/aws/service/deeplearning/ami/$ARCH/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id")
    if found=$(aws_try ssm get-parameters --names "${params[@]}" \
        --query "[Parameters[?Name=='${params[0]}'].Value | [0], Parameters[?Name=='${params[1]}'].Value | [0]] | [?@] | [0]"); then
        [[ -n "$found" ]] || log "AMI: no Deep Learning AMI SSM parameter in $REGION; searching with describe-images."
    else
        log "AMI: cannot read the Deep Learning AMI SSM parameter ($(aws_error)); searching with describe-images."
        found=""
    fi
    if [[ -n "$found" ]]; then
        info=$(awsq ec2 describe-images --image-ids "$found" --query "Images[0].[ImageId, Name || '-', RootDeviceName, max(BlockDeviceMappings[].Ebs.VolumeSize) || '-']")
        if [[ -n "$info" ]]; then
            set_ami "$info" "AWS Deep Learning AMI, from its SSM public parameter"
            return 0
        fi
    fi

    # One call for both name patterns; the newest with the NVIDIA driver in its name wins, else the newest
    # other one (never a Neuron AMI: those are for AWS's own accelerators).
    local img_fields="[ImageId, Name, RootDeviceName, max(BlockDeviceMappings[].Ebs.VolumeSize) || '-']"
    info=$(awsq ec2 describe-images --no-paginate --owners amazon \
        --filters "Name=name,Values=Deep Learning*Nvidia Driver*Ubuntu*,Deep Learning*AMI*Ubuntu*" \
        "Name=architecture,Values=$ARCH" Name=state,Values=available \
        --query "[sort_by(Images[?contains(Name, 'Nvidia Driver')], &CreationDate)[-1], sort_by(Images[?!contains(Name, 'Neuron')], &CreationDate)[-1]] | [?@] | [0].$img_fields")
    if [[ -n "$info" ]]; then
        set_ami "$info" "newest Deep Learning AMI found by describe-images"
        return 0
    fi

    local ubuntu_arch=amd64
    [[ "$ARCH" == arm64 ]] && ubuntu_arch=arm64
    info=$(awsq ec2 describe-images --no-paginate --owners 099720109477 \
        --filters "Name=name,Values=ubuntu/images/*ubuntu-*-$ubuntu_arch-server-*" "Name=architecture,Values=$ARCH" Name=state,Values=available \
        --query "sort_by(Images, &CreationDate)[-1].$img_fields")
    [[ -n "$info" ]] || die "no Deep Learning AMI and no Ubuntu AMI found in region $REGION for $ARCH. Pass one with --ami."
    set_ami "$info" "plain Ubuntu"
    warn "NO AWS DEEP LEARNING AMI FOUND in $REGION: falling back to plain Ubuntu $AMI_ID ($AMI_NAME)."
    warn "It has no NVIDIA driver: install one on the box (sudo ubuntu-drivers install; sudo reboot) before setup/install-gpu.sh, or pass --ami."
}

set_ami() { # set_ami "ID<TAB>NAME<TAB>ROOT_DEVICE<TAB>SNAPSHOT_GB..." HOW
    AMI_ID=$(field 1 "$1")
    AMI_NAME=$(field 2 "$1")
    AMI_ROOT_DEVICE=$(field 3 "$1")
    AMI_SNAPSHOT_GB=$(field 4 "$1")
    [[ -n "$AMI_ROOT_DEVICE" ]] || AMI_ROOT_DEVICE="/dev/sda1"
    case "$AMI_NAME" in
    *"Amazon Linux"* | amzn* | al20*) SSH_USER="ec2-user" ;;
    *) SSH_USER="ubuntu" ;;
    esac
    log "AMI: $AMI_ID ($AMI_NAME; $2)"
}

check_disk() {
    if [[ "$AMI_SNAPSHOT_GB" =~ ^[0-9]+$ ]] && ((DISK_GB < AMI_SNAPSHOT_GB)); then
        die "--disk $DISK_GB is smaller than the AMI's root snapshot ($AMI_SNAPSHOT_GB GB): use --disk $AMI_SNAPSHOT_GB or more."
    fi
}

resolve_ssh_cidr() {
    local ip
    if [[ -n "$SSH_CIDR" ]]; then
        log "SSH allowed from: $SSH_CIDR (--ssh-cidr)"
    else
        command -v curl >/dev/null 2>&1 ||
            die "curl not found, so your public IP address cannot be looked up: pass --ssh-cidr YOUR.IP.ADDRESS/32"
        ip=$(curl -fsS --max-time 10 "$CHECKIP_URL" 2>/dev/null | tr -d '[:space:]') || ip=""
        valid_ipv4 "$ip" ||
            die "could not look up your public IP address at $CHECKIP_URL (offline?). Pass --ssh-cidr YOUR.IP.ADDRESS/32 to say which address may SSH in."
        SSH_CIDR="$ip/32"
        log "SSH allowed from: $SSH_CIDR (your public address, from $CHECKIP_URL)"
    fi
    local bits=${SSH_CIDR#*/}
    if ((bits < 24)); then
        warn "--ssh-cidr $SSH_CIDR lets a large range of addresses try to log in; prefer your own /32."
    fi
}

# Recorded state of a previous run (ids, and what this stack created), in stack.env
STATE_VARS=(NAME REGION ACCOUNT VPC_ID IGW_ID SUBNET_ID SUBNET_AZ ROUTE_TABLE_ID ROUTE_TABLE_ASSOC_ID SG_ID KEY_NAME
    KEY_PAIR_ID KEY_FILE INSTANCE_ID SPOT_REQUEST_ID ALLOC_ID ASSOC_ID PUBLIC_IP ALARM_NAME ALARM_ARN IDLE_STOP_MINUTES
    SSH_USER SSH_CIDR SSH_HOST AMI_ID CREATED_KEY_PAIR CREATED_KEY_FILE)
PREV_REGION=""
CREATED_KEY_PAIR=0
CREATED_KEY_FILE=0
RECORDED_IDLE_STOP=""

load_state() {
    local file var
    STACK_DIR=$(stack_dir "$NAME")
    file="$STACK_DIR/stack.env"
    KEY_NAME="$NAME-key"
    KEY_FILE="$STACK_DIR/$NAME-key.pem"
    if [[ -f "$file" ]]; then
        PREV_REGION=$(state_value "$file" DL1_REGION)
        RECORDED_IDLE_STOP=$(state_value "$file" DL1_IDLE_STOP_MINUTES)
        CREATED_KEY_PAIR=$(state_value "$file" DL1_CREATED_KEY_PAIR)
        CREATED_KEY_FILE=$(state_value "$file" DL1_CREATED_KEY_FILE)
        [[ "$CREATED_KEY_PAIR" == 1 ]] || CREATED_KEY_PAIR=0
        [[ "$CREATED_KEY_FILE" == 1 ]] || CREATED_KEY_FILE=0
        if ((UPDATE_SSH_ONLY)); then # keep every recorded id when only the SSH rule changes
            for var in VPC_ID IGW_ID SUBNET_ID SUBNET_AZ ROUTE_TABLE_ID ROUTE_TABLE_ASSOC_ID KEY_PAIR_ID INSTANCE_ID \
                SPOT_REQUEST_ID ALLOC_ID ASSOC_ID PUBLIC_IP ALARM_NAME ALARM_ARN ACCOUNT SSH_USER SSH_HOST AMI_ID IDLE_STOP_MINUTES; do
                printf -v "$var" '%s' "$(state_value "$file" "DL1_$var")"
            done
        fi
    fi
    [[ "$RECORDED_IDLE_STOP" =~ ^[0-9]+$ ]] || RECORDED_IDLE_STOP=""
    if [[ -n "$PREV_REGION" && "$PREV_REGION" != "$REGION" ]]; then
        die "stack '$NAME' is recorded in region $PREV_REGION ($STACK_DIR), not $REGION. Use another --name for a second stack, or remove the first with $STACK_DIR/remove.sh."
    fi
}

# The key pair must never be silently duplicated, and the private key file never overwritten.
check_key() {
    local found
    found=$(awsq ec2 describe-key-pairs --filters "Name=key-name,Values=$KEY_NAME" \
        --query "KeyPairs[0].[KeyPairId, Tags[?Key=='$TAG_KEY'].Value | [0] || '-']")
    if [[ -n "$found" ]]; then
        # carrying our tag means a run of this script made it, even if the state folder was lost
        KEY_PAIR_ID=$(field 1 "$found")
        [[ "$(field 2 "$found")" == "$NAME" ]] && CREATED_KEY_PAIR=1
        if [[ -f "$KEY_FILE" ]]; then
            KEY_ACTION=reuse
        else
            die "key pair '$KEY_NAME' exists in AWS ($REGION) but its private key $KEY_FILE is missing. If you have that .pem file, copy it there (chmod 600) and run again. Otherwise delete the key pair ('aws ec2 delete-key-pair --key-name $KEY_NAME'; any instance using it then needs another way in) and run again to create a new one."
        fi
    elif [[ -f "$KEY_FILE" ]]; then
        command -v ssh-keygen >/dev/null 2>&1 ||
            die "$KEY_FILE exists but key pair '$KEY_NAME' does not; ssh-keygen is needed to import its public key."
        KEY_ACTION=import
    else
        KEY_ACTION=create
    fi
}

# ---------------------------------------------------------------------------------------------
# Creating (or finding again) the resources
# ---------------------------------------------------------------------------------------------
CREATED=0
VPC_ID=""
IGW_ID=""
SUBNET_ID=""
ROUTE_TABLE_ID=""
ROUTE_TABLE_ASSOC_ID=""
SG_ID=""
KEY_PAIR_ID=""
INSTANCE_ID=""
INSTANCE_STATE=""
ALLOC_ID=""
ASSOC_ID=""
PUBLIC_IP=""
ALARM_NAME=""
ALARM_ARN=""
SPOT_USED=0
SUBNET_AZ=""
SPOT_REQUEST_ID=""
IDLE_STOP_MINUTES=""
SSH_HOST=""
INSTANCE_IDLE_TAG=""

created() { # created KIND ID
    CREATED=$((CREATED + 1))
    log "created $1 $2"
    save_state
}

reused() { log "reusing $1 $2"; }

ensure_vpc() { # (the VPC's owner is the account, shown to the user and needed for the alarm's ARN)
    local info
    info=$(find_tagged describe-vpcs vpc vpc- 'Vpcs[].[VpcId, OwnerId]')
    VPC_ID=$(field 1 "$info")
    ACCOUNT=$(field 2 "$info")
    if [[ -n "$VPC_ID" ]]; then
        reused vpc "$VPC_ID"
        return 0
    fi
    info=$(awsq ec2 create-vpc --cidr-block "$VPC_CIDR" --tag-specifications "$(tagspec vpc vpc)" --query 'Vpc.[VpcId, OwnerId]')
    VPC_ID=$(field 1 "$info")
    ACCOUNT=$(field 2 "$info")
    awsq ec2 modify-vpc-attribute --vpc-id "$VPC_ID" --enable-dns-hostnames '{"Value":true}' >/dev/null
    created vpc "$VPC_ID"
}

ensure_internet_gateway() {
    local info attached
    info=$(find_tagged describe-internet-gateways gateway igw- "InternetGateways[].[InternetGatewayId, Attachments[0].VpcId || '-']")
    IGW_ID=$(field 1 "$info")
    attached=$(field 2 "$info")
    if [[ -n "$IGW_ID" ]]; then
        reused internet-gateway "$IGW_ID"
    else
        IGW_ID=$(awsq ec2 create-internet-gateway --tag-specifications "$(tagspec internet-gateway gateway)" \
            --query InternetGateway.InternetGatewayId)
        created internet-gateway "$IGW_ID"
    fi
    if [[ "$attached" != "$VPC_ID" ]]; then
        awsq ec2 attach-internet-gateway --internet-gateway-id "$IGW_ID" --vpc-id "$VPC_ID" >/dev/null
        log "attached $IGW_ID to $VPC_ID"
    fi
}

ensure_subnet() {
    local info
    info=$(find_tagged describe-subnets subnet subnet- "Subnets[].[SubnetId, AvailabilityZone]" "Name=vpc-id,Values=$VPC_ID")
    SUBNET_ID=$(field 1 "$info")
    SUBNET_AZ=$(field 2 "$info")
    if [[ -n "$SUBNET_ID" ]]; then
        reused subnet "$SUBNET_ID ($SUBNET_AZ)"
        # without --az, the launch starts in the subnet's zone (where any earlier instance was)
        if [[ -z "$AZ_OPT" ]] && grep -qxF -- "$SUBNET_AZ" <<<"$AZS"; then
            AZ=$SUBNET_AZ
        fi
        return 0
    fi
    create_subnet "$AZ"
}

create_subnet() { # create_subnet ZONE
    SUBNET_ID=$(awsq ec2 create-subnet --vpc-id "$VPC_ID" --cidr-block "$SUBNET_CIDR" --availability-zone "$1" \
        --tag-specifications "$(tagspec subnet subnet)" --query Subnet.SubnetId)
    SUBNET_AZ=$1
    created subnet "$SUBNET_ID ($1)"
}

# move_subnet ZONE: the stack's subnet (empty: no instance yet) is re-made in ZONE, same range, same tags.
move_subnet() {
    log "moving subnet $SUBNET_ID from $SUBNET_AZ to $1"
    if [[ -n "$ROUTE_TABLE_ASSOC_ID" ]]; then
        awsq ec2 disassociate-route-table --association-id "$ROUTE_TABLE_ASSOC_ID" >/dev/null
        ROUTE_TABLE_ASSOC_ID=""
    fi
    awsq ec2 delete-subnet --subnet-id "$SUBNET_ID" >/dev/null
    SUBNET_ID=""
    save_state
    create_subnet "$1"
    CREATED=$((CREATED - 1)) # a move, not a new resource
    ROUTE_TABLE_ASSOC_ID=$(awsq ec2 associate-route-table --route-table-id "$ROUTE_TABLE_ID" --subnet-id "$SUBNET_ID" \
        --query AssociationId)
    save_state
}

ensure_route_table() {
    local info gateway
    info=$(find_tagged describe-route-tables route-table rtb- \
        "RouteTables[].[RouteTableId, Associations[?SubnetId=='$SUBNET_ID'].RouteTableAssociationId | [0] || '-', Routes[?DestinationCidrBlock=='0.0.0.0/0'].GatewayId | [0] || '-']" \
        "Name=vpc-id,Values=$VPC_ID")
    ROUTE_TABLE_ID=$(field 1 "$info")
    ROUTE_TABLE_ASSOC_ID=$(field 2 "$info")
    gateway=$(field 3 "$info")
    if [[ -n "$ROUTE_TABLE_ID" ]]; then
        reused route-table "$ROUTE_TABLE_ID"
    else
        ROUTE_TABLE_ID=$(awsq ec2 create-route-table --vpc-id "$VPC_ID" --tag-specifications "$(tagspec route-table route-table)" \
            --query RouteTable.RouteTableId)
        created route-table "$ROUTE_TABLE_ID"
    fi
    if [[ -z "$ROUTE_TABLE_ASSOC_ID" ]]; then
        ROUTE_TABLE_ASSOC_ID=$(awsq ec2 associate-route-table --route-table-id "$ROUTE_TABLE_ID" --subnet-id "$SUBNET_ID" \
            --query AssociationId)
        log "associated $ROUTE_TABLE_ID with $SUBNET_ID ($ROUTE_TABLE_ASSOC_ID)"
        save_state
    fi
    if [[ "$gateway" != "$IGW_ID" ]]; then
        if [[ -n "$gateway" ]]; then
            awsq ec2 replace-route --route-table-id "$ROUTE_TABLE_ID" --destination-cidr-block 0.0.0.0/0 \
                --gateway-id "$IGW_ID" >/dev/null
        else
            awsq ec2 create-route --route-table-id "$ROUTE_TABLE_ID" --destination-cidr-block 0.0.0.0/0 \
                --gateway-id "$IGW_ID" --query Return >/dev/null
        fi
        log "route 0.0.0.0/0 -> $IGW_ID in $ROUTE_TABLE_ID"
    fi
}

ensure_security_group() {
    local info cidrs cidr
    info=$(find_tagged describe-security-groups security-group sg- \
        "SecurityGroups[].[GroupId, join(' ', IpPermissions[?FromPort==\`22\`].IpRanges[].CidrIp) || '-']" \
        "Name=vpc-id,Values=$VPC_ID")
    SG_ID=$(field 1 "$info")
    cidrs=$(field 2 "$info")
    if [[ -n "$SG_ID" ]]; then
        reused security-group "$SG_ID"
    else
        SG_ID=$(awsq ec2 create-security-group --group-name "$NAME-security-group" --vpc-id "$VPC_ID" \
            --description "dl1 stack $NAME: SSH from one address, nothing else" \
            --tag-specifications "$(tagspec security-group security-group)" --query GroupId)
        created security-group "$SG_ID"
    fi
    update_ssh_rule "$cidrs"
}

update_ssh_rule() { # update_ssh_rule "CIDRS NOW ALLOWED": SSH from $SSH_CIDR only
    local cidrs=$1 cidr
    if [[ " $cidrs " != *" $SSH_CIDR "* ]]; then
        awsq ec2 authorize-security-group-ingress --group-id "$SG_ID" \
            --ip-permissions "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=$SSH_CIDR,Description=ssh-from-dl1-setup}]" \
            --query Return >/dev/null
        log "security group $SG_ID: SSH (TCP 22) allowed from $SSH_CIDR only"
    fi
    for cidr in $cidrs; do # an address that changed since the last run loses access
        if [[ "$cidr" != "$SSH_CIDR" ]]; then
            awsq ec2 revoke-security-group-ingress --group-id "$SG_ID" --protocol tcp --port 22 --cidr "$cidr" \
                --query Return >/dev/null
            log "security group $SG_ID: removed SSH access from old address $cidr"
        fi
    done
}

ensure_key_pair() {
    local tmp pub
    case "$KEY_ACTION" in
    reuse)
        reused key-pair "$KEY_NAME ($KEY_FILE)"
        chmod go-rwx "$KEY_FILE" # ssh refuses keys that others can read
        ;;
    create)
        tmp=$(mktemp "$STACK_DIR/.key.XXXXXX") # mode 600
        if ! aws ec2 create-key-pair --key-name "$KEY_NAME" --key-type rsa \
            --tag-specifications "$(tagspec key-pair key)" --output text --query KeyMaterial >"$tmp" 2>"$ERR_FILE"; then
            rm -f "$tmp"
            die "aws ec2 create-key-pair failed: $(aws_error)"
        fi
        chmod 600 "$tmp"
        # A hard link never replaces an existing file: the key file is never overwritten.
        if ! ln "$tmp" "$KEY_FILE" 2>/dev/null; then # keep the new key: it is the only copy
            die "$KEY_FILE appeared while creating key pair $KEY_NAME; not overwriting it. The new key pair's private key is in $tmp: move it where you want it, or delete key pair $KEY_NAME (bash $STACK_DIR/remove.sh)."
        fi
        rm -f "$tmp"
        CREATED_KEY_PAIR=1
        CREATED_KEY_FILE=1
        created key-pair "$KEY_NAME (private key: $KEY_FILE, mode 600)"
        ;;
    import)
        pub="$TMP_DIR/key.pub"
        ssh-keygen -y -f "$KEY_FILE" >"$pub" || die "cannot read the private key $KEY_FILE to import it."
        KEY_PAIR_ID=$(awsq ec2 import-key-pair --key-name "$KEY_NAME" --public-key-material "fileb://$pub" \
            --tag-specifications "$(tagspec key-pair key)" --query KeyPairId)
        CREATED_KEY_PAIR=1
        created key-pair "$KEY_NAME $KEY_PAIR_ID (imported from the existing $KEY_FILE)"
        ;;
    esac
}

ensure_instance() {
    local info type reason
    info=$(find_tagged describe-instances instance i- "Reservations[].Instances[].[InstanceId, State.Name, InstanceType, InstanceLifecycle || '-', SpotInstanceRequestId || '-', StateReason.Code || '-', Tags[?Key=='$IDLE_TAG_KEY'].Value | [0] || '-']" \
        "Name=instance-state-name,Values=pending,running,stopping,stopped")
    INSTANCE_ID=$(field 1 "$info")
    INSTANCE_STATE=$(field 2 "$info")
    type=$(field 3 "$info")
    if [[ -z "$INSTANCE_ID" ]]; then
        launch_instance
        return 0
    fi
    [[ "$(field 4 "$info")" == spot ]] && SPOT_USED=1
    SPOT_REQUEST_ID=$(field 5 "$info")
    reason=$(field 6 "$info")
    INSTANCE_IDLE_TAG=$(field 7 "$info")
    reused instance "$INSTANCE_ID ($type, $INSTANCE_STATE)"
    if [[ "$type" != "$INSTANCE_TYPE" ]]; then
        log "Note: the existing instance is $type, not $INSTANCE_TYPE: kept as it is. To change it, stop it and run 'aws ec2 modify-instance-attribute --instance-id $INSTANCE_ID --instance-type \"{\\\"Value\\\": \\\"$INSTANCE_TYPE\\\"}\"', or remove the stack first."
    fi
    if [[ "$SPOT" == 1 && "$SPOT_USED" != 1 ]]; then
        warn "the existing instance is on-demand; --spot only applies when a new instance is created."
    fi
    if [[ "$INSTANCE_STATE" == stopped && "$reason" == Server.SpotInstance* ]]; then
        log "$INSTANCE_ID was stopped by AWS, not by you: a spot interruption ($reason; AWS needed the capacity back or the spot price rose)."
    fi
    case "$INSTANCE_STATE" in
    pending)
        wait_for_state "$INSTANCE_ID" running
        INSTANCE_STATE=running
        ;;
    stopping)
        log "waiting for $INSTANCE_ID to finish stopping..."
        wait_for_state "$INSTANCE_ID" stopped
        start_instance
        ;;
    stopped) start_instance ;;
    esac
}

# wait_for_state ID STATE: polls every few seconds (the CLI's waiters poll every 15 s), up to 10 minutes
wait_for_state() {
    local i state
    for i in $(seq 1 150); do
        state=$(awsq ec2 describe-instances --instance-ids "$1" --query 'Reservations[0].Instances[0].State.Name')
        [[ "$state" == "$2" ]] && return 0
        if [[ "$state" == terminated || ("$2" == running && "$state" == stopped && i -gt 3) ]]; then
            die "instance $1 is $state instead of $2: see the EC2 console (Instance state, State transition reason)."
        fi
        sleep "$((i < 10 ? 2 : 5))"
    done
    die "instance $1 is still $state after 10 minutes, not $2."
}

# The user-data script: installs the idle agent (setup/idle-agent.py, via setup/box-init.sh) at first boot
write_user_data() {
    local minutes=$1
    {
        printf '#!/bin/bash\n# dl1 stack %s: installs the idle agent at first boot (setup/box-init.sh)\nset -euo pipefail\n' "$NAME"
        printf 'mkdir -p /usr/local/lib/dl1\n'
        printf "echo '%s' | base64 -d >/usr/local/lib/dl1/idle-agent.py\n" "$(base64 <"$SCRIPT_DIR/idle-agent.py" | tr -d '\n')"
        printf "echo '%s' | base64 -d >/usr/local/lib/dl1/box-init.sh\n" "$(base64 <"$SCRIPT_DIR/box-init.sh" | tr -d '\n')"
        printf 'bash /usr/local/lib/dl1/box-init.sh %s\n' "$minutes"
    } >"$TMP_DIR/user-data.sh"
}

# launch_instance: run-instances in $AZ; with no capacity there (and no --az), in the region's other zones
# that offer the type, in turn. Quota and capacity errors end in one line that says what to do.
launch_instance() {
    local market_opts=() spot_label="" zone zones err code tried=""
    # every resource the launch creates is tagged by the launch itself: iam-policy.json allows tagging only
    # in the call that creates (ec2:CreateAction), so nothing can be tagged into the stack afterwards
    local tags=("$(tagspec instance instance "$IDLE_STOP_MINUTES")" "$(tagspec volume disk)" "$(tagspec network-interface nic)")
    if [[ "$SPOT" == 1 ]]; then
        tags+=("$(tagspec spot-instances-request spot-request)")
        market_opts=(--instance-market-options 'MarketType=spot,SpotOptions={SpotInstanceType=persistent,InstanceInterruptionBehavior=stop}')
        SPOT_USED=1
        spot_label=", spot"
    fi
    write_user_data "$IDLE_STOP_MINUTES"
    zones=$AZ
    [[ -n "$AZ_OPT" ]] || zones=$(printf '%s\n' "$AZ" "$AZS" | awk 'NF && !seen[$0]++')
    for zone in $zones; do
        if [[ "$zone" != "$SUBNET_AZ" ]]; then
            move_subnet "$zone"
        fi
        if INSTANCE_ID=$(aws_try ec2 run-instances --count 1 --image-id "$AMI_ID" --instance-type "$INSTANCE_TYPE" \
            --key-name "$KEY_NAME" --subnet-id "$SUBNET_ID" --security-group-ids "$SG_ID" \
            --block-device-mappings "DeviceName=$AMI_ROOT_DEVICE,Ebs={VolumeSize=$DISK_GB,VolumeType=gp3,DeleteOnTermination=true,Encrypted=true}" \
            --metadata-options HttpTokens=required,HttpEndpoint=enabled,InstanceMetadataTags=enabled \
            --user-data "file://$TMP_DIR/user-data.sh" \
            --tag-specifications "${tags[@]}" \
            "${market_opts[@]}" --query 'Instances[0].InstanceId'); then
            break
        fi
        err=$(aws_error)
        code=$(aws_error_code)
        quota_for_type || true
        tried="$tried $zone"
        case "$code:$err" in
        *InsufficientInstanceCapacity* | Unsupported:*)
            log "no $INSTANCE_TYPE capacity in $zone right now ($code)"
            INSTANCE_ID=""
            continue
            ;;
        *VcpuLimitExceeded*)
            die "AWS refused the instance: your vCPU quota '${QUOTA_LABEL:-for $INSTANCE_TYPE}' in $REGION is too low for $INSTANCE_TYPE (VcpuLimitExceeded; new accounts start at 0 for GPU instances, and running instances count against it): $(quota_fix)."
            ;;
        *MaxSpotInstanceCountExceeded*)
            die "AWS refused the spot request: your spot quota '${QUOTA_LABEL:-All Spot Instance Requests}' in $REGION is used up (MaxSpotInstanceCountExceeded): $(quota_fix), or run without --spot."
            ;;
        *) die "aws ec2 run-instances failed: $err" ;;
        esac
    done
    if [[ -z "$INSTANCE_ID" ]]; then
        if [[ -n "$AZ_OPT" ]]; then
            die "AWS has no $INSTANCE_TYPE capacity in $AZ_OPT right now (InsufficientInstanceCapacity): try again in a while, leave --az out to try the region's other zones, or pick another --instance-type."
        fi
        die "AWS has no $INSTANCE_TYPE capacity in any zone of $REGION right now (tried:$tried; InsufficientInstanceCapacity): try again in a while, another region, or another --instance-type (e.g. g5.2xlarge or g6.2xlarge)${spot_label:+, or without --spot}."
    fi
    INSTANCE_IDLE_TAG=$IDLE_STOP_MINUTES
    created instance "$INSTANCE_ID ($INSTANCE_TYPE$spot_label, $DISK_GB GB gp3, $SUBNET_AZ)"
    if [[ "$SPOT_USED" == 1 ]]; then # record the persistent request (tagged at launch): it outlives its instance
        SPOT_REQUEST_ID=$(aws_try ec2 describe-instances --instance-ids "$INSTANCE_ID" \
            --query 'Reservations[0].Instances[0].SpotInstanceRequestId' || true)
        if [[ -n "$SPOT_REQUEST_ID" ]]; then
            log "spot request $SPOT_REQUEST_ID (persistent; tagged, and cancelled by remove.sh)"
            save_state
        fi
    fi
    log "waiting for $INSTANCE_ID to be running..."
    wait_for_state "$INSTANCE_ID" running
    INSTANCE_STATE=running
}

start_instance() {
    local code
    if ! aws_try ec2 start-instances --instance-ids "$INSTANCE_ID" --query 'StartingInstances[0].CurrentState.Name' >/dev/null; then
        code=$(aws_error_code)
        if [[ "$SPOT_USED" == 1 ]]; then
            die "cannot start spot instance $INSTANCE_ID ($code: $(aws_error)). A spot instance stopped by an interruption starts again only when AWS has spot capacity for $INSTANCE_TYPE: its persistent request restarts it by itself when there is, or try again later; to go on-demand, remove the stack (bash $STACK_DIR/remove.sh) and run $PROG without --spot."
        fi
        case "$code" in
        InsufficientInstanceCapacity)
            die "AWS has no $INSTANCE_TYPE capacity in $SUBNET_AZ to start $INSTANCE_ID right now: try again in a while, or change its type while it is stopped (aws ec2 modify-instance-attribute --instance-id $INSTANCE_ID --instance-type \"{\\\"Value\\\": \\\"g5.2xlarge\\\"}\")." ;;
        *) die "aws ec2 start-instances failed: $(aws_error)" ;;
        esac
    fi
    log "started $INSTANCE_ID; waiting for it to be running..."
    wait_for_state "$INSTANCE_ID" running
    INSTANCE_STATE=running
}

ensure_address() {
    local info holder
    info=$(find_tagged describe-addresses address eipalloc- "Addresses[].[AllocationId, PublicIp, InstanceId || '-', AssociationId || '-']")
    ALLOC_ID=$(field 1 "$info")
    PUBLIC_IP=$(field 2 "$info")
    holder=$(field 3 "$info")
    ASSOC_ID=$(field 4 "$info")
    if [[ -n "$ALLOC_ID" ]]; then
        reused elastic-ip "$ALLOC_ID ($PUBLIC_IP)"
    else
        info=$(awsq ec2 allocate-address --domain vpc --tag-specifications "$(tagspec elastic-ip address)" \
            --query '[AllocationId, PublicIp]')
        ALLOC_ID=$(field 1 "$info")
        PUBLIC_IP=$(field 2 "$info")
        created elastic-ip "$ALLOC_ID ($PUBLIC_IP)"
    fi
    if [[ "$holder" != "$INSTANCE_ID" ]]; then
        # (our own address: --allow-reassociation takes it from a replaced instance that still holds it)
        ASSOC_ID=$(awsq ec2 associate-address --allocation-id "$ALLOC_ID" --instance-id "$INSTANCE_ID" --allow-reassociation \
            --query AssociationId)
        log "associated $PUBLIC_IP with $INSTANCE_ID ($ASSOC_ID)"
        save_state
    fi
}

set_alarm() { # set_alarm NAME (empty: no alarm)
    # shellcheck disable=SC2034 # recorded in stack.env (STATE_VARS)
    ALARM_NAME=$1
    ALARM_ARN=""
    [[ -z "$1" ]] || ALARM_ARN="arn:$PARTITION:cloudwatch:$REGION:$ACCOUNT:alarm:$1"
}

# The idle minutes: --idle-stop, else what the last run recorded, else the default (on).
resolve_idle_stop() {
    if [[ -n "$IDLE_STOP" ]]; then
        IDLE_STOP_MINUTES=$IDLE_STOP
    elif [[ -n "$RECORDED_IDLE_STOP" ]]; then
        IDLE_STOP_MINUTES=$RECORDED_IDLE_STOP
    else
        IDLE_STOP_MINUTES=$DEFAULT_IDLE_STOP
    fi
    if ((IDLE_STOP_MINUTES == 0)); then
        warn "idle stop is off (--idle-stop 0): the box runs, and costs money, until you stop it (aws-stop). Turn it back on with --idle-stop 60."
    fi
}

# The agent on the box reads its minutes from the instance's tag dl1:idle-stop (instance metadata).
ensure_idle_tag() {
    if [[ "$INSTANCE_IDLE_TAG" != "$IDLE_STOP_MINUTES" ]]; then
        awsq ec2 create-tags --resources "$INSTANCE_ID" --tags "Key=$IDLE_TAG_KEY,Value=$IDLE_STOP_MINUTES" >/dev/null
        log "idle agent on $INSTANCE_ID: stop after $IDLE_STOP_MINUTES idle minutes (tag $IDLE_TAG_KEY)"
        INSTANCE_IDLE_TAG=$IDLE_STOP_MINUTES
    fi
}

# The backstop: a CloudWatch alarm that stops the instance after the same time below 2% average CPU, should
# the agent not run. Always pointed at the current instance (a replaced instance gets it too).
ensure_idle_alarm() {
    local name="$NAME-idle-stop" existing watched periods old_periods
    existing=$(awsq cloudwatch describe-alarms --alarm-names "$name" \
        --query "MetricAlarms[0].[AlarmName, Dimensions[?Name=='InstanceId'].Value | [0] || '-', EvaluationPeriods]")
    watched=$(field 2 "$existing")
    old_periods=$(field 3 "$existing")
    existing=$(field 1 "$existing")
    if ((IDLE_STOP_MINUTES == 0)); then
        if [[ -n "$existing" ]]; then
            awsq cloudwatch delete-alarms --alarm-names "$name" >/dev/null
            log "removed idle-stop alarm $name"
        fi
        set_alarm ""
        save_state
        return 0
    fi
    periods=$(((IDLE_STOP_MINUTES + 4) / 5)) # 5-minute periods (EC2 basic monitoring)
    if [[ -n "$existing" && "$watched" == "$INSTANCE_ID" && "$old_periods" == "$periods" ]]; then
        set_alarm "$name"
        reused idle-stop-alarm "$name"
        return 0
    fi
    awsq cloudwatch put-metric-alarm --alarm-name "$name" \
        --alarm-description "dl1 stack $NAME: backstop of the idle agent, stops $INSTANCE_ID after $IDLE_STOP_MINUTES minutes below 2% CPU" \
        --namespace AWS/EC2 --metric-name CPUUtilization --dimensions "Name=InstanceId,Value=$INSTANCE_ID" \
        --statistic Average --period 300 --evaluation-periods "$periods" --datapoints-to-alarm "$periods" \
        --threshold 2 --comparison-operator LessThanThreshold --treat-missing-data notBreaching \
        --alarm-actions "arn:$PARTITION:automate:$REGION:ec2:stop" \
        --tags "Key=$TAG_KEY,Value=$NAME" "Key=Name,Value=$name" >/dev/null
    set_alarm "$name"
    if [[ -z "$existing" ]]; then
        created idle-stop-alarm "$ALARM_ARN (backstop: stops $INSTANCE_ID after $((periods * 5)) minutes below 2% CPU)"
    elif [[ "$watched" != "$INSTANCE_ID" ]]; then
        log "re-pointed idle-stop alarm $name from ${watched:-nothing} to $INSTANCE_ID"
        save_state
    else
        log "updated idle-stop alarm $name: stops $INSTANCE_ID after $((periods * 5)) idle minutes"
        save_state
    fi
}

# ---------------------------------------------------------------------------------------------
# State folder: stack.env (machine-readable), commands.txt (for people), remove.sh (teardown)
# ---------------------------------------------------------------------------------------------
save_state() {
    local var
    {
        printf '# Stack %s, written by setup/aws-setup.sh on %s. Read by aws-alias.sh and remove.sh.\n' "$NAME" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        for var in "${STATE_VARS[@]}"; do
            printf 'export DL1_%s=%s\n' "$var" "$(shquote "${!var}")"
        done
    } | write_file "$STACK_DIR/stack.env" 600
}

# The remove script exists before anything is created: a copy of setup/remove.sh (and the helpers it
# sources) in the state folder, with stack.name saying which stack it removes. It finds what to
# delete by the stack's tag, so it also removes what a failed or interrupted run made.
install_remove_script() {
    printf '%s\n' "$NAME" | write_file "$STACK_DIR/stack.name" 600
    write_file "$STACK_DIR/aws-lib.sh" 600 <"$SCRIPT_DIR/aws-lib.sh"
    write_file "$STACK_DIR/remove.sh" 700 <"$SCRIPT_DIR/remove.sh"
}

# ~/.ssh/config: 'Host dl1' (another stack: dl1-NAME), for `ssh dl1` and editors' remote modes.
# Written inside marked lines, replaced on re-runs, removed by remove.sh; a Host entry of the same name
# that the user wrote is left alone.
write_ssh_config() {
    local host file="$HOME/.ssh/config"
    ((SSH_CONFIG)) || return 0
    host=dl1
    [[ "$NAME" == dl1 ]] || host="dl1-$NAME"
    mkdir -p "$HOME/.ssh"
    chmod 700 "$HOME/.ssh"
    ssh_config_remove "$host" || true
    if [[ -f "$file" ]] && grep -Eiq "^[[:space:]]*Host[[:space:]]+(.*[[:space:]])?$host([[:space:]]|\$)" "$file"; then
        warn "$file already has a 'Host $host' entry of yours: not adding one (ssh -i $KEY_FILE $SSH_USER@$PUBLIC_IP works)."
        return 0
    fi
    {
        [[ ! -f "$file" ]] || cat "$file"
        printf '# >>> dl1 %s (written by setup/aws-setup.sh) >>>\n' "$host"
        printf 'Host %s\n' "$host"
        printf '    HostName %s\n    User %s\n    IdentityFile "%s"\n    IdentitiesOnly yes\n' "$PUBLIC_IP" "$SSH_USER" "$KEY_FILE"
        printf '    UserKnownHostsFile "%s"\n    StrictHostKeyChecking accept-new\n    ServerAliveInterval 60\n' "$STACK_DIR/known_hosts"
        printf '# <<< dl1 %s <<<\n' "$host"
    } | write_file "$file" 600
    SSH_HOST=$host
    log "$file: 'ssh $host' logs in (also for editors' remote SSH)"
}

write_commands() {
    local ssh_cmd
    ssh_cmd="ssh -i $(printf '%q' "$KEY_FILE") $SSH_USER@$PUBLIC_IP"
    {
        cat <<EOF
# Stack $NAME in $REGION (account $ACCOUNT), written by setup/aws-setup.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ).
# Easiest: source setup/aws-alias.sh, then aws-ssh / aws-nb / aws-start / aws-stop / aws-state / aws-ip$([[ "$NAME" == dl1 ]] || printf '\n# (after export DL1_AWS_NAME=%s, so that they use this stack)' "$NAME")

# Log in:
$ssh_cmd

$([[ -z "$SSH_HOST" ]] || printf '# or, with the entry in ~/.ssh/config (also for editors'"'"' remote SSH):\nssh %s\n' "$SSH_HOST")
# Jupyter, through an SSH tunnel (install-gpu.sh runs it as a service on the box), then open http://localhost:8888/
ssh -i $(printf '%q' "$KEY_FILE") -N -L 8888:localhost:8888 $SSH_USER@$PUBLIC_IP

# The box stops itself after ${IDLE_STOP_MINUTES} idle minutes (0: never); change it with: $PROG --idle-stop MINUTES
# Your address changed (SSH times out)? Move the SSH rule without starting anything:
bash $(printf '%q' "$SCRIPT_DIR/aws-setup.sh")$([[ "$NAME" == dl1 ]] || printf ' --name %s' "$NAME") --update-ssh-only

# Stop when you are done (disk and Elastic IP still cost a little while stopped), start again later:
aws ec2 stop-instances --region $REGION --instance-ids $INSTANCE_ID --output text --query 'StoppingInstances[0].CurrentState.Name'
aws ec2 start-instances --region $REGION --instance-ids $INSTANCE_ID --output text --query 'StartingInstances[0].CurrentState.Name'
aws ec2 reboot-instances --region $REGION --instance-ids $INSTANCE_ID --output text
aws ec2 describe-instances --region $REGION --instance-ids $INSTANCE_ID --output text --query 'Reservations[0].Instances[0].State.Name'

# Remove everything this stack created (asks first; --yes does not):
bash $(printf '%q' "$STACK_DIR/remove.sh")

# The ids, with their 2017 variable names (aws-get and aws-ip in aws-alias.sh export instanceId and instanceIp):
export instanceId=$INSTANCE_ID
export instanceIp=$PUBLIC_IP
export instanceUrl=$PUBLIC_IP
export region=$REGION
export name=$NAME
export vpcId=$VPC_ID
export internetGatewayId=$IGW_ID
export subnetId=$SUBNET_ID
export routeTableId=$ROUTE_TABLE_ID
export routeTableAssoc=$ROUTE_TABLE_ASSOC_ID
export securityGroupId=$SG_ID
export allocAddr=$ALLOC_ID
export assocId=$ASSOC_ID
export keyFile=$(printf '%q' "$KEY_FILE")
EOF
    } | write_file "$STACK_DIR/commands.txt" 600
}

# ---------------------------------------------------------------------------------------------
PHASE="checks"

on_exit() {
    local rc=$?
    if ((rc != 0)) && [[ "$PHASE" == create && ! -e "${DIED:-/nonexistent}" ]]; then # (die already said it, on its line)
        printf '%s\n' "Setup stopped before it finished: run $PROG again to continue (it reuses what exists), or bash $STACK_DIR/remove.sh to delete what it made." >&2
    fi
    [[ -z "$TMP_DIR" ]] || rm -rf "$TMP_DIR"
    exit "$rc"
}
DIED=""

# --update-ssh-only: the SSH rule moves to the caller's address; nothing is created, started or stopped.
update_ssh_only() {
    local info
    load_tagged
    info=$(find_tagged describe-security-groups security-group sg- \
        "SecurityGroups[].[GroupId, join(' ', IpPermissions[?FromPort==\`22\`].IpRanges[].CidrIp) || '-']")
    SG_ID=$(field 1 "$info")
    [[ -n "$SG_ID" ]] || die "stack $NAME has no security group in $REGION: create the stack first ($PROG$([[ "$NAME" == dl1 ]] || printf ' --name %s' "$NAME"))."
    if [[ "$(field 2 "$info")" == "$SSH_CIDR" ]]; then
        log "security group $SG_ID already allows SSH from $SSH_CIDR only: nothing to change."
    else
        update_ssh_rule "$(field 2 "$info")"
    fi
    if [[ -f "$STACK_DIR/stack.env" ]]; then
        save_state
    fi
    log "Nothing else was changed (no instance was started)."
}

main() {
    parse_args "$@"
    check_cli
    TMP_DIR=$(mktemp -d)
    ERR_FILE="$TMP_DIR/aws-error"
    DIED="$TMP_DIR/died"
    trap on_exit EXIT
    trap 'exit 130' INT TERM HUP

    resolve_region
    check_region_and_credentials
    log "Stack $NAME in $REGION"
    resolve_ssh_cidr
    load_state
    if ((UPDATE_SSH_ONLY)); then
        update_ssh_only
        return 0
    fi
    check_key
    check_instance_type
    find_ami
    check_disk
    load_tagged
    check_quota
    resolve_idle_stop
    mkdir -p "$STACK_DIR"
    chmod 700 "$STATE_ROOT" "$STACK_DIR"

    # From here on, a failure leaves a half-made stack: say how to go on or clean up, on the error's line
    # shellcheck disable=SC2034 # read by die (aws-lib.sh)
    DIE_HINT="(Run $PROG again to continue, or bash $STACK_DIR/remove.sh to delete what it made.)"
    PHASE="create"
    install_remove_script
    save_state
    ensure_vpc
    ensure_internet_gateway
    ensure_subnet
    ensure_route_table
    ensure_security_group
    ensure_key_pair
    ensure_instance
    ensure_idle_tag
    ensure_address
    ensure_idle_alarm
    write_ssh_config
    save_state
    write_commands
    PHASE="done"

    log ""
    if ((CREATED == 0)); then
        log "Created 0 new resources: everything already existed and was reused."
    else
        log "Created $CREATED new resources."
    fi
    log "Stack $NAME is ready in $REGION (account $ACCOUNT): instance $INSTANCE_ID ($INSTANCE_STATE) at $PUBLIC_IP, SSH from $SSH_CIDR only."
    log "  log in:       ${SSH_HOST:+ssh $SSH_HOST   or   }ssh -i $KEY_FILE $SSH_USER@$PUBLIC_IP"
    log "  on the box:   git clone <this repository>; bash setup/install-gpu.sh   (Jupyter then runs as a service)"
    log "  shortcuts:    source setup/aws-alias.sh   (aws-ssh, aws-nb, aws-stop, aws-start, aws-state, aws-ip, aws-allow-me)"
    log "  commands:     $STACK_DIR/commands.txt"
    log "  remove all:   bash $STACK_DIR/remove.sh"
    if ((IDLE_STOP_MINUTES > 0)); then
        log "It costs money while it runs: it stops itself after $IDLE_STOP_MINUTES idle minutes (no busy kernel, no SSH session, idle GPU); aws-stop stops it now."
    else
        log "It costs money while it runs, and idle stop is off: stop it with aws-stop when you are done."
    fi
}

main "$@"
