"""sweeper: the scheduled scan in the stack's mode, findings on the alert topic, then one summary."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from amiguard.aws.replicas import DynamoReplicaLedger
from amiguard.aws.violations import DynamoViolations
from amiguard.models.replicas import ReplicaRecord, ReplicaStatus
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import ACCOUNT
from amiguard_cli.sandbox.estate import TRUSTED_ACCOUNT, UNTRUSTED_ACCOUNT

SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": ACCOUNT,
    "time": "2026-01-05T06:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/amiguard-SweeperFunctionSweep"],
    "detail": {},
}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    # No required tags here: the sweep's tag marking has a test of its own.
    with Sandbox(parameters={"TrustedPrincipals": TRUSTED_ACCOUNT, "RequiredTags": ""}) as sb:
        yield sb


def sweep(sb: Sandbox, event: dict[str, Any] = SCHEDULED_EVENT, **parameters: str) -> dict[str, Any]:
    """Run the deployed sweeper (its template environment) after a stack update with ``parameters``."""
    sb.reconfigure(**parameters)
    delivery = sb.invoke("sweeper", event)
    assert delivery.error is None, delivery.error
    assert delivery.result is not None
    return delivery.result


def image(sb: Sandbox, *grants: dict[str, str]) -> str:
    ec2 = sb.client("ec2")
    image_id = str(ec2.register_image(Name=f"sweep-{len(grants)}", RootDeviceName="/dev/xvda")["ImageId"])
    if grants:
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": list(grants)})
    return image_id


def launch_permissions(sb: Sandbox, image_id: str) -> list[dict[str, str]]:
    ec2 = sb.client("ec2")
    return list(ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"])


def test_sweep_revokes_and_alerts_then_summarises_when_mode_is_enforce(sandbox: Sandbox) -> None:
    # Given a public AMI, an AMI shared with a stranger and one shared with a trusted account
    public = image(sandbox, {"Group": "all"})
    shared = image(sandbox, {"UserId": UNTRUSTED_ACCOUNT})
    trusted = image(sandbox, {"UserId": TRUSTED_ACCOUNT})
    sandbox.alerts()
    # When
    result = sweep(sandbox, Mode="enforce")
    alerts = sandbox.alerts()
    # Then
    assert result["status"] == "acted"
    assert launch_permissions(sandbox, public) == []
    assert launch_permissions(sandbox, shared) == []
    assert launch_permissions(sandbox, trusted) == [{"UserId": TRUSTED_ACCOUNT}]
    findings = [(a.message["type"], a.message["image_id"], a.message["action"]) for a in alerts[:-1]]
    assert sorted(findings) == sorted([("public-share", public, "revoked"), ("untrusted-share", shared, "revoked")])
    summary = alerts[-1].message
    assert summary["type"] == "sweep-summary"
    assert summary["evidence"]["counts"] == {"public-share": 1, "untrusted-share": 1}
    assert summary["evidence"]["remediated"] == 2
    assert summary["evidence"]["images"] == 3


def test_sweep_changes_nothing_and_says_would_revoke_when_mode_is_audit(sandbox: Sandbox) -> None:
    # Given
    shared = image(sandbox, {"UserId": UNTRUSTED_ACCOUNT})
    sandbox.alerts()
    # When
    sweep(sandbox, Mode="audit")
    alerts = sandbox.alerts()
    # Then
    assert launch_permissions(sandbox, shared) == [{"UserId": UNTRUSTED_ACCOUNT}]
    assert [(a.message["type"], a.message["action"]) for a in alerts] == [
        ("untrusted-share", "would-revoke"),
        ("sweep-summary", "none"),
    ]


def test_clean_sweep_sends_only_the_summary_when_nothing_is_wrong(sandbox: Sandbox) -> None:
    # Given
    image(sandbox, {"UserId": TRUSTED_ACCOUNT})
    sandbox.alerts()
    # When
    result = sweep(sandbox)
    # Then
    assert result["status"] == "clean"
    assert [a.message["type"] for a in sandbox.alerts()] == ["sweep-summary"]


def test_event_that_is_not_a_schedule_is_dropped_when_delivered_to_the_sweeper(sandbox: Sandbox) -> None:
    # Given
    image(sandbox, {"Group": "all"})
    sandbox.alerts()
    # When
    result = sweep(sandbox, {**SCHEDULED_EVENT, "detail-type": "AWS API Call via CloudTrail"})
    # Then
    assert result["status"] == "dropped"
    assert sandbox.alerts() == []


def register(sb: Sandbox, region: str, tags: dict[str, str]) -> str:
    ec2 = sb.internal_client("ec2", region)  # before deployment: no event
    image_id = str(ec2.register_image(Name="dr-base", RootDeviceName="/dev/xvda")["ImageId"])
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return image_id


def recorded_replica(sb: Sandbox, region: str, source: str) -> str:
    """A replica dr_replicator made and recorded (EC2 reports what it was copied from), whose events were missed."""
    from moto.ec2.models import ec2_backends

    image_id = register(sb, region, {"amiguard:replica-of": source})
    source_region, source_id = source.split("/")
    ami = ec2_backends[sb.account][region].amis[image_id]
    ami.source_image_id, ami.source_image_region = source_id, source_region  # what EC2 reports for a copy
    DynamoReplicaLedger(sb.internal_client("dynamodb"), "amiguard-ledger").claim(
        ReplicaRecord(
            source_region=source_region,
            source_image_id=source_id,
            destination_region=region,
            status=ReplicaStatus.AVAILABLE,
            replica_id=image_id,
            started_at=datetime(2025, 1, 5, tzinfo=UTC),
        )
    )
    return image_id


def replicas(sb: Sandbox, region: str) -> dict[str, dict[str, Any]]:
    images = sb.internal_client("ec2", region).describe_images(Owners=["self"])["Images"]
    return {i["ImageId"]: i for i in images if any(t["Key"] == "amiguard:replica-of" for t in i.get("Tags", []))}


@pytest.mark.parametrize(
    ("mode", "copied", "deprecated", "actions"),
    [
        ("enforce", True, True, {"not-replicated": "copied", "replica-cleanup": "deprecated"}),
        ("audit", False, False, {"not-replicated": "would-copy", "replica-cleanup": "none"}),
    ],
)
def test_sweep_repairs_dr_drift_in_the_stacks_mode_when_a_copy_is_missing_and_a_replica_is_orphaned(
    sandbox: Sandbox, mode: str, copied: bool, deprecated: bool, actions: dict[str, str]
) -> None:
    # Given an approved AMI never copied to the DR region, and a replica there of an AMI long gone
    approved = register(sandbox, "us-east-1", {"amiguard:approved": "true"})
    orphan = recorded_replica(sandbox, "eu-west-1", "us-east-1/ami-0c0ffee0c0ffee000")
    sandbox.alerts()
    # When
    result = sweep(sandbox, Mode=mode, DrRegions="eu-west-1")
    alerts = sandbox.alerts()
    # Then
    assert result["status"] == "acted"
    made = [i for i in replicas(sandbox, "eu-west-1").values() if i["ImageId"] != orphan]
    assert bool(made) is copied
    assert bool(replicas(sandbox, "eu-west-1")[orphan].get("DeprecationTime")) is deprecated
    assert {a.message["type"]: a.message["action"] for a in alerts[:-1]} == actions
    assert {a.message["image_id"] for a in alerts[:-1]} == {approved, orphan}
    assert alerts[-1].message["evidence"]["remediated"] == (2 if mode == "enforce" else 0)


def test_sweep_marks_untagged_images_and_reports_overdue_ones_without_escalating_when_tags_are_required(
    sandbox: Sandbox,
) -> None:
    # Given an AMI from before deployment lacking CostCenter, and one amiguard marked in 2020 (overdue)
    fresh = register(sandbox, "us-east-1", {"Owner": "dev"})
    marked = {"amiguard:violation": "missing:CostCenter", "amiguard:violation-since": "2020-01-01T00:00:00Z"}
    overdue = register(sandbox, "us-east-1", {"Owner": "dev"} | marked)
    ledger = DynamoViolations(lambda: sandbox.internal_client("dynamodb"), sandbox.ledger_table)
    ledger.record(sandbox.account, "us-east-1", overdue, "missing:CostCenter", datetime(2020, 1, 1, tzinfo=UTC))
    sandbox.alerts()
    # When
    sweep(sandbox, RequiredTags="Owner,CostCenter", TagEscalation="deprecate")
    alerts = sandbox.alerts()
    # Then: the fresh one is marked (its grace period starts); the overdue one is left to tag_enforcer's sweep
    ec2 = sandbox.internal_client("ec2")
    tags = {t["Key"]: t["Value"] for t in ec2.describe_images(ImageIds=[fresh])["Images"][0]["Tags"]}
    assert tags["amiguard:violation"] == "missing:CostCenter"
    recorded = ledger.records(sandbox.account, "us-east-1", [fresh])[fresh]
    assert tags["amiguard:violation-since"] == recorded.since.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert not ec2.describe_images(ImageIds=[overdue])["Images"][0].get("DeprecationTime")
    assert sorted((a.message["type"], a.message["image_id"], a.message["action"]) for a in alerts[:-1]) == sorted(
        [("missing-tags", fresh, "tagged"), ("missing-tags", overdue, "none"), ("escalated", overdue, "none")]
    )
