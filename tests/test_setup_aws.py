"""setup/aws-setup.sh, aws-alias.sh and the generated remove.sh, run for real: the real scripts, the real
AWS CLI (from this virtual environment), against a local AWS emulator (moto in server mode on 127.0.0.1).

The module starts one moto server and runs the failure paths first (each must create nothing), then one
stack through its whole life: setup, a second run that creates nothing, the shortcuts, a second stack
beside it, and the teardown, which must leave nothing of the stack behind and nothing else touched.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "setup"
VENV_BIN = Path(sys.executable).parent
REGION = "eu-west-1"  # not the CLI's default (us-east-1): any region must work
SSH_CIDR = "203.0.113.7/32"
FAKE_KEY = "testing"


def _venv_tool(name: str) -> Path:
    path = VENV_BIN / name
    if not path.exists():
        pytest.skip(f"{name} not found next to {sys.executable}: pip install -r requirements-dev.txt")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_url(module_tmp):
    """One moto server for the module, started and stopped here."""
    _venv_tool("aws")
    server = _venv_tool("moto_server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (module_tmp.mktemp("moto") / "moto.log").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, env=env
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start (see {log.name})")
                time.sleep(0.2)
        urllib.request.urlopen(
            urllib.request.Request(url + "/moto-api/reset", method="POST"), timeout=10
        ).read()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Aws:
    """boto3 clients on the emulator, to check what the scripts did."""

    def __init__(self, url: str, region: str = REGION):
        import boto3

        kw = dict(
            region_name=region, endpoint_url=url, aws_access_key_id=FAKE_KEY, aws_secret_access_key=FAKE_KEY
        )
        self.ec2 = boto3.client("ec2", **kw)
        self.cloudwatch = boto3.client("cloudwatch", **kw)

    def snapshot(self) -> dict[str, list[str]]:
        """Every resource of the kinds the scripts create, by id."""
        ec2 = self.ec2
        instances = [
            i["InstanceId"]
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
            if i["State"]["Name"] != "terminated"
        ]
        return {
            "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
            "subnets": sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]),
            "gateways": sorted(
                g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]
            ),
            "route_tables": sorted(t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]),
            "security_groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
            "key_pairs": sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]),
            "instances": sorted(instances),
            "addresses": sorted(a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]),
            "alarms": sorted(a["AlarmName"] for a in self.cloudwatch.describe_alarms()["MetricAlarms"]),
        }

    def tagged(self, name: str) -> dict[str, list[str]]:
        """The resources carrying the stack tag dl1:stack=name."""
        f = [{"Name": "tag:dl1:stack", "Values": [name]}]
        ec2 = self.ec2
        return {
            "vpcs": [v["VpcId"] for v in ec2.describe_vpcs(Filters=f)["Vpcs"]],
            "subnets": [s["SubnetId"] for s in ec2.describe_subnets(Filters=f)["Subnets"]],
            "gateways": [
                g["InternetGatewayId"] for g in ec2.describe_internet_gateways(Filters=f)["InternetGateways"]
            ],
            "route_tables": [t["RouteTableId"] for t in ec2.describe_route_tables(Filters=f)["RouteTables"]],
            "security_groups": [
                g["GroupId"] for g in ec2.describe_security_groups(Filters=f)["SecurityGroups"]
            ],
            "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=f)["KeyPairs"]],
            "instances": [
                i["InstanceId"]
                for r in ec2.describe_instances(Filters=f)["Reservations"]
                for i in r["Instances"]
                if i["State"]["Name"] != "terminated"
            ],
            "addresses": [a["AllocationId"] for a in ec2.describe_addresses(Filters=f)["Addresses"]],
        }

    def instance(self, instance_id: str) -> dict:
        return self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def make_env(moto_url: str, home: Path, **overrides: str | None) -> dict[str, str]:
    """The environment a user would have: venv tools first on PATH, an isolated HOME and state folder,
    fake credentials, the emulator as endpoint. overrides set (or, with None, remove) variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DL1_", "MOTO_"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        HOME=str(home),
        DL1_AWS_STATE_DIR=str(home / "state"),
        AWS_ENDPOINT_URL=moto_url,
        AWS_ACCESS_KEY_ID=FAKE_KEY,
        AWS_SECRET_ACCESS_KEY=FAKE_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(home / ".aws" / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / ".aws" / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",  # no credential lookups on 169.254.169.254
        # awscli v1 does not know yaml: every call the scripts make must pass --output itself (2017 PR #1)
        AWS_DEFAULT_OUTPUT="yaml",
        # the shortcuts' address check must not reach the internet: a closed local port fails at once
        DL1_CHECKIP_URL=f"http://127.0.0.1:{_free_port()}/",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(args: list[str], env: dict[str, str], timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, **kw)
    result.output = result.stdout + result.stderr  # type: ignore[attr-defined]
    return result


def setup_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run([shutil.which("bash") or "bash", str(SETUP / "aws-setup.sh"), *args], env)


def aliases(env: dict[str, str], commands: str, shell: str = "bash") -> subprocess.CompletedProcess:
    return run([shutil.which(shell) or shell, "-c", f"source setup/aws-alias.sh; {commands}"], env)


@pytest.fixture(scope="module")
def aws(moto_url) -> Aws:
    return Aws(moto_url)


# ------------------------------------------------------------------------------------------------
# Failure paths: a clear message, a non-zero exit, and nothing created
# ------------------------------------------------------------------------------------------------


def assert_nothing_created(aws: Aws, before: dict, env: dict[str, str]) -> None:
    assert aws.snapshot() == before
    state = Path(env["DL1_AWS_STATE_DIR"])
    assert not state.exists() or not any(state.rglob("*")), list(state.rglob("*"))


def test_no_aws_cli(moto_url, aws, tmp_path):
    bin_dir = tmp_path / "bin"  # bash and coreutils, no aws
    bin_dir.mkdir()
    for tool in (
        "bash",
        "env",
        "cat",
        "mktemp",
        "rm",
        "mkdir",
        "chmod",
        "mv",
        "ln",
        "tr",
        "cut",
        "head",
        "tail",
        "grep",
        "sed",
        "date",
        "dirname",
        "sort",
        "uname",
    ):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = make_env(moto_url, tmp_path / "home", PATH=str(bin_dir))
    before = aws.snapshot()
    result = setup_script(env, "--ssh-cidr", SSH_CIDR)
    assert result.returncode != 0
    assert "aws CLI not found" in result.output
    assert_nothing_created(aws, before, env)
    result = aliases(env, "aws-state")
    assert result.returncode != 0
    assert "aws CLI not found" in result.output


def test_no_credentials(moto_url, aws, tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("")
    env = make_env(
        moto_url,
        tmp_path / "home",
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
        AWS_SHARED_CREDENTIALS_FILE=str(empty),
        AWS_CONFIG_FILE=str(empty),
    )
    before = aws.snapshot()
    result = setup_script(env, "--ssh-cidr", SSH_CIDR)
    assert result.returncode != 0
    assert "no AWS credentials" in result.output
    assert "aws configure" in result.output
    assert_nothing_created(aws, before, env)


def test_no_region(moto_url, aws, tmp_path):
    env = make_env(moto_url, tmp_path / "home", AWS_DEFAULT_REGION=None)
    before = aws.snapshot()
    result = setup_script(env, "--ssh-cidr", SSH_CIDR)
    assert result.returncode != 0
    assert "no AWS region configured" in result.output
    assert_nothing_created(aws, before, env)


def test_unknown_region(moto_url, aws, tmp_path):
    env = make_env(moto_url, tmp_path / "home", AWS_DEFAULT_REGION="xx-nowhere-1")
    before = aws.snapshot()
    result = setup_script(env, "--ssh-cidr", SSH_CIDR)
    assert result.returncode != 0
    assert "unknown region 'xx-nowhere-1'" in result.output
    assert_nothing_created(aws, before, env)


def test_unknown_instance_type(moto_url, aws, tmp_path):
    # The emulator runs with its default settings, in which run-instances accepts any instance type
    # (MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION is off, as in moto 5): the check has to be the script's own,
    # made with describe-instance-types before anything is created.
    from botocore.exceptions import ClientError

    other = Aws(moto_url, region="us-west-1")
    try:
        launched = other.ec2.run_instances(
            ImageId="ami-12c6146b", InstanceType="x9.bogus", MinCount=1, MaxCount=1
        )
        other.ec2.terminate_instances(InstanceIds=[launched["Instances"][0]["InstanceId"]])
    except ClientError:
        pass  # a stricter emulator: fine, the script must still say it clearly

    env = make_env(moto_url, tmp_path / "home")
    before = aws.snapshot()
    result = setup_script(env, "--instance-type", "x9.bogus", "--ssh-cidr", SSH_CIDR)
    assert result.returncode != 0
    assert "unknown instance type 'x9.bogus'" in result.output
    assert_nothing_created(aws, before, env)


def test_instance_type_not_offered_in_region(moto_url, aws, tmp_path):
    itype = "p5.48xlarge"  # a real type that the emulator's data does not offer in eu-west-1
    assert aws.ec2.describe_instance_types(InstanceTypes=[itype])["InstanceTypes"]
    offered = aws.ec2.describe_instance_type_offerings(
        LocationType="region", Filters=[{"Name": "instance-type", "Values": [itype]}]
    )["InstanceTypeOfferings"]
    if offered:
        pytest.skip(f"this moto version offers {itype} in {REGION}")
    env = make_env(moto_url, tmp_path / "home")
    before = aws.snapshot()
    result = setup_script(env, "--instance-type", itype, "--ssh-cidr", SSH_CIDR)
    assert result.returncode != 0
    assert f"'{itype}' is not offered in region {REGION}" in result.output
    assert_nothing_created(aws, before, env)


def test_offline_address_lookup_suggests_ssh_cidr(moto_url, aws, tmp_path):
    env = make_env(moto_url, tmp_path / "home", DL1_CHECKIP_URL=f"http://127.0.0.1:{_free_port()}/")
    before = aws.snapshot()
    result = setup_script(env)
    assert result.returncode != 0
    assert "could not look up your public IP address" in result.output
    assert "--ssh-cidr" in result.output
    assert_nothing_created(aws, before, env)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--idle-stop", "3"], "--idle-stop takes minutes between 5 and 1440"),
        (["--disk", "big"], "--disk must be a size in GB"),
        (["--ssh-cidr", "300.1.2.3"], "--ssh-cidr must be an IPv4 address"),
        (["--name", "bad name!"], "--name must be"),
        (["--frobnicate"], "unknown option: --frobnicate"),
        (["--disk", "8", "--ssh-cidr", SSH_CIDR], "smaller than the AMI's root snapshot"),
        (["--ami", "ami-0000000000000000f", "--ssh-cidr", SSH_CIDR], "AMI ami-0000000000000000f not found"),
    ],
)
def test_bad_options(moto_url, aws, tmp_path, args, message):
    env = make_env(moto_url, tmp_path / "home")
    before = aws.snapshot()
    result = setup_script(env, *args)
    assert result.returncode != 0
    assert message in result.output
    assert_nothing_created(aws, before, env)


