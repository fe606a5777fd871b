"""setup/iam-policy.json covers every AWS call the scripts make, with the stack's tag where it conditions
anything; setup/sky.yaml (optional SkyPilot) keeps this project's defaults: no open port, autostop on."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup"
SERVICES = {"ec2": "ec2", "cloudwatch": "cloudwatch", "ssm": "ssm", "service-quotas": "servicequotas"}
CALL = re.compile(r"(?:\baws|awsq|aws_try|_dl1_aws|\bcall)\s+(ec2|cloudwatch|ssm|service-quotas)\s+([a-z][a-z0-9-]+)")


def policy() -> dict:
    return json.loads((SETUP / "iam-policy.json").read_text())


def actions_called() -> set[str]:
    found = set()
    for script in SETUP.glob("*.sh"):
        for service, command in CALL.findall(script.read_text()):
            if command == "wait":
                continue
            found.add(SERVICES[service] + ":" + "".join(part.capitalize() for part in command.split("-")))
    return found


def test_policy_allows_every_call_the_scripts_make():
    statements = policy()["Statement"]
    assert policy()["Version"] == "2012-10-17"
    allowed = []
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        allowed += [actions] if isinstance(actions, str) else actions
    called = actions_called()
    assert {"ec2:RunInstances", "ec2:CreateVpc", "ec2:TerminateInstances", "ec2:CancelSpotInstanceRequests",
            "cloudwatch:PutMetricAlarm", "servicequotas:GetServiceQuota", "ssm:GetParameters"} <= called
    missing = sorted(a for a in called if not any(fnmatch.fnmatchcase(a, pattern) for pattern in allowed))
    assert not missing, missing


def test_policy_is_conditioned_on_the_stack_tag():
    statements = policy()["Statement"]
    wide = [s for s in statements if s["Resource"] == "*" and "Condition" not in s]
    for statement in wide:  # unconditioned on every resource: only reads
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            assert action.split(":")[1].startswith(("Describe", "List", "Get")), action
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["LaunchWithTheStackTag"]["Condition"] == {"Null": {"aws:RequestTag/dl1:stack": "false"}}
    change = by_sid["ChangeAndDeleteOnlyTheStacksResources"]
    assert change["Condition"] == {"Null": {"aws:ResourceTag/dl1:stack": "false"}}
    assert {"ec2:TerminateInstances", "ec2:DeleteVpc", "ec2:DeleteVolume", "ec2:DisassociateAddress",
            "ec2:DisassociateRouteTable", "ec2:CancelSpotInstanceRequests"} <= set(change["Action"])
    # IAM counts a managed policy's characters without white space: at most 6,144
    assert len(re.sub(r"\s", "", (SETUP / "iam-policy.json").read_text())) <= 6144


def test_sky_yaml_keeps_the_defaults():
    yaml = pytest.importorskip("yaml")
    task = yaml.safe_load((SETUP / "sky.yaml").read_text())
    resources = task["resources"]
    assert "ports" not in resources  # Jupyter only through SSH
    assert resources["autostop"]["idle_minutes"] == 60
    assert resources["instance_type"] == "g4dn.2xlarge"
    assert "setup/install-gpu.sh" in task["setup"]
