"""``amiguard scan`` and required tags under moto: violations found from DescribeImages' tags, marked by ``--fix``
with tag_enforcer's record and violation tags (one CreateTags per tag set), overdue ones (by the record)
escalated per TagEscalation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest

from amiguard.aws.clients import ClientFactory
from amiguard.aws.violations import DynamoViolations
from amiguard.services.scan import ScanReport
from amiguard_cli.sandbox.estate import plant_estate
from tests.scan_support import LEDGER, create_ledger, moto_session, run_scan

HOME, OTHER = "us-east-1", "eu-west-1"
ACCOUNT = "123456789012"
OVERDUE = {
    "Owner": "dev",
    "amiguard:violation": "missing:CostCenter",
    "amiguard:violation-since": "2020-01-01T00:00:00Z",
}


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for session in moto_session(monkeypatch, {"AMIGUARD_REQUIRED_TAGS": "Owner,CostCenter"}):
        create_ledger(session)
        yield session


def scan(
    session: boto3.Session, regions: tuple[str, ...] = (HOME, OTHER), *, fix: bool = False, ledger: bool = True
) -> ScanReport:
    return run_scan(session, regions, fix=fix, tagging=True, ledger=ledger)


def register(session: boto3.Session, tags: dict[str, str]) -> str:
    ec2 = session.client("ec2", region_name=HOME)
    image_id = str(ec2.register_image(Name="tagged-base", RootDeviceName="/dev/xvda")["ImageId"])
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    if "amiguard:violation-since" in tags:  # amiguard marked it then: its record says so
        since = datetime.fromisoformat(tags["amiguard:violation-since"].replace("Z", "+00:00"))
        create_ledger_record(session, image_id, tags["amiguard:violation"], since)
    return image_id


def create_ledger_record(session: boto3.Session, image_id: str, violation: str, since: datetime) -> None:
    """amiguard's own adapter writes the record, as tag_enforcer did when it marked the AMI at ``since``."""
    DynamoViolations(lambda: session.client("dynamodb", region_name=HOME), LEDGER).record(
        ACCOUNT, HOME, image_id, violation, since.astimezone(UTC)
    )


def tags_of(session: boto3.Session, region: str, image_id: str) -> dict[str, str]:
    [image] = session.client("ec2", region_name=region).describe_images(ImageIds=[image_id])["Images"]
    return {t["Key"]: t["Value"] for t in image.get("Tags", [])}


def test_fix_marks_every_violation_with_one_call_per_region_and_the_next_scan_still_reports_them(
    session: boto3.Session,
) -> None:
    # Given 30% of 10 AMIs per region lack CostCenter
    clients = ClientFactory(session)
    estate = plant_estate(clients.ec2, regions=(HOME, OTHER), per_region=10, public=0, untrusted=0, trusted=0)
    writes: Counter[str] = Counter()
    session.events.register(
        "before-call.ec2.CreateTags", lambda context, **_: writes.update([context.get("client_region")])
    )
    # When
    fixed = scan(session, fix=True)
    again = scan(session)
    # Then: tag_enforcer's violation tags on each, written in one CreateTags per region
    found = {(f.region, f.image_id) for f in fixed.findings if f.type == "missing-tags"}
    assert found == estate.missing_tag
    assert {f.action for f in fixed.findings} == {"tagged"}
    assert writes == {HOME: 1, OTHER: 1}
    region, image_id = sorted(estate.missing_tag)[0]
    assert tags_of(session, region, image_id)["amiguard:violation"] == "missing:CostCenter"
    # the record first, the tags mirror it: the grace period is counted from the record
    record = DynamoViolations(lambda: session.client("dynamodb"), LEDGER).in_region(ACCOUNT, region)[image_id]
    assert tags_of(session, region, image_id)["amiguard:violation-since"] == record.since.strftime("%Y-%m-%dT%H:%M:%SZ")
    # amiguard cannot invent an owner: still reported (nothing left to write), still a failing gate
    assert {(f.type.value, f.action.value) for f in again.findings} == {("missing-tags", "none")}
    assert again.exit_code == 1


