"""IAM: each function has its own /amiguard/ role, scoped to what that function touches."""

from __future__ import annotations

import re
from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import resources_of_type

pytestmark = pytest.mark.infra

# The code recognises amiguard's own CloudTrail events by this session-issuer path (no loops).
AMIGUARD_ROLE_PATH = "/amiguard/"
# Mutating EC2 actions on images and snapshots may only name these (Fn::Sub resolved, partition aws).
IMAGE_OR_SNAPSHOT_ARN = re.compile(r"^arn:aws:ec2:\*:(123456789012)?:(image|snapshot)/\*$")
# Account-level settings: the action takes no resource, so "*" is the narrowest grant there is.
ACCOUNT_LEVEL_EC2_ACTIONS = frozenset({"ec2:EnableImageBlockPublicAccess", "ec2:EnableSnapshotBlockPublicAccess"})
READ_ONLY_PREFIXES = ("Describe", "Get", "List")
# What SNS documents for publishing to an encrypted topic (GenerateDataKey and ...WithoutPlaintext).
WILDCARD_ACTIONS_ALLOWED = frozenset({"kms:GenerateDataKey*"})
PSEUDO_PARAMETERS = {"AWS::Partition": "aws", "AWS::AccountId": "123456789012", "AWS::Region": "us-east-1"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resolve(resource: Any) -> Any:
    """A Fn::Sub string with pseudo parameters filled in; any other value as it is."""
    if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        return re.sub(r"\$\{([^}]+)\}", lambda m: PSEUDO_PARAMETERS.get(m[1], m[0]), resource["Fn::Sub"])
    return resource


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in role["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def _grants(role: dict[str, Any]) -> list[tuple[str, Any]]:
    """(action, resource) for every Allow in the role's inline policies."""
    return [
        (action, _resolve(resource))
        for statement in _statements(role)
        if statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"])
        for resource in _as_list(statement["Resource"])
    ]


def _role_of_each_function(deployed: dict[str, Any]) -> dict[str, str]:
    roles = resources_of_type(deployed, "AWS::IAM::Role")
    result = {}
    for function_id, function in resources_of_type(deployed, "AWS::Lambda::Function").items():
        role_ref = function["Properties"]["Role"]
        assert isinstance(role_ref, dict) and role_ref.get("Fn::GetAtt", [None])[0] in roles, (
            f"{function_id} does not use an explicit role of this stack: {role_ref}"
        )
        result[function_id] = role_ref["Fn::GetAtt"][0]
    return result


@pytest.fixture(scope="module")
def roles(deployed_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = resources_of_type(deployed_template, "AWS::IAM::Role")
    assert found, "the deployed template has no IAM role"
    return found


def test_role_lives_under_amiguard_path_when_created(roles: dict[str, dict[str, Any]]) -> None:
    paths = {role_id: role["Properties"].get("Path") for role_id, role in roles.items()}

    assert paths == dict.fromkeys(roles, AMIGUARD_ROLE_PATH)


def test_each_function_has_its_own_role_when_deployed(deployed_template: dict[str, Any]) -> None:
    role_of = _role_of_each_function(deployed_template)

    assert len(set(role_of.values())) == len(role_of), f"functions share a role: {role_of}"


def test_role_is_assumable_only_by_lambda_when_created(roles: dict[str, dict[str, Any]]) -> None:
    for role_id, role in roles.items():
        trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        principals = [statement["Principal"] for statement in trust]
        assert principals == [{"Service": "lambda.amazonaws.com"}], f"{role_id} trusts {principals}"


def test_mutating_ec2_permission_is_scoped_to_images_or_snapshots_when_granted(
    roles: dict[str, dict[str, Any]],
) -> None:
    unscoped = [
        (role_id, action, resource)
        for role_id, role in roles.items()
        for action, resource in _grants(role)
        if action.startswith("ec2:")
        and not action.removeprefix("ec2:").startswith(READ_ONLY_PREFIXES)
        and action not in ACCOUNT_LEVEL_EC2_ACTIONS
        and not (isinstance(resource, str) and IMAGE_OR_SNAPSHOT_ARN.match(resource))
    ]
    assert unscoped == [], "mutating EC2 permissions not limited to image/ or snapshot/ ARNs"


def test_no_permission_uses_wildcard_action_or_negation_when_granted(roles: dict[str, dict[str, Any]]) -> None:
    loose = [
        (role_id, statement.get("Sid"))
        for role_id, role in roles.items()
        for statement in _statements(role)
        if "NotAction" in statement
        or "NotResource" in statement
        or any("*" in action and action not in WILDCARD_ACTIONS_ALLOWED for action in _as_list(statement["Action"]))
    ]
    assert loose == []


def test_function_writes_only_its_own_log_group_when_logging(deployed_template: dict[str, Any]) -> None:
    roles = resources_of_type(deployed_template, "AWS::IAM::Role")
    log_groups = resources_of_type(deployed_template, "AWS::Logs::LogGroup")

    for function_id, role_id in _role_of_each_function(deployed_template).items():
        log_group = deployed_template["Resources"][function_id]["Properties"].get("LoggingConfig", {}).get("LogGroup")
        assert isinstance(log_group, dict) and log_group.get("Ref") in log_groups, f"{function_id}: no own log group"
        log_resources = {str(resource) for action, resource in _grants(roles[role_id]) if action.startswith("logs:")}
        assert log_resources == {str({"Fn::GetAtt": [log_group["Ref"], "Arn"]})}, f"{role_id} logs to {log_resources}"
        retention = log_groups[log_group["Ref"]]["Properties"].get("RetentionInDays")
        assert retention == {"Ref": "LogRetentionDays"}, f"{log_group['Ref']}: retention {retention}"


def test_function_may_send_to_its_failure_destination_when_retries_are_exhausted(
    deployed_template: dict[str, Any],
) -> None:
    # SAM adds this permission only to roles it generates; with an explicit role it is ours to grant.
    roles = resources_of_type(deployed_template, "AWS::IAM::Role")
    destinations = {
        config["Properties"]["FunctionName"]["Ref"]: config["Properties"]["DestinationConfig"]["OnFailure"][
            "Destination"
        ]
        for config in resources_of_type(deployed_template, "AWS::Lambda::EventInvokeConfig").values()
    }

    for function_id, role_id in _role_of_each_function(deployed_template).items():
        sqs_grants = [resource for action, resource in _grants(roles[role_id]) if action.startswith("sqs:")]
        assert sqs_grants == [destinations[function_id]], f"{role_id} may send to {sqs_grants}"


def _through_ec2_only(statement: dict[str, Any]) -> bool:
    """A KMS grant EC2 uses on the role's behalf (encrypted AMI copies), and nothing else can."""
    via = statement.get("Condition", {}).get("StringLike", {}).get("kms:ViaService")
    return via == "ec2.*.amazonaws.com"


def test_alert_permissions_name_only_the_stack_topic_and_key_when_granted(roles: dict[str, dict[str, Any]]) -> None:
    for role_id, role in roles.items():
        for action, resource in _grants(role):
            if action.startswith("sns:"):
                assert resource == {"Ref": "AlertTopic"}, f"{role_id}: {action} on {resource}"
        for statement in _statements(role):
            actions = _as_list(statement["Action"])
            if any(action.startswith("kms:") for action in actions) and not _through_ec2_only(statement):
                assert statement["Resource"] == {"Fn::GetAtt": ["AlertKey", "Arn"]}, f"{role_id}: {statement}"


def test_dr_key_use_is_limited_to_ec2_and_this_account_when_granted(roles: dict[str, dict[str, Any]]) -> None:
    granted = {role_id: [s for s in _statements(role) if _through_ec2_only(s)] for role_id, role in roles.items()}
    through_ec2 = [s for statements in granted.values() for s in statements]

    # The two functions that copy AMIs: dr_replicator on approval, the sweeper when a DR region lacks a copy.
    copiers = sorted(role_id for role_id, statements in granted.items() if statements)
    assert copiers == ["DrReplicatorRole", "SweeperRole"]
    assert {_resolve(s["Resource"]) for s in through_ec2} == {"arn:aws:kms:*:123456789012:key/*"}
    assert not any(action.endswith("*") for s in through_ec2 for action in _as_list(s["Action"]))
