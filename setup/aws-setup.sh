#!/usr/bin/env bash
# Provision a cloud GPU box on AWS for the course: VPC, subnet, internet gateway, route table,
# security group (SSH from your address only), key pair, instance (AWS Deep Learning AMI) and
# Elastic IP, all tagged dl1:stack=<name>. Re-running reuses what exists. It writes, in the
# stack's state folder, commands.txt (how to reach the box) and remove.sh (tears it all down).
# Run `setup/aws-setup.sh --help` for the options; setup/README.md has the walkthrough.
set -euo pipefail

PROG=${0##*/}
TAG_KEY="dl1:stack"
VPC_CIDR="10.0.0.0/16"
SUBNET_CIDR="10.0.0.0/24"
CHECKIP_URL=${DL1_CHECKIP_URL:-https://checkip.amazonaws.com}
export AWS_PAGER="" # AWS CLI v2 would otherwise page some output
STATE_ROOT=${DL1_AWS_STATE_DIR:-$HOME/.dl1/aws}

# Options and their defaults
NAME="dl1"
INSTANCE_TYPE="g4dn.xlarge"
DISK_GB=100
SPOT=0
AMI_OPT=""
SSH_CIDR=""
IDLE_STOP=""

usage() {
    cat <<EOF
Usage: $PROG [options]

Create (or find again and reuse) everything a course GPU box needs on AWS, in the region of your
AWS CLI configuration, and write commands.txt and remove.sh into the stack's state folder.

Options:
  --name NAME           stack name (default: dl1); every resource is tagged $TAG_KEY=NAME and
                        Name=NAME-<kind>; several stacks with different names can coexist
  --instance-type TYPE  EC2 instance type (default: g4dn.xlarge); any type is accepted
  --disk GB             root disk size in GB, gp3 (default: 100)
  --spot                use a persistent spot instance (cheaper; stopped, not lost, on interruption)
  --ami ID              use this AMI instead of the latest AWS Deep Learning AMI
  --ssh-cidr CIDR       address or range allowed to SSH in (default: your public IP, looked up at
                        $CHECKIP_URL, or at \$DL1_CHECKIP_URL)
  --idle-stop MINUTES   stop the instance after MINUTES (5-1440) of idle CPU, with a CloudWatch
                        alarm; 0 removes the alarm
  -h, --help            show this help

State folder: \${DL1_AWS_STATE_DIR:-~/.dl1/aws}/ holds commands.txt, remove.sh, stack.env and the
private key dl1-key.pem (mode 600, never overwritten) of the default stack; a stack with another
--name keeps the same files in a sub-folder NAME/.
Region: AWS_REGION, AWS_DEFAULT_REGION or \`aws configure get region\`, in that order.
Jupyter is never opened to the internet: reach it through SSH (source setup/aws-alias.sh; aws-nb).
EOF
}

log() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
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
            usage_error "--idle-stop takes minutes between 5 and 1440, or 0 to remove the alarm (got '$IDLE_STOP')"
        fi
        IDLE_STOP=$((10#$IDLE_STOP))
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
# AWS CLI helpers. Every call passes --output text and a --query, so the user's configured
# output format (json, table, yaml...) never matters.
# ---------------------------------------------------------------------------------------------
TMP_DIR=""
ERR_FILE=""

# aws_try ARGS...: run the CLI with text output; prints the result ('None' becomes empty).
# On failure returns the CLI's status; the error text is then in $ERR_FILE (see aws_error).
aws_try() {
    local out
    out=$(aws "$@" --output text 2>"$ERR_FILE") || return $?
    [[ "$out" == "None" ]] && out=""
    [[ -z "$out" ]] || printf '%s\n' "$out"
}

aws_error() { grep -v '^[[:space:]]*$' "$ERR_FILE" | tail -n 4 || true; }

# awsq ARGS...: like aws_try, but a failure stops the script with the CLI's message.
awsq() {
    local out
    if ! out=$(aws_try "$@"); then
        die "aws $1 $2 failed: $(aws_error)"
    fi
    [[ -z "$out" ]] || printf '%s\n' "$out"
}

# Shorthand for --tag-specifications: tagspec RESOURCE_TYPE KIND
tagspec() { printf 'ResourceType=%s,Tags=[{Key=Name,Value=%s-%s},{Key=%s,Value=%s}]' "$1" "$NAME" "$2" "$TAG_KEY" "$NAME"; }

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
    printf '%s\n' "$TAGGED" | grep -q "^$prefix" || return 0
    out=$(awsq ec2 "$cmd" --filters "Name=tag:$TAG_KEY,Values=$NAME" "Name=tag:Name,Values=$NAME-$kind" "$@" --query "$query")
    if [[ $(printf '%s\n' "$out" | grep -c .) -gt 1 ]]; then
        warn "found several resources tagged Name=$NAME-$kind; using the first: $(printf '%s\n' "$out" | head -n 1 | cut -f1)"
    fi
    printf '%s\n' "$out" | head -n 1
}

field() { # field N LINE: the Nth tab-separated field, with '-' (our placeholder for null) as empty
    local fields value
    IFS=$'\t' read -r -a fields <<<"$2" || true
    value=${fields[$(($1 - 1))]:-}
    [[ "$value" == "-" || "$value" == "None" ]] && value=""
    printf '%s' "$value"
}

# ---------------------------------------------------------------------------------------------
# Checks, all done before anything is created
# ---------------------------------------------------------------------------------------------
REGION=""
PARTITION="aws"
ACCOUNT=""
ARCH=""
AZ=""
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
            if ! printf '%s\n' "$known" | tr '\t' '\n' | grep -qx -- "$REGION"; then
                die "unknown region '$REGION'. Known regions: $(printf '%s' "$known" | tr '\t' ' ')"
            fi
        fi
        die "cannot reach EC2 in region '$REGION': $err"
    fi
}

check_instance_type() {
    local info gpu azs
    if ! info=$(aws_try ec2 describe-instance-types --instance-types "$INSTANCE_TYPE" \
        --query "InstanceTypes[0].[join(' ', ProcessorInfo.SupportedArchitectures), GpuInfo.Gpus[0].Name || '-']"); then
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
    if [[ -z "$gpu" ]]; then
        warn "$INSTANCE_TYPE has no GPU: fine for trying things out, slow for training."
    fi
    azs=$(awsq ec2 describe-instance-type-offerings --location-type availability-zone \
        --filters "Name=instance-type,Values=$INSTANCE_TYPE" --query 'sort(InstanceTypeOfferings[].Location)')
    AZ=$(printf '%s\n' "$azs" | tr '\t' '\n' | grep . | head -n 1 || true)
    [[ -n "$AZ" ]] ||
        die "instance type '$INSTANCE_TYPE' is not offered in region $REGION. Pick another type (--instance-type) or region."
    log "Instance type: $INSTANCE_TYPE ($ARCH${gpu:+, GPU $gpu})"
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
    info=$(awsq ec2 describe-images --owners amazon \
        --filters "Name=name,Values=Deep Learning*Nvidia Driver*Ubuntu*,Deep Learning*AMI*Ubuntu*" \
        "Name=architecture,Values=$ARCH" Name=state,Values=available \
        --query "[sort_by(Images[?contains(Name, 'Nvidia Driver')], &CreationDate)[-1], sort_by(Images[?!contains(Name, 'Neuron')], &CreationDate)[-1]] | [?@] | [0].$img_fields")
    if [[ -n "$info" ]]; then
        set_ami "$info" "newest Deep Learning AMI found by describe-images"
        return 0
    fi

    local ubuntu_arch=amd64
    [[ "$ARCH" == arm64 ]] && ubuntu_arch=arm64
    info=$(awsq ec2 describe-images --owners 099720109477 \
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

# The default stack keeps its files right in the state folder ($STATE_ROOT/remove.sh, as documented);
# any other --name gets a sub-folder of its own, so several stacks can coexist.
stack_dir() {
    if [[ "$1" == "dl1" ]]; then printf '%s' "$STATE_ROOT"; else printf '%s/%s' "$STATE_ROOT" "$1"; fi
}

# Recorded state of a previous run (ids, and what this stack created).
PREV_REGION=""
CREATED_KEY_PAIR=0
CREATED_KEY_FILE=0

load_state() {
    STACK_DIR=$(stack_dir "$NAME")
    KEY_NAME="$NAME-key"
    KEY_FILE="$STACK_DIR/$NAME-key.pem"
    if [[ -f "$STACK_DIR/stack.env" ]]; then
        PREV_REGION=$(state_value DL1_REGION)
        CREATED_KEY_PAIR=$(state_value DL1_CREATED_KEY_PAIR)
        CREATED_KEY_FILE=$(state_value DL1_CREATED_KEY_FILE)
        [[ "$CREATED_KEY_PAIR" == 1 ]] || CREATED_KEY_PAIR=0
        [[ "$CREATED_KEY_FILE" == 1 ]] || CREATED_KEY_FILE=0
    fi
    if [[ -n "$PREV_REGION" && "$PREV_REGION" != "$REGION" ]]; then
        die "stack '$NAME' is recorded in region $PREV_REGION ($STACK_DIR), not $REGION. Use another --name for a second stack, or remove the first with $STACK_DIR/remove.sh."
    fi
}

state_value() { # state_value VAR: VAR as recorded in stack.env (read in a subshell)
    (
        # shellcheck disable=SC1091 # written by this script; its path is only known at run time
        . "$STACK_DIR/stack.env" >/dev/null 2>&1 || true
        printf '%s' "${!1:-}"
    )
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
    if [[ -n "$SUBNET_ID" ]]; then
        reused subnet "$SUBNET_ID ($(field 2 "$info"))"
        return 0
    fi
    SUBNET_ID=$(awsq ec2 create-subnet --vpc-id "$VPC_ID" --cidr-block "$SUBNET_CIDR" --availability-zone "$AZ" \
        --tag-specifications "$(tagspec subnet subnet)" --query Subnet.SubnetId)
    created subnet "$SUBNET_ID ($AZ)"
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
        if ! ln "$tmp" "$KEY_FILE" 2>/dev/null; then
            rm -f "$tmp"
            die "$KEY_FILE appeared while creating key pair $KEY_NAME; not overwriting it."
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
    local info type market_opts=() err spot_label=""
    info=$(find_tagged describe-instances instance i- "Reservations[].Instances[].[InstanceId, State.Name, InstanceType, InstanceLifecycle || '-']" \
        "Name=instance-state-name,Values=pending,running,stopping,stopped")
    INSTANCE_ID=$(field 1 "$info")
    INSTANCE_STATE=$(field 2 "$info")
    type=$(field 3 "$info")
    if [[ -n "$INSTANCE_ID" ]]; then
        [[ "$(field 4 "$info")" == spot ]] && SPOT_USED=1
        reused instance "$INSTANCE_ID ($type, $INSTANCE_STATE)"
        if [[ "$type" != "$INSTANCE_TYPE" ]]; then
            warn "the existing instance is $type, not $INSTANCE_TYPE: kept as it is. To change it, stop it and run 'aws ec2 modify-instance-attribute --instance-id $INSTANCE_ID --instance-type $INSTANCE_TYPE', or remove the stack first."
        fi
        if [[ "$SPOT" == 1 && "$SPOT_USED" != 1 ]]; then
            warn "the existing instance is on-demand; --spot only applies when a new instance is created."
        fi
        case "$INSTANCE_STATE" in
        pending)
            awsq ec2 wait instance-running --instance-ids "$INSTANCE_ID" >/dev/null
            INSTANCE_STATE=running
            ;;
        stopping)
            log "waiting for $INSTANCE_ID to finish stopping..."
            awsq ec2 wait instance-stopped --instance-ids "$INSTANCE_ID" >/dev/null
            start_instance
            ;;
        stopped) start_instance ;;
        esac
    else
        if [[ "$SPOT" == 1 ]]; then
            market_opts=(--instance-market-options 'MarketType=spot,SpotOptions={SpotInstanceType=persistent,InstanceInterruptionBehavior=stop}')
            SPOT_USED=1
            spot_label=", spot"
        fi
        if ! INSTANCE_ID=$(aws_try ec2 run-instances --count 1 --image-id "$AMI_ID" --instance-type "$INSTANCE_TYPE" \
            --key-name "$KEY_NAME" --subnet-id "$SUBNET_ID" --security-group-ids "$SG_ID" \
            --block-device-mappings "DeviceName=$AMI_ROOT_DEVICE,Ebs={VolumeSize=$DISK_GB,VolumeType=gp3,DeleteOnTermination=true,Encrypted=true}" \
            --metadata-options HttpTokens=required,HttpEndpoint=enabled \
            --tag-specifications "$(tagspec instance instance)" "$(tagspec volume disk)" \
            "${market_opts[@]}" --query 'Instances[0].InstanceId'); then
            err=$(aws_error)
            case "$err" in
            *VcpuLimitExceeded* | *"vCPU"*)
                die "AWS refused the instance: your vCPU quota for $INSTANCE_TYPE is too low ($err). New accounts start at 0 for GPU instances: ask for more under Service Quotas > Amazon EC2 > 'Running On-Demand G and VT instances' (or the Spot quota with --spot), then run $PROG again; what was created so far is reused." ;;
            *InsufficientInstanceCapacity*)
                die "AWS has no $INSTANCE_TYPE capacity in $AZ right now ($err). Try again later or another instance type; what was created so far is reused." ;;
            *) die "aws ec2 run-instances failed: $err" ;;
            esac
        fi
        created instance "$INSTANCE_ID ($INSTANCE_TYPE$spot_label, $DISK_GB GB gp3)"
        log "waiting for $INSTANCE_ID to be running..."
        awsq ec2 wait instance-running --instance-ids "$INSTANCE_ID" >/dev/null
        INSTANCE_STATE=running
    fi
}

start_instance() {
    awsq ec2 start-instances --instance-ids "$INSTANCE_ID" --query 'StartingInstances[0].CurrentState.Name' >/dev/null
    log "started $INSTANCE_ID; waiting for it to be running..."
    awsq ec2 wait instance-running --instance-ids "$INSTANCE_ID" >/dev/null
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
        ASSOC_ID=$(awsq ec2 associate-address --allocation-id "$ALLOC_ID" --instance-id "$INSTANCE_ID" --query AssociationId)
        log "associated $PUBLIC_IP with $INSTANCE_ID ($ASSOC_ID)"
        save_state
    fi
}

set_alarm() { # set_alarm NAME (empty: no alarm)
    ALARM_NAME=$1
    ALARM_ARN=""
    [[ -z "$1" ]] || ALARM_ARN="arn:$PARTITION:cloudwatch:$REGION:$ACCOUNT:alarm:$1"
}

ensure_idle_alarm() {
    local name="$NAME-idle-stop" existing periods
    existing=$(awsq cloudwatch describe-alarms --alarm-names "$name" --query 'MetricAlarms[0].AlarmName')
    if [[ -z "$IDLE_STOP" ]]; then
        if [[ -n "$existing" ]]; then
            set_alarm "$name"
            reused idle-stop-alarm "$name"
        fi
        return 0
    fi
    if ((IDLE_STOP == 0)); then
        if [[ -n "$existing" ]]; then
            awsq cloudwatch delete-alarms --alarm-names "$name" >/dev/null
            log "removed idle-stop alarm $name"
        fi
        set_alarm ""
        save_state
        return 0
    fi
    periods=$(((IDLE_STOP + 4) / 5)) # 5-minute periods (EC2 basic monitoring)
    awsq cloudwatch put-metric-alarm --alarm-name "$name" \
        --alarm-description "dl1 stack $NAME: stop $INSTANCE_ID after $IDLE_STOP minutes below 5% CPU" \
        --namespace AWS/EC2 --metric-name CPUUtilization --dimensions "Name=InstanceId,Value=$INSTANCE_ID" \
        --statistic Average --period 300 --evaluation-periods "$periods" --datapoints-to-alarm "$periods" \
        --threshold 5 --comparison-operator LessThanThreshold --treat-missing-data notBreaching \
        --alarm-actions "arn:$PARTITION:automate:$REGION:ec2:stop" \
        --tags "Key=$TAG_KEY,Value=$NAME" "Key=Name,Value=$name" >/dev/null
    set_alarm "$name"
    if [[ -n "$existing" ]]; then
        log "updated idle-stop alarm $name: stops $INSTANCE_ID after $((periods * 5)) idle minutes"
        save_state
    else
        created idle-stop-alarm "$ALARM_ARN (stops $INSTANCE_ID after $((periods * 5)) minutes below 5% CPU)"
    fi
}

# ---------------------------------------------------------------------------------------------
# State folder: stack.env (machine-readable), commands.txt (for people), remove.sh (teardown)
# ---------------------------------------------------------------------------------------------
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

save_state() {
    local var
    {
        printf '# Stack %s, written by setup/aws-setup.sh on %s. Read by aws-alias.sh.\n' "$NAME" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        for var in NAME REGION ACCOUNT VPC_ID IGW_ID SUBNET_ID ROUTE_TABLE_ID ROUTE_TABLE_ASSOC_ID SG_ID KEY_NAME \
            KEY_PAIR_ID KEY_FILE INSTANCE_ID ALLOC_ID ASSOC_ID PUBLIC_IP ALARM_NAME ALARM_ARN SSH_USER SSH_CIDR AMI_ID \
            CREATED_KEY_PAIR CREATED_KEY_FILE; do
            printf 'export DL1_%s=%s\n' "$var" "$(shquote "${!var}")"
        done
    } | write_file "$STACK_DIR/stack.env" 600
    write_remove_script
}

write_remove_script() {
    {
        printf '#!/usr/bin/env bash\n'
        printf '# Removes stack %s (region %s), created by setup/aws-setup.sh, and only what it created:\n' "$NAME" "$REGION"
        printf '# each recorded id is deleted only if it still carries the tag %s=%s.\n' "$TAG_KEY" "$NAME"
        printf '# Safe to run again. Regenerated by every run of aws-setup.sh.\n'
        printf 'set -euo pipefail\n'
        local var
        for var in NAME REGION VPC_ID IGW_ID SUBNET_ID ROUTE_TABLE_ID ROUTE_TABLE_ASSOC_ID SG_ID KEY_NAME KEY_FILE \
            INSTANCE_ID ALLOC_ID ALARM_ARN CREATED_KEY_PAIR CREATED_KEY_FILE TAG_KEY STACK_DIR; do
            printf '%s=%s\n' "$var" "$(shquote "${!var}")"
        done
        cat <<'REMOVE'

export AWS_DEFAULT_REGION="$REGION" AWS_PAGER=""
unset AWS_REGION
log() { printf '%s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}
command -v aws >/dev/null 2>&1 || die "aws CLI not found on PATH: install it to remove the stack."
ERR_FILE=$(mktemp)
trap 'rm -f "$ERR_FILE"' EXIT

q() { # AWS CLI with text output; 'None' becomes empty; a failure stops with the CLI's message
    local out
    if ! out=$(aws "$@" --output text 2>"$ERR_FILE"); then
        die "aws $1 $2 failed: $(grep -v '^[[:space:]]*$' "$ERR_FILE" | tail -n 3)"
    fi
    [[ "$out" == None ]] && out=""
    [[ -z "$out" ]] || printf '%s\n' "$out"
}

# call COMMAND...: an AWS CLI call whose output is not needed. Returns 1 when AWS says the thing is
# already gone (a *.NotFound or *.NotAttached error), so a second run is harmless. It is retried while a
# resource is still in use (AWS needs a moment after an instance terminates).
call() {
    local i
    for i in $(seq 1 30); do
        if aws "$@" --output text >/dev/null 2>"$ERR_FILE"; then return 0; fi
        grep -Eq '[.]NotFound|NotAttached' "$ERR_FILE" && return 1
        grep -q DependencyViolation "$ERR_FILE" || die "aws $1 $2 failed: $(grep -v '^[[:space:]]*$' "$ERR_FILE" | tail -n 3)"
        log "  (still in use, retrying in 10 s: $i/30)"
        sleep 10
    done
    die "aws $1 $2 still failing: $(tail -n 3 "$ERR_FILE")"
}

# Everything in EC2 that still carries our tag, in one call; a recorded id is only deleted if it is here.
TAGGED=$(q ec2 describe-tags --filters "Name=key,Values=$TAG_KEY" "Name=value,Values=$NAME" --query 'Tags[].ResourceId' | tr '\t' '\n')
ours() { [[ -n "$1" ]] && printf '%s\n' "$TAGGED" | grep -qxF -- "$1"; }

removed=0
gone() {
    removed=$((removed + 1))
    log "removed $*"
}

if [[ -n "$ALARM_ARN" ]] && # the idle-stop alarm, if it still exists (CloudWatch keeps its own tags)
    [[ -n "$(q cloudwatch describe-alarms --alarm-names "${ALARM_ARN##*:alarm:}" --query 'MetricAlarms[].AlarmName')" ]]; then
    tag=$(aws cloudwatch list-tags-for-resource --resource-arn "$ALARM_ARN" --output text \
        --query "Tags[?Key=='$TAG_KEY'].Value | [0]" 2>/dev/null || true)
    if [[ "$tag" == "$NAME" ]] && call cloudwatch delete-alarms --alarm-names "${ALARM_ARN##*:alarm:}"; then
        gone "idle-stop alarm ${ALARM_ARN##*:alarm:}"
    fi
fi

if ours "$ALLOC_ID" && assoc=$(aws ec2 describe-addresses --allocation-ids "$ALLOC_ID" --output text \
    --query "Addresses[0].AssociationId || '-'" 2>/dev/null); then
    [[ "$assoc" == "-" ]] || call ec2 disassociate-address --association-id "$assoc" || true
    if call ec2 release-address --allocation-id "$ALLOC_ID"; then
        gone "elastic IP $ALLOC_ID"
    fi
fi

if ours "$INSTANCE_ID"; then
    info=$(aws ec2 describe-instances --instance-ids "$INSTANCE_ID" --output text \
        --query "Reservations[0].Instances[0].[State.Name, SpotInstanceRequestId || '-']" 2>/dev/null) || info=""
    if [[ -n "$info" && "${info%%$'\t'*}" != terminated ]]; then
        spot=${info##*$'\t'}
        if [[ "$spot" != "-" ]]; then # a persistent spot request would start a new instance
            if call ec2 cancel-spot-instance-requests --spot-instance-request-ids "$spot"; then
                log "cancelled spot request $spot"
            fi
        fi
        call ec2 terminate-instances --instance-ids "$INSTANCE_ID" || true
        log "terminating $INSTANCE_ID (its disk goes with it); waiting..."
        call ec2 wait instance-terminated --instance-ids "$INSTANCE_ID" || true
        gone "instance $INSTANCE_ID"
    fi
fi

if ours "$SG_ID" && call ec2 delete-security-group --group-id "$SG_ID"; then
    gone "security group $SG_ID"
fi

if ours "$ROUTE_TABLE_ID"; then
    if [[ -n "$ROUTE_TABLE_ASSOC_ID" ]]; then
        call ec2 disassociate-route-table --association-id "$ROUTE_TABLE_ASSOC_ID" || true
    fi
    if call ec2 delete-route-table --route-table-id "$ROUTE_TABLE_ID"; then
        gone "route table $ROUTE_TABLE_ID"
    fi
fi

if ours "$IGW_ID"; then
    call ec2 detach-internet-gateway --internet-gateway-id "$IGW_ID" --vpc-id "$VPC_ID" || true
    if call ec2 delete-internet-gateway --internet-gateway-id "$IGW_ID"; then
        gone "internet gateway $IGW_ID"
    fi
fi

if ours "$SUBNET_ID" && call ec2 delete-subnet --subnet-id "$SUBNET_ID"; then
    gone "subnet $SUBNET_ID"
fi

if ours "$VPC_ID" && call ec2 delete-vpc --vpc-id "$VPC_ID"; then
    gone "VPC $VPC_ID"
fi

if [[ "$CREATED_KEY_PAIR" == 1 ]] && printf '%s\n' "$TAGGED" | grep -q '^key-' &&
    [[ -n "$(q ec2 describe-key-pairs --filters "Name=key-name,Values=$KEY_NAME" "Name=tag:$TAG_KEY,Values=$NAME" --query 'KeyPairs[].KeyName')" ]]; then
    call ec2 delete-key-pair --key-name "$KEY_NAME" || true
    gone "key pair $KEY_NAME (this stack created it)"
fi
if [[ -f "$KEY_FILE" ]]; then
    if [[ "$CREATED_KEY_FILE" == 1 ]]; then
        rm -f "$KEY_FILE"
        gone "private key $KEY_FILE (this stack created it)"
    else
        log "kept $KEY_FILE: this stack did not create it"
    fi
fi

rm -f "$STACK_DIR/stack.env" "$STACK_DIR/commands.txt" "$STACK_DIR/known_hosts"
if ((removed == 0)); then
    log "Nothing left to remove for stack $NAME in $REGION."
else
    log "Stack $NAME removed from $REGION ($removed resource(s)). This script stays in $STACK_DIR; running it again is harmless."
fi
REMOVE
    } | write_file "$STACK_DIR/remove.sh" 700
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

# Jupyter, through an SSH tunnel (start 'jupyter lab' on the box first), then open http://localhost:8888/
ssh -i $(printf '%q' "$KEY_FILE") -N -L 8888:localhost:8888 $SSH_USER@$PUBLIC_IP

# Stop when you are done (disk and Elastic IP still cost a little while stopped), start again later:
aws ec2 stop-instances --region $REGION --instance-ids $INSTANCE_ID --output text --query 'StoppingInstances[0].CurrentState.Name'
aws ec2 start-instances --region $REGION --instance-ids $INSTANCE_ID --output text --query 'StartingInstances[0].CurrentState.Name'
aws ec2 reboot-instances --region $REGION --instance-ids $INSTANCE_ID --output text
aws ec2 describe-instances --region $REGION --instance-ids $INSTANCE_ID --output text --query 'Reservations[0].Instances[0].State.Name'

# Remove everything this stack created:
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
    [[ -n "$TMP_DIR" ]] && rm -rf "$TMP_DIR"
    if ((rc != 0)) && [[ "$PHASE" == create ]]; then
        printf '%s\n' "Setup stopped before it finished. What it created so far is recorded in $STACK_DIR:" \
            "run $PROG again to continue (it reuses everything), or bash $STACK_DIR/remove.sh to delete it." >&2
    fi
    exit "$rc"
}

main() {
    parse_args "$@"
    check_cli
    TMP_DIR=$(mktemp -d)
    ERR_FILE="$TMP_DIR/aws-error"
    trap on_exit EXIT

    resolve_region
    check_region_and_credentials
    log "Stack $NAME in $REGION"
    resolve_ssh_cidr
    load_state
    check_key
    check_instance_type
    find_ami
    check_disk
    load_tagged
    mkdir -p "$STACK_DIR"
    chmod 700 "$STATE_ROOT" "$STACK_DIR"

    PHASE="create"
    ensure_vpc
    ensure_internet_gateway
    ensure_subnet
    ensure_route_table
    ensure_security_group
    ensure_key_pair
    ensure_instance
    ensure_address
    ensure_idle_alarm
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
    log "  log in:       ssh -i $KEY_FILE $SSH_USER@$PUBLIC_IP"
    log "  on the box:   git clone <this repository>; bash setup/install-gpu.sh"
    log "  shortcuts:    source setup/aws-alias.sh   (aws-ssh, aws-nb, aws-stop, aws-start, aws-state, aws-ip)"
    log "  commands:     $STACK_DIR/commands.txt"
    log "  remove all:   bash $STACK_DIR/remove.sh"
    log "It costs money while it runs: stop it with aws-stop when you are done${ALARM_NAME:+ (the idle alarm $ALARM_NAME stops it when it sits idle)}."
}

main "$@"