def test_overdue_image_is_deprecated_by_fix_and_not_escalated_again_when_tag_escalation_is_deprecate(
    session: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an AMI marked in 2020, TagEscalation=deprecate
    monkeypatch.setenv("AMIGUARD_TAG_ESCALATION", "deprecate")
    image_id = register(session, OVERDUE)
    # When
    found = scan(session, (HOME,))
    fixed = scan(session, (HOME,), fix=True)
    again = scan(session, (HOME,))
    # Then
    assert [(f.type.value, f.action.value) for f in found.findings if f.type == "escalated"] == [("escalated", "none")]
    assert [(f.type.value, f.action.value) for f in fixed.findings if f.type == "escalated"] == [
        ("escalated", "deprecated")
    ]
    [image] = session.client("ec2").describe_images(ImageIds=[image_id])["Images"]
    assert image.get("DeprecationTime")
    assert [f.type.value for f in again.findings] == ["missing-tags"]


def test_deregistration_is_refused_and_reported_when_an_instance_still_uses_the_overdue_image(
    session: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an overdue AMI with a running instance, TagEscalation=deregister
    monkeypatch.setenv("AMIGUARD_TAG_ESCALATION", "deregister")
    image_id = register(session, OVERDUE)
    session.client("ec2").run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    # When
    report = scan(session, (HOME,), fix=True)
    # Then
    assert [(e.stage, e.image_id) for e in report.errors] == [("fix", image_id)]
    assert "not terminated" in report.errors[0].message
    assert [f.action.value for f in report.findings if f.type == "escalated"] == ["none"]
    assert session.client("ec2").describe_images(ImageIds=[image_id])["Images"]


def test_marking_many_amis_in_one_call_is_an_error_not_a_vanished_ami_when_one_is_gone(
    session: boto3.Session,
) -> None:
    # Given two AMIs lacking CostCenter, and CreateTags failing because one was deregistered meanwhile
    first, second = register(session, {"Owner": "a"}), register(session, {"Owner": "b"})

    class _Http:
        status_code = 400
        headers: dict[str, str] = {}  # noqa: RUF012
        raw = None
        content = b""

    session.events.register(
        "before-call.ec2.CreateTags",
        lambda **_: (_Http(), {"Error": {"Code": "InvalidAMIID.NotFound", "Message": f"{second} does not exist"}}),
    )
    # When
    report = scan(session, (HOME,), fix=True)
    # Then nothing is silently dropped: both findings stay, unmarked, and the failure is reported
    assert sorted((f.image_id, f.action.value) for f in report.findings) == sorted([(first, "none"), (second, "none")])
    [error] = report.errors
    assert (error.stage, error.code) == ("fix", "InvalidAMIID.NotFound")
    assert "one call for 2 AMIs" in error.message
    assert report.regions[0].vanished == []


def test_forged_old_start_is_restored_and_nothing_deregistered_by_fix_when_amiguard_recorded_it_now(
    session: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given amiguard marked an AMI just now, and someone rewrote its violation-since to 2020
    monkeypatch.setenv("AMIGUARD_TAG_ESCALATION", "deregister")
    image_id = register(session, {"Owner": "dev"})
    scan(session, (HOME,), fix=True)
    recorded = tags_of(session, HOME, image_id)["amiguard:violation-since"]
    ec2 = session.client("ec2")
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": "amiguard:violation-since", "Value": "2020-01-01T00:00:00Z"}])
    # When
    fixed = scan(session, (HOME,), fix=True)
    # Then: reported as forged, the recorded start restored, the AMI still there
    assert sorted((f.type.value, f.action.value) for f in fixed.findings) == [
        ("forged-amiguard-tag", "tagged"),
        ("missing-tags", "tagged"),
    ]
    assert tags_of(session, HOME, image_id)["amiguard:violation-since"] == recorded
    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"] == "available"


def test_violations_are_reported_but_not_marked_by_fix_when_the_scan_has_no_ledger(session: boto3.Session) -> None:
    # Given an AMI lacking CostCenter, and a scan without the stack's ledger
    image_id = register(session, {"Owner": "dev"})
    # When
    report = scan(session, (HOME,), fix=True, ledger=False)
    # Then: a mark amiguard cannot record would later read as forged
    assert [(f.type.value, f.action.value) for f in report.findings] == [("missing-tags", "none")]
    assert "amiguard:violation" not in tags_of(session, HOME, image_id)
