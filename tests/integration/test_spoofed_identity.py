"""A role that only looks like amiguard's is not amiguard: its calls are acted on like anyone's.

Anyone who may create a role chooses its path and name. Before, every role under ``/amiguard/`` was taken
for amiguard's own, so such a role could make AMIs public and every event was dropped.
"""

from __future__ import annotations

from typing import Any

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, assumed_role

from ..conftest import STRANGER, bake_image


def _attacker_roles(sb: Sandbox) -> dict[str, dict[str, Any]]:
    real_name = sb.role_arns["PublicGuardRole"].rsplit("/", 1)[-1]
    member_lookalike = assumed_role("amiguard-public-guard", "attacker", path="/amiguard/")
    with_source_identity = assumed_role("amiguard-public-guard", "attacker", path="/amiguard/")
    with_source_identity["sessionContext"]["sourceIdentity"] = "amiguard"
    return {
        "member-role-name-without-source-identity": member_lookalike,
        "member-role-name-with-source-identity-in-a-one-account-stack": with_source_identity,
        "the-stack-role-name-under-another-path": assumed_role(real_name, "attacker", path="/"),
        "a-longer-name-under-the-amiguard-path": assumed_role(real_name + "X", "attacker", path="/amiguard/"),
    }


CASES = [
    "member-role-name-without-source-identity",
    "member-role-name-with-source-identity-in-a-one-account-stack",
    "the-stack-role-name-under-another-path",
    "a-longer-name-under-the-amiguard-path",
]


@pytest.mark.parametrize("case", CASES)
def test_public_share_is_revoked_when_made_by_a_role_that_only_looks_like_amiguards(sandbox: Sandbox, case: str):
    image_id = bake_image(sandbox)["ImageId"]
    ec2 = sandbox.client("ec2")

    with acting_as(_attacker_roles(sandbox)[case]):
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    deliveries = sandbox.run()

    attribute = sandbox.internal_client("ec2").describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert attribute["LaunchPermissions"] == []
    guard = [d.result for d in deliveries if d.function == "public_guard" and d.result]
    assert guard[0]["reason"] == "revoked"
    assert [f["type"] for f in guard[0]["findings"]] == ["public-share"]


def test_snapshot_share_is_revoked_when_made_by_a_role_under_the_amiguard_path(sandbox: Sandbox):
    image = bake_image(sandbox)
    snapshot_id = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]

    with acting_as(assumed_role("amiguard-sweeper", "attacker", path="/amiguard/")):
        sandbox.client("ec2").modify_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", UserIds=[STRANGER]
        )
    sandbox.run()

    attribute = sandbox.internal_client("ec2").describe_snapshot_attribute(
        SnapshotId=snapshot_id, Attribute="createVolumePermission"
    )
    assert attribute["CreateVolumePermissions"] == []


def test_functions_record_their_calls_as_sessions_of_exactly_the_stack_roles(sandbox: Sandbox):
    environment = sandbox.environment("public_guard")

    own = environment["AMIGUARD_OWN_ROLE_ARNS"].split(",")

    assert sorted(own) == sorted(sandbox.role_arns.values())
    for function in ("public_guard", "tag_enforcer", "dr_replicator", "sweeper", "notifier"):
        issuer = sandbox.function_identity(function)["sessionContext"]["sessionIssuer"]["arn"]
        assert issuer in own