def test_existing_key_pair_without_its_file_stops(moto_url, aws, tmp_path):
    aws.ec2.create_key_pair(KeyName="lost-key")
    try:
        env = make_env(moto_url, tmp_path / "home")
        before = aws.snapshot()
        result = setup_script(env, "--name", "lost", "--ssh-cidr", SSH_CIDR)
        assert result.returncode != 0
        assert "key pair 'lost-key' exists in AWS" in result.output
        assert "is missing" in result.output
        assert aws.snapshot() == before  # no second key, nothing else either
        assert not (Path(env["DL1_AWS_STATE_DIR"]) / "lost" / "lost-key.pem").exists()
    finally:
        aws.ec2.delete_key_pair(KeyName="lost-key")

# ------------------------------------------------------------------------------------------------
# Injected failures: an `aws` wrapper first on PATH makes one kind of call fail (optionally after the
# real call went through, as when a reply is lost) or answers Service Quotas and SSM itself. After each
# failure the user gets one line, and the stack's remove.sh leaves nothing tagged with the stack.
# ------------------------------------------------------------------------------------------------
FAKE_AWS = r"""#!/usr/bin/env bash
set -euo pipefail
real=__REAL__
if [[ -n "${FAKE_QUOTA:-}" && "$1 $2" == "service-quotas get-service-quota" ]]; then
    echo "$FAKE_QUOTA"; exit 0
fi
if [[ -n "${FAKE_SSM:-}" && "$1 $2" == "ssm get-parameters" ]]; then
    echo "$FAKE_SSM"; exit 0
fi
if [[ -n "${FAKE_FAIL:-}" && "$1 $2" == "$FAKE_FAIL" ]]; then
    n=0
    [[ ! -f "$FAKE_COUNT" ]] || n=$(cat "$FAKE_COUNT")
    echo $((n + 1)) >"$FAKE_COUNT"
    if ((n < ${FAKE_TIMES:-1000})); then
        if [[ "${FAKE_AFTER:-0}" == 1 ]]; then "$real" "$@" >/dev/null 2>&1 || true; fi
        if [[ -n "${FAKE_HANG:-}" ]]; then : >"$FAKE_HANG"; sleep 60; fi
        printf '\nAn error occurred (%s) when calling the %s operation: injected by the test\n' "${FAKE_CODE:-InternalError}" "$2" >&2
        exit 255
    fi
fi
exec "$real" "$@"
"""


