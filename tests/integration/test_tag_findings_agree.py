"""One builder per finding: tag_enforcer (the event) and the sweeper (the scan) raise the same ``missing-tags``
finding for the same AMI, so the alert path sees one finding (one fingerprint), not two that disagree."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

SWEEP = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d0001",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-01-05T06:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/amiguard-SweeperFunctionSweep"],
    "detail": {},
}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    parameters = {"Mode": "enforce", "RequiredTags": '{"Owner": {}, "Environment": {"allowed": ["dev", "prod"]}}'}
    with Sandbox(parameters=parameters) as sb:
        yield sb


def essentials(finding: dict[str, Any]) -> tuple[Any, ...]:
    return finding["type"], finding["severity"], finding["image_id"], finding["summary"], finding["evidence"]


def bake(sb: Sandbox, tags: dict[str, str]) -> str:
    ec2 = sb.client("ec2")
    with acting_as(iam_user("dev-bob")):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        spec = [{"ResourceType": "image", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        return str(ec2.create_image(InstanceId=instance, Name="web", TagSpecifications=spec)["ImageId"])


@pytest.mark.parametrize(
    ("tags", "then_delete"),
    [({"Environment": "qa"}, None), ({"Owner": "bob", "Environment": "dev"}, "Owner")],
    ids=["new-image", "tag-deleted"],
)
def test_event_and_scan_raise_the_same_finding_when_they_judge_the_same_ami(
    sandbox: Sandbox, tags: dict[str, str], then_delete: str | None
) -> None:
    # Given tag_enforcer alerted a violation from the event (CreateImage, or DeleteTags of a required tag)
    image_id = bake(sandbox, tags)
    sandbox.run()
    if then_delete:
        with acting_as(iam_user("dev-bob")):
            sandbox.client("ec2").delete_tags(Resources=[image_id], Tags=[{"Key": then_delete}])
        sandbox.run()
    [from_event] = [a.message for a in sandbox.alerts()]
    # When the sweeper scans the account
    delivery = sandbox.invoke("sweeper", SWEEP)
    # Then its finding is the event's: same type, severity, summary and evidence (so the alert is not repeated)
    assert delivery.error is None and delivery.result is not None
    [from_scan] = [f for f in delivery.result["findings"] if f["image_id"] == image_id]
    assert essentials(from_scan) == essentials(from_event)
    assert from_event["type"] in {"missing-tags", "invalid-tags"}
    assert [a.message["type"] for a in sandbox.alerts()] == ["sweep-summary"]
