"""The scan's hygiene checks against moto: unencrypted and legacy-platform AMIs, stale and unused ones (deprecated
with --fix when StaleImageAction=deprecate, never one an instance uses), EBS snapshot block public access."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from tests.scan_support import ACCOUNT, HOME, moto_session, run_scan

SETTINGS = {"AMIGUARD_MAX_IMAGE_AGE_DAYS": "365", "AMIGUARD_UNUSED_IMAGE_DAYS": "90", "AMIGUARD_REQUIRED_TAGS": ""}


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    yield from moto_session(monkeypatch, SETTINGS | {"AMIGUARD_STALE_IMAGE_ACTION": "deprecate"})


def register_from_snapshot(ec2, name: str, *, encrypted: bool, virtualization: str = "hvm") -> str:
    """An AMI registered from a snapshot of its own (encrypted or not), as RegisterImage takes it."""
    volume = ec2.create_volume(Size=8, AvailabilityZone=f"{HOME}a", Encrypted=encrypted)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    return str(
        ec2.register_image(
            Name=name,
            RootDeviceName="/dev/xvda",
            VirtualizationType=virtualization,
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot}}],
        )["ImageId"]
    )


def age(image_id: str, *, days: int, launched_days_ago: int | None = None) -> None:
    """Seed what no API can make: an AMI created ``days`` ago (and last launched ``launched_days_ago``)."""
    from moto.ec2.models import ec2_backends

    ami = ec2_backends[ACCOUNT][HOME].amis[image_id]
    ami.creation_date = datetime.now(UTC) - timedelta(days=days)
    if launched_days_ago is not None:
        launched = datetime.now(UTC) - timedelta(days=launched_days_ago)
        ami.last_launched_time = launched.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def findings_of(report, image_id: str) -> set[str]:
    return {finding.type.value for finding in report.findings if finding.image_id == image_id}


def test_unencrypted_and_paravirtual_amis_are_reported_when_registered_from_such_snapshots(session):
    ec2 = session.client("ec2")
    plain = register_from_snapshot(ec2, "plain", encrypted=False, virtualization="paravirtual")
    sealed = register_from_snapshot(ec2, "sealed", encrypted=True)

    report = run_scan(session, [HOME])

    assert findings_of(report, plain) == {"unencrypted-ami", "ami-legacy-platform"}
    assert findings_of(report, sealed) == set()
    [unencrypted] = [f for f in report.findings if f.type == "unencrypted-ami"]
    assert unencrypted.severity == "medium" and unencrypted.action == "none"


def test_stale_and_unused_ami_is_deprecated_with_fix_unless_an_instance_uses_it(session):
    ec2 = session.client("ec2")
    idle = register_from_snapshot(ec2, "idle", encrypted=True)
    used = register_from_snapshot(ec2, "used", encrypted=True)
    recent = register_from_snapshot(ec2, "recent", encrypted=True)
    age(idle, days=400)
    age(used, days=400, launched_days_ago=200)
    age(recent, days=400, launched_days_ago=3)
    ec2.run_instances(ImageId=used, MinCount=1, MaxCount=1)

    report = run_scan(session, [HOME], fix=True, tagging=True)

    assert findings_of(report, idle) == {"ami-stale", "ami-unused"}
    assert findings_of(report, used) == {"ami-stale", "ami-unused"}
    assert findings_of(report, recent) == {"ami-stale"}
    actions = {(f.image_id, f.type.value): f.action.value for f in report.findings}
    assert actions[(idle, "ami-stale")] == "deprecated" and actions[(recent, "ami-stale")] == "deprecated"
    assert actions[(used, "ami-stale")] == "none"
    deprecation = {i["ImageId"]: i.get("DeprecationTime") for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert deprecation[idle] and deprecation[recent]
    assert deprecation[used] is None
    [evidence] = [f.evidence for f in report.findings if (f.image_id, f.type) == (used, "ami-unused")]
    assert evidence["instances_in_use"] == 1 and evidence["days"] == 200
    assert report.errors == []


def test_deprecated_ami_is_not_stale_when_scanned_again(session):
    ec2 = session.client("ec2")
    idle = register_from_snapshot(ec2, "idle", encrypted=True)
    age(idle, days=400, launched_days_ago=1)
    run_scan(session, [HOME], fix=True, tagging=True)

    again = run_scan(session, [HOME])

    assert findings_of(again, idle) == set()


def test_nothing_is_deprecated_when_the_scan_does_not_fix(session):
    ec2 = session.client("ec2")
    idle = register_from_snapshot(ec2, "idle", encrypted=True)
    age(idle, days=400)

    report = run_scan(session, [HOME], tagging=True)

    assert {f.action.value for f in report.findings if f.image_id == idle} == {"none"}
    assert "DeprecationTime" not in ec2.describe_images(ImageIds=[idle])["Images"][0]


def test_snapshot_block_public_access_is_turned_back_on_with_fix_when_it_is_off(session):
    ec2 = session.client("ec2")
    ec2.disable_snapshot_block_public_access()

    report = run_scan(session, [HOME], fix=True)

    [finding] = [f for f in report.findings if f.type == "snapshot-block-public-access-disabled"]
    assert finding.severity == "critical" and finding.action == "revoked"
    assert ec2.get_snapshot_block_public_access_state()["State"] == "block-new-sharing"
