"""``amiguard scan`` against moto: planted problems found, fixed, reported in every format; bad input survived."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.stub import Stubber

from amiguard.aws.clients import ClientFactory
from amiguard.services.scan import ScanReport
from amiguard_cli import main as cli
from amiguard_cli.sandbox.estate import TRUSTED_ACCOUNT, UNTRUSTED_ACCOUNT, Estate, plant_estate
from amiguard_cli.sandbox.moto_gaps import CannedHttp, canned
from amiguard_cli.scan import resolve_regions
from tests.scan_support import create_ledger, moto_session, run_scan

HOME, OTHER = "us-east-1", "eu-west-1"
REGIONS = (HOME, OTHER)
ACCOUNT = "123456789012"


def _error(status: int, code: str, message: str) -> tuple[CannedHttp, dict[str, Any]]:
    """A ``before-call`` answer: the call fails at once, as a non-retryable error does."""
    return canned({"Error": {"Code": code, "Message": message}}, status)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _wire_error(url: str, status: int, code: str) -> AWSResponse:
    """A ``before-send`` answer: EC2's error document on the wire, so botocore's retries see it."""
    body = (
        f"<Response><Errors><Error><Code>{code}</Code><Message>{code}</Message></Error></Errors>"
        "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    ).encode()
    return AWSResponse(url, status, {"Content-Type": "text/xml"}, _Raw(body))


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for session in moto_session(monkeypatch, {"AMIGUARD_TRUSTED_PRINCIPALS": TRUSTED_ACCOUNT}):
        create_ledger(session)  # amiguard's violation records: tag violations can be marked
        yield session


def plant(session: boto3.Session, per_region: int = 20, **kw: Any) -> Estate:
    clients = ClientFactory(session)
    # at least one of each per region; every required tag present unless a test plants missing ones
    ratios = {"public": 0.1, "untrusted": 0.1, "trusted": 0.1, "missing_tag": 0.0} | kw
    return plant_estate(clients.ec2, regions=REGIONS, per_region=per_region, **ratios)


def scan(session: boto3.Session, *, fix: bool = False, config: Config | None = None) -> ScanReport:
    return run_scan(session, REGIONS, fix=fix, config=config, ledger=True)


def found(report: ScanReport, kind: str) -> set[tuple[str, str]]:
    return {
        (f.region, f.snapshot_id if kind == "public-snapshot" else f.image_id)  # type: ignore[misc]
        for f in report.findings
        if f.type == kind
    }


def run_cli(*args: str) -> int:
    return cli.main(["scan", "--regions", ",".join(REGIONS), *args])


def test_scan_finds_every_planted_problem_and_nothing_else_when_the_estate_has_them(session: boto3.Session) -> None:
    # Given
    estate = plant(session, public_snapshots=1, block_public_access_off=[OTHER], missing_tag=0.3)
    # When
    report = scan(session)
    # Then
    assert report.exit_code == 1
    assert found(report, "public-share") == estate.public
    assert found(report, "untrusted-share") == estate.untrusted
    assert found(report, "public-snapshot") == estate.public_snapshots
    assert found(report, "missing-tags") == estate.missing_tag
    assert {f.region for f in report.findings if f.type == "block-public-access-disabled"} == {OTHER}
    assert report.counts() == {
        "block-public-access-disabled": 1,
        "missing-tags": len(estate.missing_tag),
        "public-share": len(estate.public),
        "public-snapshot": len(estate.public_snapshots),
        "untrusted-share": len(estate.untrusted),
    }
    assert {f.action for f in report.findings} == {"would-revoke", "would-tag"}
    assert report.images == len(estate.images)


def test_read_only_scan_changes_nothing_when_problems_are_found(session: boto3.Session) -> None:
    # Given
    estate = plant(session)
    # When
    scan(session)
    # Then
    assert scan(session).counts()["untrusted-share"] == len(estate.untrusted)


def test_fix_clears_every_problem_so_a_second_scan_exits_0_when_run_from_the_cli(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given
    estate = plant(session, public_snapshots=1, block_public_access_off=[OTHER])
    # When
    fixed = run_cli("--fix", "--format", "json")
    fixed_report = json.loads(capsys.readouterr().out)
    again = run_cli("--format", "json")
    # Then
    assert fixed == 1
    assert {f["action"] for f in fixed_report["findings"]} == {"revoked"}
    assert again == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []
    region, trusted_image = sorted(estate.trusted)[0]
    ec2 = session.client("ec2", region_name=region)
    kept = ec2.describe_image_attribute(ImageId=trusted_image, Attribute="launchPermission")["LaunchPermissions"]
    assert kept == [{"UserId": TRUSTED_ACCOUNT}]


def test_fix_revokes_the_untrusted_share_behind_a_public_image_when_both_are_present(session: boto3.Session) -> None:
    # Given a public AMI that is also shared with a stranger
    ec2 = session.client("ec2", region_name=HOME)
    image_id = ec2.register_image(Name="both", RootDeviceName="/dev/xvda")["ImageId"]
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": "Owner", "Value": "a"}, {"Key": "CostCenter", "Value": "b"}])
    ec2.modify_image_attribute(
        ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}, {"UserId": UNTRUSTED_ACCOUNT}]}
    )
    # When
    report = scan(session, fix=True)
    # Then
    assert {f.type for f in report.findings} == {"public-share", "untrusted-share"}
    assert ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"] == []


def test_json_report_lists_findings_regions_and_exit_code_when_written_to_a_file(
    session: boto3.Session, tmp_path: Path
) -> None:
    # Given
    estate = plant(session)
    output = tmp_path / "report.json"
    # When
    code = run_cli("--format", "json", "--output", str(output))
    # Then
    report = json.loads(output.read_text())
    assert code == 1
    assert report["exit_code"] == 1
    assert [r["region"] for r in report["regions"]] == list(REGIONS)
    assert {(f["region"], f["image_id"]) for f in report["findings"] if f["type"] == "public-share"} == estate.public


def test_csv_report_has_one_row_per_finding_when_format_is_csv(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given
    estate = plant(session)
    # When
    code = run_cli("--format", "csv")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    # Then
    assert code == 1
    assert len(rows) == len(estate.public) + len(estate.untrusted)
    assert {(row["region"], row["image_id"]) for row in rows if row["type"] == "untrusted-share"} == estate.untrusted
    assert json.loads(rows[0]["evidence"])


def test_table_report_ends_with_a_summary_when_printed(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given
    plant(session, per_region=10)
    # When
    code = run_cli()
    out = capsys.readouterr().out
    # Then
    assert code == 1
    assert "public-share" in out
    assert out.strip().splitlines()[-1].endswith("(exit 1)")


def test_image_deregistered_mid_scan_is_counted_as_vanished_when_it_disappears_before_its_describe(
    session: boto3.Session,
) -> None:
    # Given an untrusted-shared AMI that is deregistered between DescribeImages and DescribeImageAttribute
    estate = plant(session)
    region, victim = sorted(estate.untrusted)[0]
    deregistered = []

    def deregister_first(params: dict[str, Any], **_: Any) -> None:
        if params.get("ImageId") == victim and not deregistered:
            deregistered.append(victim)
            session.client("ec2", region_name=region).deregister_image(ImageId=victim)

    session.events.register("before-parameter-build.ec2.DescribeImageAttribute", deregister_first)
    # When
    report = scan(session)
    # Then
    by_region = {r.region: r for r in report.regions}
    assert by_region[region].vanished == [victim]
    assert found(report, "untrusted-share") == estate.untrusted - {(region, victim)}
    assert report.errors == []
    assert report.exit_code == 1


def test_access_denied_region_is_reported_while_the_other_completes_when_listing_is_denied(
    session: boto3.Session,
) -> None:
    # Given
    estate = plant(session)

    def deny_other(context: dict[str, Any], **_: Any) -> Any:
        if context.get("client_region") == OTHER:
            return _error(403, "UnauthorizedOperation", "You are not authorized to perform this operation.")
        return None

    session.events.register("before-call.ec2.DescribeImages", deny_other)
    # When
    report = scan(session)
    # Then
    assert [(e.region, e.stage, e.code) for e in report.errors] == [(OTHER, "list-images", "UnauthorizedOperation")]
    assert "access denied in eu-west-1" in report.errors[0].message
    assert found(report, "public-share") == {key for key in estate.public if key[0] == HOME}
    assert report.exit_code == 1


def test_incomplete_clean_scan_exits_2_when_a_region_is_denied(session: boto3.Session) -> None:
    # Given a clean account whose second region denies access
    session.events.register(
        "before-call.ec2.DescribeImages",
        lambda context, **_: (
            _error(403, "UnauthorizedOperation", "no") if context.get("client_region") == OTHER else None
        ),
    )
    # When / Then
    assert scan(session).exit_code == 2


def test_throttling_is_absorbed_by_adaptive_retries_when_calls_are_throttled_for_a_while(
    session: boto3.Session,
) -> None:
    # Given the first DescribeImageAttribute calls are throttled, as EC2 does when its bucket runs dry
    estate = plant(session, per_region=10)
    calls = []

    def throttle(request: Any, **_: Any) -> Any:
        calls.append(1)
        if len(calls) <= 3:
            return _wire_error(request.url, 503, "RequestLimitExceeded")
        return None

    session.events.register("before-send.ec2.DescribeImageAttribute", throttle)
    # When
    report = scan(session)
    # Then
    assert report.errors == []
    assert found(report, "untrusted-share") == estate.untrusted
    assert len(calls) > len(estate.images)  # the throttled calls were retried


def test_throttling_storm_is_reported_per_image_while_the_rest_completes_when_retries_run_out(
    session: boto3.Session,
) -> None:
    # Given one region's DescribeImageAttribute always throttled, and a client that gives up after 2 tries
    estate = plant(session, per_region=5, public=0.2, untrusted=0.2)
    session.events.register(
        "before-send.ec2.DescribeImageAttribute",
        lambda request, **_: _wire_error(request.url, 503, "RequestLimitExceeded") if OTHER in request.url else None,
    )
    config = Config(retries={"mode": "standard", "max_attempts": 2})
    # When
    report = scan(session, config=config)
    # Then
    assert report.errors
    assert {(e.region, e.stage, e.code) for e in report.errors} == {
        (OTHER, "launch-permissions", "RequestLimitExceeded")
    }
    assert found(report, "untrusted-share") == {key for key in estate.untrusted if key[0] == HOME}
    assert found(report, "public-share") == estate.public  # public needs no DescribeImageAttribute


def test_unknown_region_is_reported_and_the_rest_scanned_when_asked_for(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a clean account
    # When
    code = cli.main(["scan", "--regions", f"{HOME},xx-nowhere-9,not_a_region", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    # Then
    assert code == 2
    assert {(e["region"], e["stage"]) for e in report["errors"]} == {
        ("xx-nowhere-9", "region"),
        ("not_a_region", "region"),
    }
    assert [r["region"] for r in report["regions"] if r["scanned"]] == [HOME]


def test_region_not_enabled_is_refused_before_any_call_when_it_needs_opt_in() -> None:
    # Given DescribeRegions says me-south-1 is not opted in
    ec2 = boto3.client("ec2", region_name=HOME, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(ec2)
    stubber.add_response(
        "describe_regions",
        {
            "Regions": [
                {"RegionName": HOME, "OptInStatus": "opt-in-not-required"},
                {"RegionName": "me-south-1", "OptInStatus": "not-opted-in"},
            ]
        },
        {"AllRegions": True},
    )

    class Clients:
        def ec2(self, region: str) -> Any:
            return ec2

    args = cli.build_parser().parse_args(["scan", "--regions", f"{HOME},me-south-1"])
    # When
    with stubber:
        regions, errors = resolve_regions(args, Clients(), HOME)  # type: ignore[arg-type]
    # Then
    assert regions == [HOME]
    assert [(e.region, e.code) for e in errors] == [("me-south-1", "OptInRequired")]
    assert "not enabled" in errors[0].message