@pytest.fixture(scope="module")
def fake_bin(module_tmp) -> Path:
    path = module_tmp.mktemp("fake-aws")
    (path / "aws").write_text(FAKE_AWS.replace("__REAL__", str(_venv_tool("aws"))))
    (path / "aws").chmod(0o755)
    return path


def faulty_env(moto_url, fake_bin, home: Path, **fake: str) -> dict[str, str]:
    env = make_env(moto_url, home, **{"FAKE_COUNT": str(home / "fake-count"), "FAKE_QUOTA": "64", **fake})
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"
    return env


def moto_ami(aws: Aws) -> str:
    images = aws.ec2.describe_images(Owners=["amazon"])["Images"]
    return sorted(i["ImageId"] for i in images if i.get("Architecture", "x86_64") == "x86_64")[0]


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_removed(aws: Aws, env: dict[str, str], name: str) -> None:
    remove = Path(env["DL1_AWS_STATE_DIR"]) / name / "remove.sh"
    assert remove.exists(), "remove.sh must exist before anything is created"
    result = run([shutil.which("bash") or "bash", str(remove), "--yes"], env)
    assert result.returncode == 0, result.output
    assert not any(aws.tagged(name).values()), aws.tagged(name)
    f = [{"Name": "tag:dl1:stack", "Values": [name]}]
    assert not [v for v in aws.ec2.describe_volumes(Filters=f)["Volumes"]]
    assert not [
        r
        for r in aws.ec2.describe_spot_instance_requests(Filters=f)["SpotInstanceRequests"]
        if r["State"] not in ("cancelled", "closed")
    ]
    assert not aws.cloudwatch.describe_alarms(AlarmNames=[f"{name}-idle-stop"])["MetricAlarms"]


CREATE_STEPS = [
    "create-vpc",
    "create-internet-gateway",
    "create-subnet",
    "create-route-table",
    "create-security-group",
    "create-key-pair",
    "run-instances",
    "allocate-address",
    "put-metric-alarm",
]


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_failure_at_each_create_step_then_remove_leaves_nothing(moto_url, aws, fake_bin, tmp_path, step):
    """The create call goes through in AWS but its reply is lost (the worst case: nothing recorded the id)."""
    service = "cloudwatch" if step == "put-metric-alarm" else "ec2"
    name = f"f-{step}"[:32]
    env = faulty_env(moto_url, fake_bin, tmp_path / "home", FAKE_FAIL=f"{service} {step}", FAKE_AFTER="1")
    result = setup_script(env, "--name", name, "--ssh-cidr", SSH_CIDR, "--ami", moto_ami(aws), "--no-ssh-config")
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), "\n".join(lines)
    assert f"aws {service} {step} failed" in lines[0] and "remove.sh" in lines[0]
    assert_removed(aws, env, name)


