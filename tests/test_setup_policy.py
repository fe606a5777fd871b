"""setup/iam-policy.json evaluated the way IAM evaluates it, on the requests the setup scripts make and on the
requests of someone who wants to get around its tag conditions.

The checker is two parts. AWS's own list of actions, resource types and condition keys (the Service
Authorization Reference, bundled in the ``policy_sentry`` package, so it works offline) checks that every
action exists, that every condition key is one the action supports (a key it does not support would never
match), and that no write on every resource goes without a condition. A small evaluator of the statements
(``allowed`` below: Allow statements only, each resource of a request authorized separately, the condition
operators the policy uses) then replays requests: what AWS puts in the request context is modelled
explicitly, ``aws:RequestTag``/``aws:TagKeys`` for the tags the request carries, ``aws:ResourceTag`` for the
tags a resource already has, ``ec2:CreateAction`` only while a create call tags what it creates. moto's IAM
ignores conditions and IAM's policy simulator needs an AWS account, hence this evaluator.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest
from test_setup_files import actions_called

policy_sentry = pytest.importorskip("policy_sentry.querying.actions")

POLICY = json.loads((Path(__file__).resolve().parents[1] / "setup" / "iam-policy.json").read_text())
REGION, ACCOUNT = "eu-west-1", "123456789012"
OURS = {"dl1:stack": "dl1", "Name": "dl1-x"}  # the tags of the stack's resources
FOREIGN = {"team": "prod"}  # someone else's resource in the same account
NEW = None  # a resource the request creates: no tags yet


def arn(kind, rid="x-1"):
    if kind == "image":
        return f"arn:aws:ec2:{REGION}::image/ami-1"
    if kind == "alarm":
        return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{rid}"
    if kind == "parameter":
        return f"arn:aws:ssm:{REGION}::parameter/aws/service/deeplearning/{rid}"
    return f"arn:aws:ec2:{REGION}:{ACCOUNT}:{kind}/{rid}"


# ---- the evaluator -----------------------------------------------------------------------------------------
def _listed(value):
    return [value] if isinstance(value, str) else list(value)


def _condition_holds(operator, key, wanted, context):
    wanted = _listed(wanted)
    have = context.get(key)
    if operator == "Null":
        return (have is None) == (wanted == ["true"])
    if operator == "StringEquals":
        return have is not None and not isinstance(have, list) and have in wanted
    if operator == "ForAllValues:StringEquals":
        return all(v in wanted for v in (have or []))
    raise AssertionError(f"the evaluator does not know the operator {operator}: teach it before using it")


def allowed(action, resource, context):
    """Whether an Allow statement of the policy grants ``action`` on ``resource`` in ``context``."""
    for statement in POLICY["Statement"]:
        assert statement["Effect"] == "Allow"
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
            continue
        conditions = statement.get("Condition", {})
        if all(_condition_holds(op, key, wanted, context)
               for op, keys in conditions.items() for key, wanted in keys.items()):
            return True
    return False


def request(action, resources, tags=None, **keys):
    """A call of ``action`` touching ``resources`` (``[(arn, its tags or NEW)]``) and carrying ``tags`` (and the
    service's own condition ``keys``): every resource must be allowed, and a create call that tags what it
    creates needs ec2:CreateTags on it too."""
    base = {k.replace("__", ":"): v for k, v in keys.items()}
    if tags:
        base.update({f"aws:RequestTag/{k}": v for k, v in tags.items()}, **{"aws:TagKeys": list(tags)})
    for resource, existing in resources:
        context = dict(base)
        context.update({f"aws:ResourceTag/{k}": v for k, v in (existing or {}).items()})
        if not allowed(action, resource, context):
            return False
        if existing is NEW and tags and action.startswith("ec2:") and action != "ec2:CreateTags":
            if not allowed("ec2:CreateTags", resource, dict(base, **{"ec2:CreateAction": action.split(":")[1]})):
                return False
    return True


# ---- what the scripts do: allowed ---------------------------------------------------------------------------
SCRIPT_CALLS = [
    ("ec2:DescribeInstances", [(arn("instance"), FOREIGN)], None),
    ("cloudwatch:DescribeAlarms", [("*", {})], None),
    ("cloudwatch:ListTagsForResource", [(arn("alarm", "dl1-idle-stop"), OURS)], None),
    ("servicequotas:GetServiceQuota", [("*", {})], None),
    ("ssm:GetParameters", [(arn("parameter", "x86_64/latest"), {})], None),
    ("ec2:CreateVpc", [(arn("vpc"), NEW)], OURS),
    ("ec2:ModifyVpcAttribute", [(arn("vpc"), OURS)], None),
    ("ec2:CreateInternetGateway", [(arn("internet-gateway"), NEW)], OURS),
    ("ec2:AttachInternetGateway", [(arn("internet-gateway"), OURS), (arn("vpc"), OURS)], None),
    ("ec2:DetachInternetGateway", [(arn("internet-gateway"), OURS), (arn("vpc"), OURS)], None),
    ("ec2:CreateSubnet", [(arn("subnet"), NEW), (arn("vpc"), OURS)], OURS),
    ("ec2:CreateRouteTable", [(arn("route-table"), NEW), (arn("vpc"), OURS)], OURS),
    ("ec2:CreateRoute", [(arn("route-table"), OURS)], None),
    ("ec2:ReplaceRoute", [(arn("route-table"), OURS)], None),
    ("ec2:AssociateRouteTable", [(arn("route-table"), OURS), (arn("subnet"), OURS)], None),
    ("ec2:DisassociateRouteTable", [(arn("route-table"), OURS), (arn("subnet"), OURS)], None),
    ("ec2:CreateSecurityGroup", [(arn("security-group"), NEW), (arn("vpc"), OURS)], OURS),
    ("ec2:AuthorizeSecurityGroupIngress", [(arn("security-group"), OURS)], None),
    ("ec2:RevokeSecurityGroupIngress", [(arn("security-group"), OURS)], None),
    ("ec2:CreateKeyPair", [(arn("key-pair"), NEW)], OURS),
    ("ec2:ImportKeyPair", [(arn("key-pair"), NEW)], OURS),
    ("ec2:RunInstances", [(arn("image"), {}), (arn("instance"), NEW), (arn("volume"), NEW),
                          (arn("network-interface"), NEW), (arn("spot-instances-request"), NEW),
                          (arn("subnet"), OURS), (arn("security-group"), OURS), (arn("key-pair"), OURS)],
     dict(OURS, **{"dl1:idle-stop": "60"})),
    ("ec2:CreateTags", [(arn("instance"), OURS)], {"dl1:idle-stop": "30"}),
    ("ec2:StartInstances", [(arn("instance"), OURS)], None),
    ("ec2:StopInstances", [(arn("instance"), OURS)], None),
    ("ec2:RebootInstances", [(arn("instance"), OURS)], None),
    ("ec2:ModifyInstanceAttribute", [(arn("instance"), OURS)], None),
    ("ec2:AllocateAddress", [(arn("elastic-ip"), NEW)], OURS),
    ("ec2:AssociateAddress", [(arn("elastic-ip"), OURS), (arn("instance"), OURS), (arn("network-interface"), OURS)],
     None),
    ("ec2:DisassociateAddress", [(arn("elastic-ip"), OURS), (arn("network-interface"), OURS)], None),
    ("ec2:ReleaseAddress", [(arn("elastic-ip"), OURS)], None),
    ("ec2:CancelSpotInstanceRequests", [(arn("spot-instances-request"), OURS)], None),
    ("ec2:TerminateInstances", [(arn("instance"), OURS)], None),
    ("ec2:DeleteVolume", [(arn("volume"), OURS)], None),
    ("ec2:DeleteSecurityGroup", [(arn("security-group"), OURS)], None),
    ("ec2:DeleteRouteTable", [(arn("route-table"), OURS)], None),
    ("ec2:DeleteInternetGateway", [(arn("internet-gateway"), OURS)], None),
    ("ec2:DeleteSubnet", [(arn("subnet"), OURS)], None),
    ("ec2:DeleteVpc", [(arn("vpc"), OURS)], None),
    ("ec2:DeleteKeyPair", [(arn("key-pair"), OURS)], None),
    ("cloudwatch:PutMetricAlarm", [(arn("alarm", "dl1-idle-stop"), NEW)], OURS),
    ("cloudwatch:TagResource", [(arn("alarm", "dl1-idle-stop"), NEW)], OURS),
    ("cloudwatch:DeleteAlarms", [(arn("alarm", "dl1-idle-stop"), OURS)], None),
]


@pytest.mark.parametrize("action, resources, tags", SCRIPT_CALLS, ids=[c[0] for c in SCRIPT_CALLS])
def test_the_scripts_calls_are_allowed(action, resources, tags):
    assert request(action, resources, tags)


def test_the_quota_increase_the_scripts_advise_is_for_ec2_only():
    assert request("servicequotas:RequestServiceQuotaIncrease", [("*", {})], servicequotas__service="ec2")
    assert not request("servicequotas:RequestServiceQuotaIncrease", [("*", {})], servicequotas__service="rds")


def test_every_call_of_the_scripts_is_replayed():
    replayed = {c[0] for c in SCRIPT_CALLS} | {"servicequotas:RequestServiceQuotaIncrease"}
    called = {a for a in actions_called() if not a.split(":")[1].startswith(("Describe", "Get", "List"))}
    assert called - replayed == set()


# ---- getting around the tags: refused -----------------------------------------------------------------------
def test_the_bypass_of_the_issue_tag_a_foreign_instance_then_terminate_it():
    victim = arn("instance", "i-prod")
    assert not request("ec2:CreateTags", [(victim, FOREIGN)], {"dl1:stack": "dl1"})
    assert not request("ec2:TerminateInstances", [(victim, FOREIGN)])  # still not the stack's
    # what the bypass would have unlocked had the tag gone on
    assert request("ec2:TerminateInstances", [(victim, dict(FOREIGN, **{"dl1:stack": "dl1"}))])


@pytest.mark.parametrize("kind", ["instance", "volume", "security-group", "elastic-ip", "vpc", "subnet",
                                  "route-table", "internet-gateway", "key-pair", "spot-instances-request",
                                  "network-interface"])
def test_no_tag_can_be_added_to_an_existing_resource_but_the_idle_minutes_of_the_stacks_instance(kind):
    for existing in (FOREIGN, OURS):
        assert not request("ec2:CreateTags", [(arn(kind), existing)], {"dl1:stack": "dl1"})
        assert not request("ec2:CreateTags", [(arn(kind), existing)], {"Name": "x"})
    assert request("ec2:CreateTags", [(arn(kind), OURS)], {"dl1:idle-stop": "5"}) == (kind == "instance")
    assert not request("ec2:CreateTags", [(arn(kind), FOREIGN)], {"dl1:idle-stop": "5"})
    assert not request("ec2:CreateTags", [(arn(kind), OURS)], {"dl1:idle-stop": "5", "dl1:stack": "dl1"})


DESTRUCTIVE = next(s for s in POLICY["Statement"] if s["Sid"] == "ChangeAndDeleteOnlyTheStacksResources")["Action"]
KIND = {"Vpc": "vpc", "InternetGateway": "internet-gateway", "RouteTable": "route-table", "Route": "route-table",
        "SecurityGroup": "security-group", "Instances": "instance", "InstanceAttribute": "instance",
        "Address": "elastic-ip", "SpotInstanceRequests": "spot-instances-request", "Subnet": "subnet",
        "KeyPair": "key-pair", "Volume": "volume"}


@pytest.mark.parametrize("action", DESTRUCTIVE)
def test_every_change_or_delete_needs_the_stack_tag_on_the_resource(action):
    kind = next(KIND[k] for k in sorted(KIND, key=len, reverse=True) if re.search(k + "(Ingress|Attribute)?$", action))
    assert not request(action, [(arn(kind), FOREIGN)])
    assert not request(action, [(arn(kind), FOREIGN)], OURS)  # tags in the request do not count
    assert request(action, [(arn(kind), OURS)])


@pytest.mark.parametrize("action, resources, tags", [
    ("ec2:RunInstances", [(arn("instance"), NEW), (arn("subnet"), FOREIGN)], OURS),  # into someone else's subnet
    ("ec2:RunInstances", [(arn("instance"), NEW), (arn("security-group"), FOREIGN)], OURS),
    ("ec2:RunInstances", [(arn("instance"), NEW), (arn("key-pair"), FOREIGN)], OURS),
    ("ec2:RunInstances", [(arn("instance"), NEW), (arn("network-interface"), NEW)], {"Name": "x"}),
    ("ec2:CreateSubnet", [(arn("subnet"), NEW), (arn("vpc"), FOREIGN)], OURS),
    ("ec2:CreateSecurityGroup", [(arn("security-group"), NEW), (arn("vpc"), FOREIGN)], OURS),
    ("ec2:CreateRouteTable", [(arn("route-table"), NEW), (arn("vpc"), FOREIGN)], OURS),
    ("cloudwatch:DeleteAlarms", [(arn("alarm", "prod-idle-stop"), FOREIGN)], None),
    ("cloudwatch:PutMetricAlarm", [(arn("alarm", "prod-cpu"), NEW)], OURS),
])
def test_creating_in_or_with_foreign_resources_is_refused(action, resources, tags):
    assert not request(action, resources, tags)


def test_creating_without_the_stack_tag_is_refused():
    for action, resources, tags in SCRIPT_CALLS:
        if tags is not None and any(existing is NEW for _, existing in resources):
            assert not request(action, resources, {"Name": "x"}), action
            assert not request(action, resources, None), action


# ---- against AWS's list of actions and condition keys --------------------------------------------------------
def _action_data(action):
    service, name = action.split(":")
    return policy_sentry.get_action_data(service, name).get(service, [])


def _actions(pattern):
    service = pattern.split(":")[0]
    return [a for a in policy_sentry.get_actions_for_service(service) if fnmatch.fnmatchcase(a, pattern)]


def test_every_action_exists_and_supports_the_condition_keys_used_on_it():
    for statement in POLICY["Statement"]:
        keys = {key for keys in statement.get("Condition", {}).values() for key in keys}
        for pattern in _listed(statement["Action"]):
            actions = _actions(pattern)
            assert actions, f"{pattern} is not an AWS action"
            for action in actions:
                supported = {k for row in _action_data(action) for k in row["condition_keys"]}
                for key in keys:
                    assert any(fnmatch.fnmatchcase(key, re.sub(r"\$\{[^}]+\}", "*", s)) for s in supported), \
                        f"{statement['Sid']}: {action} does not support the condition key {key}"


def test_no_write_on_every_resource_goes_without_a_condition():
    for statement in POLICY["Statement"]:
        if statement["Resource"] != "*" or "Condition" in statement:
            continue
        for pattern in _listed(statement["Action"]):
            for action in _actions(pattern):
                levels = {row["access_level"] for row in _action_data(action)}
                assert levels <= {"Read", "List"}, f"{statement['Sid']}: {action} is {levels}, unconditioned"
