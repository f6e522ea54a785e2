"""Forged ``amiguard:violation*`` tags in the sandbox: anyone with ec2:CreateTags can write them, so tag_enforcer
goes by its own record (the ledger) and EC2, never by the tag. Calls are recorded as CloudTrail, routed by
template.yaml's rules to the real handlers; assertions on the AMI, its tags and the alerts afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from amiguard.aws.violations import DynamoViolations
from amiguard.policy.tagging import VIOLATION, VIOLATION_SINCE
from amiguard.services.outcome import Status
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

OWNERSHIP = {"Owner": "bob@example.com", "CostCenter": "cc-1234"}
LONG_AGO = "2020-01-01T00:00:00Z"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    parameters = {"Mode": "enforce", "RequiredTags": "Owner,CostCenter", "TagEscalation": "deregister"}
    with Sandbox(parameters=parameters) as sb:
        yield sb


def api_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def bake(sb: Sandbox, tags: dict[str, str] | None = None) -> str:
    """An AMI made by a developer (recorded CreateImage), tagged with ``tags`` at creation; its instance is then
    terminated, so nothing blocks a deregistration."""
    ec2 = sb.client("ec2")
    with acting_as(iam_user("dev-bob")):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        spec = [{"ResourceType": "image", "Tags": api_tags(tags)}] if tags else []
        image_id = str(ec2.create_image(InstanceId=instance, Name="web-2026-11", TagSpecifications=spec)["ImageId"])
    sb.internal_client("ec2").terminate_instances(InstanceIds=[instance])
    return image_id


def tags_of(sb: Sandbox, image_id: str) -> dict[str, str]:
    [image] = sb.internal_client("ec2").describe_images(ImageIds=[image_id])["Images"]
    return {tag["Key"]: tag["Value"] for tag in image.get("Tags", [])}


def hourly_sweep(sb: Sandbox) -> dict[str, Any]:
    event = {
        "version": "0",
        "id": "5b7c6f2e-0000-4000-8000-00000000f0f0",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": sb.account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": sb.home,
        "resources": [],
        "detail": {},
    }
    delivery = sb.invoke("tag_enforcer", event)
    assert delivery.error is None, delivery.error
    assert delivery.result is not None
    return delivery.result


def test_forged_old_start_is_alerted_and_not_deregistered_when_amiguard_marked_the_ami_just_now(
    sandbox: Sandbox,
) -> None:
    # Given an AMI lacking its tags, marked by tag_enforcer just now
    image_id = bake(sandbox)
    sandbox.run()
    marked = tags_of(sandbox, image_id)[VIOLATION_SINCE]
    assert [a.message["type"] for a in sandbox.alerts()] == ["missing-tags"]
    # When someone rewrites violation-since to 2020 and the hourly sweep (TagEscalation=deregister) runs before
    # the CreateTags event reaches tag_enforcer
    with acting_as(iam_user("mallory")):
        sandbox.client("ec2").create_tags(Resources=[image_id], Tags=api_tags({VIOLATION_SINCE: LONG_AGO}))
    result = hourly_sweep(sandbox)
    sandbox.run()
    # Then: one forged-amiguard-tag alert, the recorded start restored, the AMI still there
    [alert] = sandbox.alerts()
    assert alert.message["type"] == "forged-amiguard-tag" and alert.message["severity"] == "high"
    assert alert.message["evidence"]["forged"] == {VIOLATION_SINCE: LONG_AGO}
    assert tags_of(sandbox, image_id)[VIOLATION_SINCE] == marked
    [image] = sandbox.internal_client("ec2").describe_images(ImageIds=[image_id])["Images"]
    assert image["State"] == "available"
    assert result["status"] == Status.ACTED.value and result["findings"][0]["type"] == "forged-amiguard-tag"


def test_forged_start_is_alerted_naming_who_wrote_it_when_the_create_tags_event_arrives(sandbox: Sandbox) -> None:
    # Given an AMI lacking its tags, marked by tag_enforcer just now
    image_id = bake(sandbox)
    sandbox.run()
    marked = tags_of(sandbox, image_id)[VIOLATION_SINCE]
    sandbox.alerts()
    # When
    with acting_as(iam_user("mallory")):
        sandbox.client("ec2").create_tags(Resources=[image_id], Tags=api_tags({VIOLATION_SINCE: LONG_AGO}))
    sandbox.run()
    # Then
    [alert] = sandbox.alerts()
    assert alert.message["type"] == "forged-amiguard-tag"
    assert alert.message["actor"].endswith(":user/mallory")
    assert tags_of(sandbox, image_id)[VIOLATION_SINCE] == marked


def test_missing_tags_are_still_alerted_when_a_required_tag_is_deleted_under_forged_violation_tags(
    sandbox: Sandbox,
) -> None:
    # Given a compliant AMI
    image_id = bake(sandbox, OWNERSHIP)
    sandbox.run()
    assert sandbox.alerts() == []
    # When someone tags it as already marked (since 2020), then deletes Owner, before amiguard sees either
    with acting_as(iam_user("mallory")):
        ec2 = sandbox.client("ec2")
        ec2.create_tags(Resources=[image_id], Tags=api_tags({VIOLATION: "missing:Owner", VIOLATION_SINCE: LONG_AGO}))
        ec2.delete_tags(Resources=[image_id], Tags=[{"Key": "Owner"}])
    sandbox.run()
    # Then: the violation is alerted (once), the forgery too, and its grace period starts now
    alerts = sorted(a.message["type"] for a in sandbox.alerts())
    assert alerts == ["forged-amiguard-tag", "missing-tags"]
    tags = tags_of(sandbox, image_id)
    assert tags[VIOLATION] == "missing:Owner"
    since = datetime.fromisoformat(tags[VIOLATION_SINCE].replace("Z", "+00:00"))
    assert datetime.now(UTC) - since < timedelta(minutes=5)
    ledger = DynamoViolations(lambda: sandbox.internal_client("dynamodb"), sandbox.ledger_table)
    assert ledger.records(sandbox.account, sandbox.home, [image_id])[image_id].since == since
    # and the hourly sweep does not deregister it
    hourly_sweep(sandbox)
    [image] = sandbox.internal_client("ec2").describe_images(ImageIds=[image_id])["Images"]
    assert image["State"] == "available"


def test_honest_violation_is_deregistered_when_amiguard_recorded_it_past_the_grace_period(sandbox: Sandbox) -> None:
    # Given amiguard's own adapter recorded the violation 73 h ago (TagGraceHours defaults to 72), as it marked it
    image_id = bake(sandbox)
    sandbox.run()
    sandbox.alerts()
    ledger = DynamoViolations(lambda: sandbox.internal_client("dynamodb"), sandbox.ledger_table)
    ledger.clear(sandbox.account, sandbox.home, image_id)
    earlier = (datetime.now(UTC) - timedelta(hours=73)).replace(microsecond=0)
    ledger.record(sandbox.account, sandbox.home, image_id, "missing:Owner,CostCenter", earlier)
    sandbox.internal_client("ec2").create_tags(
        Resources=[image_id], Tags=api_tags({VIOLATION_SINCE: earlier.strftime("%Y-%m-%dT%H:%M:%SZ")})
    )
    # When
    hourly_sweep(sandbox)
    # Then
    assert sandbox.internal_client("ec2").describe_images(ImageIds=[image_id])["Images"] == []
    [alert] = sandbox.alerts()
    assert (alert.message["type"], alert.message["action"]) == ("escalated", "deregistered")
    assert ledger.records(sandbox.account, sandbox.home, [image_id])[image_id].since == earlier