@pytest.mark.parametrize(
    "code, args, expected",
    [
        ("VcpuLimitExceeded", [], ["Running On-Demand G and VT instances", "L-DB2E81BA", "request-service-quota-increase"]),
        ("MaxSpotInstanceCountExceeded", ["--spot"], ["All G and VT Spot Instance Requests", "L-3819A6DF", "without --spot"]),
        ("InsufficientInstanceCapacity", ["--az", "eu-west-1b"], ["no g4dn.2xlarge capacity in eu-west-1b", "leave --az out"]),
    ],
)
def test_quota_and_capacity_errors_in_one_line(moto_url, aws, fake_bin, tmp_path, code, args, expected):
    name = f"q-{code.lower()}"[:32]
    env = faulty_env(moto_url, fake_bin, tmp_path / "home", FAKE_FAIL="ec2 run-instances", FAKE_CODE=code)
    result = setup_script(
        env, "--name", name, "--ssh-cidr", SSH_CIDR, "--ami", moto_ami(aws), "--no-ssh-config", *args
    )
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), "\n".join(lines)
    assert "An error occurred" not in lines[0]  # explained, not the raw CLI error
    for text in expected:
        assert text in lines[0]
    assert_removed(aws, env, name)


@pytest.mark.parametrize("spot, code", [(False, "L-DB2E81BA"), (True, "L-3819A6DF")])
def test_gpu_quota_checked_before_anything_is_created(moto_url, aws, fake_bin, tmp_path, spot, code):
    env = faulty_env(moto_url, fake_bin, tmp_path / "home", FAKE_QUOTA="0.0")
    before = aws.snapshot()
    result = setup_script(env, "--ssh-cidr", SSH_CIDR, *(["--spot"] if spot else []))
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("ERROR: your quota"), lines
    assert code in lines[0] and "is 0 vCPUs" in lines[0] and "needs 8" in lines[0]
    assert_nothing_created(aws, before, env)


def test_unknown_az(moto_url, aws, tmp_path):
    env = make_env(moto_url, tmp_path / "home")
    before = aws.snapshot()
    result = setup_script(env, "--ssh-cidr", SSH_CIDR, "--az", "eu-west-1z")
    assert result.returncode != 0
    assert "availability zone eu-west-1z does not offer g4dn.2xlarge" in result.output
    assert "eu-west-1a" in result.output
    assert_nothing_created(aws, before, env)


def test_capacity_failover_to_the_next_zone_with_the_ssm_ami(moto_url, aws, fake_bin, tmp_path):
    """No capacity in the first zone: the subnet moves to the next zone and the launch succeeds there. The
    AMI comes from the Deep Learning AMI's SSM parameter (answered by the wrapper: the emulator has none)."""
    ami = moto_ami(aws)
    env = faulty_env(
        moto_url,
        fake_bin,
        tmp_path / "home",
        FAKE_FAIL="ec2 run-instances",
        FAKE_CODE="InsufficientInstanceCapacity",
        FAKE_TIMES="1",
        FAKE_SSM=ami,
    )
    result = setup_script(env, "--name", "failover", "--ssh-cidr", SSH_CIDR, "--no-ssh-config")
    assert result.returncode == 0, result.output
    assert "AWS Deep Learning AMI, from its SSM public parameter" in result.output
    assert "no g4dn.2xlarge capacity in eu-west-1a" in result.output
    ours = aws.tagged("failover")
    assert len(ours["subnets"]) == 1 and len(ours["instances"]) == 1
    subnet = aws.ec2.describe_subnets(SubnetIds=ours["subnets"])["Subnets"][0]
    instance = aws.instance(ours["instances"][0])
    assert subnet["AvailabilityZone"] == "eu-west-1b"
    assert instance["Placement"]["AvailabilityZone"] == "eu-west-1b"
    assert instance["ImageId"] == ami
    assert_removed(aws, env, "failover")


