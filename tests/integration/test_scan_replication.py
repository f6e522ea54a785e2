"""``amiguard scan`` and DR replication under moto: approved AMIs a DR region lacks, replicas whose source is gone,
found from the AMI lists (DR regions listed once, never searched per image) and fixed with dr_replicator's own
CopyImage request and the ReplicaCleanup action."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from amiguard.models.images import Image
from amiguard.policy.replication import copy_request
from amiguard.services.scan import ScanReport
from tests.scan_support import moto_session, run_scan

HOME, DR = "us-east-1", "eu-west-1"
ACCOUNT = "123456789012"
APPROVAL = "amiguard:approved"


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    settings = {
        "AMIGUARD_DR_REGIONS": DR,
        "AMIGUARD_REPLICA_CLEANUP": "deprecate",
        "AMIGUARD_REQUIRED_TAGS": "",  # tags are another test's concern
    }
    yield from moto_session(monkeypatch, settings)


def register(session: boto3.Session, region: str = HOME, *, approved: bool = True, name: str = "golden") -> str:
    ec2 = session.client("ec2", region_name=region)
    image_id = str(ec2.register_image(Name=name, RootDeviceName="/dev/xvda")["ImageId"])
    if approved:
        ec2.create_tags(Resources=[image_id], Tags=[{"Key": APPROVAL, "Value": "true"}])
    return image_id


def scan(session: boto3.Session, regions: tuple[str, ...] = (HOME,), *, fix: bool = False) -> ScanReport:
    return run_scan(session, regions, fix=fix, replication=True)


def kinds(report: ScanReport) -> list[tuple[str, str, str | None, str]]:
    return sorted((f.type.value, f.region, f.image_id, f.action.value) for f in report.findings)


def replicas_in(session: boto3.Session, region: str) -> list[dict[str, Any]]:
    images = session.client("ec2", region_name=region).describe_images(Owners=["self"])["Images"]
    return [i for i in images if any(t["Key"] == "amiguard:replica-of" for t in i.get("Tags", []))]


def count_calls(session: boto3.Session) -> Counter[tuple[str, str]]:
    calls: Counter[tuple[str, str]] = Counter()

    def note(model: Any, context: dict[str, Any], **_: Any) -> None:
        calls[(context.get("client_region") or "?", model.name)] += 1

    session.events.register("before-call.ec2.*", note)
    return calls


def test_approved_image_without_a_replica_is_found_by_listing_the_dr_region_once_when_only_home_is_scanned(
    session: boto3.Session,
) -> None:
    # Given an approved AMI in the home region and nothing in the DR region
    source = register(session)
    register(session, approved=False, name="not-approved")
    calls = count_calls(session)
    # When only the home region is scanned
    report = scan(session)
    # Then the DR region's list (one DescribeImages) shows the gap; no per-image call looked for replicas
    assert kinds(report) == [("not-replicated", HOME, source, "would-copy")]
    assert report.findings[0].evidence["destination_region"] == DR
    assert report.exit_code == 1
    assert calls[(DR, "DescribeImages")] == 1
    assert sum(n for (region, _), n in calls.items() if region == DR) == 1
    assert replicas_in(session, DR) == []  # read-only


def test_fix_copies_with_dr_replicators_request_so_a_second_scan_is_clean_when_a_replica_is_missing(
    session: boto3.Session,
) -> None:
    # Given
    source = register(session)
    sent: list[dict[str, Any]] = []
    session.events.register("provide-client-params.ec2.CopyImage", lambda params, **_: sent.append(dict(params)))
    image = Image.from_api(session.client("ec2").describe_images(ImageIds=[source])["Images"][0], HOME)
    # When
    fixed = scan(session, fix=True)
    again = scan(session)
    # Then: exactly the request dr_replicator makes (same builder, same ClientToken), made in the DR region
    assert kinds(fixed) == [("not-replicated", HOME, source, "copied")]
    assert sent == [copy_request(image, DR, {}, approval_tag=APPROVAL).as_api()]
    [made] = replicas_in(session, DR)
    assert {t["Key"]: t["Value"] for t in made["Tags"]}["amiguard:replica-of"] == f"{HOME}/{source}"
    assert again.findings == []
    assert again.exit_code == 0


def test_fix_twice_makes_one_copy_when_the_second_scan_does_not_see_the_first_copy(session: boto3.Session) -> None:
    # Given a first fixing scan, and a second whose DR listing misses the copy (still propagating)
    register(session)
    tokens: list[str] = []
    session.events.register(
        "provide-client-params.ec2.CopyImage", lambda params, **_: tokens.append(params["ClientToken"])
    )
    scan(session, fix=True)

    def hide_dr_images(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if context.get("client_region") == DR:
            parsed["Images"] = []

    session.events.register("after-call.ec2.DescribeImages", hide_dr_images)
    # When
    second = scan(session, fix=True)
    session.events.unregister("after-call.ec2.DescribeImages", hide_dr_images)
    # Then: the same ClientToken both times, so EC2 makes one copy
    assert [f.action.value for f in second.findings] == ["copied"]
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    assert len(replicas_in(session, DR)) == 1


def test_replica_whose_source_was_deregistered_is_deprecated_by_fix_and_then_clean_when_scanned_in_the_dr_region(
    session: boto3.Session,
) -> None:
    # Given a replica made by a fixing scan, then its source deregistered
    source = register(session)
    scan(session, fix=True)
    [made] = replicas_in(session, DR)
    session.client("ec2", region_name=HOME).deregister_image(ImageId=source)
    # When the DR region is scanned (the source region is listed only to look the source up)
    found = scan(session, (DR,))
    fixed = scan(session, (DR,), fix=True)
    again = scan(session, (DR,))
    # Then
    assert kinds(found) == [("replica-cleanup", DR, made["ImageId"], "none")]
    assert found.findings[0].evidence["source"] == f"{HOME}/{source}"
    assert kinds(fixed) == [("replica-cleanup", DR, made["ImageId"], "deprecated")]
    [deprecated] = replicas_in(session, DR)
    assert deprecated.get("DeprecationTime")
    assert again.findings == []
    assert again.exit_code == 0


def test_orphaned_replica_is_deregistered_when_replica_cleanup_is_deregister(
    session: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given
    source = register(session)
    scan(session, fix=True)
    session.client("ec2", region_name=HOME).deregister_image(ImageId=source)
    monkeypatch.setenv("AMIGUARD_REPLICA_CLEANUP", "deregister")
    # When
    fixed = scan(session, (HOME, DR), fix=True)
    # Then
    assert [f.action.value for f in fixed.findings] == ["deregistered"]
    assert replicas_in(session, DR) == []


def test_unlistable_dr_region_is_an_error_not_a_gap_when_access_is_denied_there(session: boto3.Session) -> None:
    # Given an approved AMI, and the DR region denies DescribeImages
    register(session)

    class _Http:
        status_code = 403
        headers: dict[str, str] = {}  # noqa: RUF012
        raw = None
        content = b""

    session.events.register(
        "before-call.ec2.DescribeImages",
        lambda context, **_: (
            (_Http(), {"Error": {"Code": "UnauthorizedOperation", "Message": "no"}})
            if context.get("client_region") == DR
            else None
        ),
    )
    # When
    report = scan(session)
    # Then
    assert report.findings == []
    assert [(e.region, e.stage, e.code) for e in report.errors] == [(DR, "reference-images", "UnauthorizedOperation")]
    assert report.exit_code == 2
