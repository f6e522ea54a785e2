"""The hygiene checks as deployed: tag_enforcer on RegisterImage, and the sweeper (each with exactly its template
environment and role) on unencrypted, legacy, stale and unused AMIs and EBS snapshot block public access."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

NO_TAGS = {"RequiredTags": ""}  # the tag policy has its own tests: here only the hygiene findings speak
SCHEDULE = {
    "version": "0",
    "id": "5a0c4e2f-0000-4000-8000-000000000001",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-12-01T06:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}


def register_from_snapshot(sb: Sandbox, name: str, *, encrypted: bool, virtualization: str = "hvm") -> str:
    """A developer registers an AMI from a snapshot (the calls are recorded in CloudTrail)."""
    ec2 = sb.client("ec2")
    with acting_as(iam_user("dev-bob")):
        volume = ec2.create_volume(Size=8, AvailabilityZone="us-east-1a", Encrypted=encrypted)["VolumeId"]
        snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        return str(
            ec2.register_image(
                Name=name,
                RootDeviceName="/dev/xvda",
                VirtualizationType=virtualization,
                BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot}}],
            )["ImageId"]
        )


def test_unencrypted_paravirtual_ami_is_alerted_by_tag_enforcer_when_registered():
    with Sandbox(parameters={"Mode": "enforce"} | NO_TAGS) as sb:
        image_id = register_from_snapshot(sb, "legacy-plain", encrypted=False, virtualization="paravirtual")

        sb.run()

        alerts = [alert.message for alert in sb.alerts()]
    assert sorted(alert["type"] for alert in alerts) == ["ami-legacy-platform", "unencrypted-ami"]
    assert {alert["image_id"] for alert in alerts} == {image_id}
    assert {alert["actor"] for alert in alerts} == {"arn:aws:iam::123456789012:user/dev-bob"}


def test_encrypted_hvm_ami_raises_nothing_when_registered():
    with Sandbox(parameters={"Mode": "enforce"} | NO_TAGS) as sb:
        register_from_snapshot(sb, "sealed", encrypted=True)

        sb.run()

        assert sb.alerts() == []


def age(sb: Sandbox, image_id: str, days: int) -> None:
    """Seed what no API can make: an AMI created ``days`` ago and never launched."""
    from moto.ec2.models import ec2_backends

    ec2_backends[sb.account][sb.home].amis[image_id].creation_date = datetime.now(UTC) - timedelta(days=days)


def test_sweeper_deprecates_the_stale_unused_ami_and_restores_snapshot_block_public_access_when_enforcing():
    parameters = {"Mode": "enforce", "MaxImageAgeDays": "365", "UnusedImageDays": "90", "StaleImageAction": "deprecate"}
    with Sandbox(parameters=parameters | NO_TAGS) as sb:
        old = register_from_snapshot(sb, "old", encrypted=True)
        sb.run()
        age(sb, old, 400)
        sb.internal_client("ec2").disable_snapshot_block_public_access()

        delivery = sb.invoke("sweeper", SCHEDULE)

        assert delivery.error is None
        ec2 = sb.internal_client("ec2")
        assert ec2.describe_images(ImageIds=[old])["Images"][0].get("DeprecationTime")
        assert ec2.get_snapshot_block_public_access_state()["State"] == "block-new-sharing"
        found = {(alert.message["type"], alert.message["action"]) for alert in sb.alerts()}
    assert {
        ("ami-stale", "deprecated"),
        ("ami-unused", "deprecated"),
        ("snapshot-block-public-access-disabled", "revoked"),
    } <= found


def test_sweeper_only_reports_the_stale_ami_when_the_action_is_none():
    with Sandbox(parameters={"Mode": "enforce", "MaxImageAgeDays": "365"} | NO_TAGS) as sb:
        old = register_from_snapshot(sb, "old", encrypted=True)
        sb.run()
        age(sb, old, 400)

        sb.invoke("sweeper", SCHEDULE)

        assert "DeprecationTime" not in sb.internal_client("ec2").describe_images(ImageIds=[old])["Images"][0]
        [stale] = [alert.message for alert in sb.alerts() if alert.message["type"] == "ami-stale"]
    assert stale["action"] == "none" and stale["evidence"]["days"] == 400


def test_public_guard_turns_snapshot_block_public_access_back_on_when_someone_disables_it():
    with Sandbox(parameters={"Mode": "enforce"} | NO_TAGS) as sb:
        with acting_as(iam_user("dev-bob")):
            sb.client("ec2").disable_snapshot_block_public_access()

        sb.run()

        assert sb.internal_client("ec2").get_snapshot_block_public_access_state()["State"] == "block-new-sharing"
        [alert] = sb.alerts()
    assert alert.message["type"] == "snapshot-block-public-access-disabled"
    assert alert.message["action"] == "revoked"
    assert alert.message["actor"] == "arn:aws:iam::123456789012:user/dev-bob"