def test_interrupted_setup_then_remove_leaves_nothing(moto_url, aws, fake_bin, tmp_path):
    """Killed (Ctrl-C) right after the instance was launched, before its id was recorded."""
    hang = tmp_path / "hang"
    env = faulty_env(
        moto_url, fake_bin, tmp_path / "home", FAKE_FAIL="ec2 run-instances", FAKE_AFTER="1", FAKE_HANG=str(hang)
    )
    args = [shutil.which("bash") or "bash", str(SETUP / "aws-setup.sh"), "--name", "killed", "--ssh-cidr", SSH_CIDR]
    proc = subprocess.Popen(
        [*args, "--ami", moto_ami(aws), "--no-ssh-config"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not hang.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(0.5)  # the fake's `sleep` has started: the signal lands while the call hangs
        for _ in range(3):  # Ctrl-C, and again if the first one raced the hanging call's start
            os.killpg(proc.pid, 2)  # SIGINT, as Ctrl-C does
            try:
                out, err = proc.communicate(timeout=20)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            raise AssertionError("aws-setup.sh did not stop after three Ctrl-C")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    assert proc.returncode != 0
    assert "remove.sh" in err
    assert aws.tagged("killed")["instances"]  # launched, never recorded
    assert_removed(aws, env, "killed")



def test_help(moto_url, tmp_path):
    result = setup_script(make_env(moto_url, tmp_path / "home"), "--help")
    assert result.returncode == 0
    for option in (
        "--instance-type",
        "--disk",
        "--spot",
        "--name",
        "--ssh-cidr",
        "--idle-stop",
        "--ami",
        "--az",
        "--update-ssh-only",
    ):
        assert option in result.stdout


# ------------------------------------------------------------------------------------------------
# One stack through its life. The tests below run in file order and share the stack.
# ------------------------------------------------------------------------------------------------


class Stack:
    def __init__(self, env, result, before, state_dir):
        self.env = env
        self.result = result
        self.before = before  # everything that existed before the stack
        self.dir = state_dir
        self.ids = {}
        for line in (state_dir / "stack.env").read_text().splitlines():
            if line.startswith("export DL1_"):
                key, _, value = line[len("export DL1_") :].partition("=")
                self.ids[key] = value.strip("'")


@pytest.fixture(scope="module")
def stack(moto_url, aws, module_tmp) -> Stack:
    env = make_env(moto_url, module_tmp.mktemp("user") / "home")
    before = aws.snapshot()
    result = setup_script(env, "--ssh-cidr", SSH_CIDR, "--idle-stop", "30", "--disk", "120")
    assert result.returncode == 0, result.output
    return Stack(env, result, before, Path(env["DL1_AWS_STATE_DIR"]))  # the default stack: the root


def test_setup_creates_the_stack(stack, aws):
    ids, ec2 = stack.ids, aws.ec2
    out = stack.result.output
    assert "Created 9 new resources" in out
    # the emulator has no Deep Learning AMI SSM parameter, but describe-images finds its (old) DLAMI
    assert "no Deep Learning AMI SSM parameter" in out
    assert "newest Deep Learning AMI found by describe-images" in out

    vpc = ec2.describe_vpcs(VpcIds=[ids["VPC_ID"]])["Vpcs"][0]
    assert tags(vpc) == {"Name": "dl1-vpc", "dl1:stack": "dl1"}

    subnet = ec2.describe_subnets(SubnetIds=[ids["SUBNET_ID"]])["Subnets"][0]
    assert subnet["VpcId"] == vpc["VpcId"]
    assert tags(subnet)["Name"] == "dl1-subnet"

    gateway = ec2.describe_internet_gateways(InternetGatewayIds=[ids["IGW_ID"]])["InternetGateways"][0]
    assert [a["VpcId"] for a in gateway["Attachments"]] == [vpc["VpcId"]]
    assert tags(gateway)["dl1:stack"] == "dl1"

    table = ec2.describe_route_tables(RouteTableIds=[ids["ROUTE_TABLE_ID"]])["RouteTables"][0]
    assert tags(table)["dl1:stack"] == "dl1"
    assert subnet["SubnetId"] in [a.get("SubnetId") for a in table["Associations"]]
    default_routes = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert [r["GatewayId"] for r in default_routes] == [gateway["InternetGatewayId"]]

    group = ec2.describe_security_groups(GroupIds=[ids["SG_ID"]])["SecurityGroups"][0]
    assert tags(group)["dl1:stack"] == "dl1"
    assert len(group["IpPermissions"]) == 1  # SSH only: no Jupyter port, nothing else
    rule = group["IpPermissions"][0]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22)
    assert [r["CidrIp"] for r in rule["IpRanges"]] == [SSH_CIDR]
    assert not rule.get("Ipv6Ranges")

    key_pair = ec2.describe_key_pairs(KeyNames=["dl1-key"])["KeyPairs"][0]
    assert tags(key_pair)["dl1:stack"] == "dl1"
    key_file = Path(ids["KEY_FILE"])
    assert key_file == stack.dir / "dl1-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("-----BEGIN")

    instance = aws.instance(ids["INSTANCE_ID"])
    assert instance["InstanceType"] == "g4dn.2xlarge"  # 32 GiB: lesson 2 fits
    assert instance["State"]["Name"] == "running"
    assert instance["KeyName"] == "dl1-key"
    assert instance["SubnetId"] == subnet["SubnetId"]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group["GroupId"]]
    assert tags(instance) == {"Name": "dl1-instance", "dl1:stack": "dl1", "dl1:idle-stop": "30"}
    # IMDSv2 only, and tags in the metadata (the idle agent reads dl1:idle-stop there)
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["MetadataOptions"]["InstanceMetadataTags"] == "enabled"
    # the user data installs the idle agent at first boot
    import base64

    user_data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    script = base64.b64decode(user_data["UserData"]["Value"]).decode()
    assert script.startswith("#!/bin/bash\n") and script.rstrip().endswith("box-init.sh 30")
    embedded = script.split("echo '")[1].split("'")[0]
    assert base64.b64decode(embedded) == (SETUP / "idle-agent.py").read_bytes()
    assert instance["ImageId"] == ids["AMI_ID"] and ids["AMI_ID"] in out
    root = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    volume = ec2.describe_volumes(VolumeIds=[root])["Volumes"][0]
    assert (volume["Size"], volume["VolumeType"]) == (120, "gp3")
    assert volume["Encrypted"] is True
    assert instance["BlockDeviceMappings"][0]["Ebs"]["DeleteOnTermination"] is True
    assert tags(volume)["dl1:stack"] == "dl1"

    address = ec2.describe_addresses(AllocationIds=[ids["ALLOC_ID"]])["Addresses"][0]
    assert address["InstanceId"] == instance["InstanceId"]
    assert tags(address)["dl1:stack"] == "dl1"
    assert address["PublicIp"] == ids["PUBLIC_IP"] == instance["PublicIpAddress"]

    alarm = aws.cloudwatch.describe_alarms(AlarmNames=["dl1-idle-stop"])["MetricAlarms"][0]
    assert alarm["AlarmActions"] == [f"arn:aws:automate:{REGION}:ec2:stop"]
    assert alarm["MetricName"] == "CPUUtilization" and alarm["Namespace"] == "AWS/EC2"
    assert alarm["Dimensions"] == [{"Name": "InstanceId", "Value": instance["InstanceId"]}]
    assert alarm["Period"] * alarm["EvaluationPeriods"] == 30 * 60
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] <= 5

    # 'ssh dl1' (and editors' remote SSH) through a marked entry in ~/.ssh/config
    config = (Path(stack.env["HOME"]) / ".ssh" / "config").read_text()
    assert "Host dl1\n" in config
    assert f"HostName {ids['PUBLIC_IP']}" in config and f'IdentityFile "{ids["KEY_FILE"]}"' in config
    assert stat.S_IMODE((Path(stack.env["HOME"]) / ".ssh" / "config").stat().st_mode) == 0o600

    # exactly those nine, and nothing else changed
    after = aws.snapshot()
    added = {kind: sorted(set(after[kind]) - set(stack.before[kind])) for kind in after}
    assert {kind: len(new) for kind, new in added.items() if new} == {
        "vpcs": 1,
        "subnets": 1,
        "gateways": 1,
        "route_tables": 2,  # ours, and the VPC's main table
        "security_groups": 2,  # ours, and the VPC's default group
        "key_pairs": 1,
        "instances": 1,
        "addresses": 1,
        "alarms": 1,
    }
    assert all(set(stack.before[kind]) <= set(after[kind]) for kind in after)


