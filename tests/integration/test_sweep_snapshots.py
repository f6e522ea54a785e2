"""The sweep sees what the event path sees: snapshots shared with untrusted accounts (behind an AMI or not),
public snapshots that back no AMI, and disabled AMIs. An attacker whose share slipped past the events (or
came before amiguard was deployed) cannot keep it past a sweep: enforce mode revokes, audit mode alerts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.estate import TRUSTED_ACCOUNT, UNTRUSTED_ACCOUNT

from .test_sweeper import SCHEDULED_EVENT


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(parameters={"TrustedPrincipals": TRUSTED_ACCOUNT, "RequiredTags": ""}) as sb:
        yield sb


def sweep(sb: Sandbox, mode: str) -> dict[str, Any]:
    sb.reconfigure(Mode=mode)
    delivery = sb.invoke("sweeper", SCHEDULED_EVENT)
    assert delivery.error is None, delivery.error
    assert delivery.result is not None
    return delivery.result


def lone_snapshot(sb: Sandbox) -> str:
    """A snapshot that backs no AMI (an EBS backup, or what is left of a deregistered AMI)."""
    ec2 = sb.internal_client("ec2")
    volume = ec2.create_volume(Size=8, AvailabilityZone=f"{sb.home}a")["VolumeId"]
    return str(ec2.create_snapshot(VolumeId=volume)["SnapshotId"])


def ami_snapshot(sb: Sandbox, *, disabled: bool = False) -> tuple[str, str]:
    ec2 = sb.internal_client("ec2")
    image_id = str(ec2.register_image(Name="behind-the-snapshot", RootDeviceName="/dev/xvda")["ImageId"])
    snapshot_id = ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    if disabled:
        ec2.disable_image(ImageId=image_id)
    return image_id, str(snapshot_id)


def share_unseen(sb: Sandbox, snapshot_id: str, **grants: list[str]) -> None:
    """What the event path never saw (an event lost, or a share older than the stack): no CloudTrail record."""
    sb.internal_client("ec2").modify_snapshot_attribute(
        SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", **grants
    )


def volume_permissions(sb: Sandbox, snapshot_id: str) -> list[dict[str, str]]:
    attribute = sb.internal_client("ec2").describe_snapshot_attribute(
        SnapshotId=snapshot_id, Attribute="createVolumePermission"
    )
    return list(attribute["CreateVolumePermissions"])


def findings(result: dict[str, Any], snapshot_id: str) -> list[tuple[str, str, str | None]]:
    return sorted(
        (f["type"], f["action"], f["image_id"]) for f in result["findings"] if f["snapshot_id"] == snapshot_id
    )


def test_untrusted_share_of_a_lone_snapshot_is_revoked_when_the_sweep_runs_in_enforce_mode(sandbox: Sandbox):
    snapshot_id = lone_snapshot(sandbox)
    share_unseen(sandbox, snapshot_id, UserIds=[UNTRUSTED_ACCOUNT, TRUSTED_ACCOUNT])

    result = sweep(sandbox, "enforce")

    assert volume_permissions(sandbox, snapshot_id) == [{"UserId": TRUSTED_ACCOUNT}]
    assert findings(result, snapshot_id) == [("untrusted-share", "revoked", None)]


def test_untrusted_share_of_a_lone_snapshot_is_alerted_and_kept_when_the_sweep_runs_in_audit_mode(
    sandbox: Sandbox,
):
    snapshot_id = lone_snapshot(sandbox)
    share_unseen(sandbox, snapshot_id, UserIds=[UNTRUSTED_ACCOUNT])

    result = sweep(sandbox, "audit")

    assert volume_permissions(sandbox, snapshot_id) == [{"UserId": UNTRUSTED_ACCOUNT}]
    assert findings(result, snapshot_id) == [("untrusted-share", "would-revoke", None)]
    [alert] = [a for a in sandbox.alerts() if a.message["type"] == "untrusted-share"]
    assert alert.message["evidence"]["untrusted_principals"] == [UNTRUSTED_ACCOUNT]


def test_public_lone_snapshot_is_revoked_when_the_sweep_runs_in_enforce_mode(sandbox: Sandbox):
    snapshot_id = lone_snapshot(sandbox)
    share_unseen(sandbox, snapshot_id, GroupNames=["all"])

    result = sweep(sandbox, "enforce")

    assert volume_permissions(sandbox, snapshot_id) == []
    assert findings(result, snapshot_id) == [("public-snapshot", "revoked", None)]


def test_untrusted_share_of_an_ami_snapshot_is_revoked_naming_the_ami_when_the_sweep_runs(sandbox: Sandbox):
    image_id, snapshot_id = ami_snapshot(sandbox)
    share_unseen(sandbox, snapshot_id, UserIds=[UNTRUSTED_ACCOUNT])

    result = sweep(sandbox, "enforce")

    assert volume_permissions(sandbox, snapshot_id) == []
    assert findings(result, snapshot_id) == [("untrusted-share", "revoked", image_id)]


@pytest.mark.parametrize(
    "grants", [{"GroupNames": ["all"]}, {"UserIds": [UNTRUSTED_ACCOUNT]}], ids=["public", "untrusted"]
)
def test_shared_snapshot_of_a_disabled_ami_is_revoked_naming_the_ami_when_the_sweep_runs(
    sandbox: Sandbox, grants: dict[str, list[str]]
):
    image_id, snapshot_id = ami_snapshot(sandbox, disabled=True)
    share_unseen(sandbox, snapshot_id, **grants)

    result = sweep(sandbox, "enforce")

    assert volume_permissions(sandbox, snapshot_id) == []
    assert [image for _, _, image in findings(result, snapshot_id)] == [image_id]


def test_disabled_ami_is_counted_when_the_sweep_lists_the_account(sandbox: Sandbox):
    ami_snapshot(sandbox, disabled=True)
    ami_snapshot(sandbox)

    result = sweep(sandbox, "audit")

    assert "2 AMI(s)" in result["detail"]


def test_trusted_and_private_snapshots_raise_nothing_when_the_sweep_runs(sandbox: Sandbox):
    shared = lone_snapshot(sandbox)
    share_unseen(sandbox, shared, UserIds=[TRUSTED_ACCOUNT])
    lone_snapshot(sandbox)

    result = sweep(sandbox, "enforce")

    assert [f for f in result["findings"] if f["snapshot_id"]] == []
    assert volume_permissions(sandbox, shared) == [{"UserId": TRUSTED_ACCOUNT}]
