"""org/baseline: the preventive policies amiguard offers (an EC2 declarative policy, an SCP, the Organizations
delegation policy) are valid JSON of their types and protect exactly what amiguard deploys."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import load_template, resources_of_type

from .sam_tools import REPO_ROOT

pytestmark = pytest.mark.infra

BASELINE = REPO_ROOT / "org" / "baseline"
SCP_MAX_CHARACTERS = 5120  # Organizations' limit on a service control policy (whitespace is not counted)
STACKSETS_EXECUTION = "arn:aws:iam::444455556666:role/stacksets-exec-0123456789abcdef0123456789abcdef"


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((BASELINE / name).read_text())
    return document


def _denied(scp: dict[str, Any], action: str, resource: str, principal: str) -> bool:
    """Whether a Deny of the SCP applies (the ArnNotLike exceptions on aws:PrincipalArn only)."""
    for statement in scp["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        exempt = statement.get("Condition", {}).get("ArnNotLike", {}).get("aws:PrincipalArn", [])
        exempt = exempt if isinstance(exempt, list) else [exempt]
        if (
            statement["Effect"] == "Deny"
            and action in actions
            and any(fnmatch.fnmatchcase(resource, pattern) for pattern in resources)
            and not any(fnmatch.fnmatchcase(principal, pattern) for pattern in exempt)
        ):
            return True
    return False


def test_declarative_policy_blocks_public_sharing_of_images_and_snapshots_when_attached() -> None:
    attributes = _load("declarative-policy-ec2.json")["ec2_attributes"]

    assert attributes["image_block_public_access"] == {"state": {"@@assign": "block_new_sharing"}}
    assert attributes["snapshot_block_public_access"] == {"state": {"@@assign": "block_all_sharing"}}


def test_scp_protects_the_member_roles_the_forwarding_rules_and_the_functions_when_attached() -> None:
    scp = _load("scp-protect-amiguard.json")
    roles = load_template(REPO_ROOT / "org" / "member-roles.yaml")
    forwarder = load_template(REPO_ROOT / "org" / "member-forwarder.yaml")
    someone = "arn:aws:iam::444455556666:role/Admin"

    assert len(json.dumps(scp, separators=(",", ":"))) <= SCP_MAX_CHARACTERS
    for role in resources_of_type(roles, "AWS::IAM::Role").values():
        arn = f"arn:aws:iam::444455556666:role/amiguard/{role['Properties']['RoleName']}"
        for action in ("iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:DeleteRole", "iam:CreateRole"):
            assert _denied(scp, action, arn, someone), (action, arn)
            assert not _denied(scp, action, arn, STACKSETS_EXECUTION), "the StackSet must still deploy it"
    for rule in resources_of_type(forwarder, "AWS::Events::Rule").values():
        arn = f"arn:aws:events:eu-west-1:444455556666:rule/{rule['Properties']['Name']}"
        for action in ("events:DisableRule", "events:DeleteRule", "events:RemoveTargets", "events:PutTargets"):
            assert _denied(scp, action, arn, someone), (action, arn)
            assert not _denied(scp, action, arn, STACKSETS_EXECUTION), "the StackSet must still deploy it"
    bus = "arn:aws:events:us-east-1:111122223333:event-bus/amiguard-amiguard-central"
    assert _denied(scp, "events:RemovePermission", bus, someone)
    source_identity = [s for s in scp["Statement"] if s["Action"] == "sts:SetSourceIdentity"]
    assert source_identity and source_identity[0]["Condition"]["StringEquals"] == {"sts:SourceIdentity": "amiguard"}
    function = "arn:aws:lambda:us-east-1:111122223333:function:amiguard-PublicGuardFunction-AbC123"
    assert _denied(scp, "lambda:PutFunctionConcurrency", function, someone)
    assert _denied(scp, "lambda:InvokeFunction", function, someone)
    deployer = "arn:aws:iam::111122223333:role/AmiguardDeployer"
    assert not _denied(scp, "lambda:UpdateFunctionCode", function, deployer)
    assert not _denied(scp, "iam:PutRolePolicy", "arn:aws:iam::444455556666:role/team/app", someone)


def test_delegation_policy_lets_the_security_account_list_accounts_only_when_put() -> None:
    [statement] = _load("organizations-delegation-policy.json")["Statement"]

    assert statement["Effect"] == "Allow"
    assert {"organizations:ListAccounts", "organizations:DescribeAccount"} <= set(statement["Action"])
    assert all(action.split(":")[1].startswith(("List", "Describe")) for action in statement["Action"])