def test_state_folder(stack):
    commands = (stack.dir / "commands.txt").read_text()
    ip, key = stack.ids["PUBLIC_IP"], stack.ids["KEY_FILE"]
    assert f"ssh -i {key} ubuntu@{ip}" in commands
    assert "-L 8888:localhost:8888" in commands
    assert f"export instanceId={stack.ids['INSTANCE_ID']}" in commands
    remove = stack.dir / "remove.sh"
    assert os.access(remove, os.X_OK)
    assert remove.read_text() == (SETUP / "remove.sh").read_text()  # the static script, copied
    assert (stack.dir / "aws-lib.sh").read_text() == (SETUP / "aws-lib.sh").read_text()
    assert (stack.dir / "stack.name").read_text() == "dl1\n"
    shellcheck = _venv_tool("shellcheck")
    result = run([str(shellcheck), str(remove)], stack.env)
    assert result.returncode == 0, result.output


def test_second_run_creates_nothing_and_starts_a_stopped_instance(stack, aws):
    instance_id = stack.ids["INSTANCE_ID"]
    aws.ec2.stop_instances(InstanceIds=[instance_id])
    key_file = Path(stack.ids["KEY_FILE"])
    key_before = key_file.read_bytes()
    alarm_before = aws.cloudwatch.describe_alarms(AlarmNames=["dl1-idle-stop"])["MetricAlarms"]
    before = aws.snapshot()

    # The caller's address changed since the first run (home addresses do).
    result = setup_script(stack.env, "--ssh-cidr", "198.51.100.99")
    assert result.returncode == 0, result.output
    assert "Created 0 new resources" in result.output
    assert "created " not in result.output
    assert aws.snapshot() == before
    assert aws.instance(instance_id)["State"]["Name"] == "running"
    assert key_file.read_bytes() == key_before  # never overwritten
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # the SSH rule moved to the new address, and only there
    group = aws.ec2.describe_security_groups(GroupIds=[stack.ids["SG_ID"]])["SecurityGroups"][0]
    rules = [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in group["IpPermissions"]]
    assert rules == [(22, ["198.51.100.99/32"])]
    # the idle alarm is kept as it was when --idle-stop is not repeated
    assert aws.cloudwatch.describe_alarms(AlarmNames=["dl1-idle-stop"])["MetricAlarms"] == alarm_before


@pytest.mark.parametrize("output", ["json", "table", "yaml", "text"])
def test_aliases_work_with_any_output_format(stack, output):
    # yaml is not even a format awscli v1 knows: any call without an explicit --output would fail
    env = dict(stack.env, AWS_DEFAULT_OUTPUT=output)
    result = aliases(env, 'aws-state; aws-ip; echo "id=$instanceId ip=$instanceIp"')
    assert result.returncode == 0, result.output
    assert result.stdout.splitlines() == [
        "running",
        stack.ids["PUBLIC_IP"],
        f"id={stack.ids['INSTANCE_ID']} ip={stack.ids['PUBLIC_IP']}",
    ]


def test_aliases_with_output_in_the_config_file(stack, tmp_path):
    config = tmp_path / "config"
    config.write_text("[default]\noutput = table\n")
    result = aliases(dict(stack.env, AWS_CONFIG_FILE=str(config)), "aws-get-p2; aws-get")
    assert result.returncode == 0, result.output
    assert result.stdout.split() == [stack.ids["INSTANCE_ID"]] * 2


