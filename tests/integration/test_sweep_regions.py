"""The sweeper and tag_enforcer's escalation sweep cover every region the account has enabled, not only the
home and DR regions: an AMI made public, or left overdue, in any enabled region is found and dealt with;
a region the account has not opted into is not called (EC2 would refuse it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amiguard.aws.violations import DynamoViolations
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import ACCOUNT
from tests.integration.test_sandbox_iam import deployed_with, statements

HOME = "us-east-1"
ELSEWHERE = "eu-central-1"  # enabled (no opt-in needed), neither home nor a DR region
NOT_OPTED_IN = "af-south-1"  # an opt-in region this account never enabled


def scheduled(rule: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"7d2c1e0f-0000-4000-8000-{len(rule):012d}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-11-27T06:00:00Z",
        "region": HOME,
        "resources": [f"arn:aws:events:{HOME}:{ACCOUNT}:rule/{rule}"],
        "detail": {},
    }


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(parameters={"RequiredTags": "Owner"}) as sb:
        yield sb


def seeded_image(sb: Sandbox, region: str, tags: dict[str, str] | None = None, public: bool = False) -> str:
    """An AMI from before deployment (no CloudTrail event), in ``region``."""
    ec2 = sb.internal_client("ec2", region)
    image_id = str(ec2.register_image(Name=f"legacy-{region}", RootDeviceName="/dev/xvda")["ImageId"])
    if tags:
        ec2.create_tags(Resources=[image_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    if public:
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    return image_id


def launch_permissions(sb: Sandbox, region: str, image_id: str) -> list[dict[str, str]]:
    ec2 = sb.internal_client("ec2", region)
    return list(ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"])


def test_public_ami_is_revoked_when_it_is_in_an_enabled_region_outside_home_and_dr(sandbox: Sandbox) -> None:
    # Given public AMIs in an enabled region that is neither home nor DR, and in a region not opted into
    elsewhere = seeded_image(sandbox, ELSEWHERE, {"Owner": "dev"}, public=True)
    not_enabled = seeded_image(sandbox, NOT_OPTED_IN, {"Owner": "dev"}, public=True)
    sandbox.alerts()
    # When the daily sweep runs
    delivery = sandbox.invoke("sweeper", scheduled("amiguard-SweeperFunctionSweep"))
    alerts = sandbox.alerts()
    # Then the enabled region's AMI is revoked and alerted on; the region not opted into is never called
    assert delivery.error is None, delivery.error
    assert launch_permissions(sandbox, ELSEWHERE, elsewhere) == []
    assert launch_permissions(sandbox, NOT_OPTED_IN, not_enabled) == [{"Group": "all"}]
    assert [(a.message["type"], a.message["region"], a.message["action"]) for a in alerts[:-1]] == [
        ("public-share", ELSEWHERE, "revoked")
    ]
    swept = [region["region"] for region in alerts[-1].message["evidence"]["regions"]]
    assert swept[0] == HOME and ELSEWHERE in swept and NOT_OPTED_IN not in swept
    assert len(swept) == len(sandbox.internal_client("ec2").describe_regions()["Regions"])


def test_overdue_violation_is_escalated_when_the_ami_is_outside_the_home_region(sandbox: Sandbox) -> None:
    # Given AMIs overdue since 2020 in an enabled non-home region and in a region not opted into, as amiguard's
    # own record says (the ledger decides when a violation started: a tag alone is never believed)
    overdue = {"amiguard:violation": "missing:Owner", "amiguard:violation-since": "2020-01-01T00:00:00Z"}
    elsewhere = seeded_image(sandbox, ELSEWHERE, overdue)
    not_enabled = seeded_image(sandbox, NOT_OPTED_IN, overdue)
    records = DynamoViolations(lambda: sandbox.internal_client("dynamodb"), sandbox.ledger_table)
    since = datetime(2020, 1, 1, tzinfo=UTC)
    for region, image_id in ((ELSEWHERE, elsewhere), (NOT_OPTED_IN, not_enabled)):
        records.record(sandbox.account, region, image_id, "missing:Owner", since)
    sandbox.reconfigure(TagEscalation="disable")
    sandbox.alerts()
    # When tag_enforcer's hourly escalation sweep runs (scheduled in the home region)
    delivery = sandbox.invoke("tag_enforcer", scheduled("amiguard-TagEnforcerFunctionEscalationSweep"))
    # Then the overdue AMI elsewhere is disabled, as the sweeper's finding says it will be
    assert delivery.error is None, delivery.error
    ec2 = sandbox.internal_client("ec2", ELSEWHERE)  # a disabled AMI is listed only with IncludeDisabled, as in EC2
    state = ec2.describe_images(ImageIds=[elsewhere], IncludeDisabled=True)["Images"][0]["State"]
    assert state == "disabled"
    [alert] = sandbox.alerts()
    assert (alert.message["type"], alert.message["region"], alert.message["action"]) == (
        "escalated",
        ELSEWHERE,
        "disabled",
    )
    untouched = sandbox.internal_client("ec2", NOT_OPTED_IN).describe_images(ImageIds=[not_enabled])["Images"]
    assert untouched[0]["State"] == "available"


def test_sweep_fails_for_retry_when_the_enabled_regions_cannot_be_listed(tmp_path: Path) -> None:
    # Given a sweeper role that may not call DescribeRegions
    def drop_describe_regions(template: dict[str, Any]) -> None:
        for statement in statements(template, "SweeperRole", "sweeper"):
            if isinstance(statement["Action"], list) and "ec2:DescribeRegions" in statement["Action"]:
                statement["Action"].remove("ec2:DescribeRegions")

    with deployed_with(tmp_path, drop_describe_regions) as sb:
        sb.alerts()
        # When
        delivery = sb.invoke("sweeper", scheduled("amiguard-SweeperFunctionSweep"))
        # Then the sweep fails (Lambda retries, then the failure queue): no summary claims a sweep that did not happen
        assert delivery.error is not None and "ec2:DescribeRegions" in delivery.error
        assert sb.alerts() == []
