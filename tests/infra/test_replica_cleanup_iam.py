"""Replica cleanup in the template: the destructive grants of dr_replicator and the sweeper exist only for the
ReplicaCleanup chosen and only with DR regions, reach only AMIs and snapshots tagged as replicas in the DR
regions; DeleteTags removes only amiguard's own keys. (The code acts only on replicas its ledger records: these
bound what a mistake, or a forged tag, could reach.)"""

from __future__ import annotations

from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import load_template

from .sam_tools import TEMPLATE

pytestmark = pytest.mark.infra

TEMPLATE_DOC: dict[str, Any] = load_template(TEMPLATE)
RESOURCES: dict[str, Any] = TEMPLATE_DOC["Resources"]
CONDITIONS: dict[str, Any] = TEMPLATE_DOC["Conditions"]
IMAGE_ARN = {"Fn::Sub": "arn:${AWS::Partition}:ec2:*::image/*"}
SNAPSHOT_ARN = {"Fn::Sub": "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:snapshot/*"}
CLEANUP_ACTIONS = {"ec2:EnableImageDeprecation", "ec2:DeregisterImage", "ec2:DeleteSnapshot"}
ROLES = ("DrReplicatorRole", "SweeperRole")


def evaluate(node: Any, parameters: dict[str, str]) -> Any:
    """The CloudFormation intrinsics these policies use, evaluated for ``parameters``."""
    if isinstance(node, list):
        return [evaluate(item, parameters) for item in node]
    if not isinstance(node, dict) or len(node) != 1:
        return node
    [(name, value)] = node.items()
    if name == "Ref":
        return parameters[value]
    if name == "Condition":
        return evaluate(CONDITIONS[value], parameters)
    args = evaluate(value, parameters)
    if name == "Fn::Equals":
        return args[0] == args[1]
    if name == "Fn::Not":
        return not args[0]
    if name == "Fn::And":
        return all(args)
    if name == "Fn::Split":
        return args[1].split(args[0])
    if name == "Fn::Join":
        return args[0].join(args[1])
    raise AssertionError(f"unexpected intrinsic {name}")


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return set(action if isinstance(action, list) else [action])


def gated_policies(role: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in RESOURCES.items()
        if resource["Type"] == "AWS::IAM::RolePolicy" and resource["Properties"]["RoleName"] == {"Ref": role}
    }


def granted(role: str, parameters: dict[str, str]) -> list[dict[str, Any]]:
    """Every statement ``role`` holds once deployed with ``parameters`` (inline, and gated policies that exist)."""
    statements = [s for p in RESOURCES[role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    for resource in gated_policies(role).values():  # a policy without a condition (the ledger's) always exists
        if "Condition" not in resource or evaluate({"Condition": resource["Condition"]}, parameters):
            statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return statements


def params(dr_regions: str = "us-west-2,eu-west-1", cleanup: str = "deprecate") -> dict[str, str]:
    return {"DrRegions": dr_regions, "ReplicaCleanup": cleanup, "OrganizationId": "", "StaleImageAction": "none"}


@pytest.mark.parametrize("role", ROLES)
def test_no_cleanup_action_is_granted_inline_when_the_role_is_created(role: str) -> None:
    inline = [s for p in RESOURCES[role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert not [s.get("Sid") for s in inline if _actions(s) & CLEANUP_ACTIONS]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("cleanup", "expected"),
    [
        ("deprecate", {"ec2:EnableImageDeprecation"}),
        ("deregister", {"ec2:DeregisterImage", "ec2:DeleteSnapshot"}),
        ("none", set()),
    ],
)
def test_cleanup_grants_are_exactly_what_replica_cleanup_needs_when_deployed(
    role: str, cleanup: str, expected: set[str]
) -> None:
    actions = {a for s in granted(role, params(cleanup=cleanup)) for a in _actions(s)} & CLEANUP_ACTIONS
    assert actions == expected


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("cleanup", ["deprecate", "deregister"])
def test_no_cleanup_is_granted_when_dr_regions_is_empty(role: str, cleanup: str) -> None:
    assert not [s for s in granted(role, params("", cleanup)) if _actions(s) & CLEANUP_ACTIONS]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("cleanup", ["deprecate", "deregister"])
def test_cleanup_reaches_only_tagged_replicas_in_the_dr_regions_when_granted(role: str, cleanup: str) -> None:
    parameters = params(" us-west-2 , eu-west-1", cleanup)  # the blanks DrRegions' pattern allows
    [statement] = [s for s in granted(role, parameters) if _actions(s) & CLEANUP_ACTIONS]
    condition = statement["Condition"]
    assert condition["StringLike"] == {"aws:ResourceTag/amiguard:replica-of": "*"}
    assert evaluate(condition["StringEquals"]["aws:RequestedRegion"], parameters) == ["us-west-2", "eu-west-1"]
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert resources == ([IMAGE_ARN, SNAPSHOT_ARN] if cleanup == "deregister" else [IMAGE_ARN])


def test_snapshots_are_deleted_only_when_replica_cleanup_deregisters() -> None:
    for role in ROLES:
        [policy] = [r for r in gated_policies(role).values() if "ec2:DeleteSnapshot" in str(r["Properties"])]
        assert policy["Condition"] == "ReplicaCleanupDeregisters"
    assert CONDITIONS["ReplicaCleanupDeregisters"] == {
        "Fn::And": [{"Condition": "HasDrRegions"}, {"Fn::Equals": [{"Ref": "ReplicaCleanup"}, "deregister"]}]
    }


def test_copies_may_tag_their_snapshots_only_as_part_of_the_copy_when_granted() -> None:
    for role in ROLES:
        tagging = [s for s in granted(role, params()) if "ec2:CreateTags" in _actions(s)]
        on_snapshots = [
            s
            for s in tagging
            if SNAPSHOT_ARN in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
        ]
        assert on_snapshots and all(
            s["Condition"] == {"StringEquals": {"ec2:CreateAction": "CopyImage"}} for s in on_snapshots
        )


def test_delete_tags_removes_only_amiguard_keys_when_any_role_grants_it() -> None:
    found = []
    for name, resource in RESOURCES.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if "ec2:DeleteTags" in _actions(statement):
                    found.append(name)
                    assert _actions(statement) == {"ec2:DeleteTags"}
                    assert statement["Condition"] == {
                        "ForAllValues:StringLike": {"aws:TagKeys": ["amiguard:*"]},
                        # without it, a DeleteTags naming no key (which removes every tag) would be allowed
                        "Null": {"aws:TagKeys": "false"},
                    }
    assert found == ["TagEnforcerRole"]


def test_sweeper_reads_the_replica_records_when_judging_replication() -> None:
    grants = [s for s in granted("SweeperRole", params()) if "dynamodb:Query" in _actions(s)]
    assert {"Fn::GetAtt": ["LedgerTable", "Arn"]} in [s["Resource"] for s in grants]  # the table, not only an index