def test_aliases_stop_and_start(stack, aws):
    result = aliases(stack.env, "aws-stop; aws-state")
    assert result.returncode == 0, result.output
    assert result.stdout.split()[-1] == "stopped"
    result = aliases(stack.env, "aws-start && aws-state")
    assert result.returncode == 0, result.output
    assert result.stdout.splitlines()[-2:] == [stack.ids["PUBLIC_IP"], "running"]
    assert aws.instance(stack.ids["INSTANCE_ID"])["State"]["Name"] == "running"


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_aliases_ssh_and_notebook_tunnel(stack, tmp_path, shell):
    if not shutil.which(shell):
        pytest.skip(f"{shell} is not installed")
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    log = tmp_path / "calls.log"
    (fake / "ssh").write_text(
        '#!/bin/sh\necho "ssh $*" >> "$FAKE_LOG"\ncase "$*" in *"-O check"*) exit 255;; esac\nexit 0\n'
    )
    (fake / "xdg-open").write_text('#!/bin/sh\necho "xdg-open $*" >> "$FAKE_LOG"\n')
    for f in fake.iterdir():
        f.chmod(0o755)
    env = dict(stack.env, PATH=f"{fake}{os.pathsep}{stack.env['PATH']}", FAKE_LOG=str(log))
    result = aliases(env, "aws-state && aws-ssh nvidia-smi && aws-nb", shell=shell)
    assert result.returncode == 0, result.output
    calls = log.read_text().splitlines()
    target = f"ubuntu@{stack.ids['PUBLIC_IP']}"
    key = stack.ids["KEY_FILE"]
    assert calls[0].startswith(f"ssh -i {key} ") and calls[0].endswith(f"{target} nvidia-smi")
    tunnel = [c for c in calls if "-L " in c]
    assert len(tunnel) == 1
    assert f"-i {key}" in tunnel[0] and "-N" in tunnel[0] and "-L 8888:localhost:8888" in tunnel[0]
    assert tunnel[0].endswith(target)
    if sys.platform.startswith("linux"):
        assert calls[-1] == "xdg-open http://localhost:8888/"
    assert result.stdout.startswith("running\n")
    assert "http://localhost:8888/" in result.stdout


def test_second_stack_coexists(stack, aws, moto_url, tmp_path):
    """Another --name in the same account: its own resources, a spot instance from a given AMI, SSH from the
    address the lookup service reports (a local stand-in for checkip.amazonaws.com)."""
    if not shutil.which("curl"):
        pytest.skip("curl is not installed (aws-setup.sh uses it to look up the caller's address)")

    class CheckIp(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"198.51.100.23\n")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), CheckIp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = dict(stack.env, DL1_CHECKIP_URL=f"http://127.0.0.1:{server.server_port}/")
        dl1_before = aws.tagged("dl1")
        result = setup_script(
            env,
            "--name",
            "other",
            "--spot",
            "--ami",
            "ami-785db401",
            "--instance-type",
            "t3.micro",
            "--disk",
            "20",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.output
    assert "Created 9 new resources" in result.output  # idle stop is on by default: the alarm too
    assert "t3.micro has no GPU" in result.output
    assert "198.51.100.23/32" in result.output
    assert aws.tagged("dl1") == dl1_before

    other = aws.tagged("other")
    assert all(len(ids) == 1 for ids in other.values()), other
    assert not any(set(other[kind]) & set(dl1_before[kind]) for kind in other)
    instance = aws.instance(other["instances"][0])
    assert (instance["InstanceType"], instance["ImageId"]) == ("t3.micro", "ami-785db401")
    assert instance.get("InstanceLifecycle") == "spot"
    group = aws.ec2.describe_security_groups(GroupIds=other["security_groups"])["SecurityGroups"][0]
    assert [r["CidrIp"] for p in group["IpPermissions"] for r in p["IpRanges"]] == ["198.51.100.23/32"]
    assert (Path(env["DL1_AWS_STATE_DIR"]) / "other" / "remove.sh").exists()

    result = aliases(dict(env, DL1_AWS_NAME="other"), "aws-get")
    assert result.stdout.strip() == instance["InstanceId"]


def test_update_ssh_only_moves_the_rule_and_starts_nothing(stack, aws):
    instance_id = stack.ids["INSTANCE_ID"]
    aws.ec2.stop_instances(InstanceIds=[instance_id])
    before = aws.snapshot()
    result = setup_script(stack.env, "--update-ssh-only", "--ssh-cidr", "192.0.2.44")
    assert result.returncode == 0, result.output
    assert "\ncreated " not in result.output and "started i-" not in result.output
    assert "no instance was started" in result.output
    assert aws.instance(instance_id)["State"]["Name"] == "stopped"
    assert aws.snapshot() == before
    group = aws.ec2.describe_security_groups(GroupIds=[stack.ids["SG_ID"]])["SecurityGroups"][0]
    assert [r["CidrIp"] for p in group["IpPermissions"] for r in p["IpRanges"]] == ["192.0.2.44/32"]
    assert "export DL1_SSH_CIDR='192.0.2.44/32'" in (stack.dir / "stack.env").read_text()
    aws.ec2.start_instances(InstanceIds=[instance_id])


def test_aliases_allow_me_and_address_check(stack, aws, tmp_path):
    """aws-ssh says when the caller's address is not the allowed one; aws-allow-me moves the rule there."""
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")

    class CheckIp(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"198.51.100.77\n")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), CheckIp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "ssh").write_text('#!/bin/sh\necho "ssh $*" >> "$FAKE_LOG"\n')
    (fake / "ssh").chmod(0o755)
    try:
        env = dict(
            stack.env,
            DL1_CHECKIP_URL=f"http://127.0.0.1:{server.server_port}/",
            PATH=f"{fake}{os.pathsep}{stack.env['PATH']}",
            FAKE_LOG=str(tmp_path / "ssh.log"),
        )
        result = aliases(env, "aws-ssh true")
        assert "198.51.100.77 is not allowed to SSH" in result.output and "aws-allow-me" in result.output
        result = aliases(env, "aws-allow-me && aws-ssh true")
        assert result.returncode == 0, result.output
        assert "not allowed" not in result.output
    finally:
        server.shutdown()
        server.server_close()
    group = aws.ec2.describe_security_groups(GroupIds=[stack.ids["SG_ID"]])["SecurityGroups"][0]
    assert [r["CidrIp"] for p in group["IpPermissions"] for r in p["IpRanges"]] == ["198.51.100.77/32"]
    assert aws.instance(stack.ids["INSTANCE_ID"])["State"]["Name"] == "running"


def test_replaced_instance_gets_the_alarm(stack, aws):
    """An instance terminated elsewhere is replaced by a re-run, and the backstop alarm follows it."""
    old = stack.ids["INSTANCE_ID"]
    aws.ec2.terminate_instances(InstanceIds=[old])
    result = setup_script(stack.env, "--ssh-cidr", SSH_CIDR)
    assert result.returncode == 0, result.output
    assert "Created 1 new resources" in result.output
    new = aws.tagged("dl1")["instances"]
    assert len(new) == 1 and new[0] != old
    alarm = aws.cloudwatch.describe_alarms(AlarmNames=["dl1-idle-stop"])["MetricAlarms"][0]
    assert alarm["Dimensions"] == [{"Name": "InstanceId", "Value": new[0]}]
    assert f"re-pointed idle-stop alarm dl1-idle-stop from {old} to {new[0]}" in result.output
    assert alarm["Period"] * alarm["EvaluationPeriods"] == 30 * 60  # the recorded --idle-stop is kept
    assert aws.instance(new[0])["Tags"] and tags(aws.instance(new[0]))["dl1:idle-stop"] == "30"
    stack.ids["INSTANCE_ID"] = new[0]


def test_teardown_removes_the_stack_and_only_it(stack, aws):
    ec2, vpc = aws.ec2, [{"Name": "vpc-id", "Values": [stack.ids["VPC_ID"]]}]
    ours = aws.tagged("dl1")
    # the VPC's main route table and default security group go with it
    ours["route_tables"] += [t["RouteTableId"] for t in ec2.describe_route_tables(Filters=vpc)["RouteTables"]]
    ours["security_groups"] += [
        g["GroupId"] for g in ec2.describe_security_groups(Filters=vpc)["SecurityGroups"]
    ]
    ours["alarms"] = ["dl1-idle-stop"]
    other_before = aws.tagged("other")  # the second stack must survive
    before = aws.snapshot()

    # a persistent spot request of the stack whose instance was terminated elsewhere: it must be cancelled
    request = aws.ec2.request_spot_instances(
        Type="persistent",
        InstanceInterruptionBehavior="stop",
        LaunchSpecification={"ImageId": stack.ids["AMI_ID"], "InstanceType": "t3.micro"},
        TagSpecifications=[
            {"ResourceType": "spot-instances-request", "Tags": [{"Key": "dl1:stack", "Value": "dl1"}]}
        ],
    )["SpotInstanceRequests"][0]
    spot_instance = request.get("InstanceId")
    if spot_instance:
        aws.ec2.terminate_instances(InstanceIds=[spot_instance])
    before = aws.snapshot()

    remove = stack.dir / "remove.sh"
    refused = run([str(remove)], stack.env, input="no\n")  # asks before deleting the disk
    assert refused.returncode != 0
    assert "not confirmed, nothing deleted" in refused.output
    assert aws.snapshot() == before

    result = run([str(remove)], stack.env, input="yes\n")
    assert result.returncode == 0, result.output
    assert "removed key pair dl1-key (this stack created it)" in result.output
    assert f"removed spot request {request['SpotInstanceRequestId']}" in result.output
    state = aws.ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[request["SpotInstanceRequestId"]])
    # (the emulator forgets a cancelled request; AWS lists it as cancelled)
    assert all(r["State"] in ("cancelled", "closed") for r in state["SpotInstanceRequests"])
    assert "Host dl1\n" not in (Path(stack.env["HOME"]) / ".ssh" / "config").read_text()

    after = aws.snapshot()
    assert after == {kind: sorted(set(ids) - set(ours.get(kind, []))) for kind, ids in before.items()}
    assert not any(aws.tagged("dl1").values())
    assert aws.tagged("other") == other_before
    assert all(set(stack.before[kind]) <= set(after[kind]) for kind in after)  # nothing else touched
    assert not Path(stack.ids["KEY_FILE"]).exists()
    assert not (stack.dir / "stack.env").exists()
    assert remove.exists()

    again = run([str(remove), "--yes"], stack.env)
    assert again.returncode == 0, again.output
    assert "Nothing left to remove" in again.output
    assert aws.snapshot() == after

    result = aliases(stack.env, "aws-state")
    assert result.returncode != 0
    assert "No instance found for stack 'dl1'" in result.output
