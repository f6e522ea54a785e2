"""The alert path of every function: the ledger records, de-duplicates, and alerts once per window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from amiguard.aws.ledger import DynamoLedger
from amiguard.aws.posted import alert_id
from amiguard.models.findings import Finding
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.capacity import WriteUnitMeter
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

from ..conftest import bake_image


@pytest.fixture
def audit() -> Iterator[Sandbox]:
    with Sandbox(parameters={"Mode": "audit"}) as sb:
        yield sb


def _make_public(sb: Sandbox, image_id: str) -> None:
    with acting_as(iam_user("dev-bob")):
        sb.client("ec2").modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})


def test_duplicate_event_alerts_once_when_in_audit_mode(audit: Sandbox) -> None:
    # In audit mode the AMI stays public, so a redelivered event finds the same exposure again: only the
    # ledger's fingerprint claim stops the second alert.
    image_id = bake_image(audit)["ImageId"]
    _make_public(audit, image_id)
    [first] = [d for d in audit.run() if d.function == "public_guard" and d.result and d.result["findings"]]
    assert len(audit.alerts()) == 1

    audit.put_event(first.event)  # EventBridge delivers the same event (same eventID) again
    [again] = [d for d in audit.run() if d.function == "public_guard"]

    assert again.event["detail"]["eventID"] == first.event["detail"]["eventID"]
    assert [f["action"] for f in again.result["findings"]] == ["would-revoke"]  # found again...
    assert audit.alerts() == []  # ...but not alerted again
    [entry] = DynamoLedger(audit.internal_client("dynamodb"), audit.ledger_table).findings_for_image(
        "us-east-1", image_id
    )
    assert (entry.alerted, entry.suppressed_duplicates) == (True, 1)


def test_same_exposure_made_again_is_recorded_but_not_realerted_when_inside_the_window(audit: Sandbox) -> None:
    image_id = bake_image(audit)["ImageId"]
    _make_public(audit, image_id)
    audit.run()
    _make_public(audit, image_id)  # a second, distinct event

    audit.run()

    assert len(audit.alerts()) == 1
    entries = DynamoLedger(audit.internal_client("dynamodb"), audit.ledger_table).findings_for_image(
        "us-east-1", image_id
    )
    assert sorted(entry.alerted for entry in entries) == [False, True]


def test_alert_carries_filterable_attributes_when_published(audit: Sandbox) -> None:
    image_id = bake_image(audit)["ImageId"]
    _make_public(audit, image_id)
    audit.run()

    [alert] = audit.alerts()

    [entry] = DynamoLedger(audit.internal_client("dynamodb"), audit.ledger_table).findings_for_image(
        "us-east-1", image_id
    )
    assert alert.attributes == {
        "severity": "critical",
        "type": "public-share",
        "account": "123456789012",
        "region": "us-east-1",
        "dedup_id": alert_id(entry.finding),  # the finding's ledger key: every copy of this alert carries it
    }
    assert alert.attributes["dedup_id"].startswith(f"IMAGE#us-east-1#{image_id}#FINDING#")
    assert alert.subject == f"[amiguard] CRITICAL public-share {image_id} (would-revoke)"
    assert alert.message["image_id"] == image_id


# --- the outbox, write units, standing findings, the keyed dedup hash ----------------------------------------


@pytest.fixture
def enforce() -> Iterator[Sandbox]:
    with Sandbox(parameters={"Mode": "enforce"}) as sb:
        yield sb


@pytest.fixture
def standing() -> Iterator[Sandbox]:
    # No required tags: the untagged AMIs here raise only their sharing finding.
    with Sandbox(parameters={"Mode": "audit", "RequiredTags": ""}) as sb:
        yield sb


def _ledger_rows(sb: Sandbox, prefix: str) -> list[dict[str, Any]]:
    items = sb.internal_client("dynamodb").scan(TableName=sb.ledger_table)["Items"]
    return [item for item in items if item["pk"]["S"].startswith(prefix)]


def test_alert_is_sent_when_the_first_attempt_revoked_and_then_could_not_publish(enforce: Sandbox) -> None:
    # Given SNS fails once, right after public_guard revoked (its first attempt), then recovers
    failures = ["SNS unreachable"]

    def fail_once(**_: Any) -> None:
        if failures:
            raise ConnectionError(failures.pop())

    boto3.DEFAULT_SESSION.events.register("before-call.sns.Publish", fail_once)  # type: ignore[union-attr]
    image_id = bake_image(enforce)["ImageId"]
    enforce.run()
    _make_public(enforce, image_id)

    # When Lambda retries the event: the AMI is private by now, current state shows nothing to alert
    deliveries = [d for d in enforce.run() if d.function == "public_guard"]

    # Then the finding staged before the revocation is alerted, once
    assert failures == [] and deliveries[0].error is None
    assert deliveries[0].result["reason"] == "not-exposed"  # the retry's own view: nothing exposed now
    assert [(a.message["type"], a.message["image_id"]) for a in enforce.alerts()] == [("public-share", image_id)]
    launch = enforce.client("ec2").describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert launch["LaunchPermissions"] == []


def _fail_first_ledger_write_after(remediation: str) -> list[str]:
    """The handlers' first DynamoDB PutItem after their first ``remediation`` EC2 call fails (a crash between
    remediating and alerting); returns what is still to fail (empty once it has)."""
    armed: list[bool] = []
    failures = ["DynamoDB unreachable"]

    def arm(**_: Any) -> None:
        armed.append(True)

    def fail_once(**_: Any) -> None:
        if armed and failures:
            raise ConnectionError(failures.pop())

    events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    events.register(f"after-call.ec2.{remediation}", arm)
    events.register("before-call.dynamodb.PutItem", fail_once)
    return failures


def test_missing_tags_are_alerted_when_the_first_attempt_died_between_tagging_and_alerting(
    enforce: Sandbox,
) -> None:
    # Given tag_enforcer's first attempt marks the new AMI's violation, then fails before it alerts
    failures = _fail_first_ledger_write_after("CreateTags")
    ec2 = enforce.client("ec2")
    with acting_as(iam_user("dev-bob")):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        image_id = ec2.create_image(InstanceId=instance, Name="untagged")["ImageId"]

    # When Lambda retries the CreateImage event: the violation is already marked, nothing new to say
    enforce.run()

    # Then the finding staged before tagging is alerted, once
    assert failures == []
    assert [(a.message["type"], a.message["image_id"]) for a in enforce.alerts()] == [("missing-tags", image_id)]


def test_public_share_is_alerted_when_the_first_attempt_died_between_revoking_and_alerting(
    enforce: Sandbox,
) -> None:
    image_id = bake_image(enforce)["ImageId"]
    enforce.run()
    failures = _fail_first_ledger_write_after("ModifyImageAttribute")
    _make_public(enforce, image_id)

    enforce.run()

    assert failures == []
    assert [(a.message["type"], a.message["image_id"]) for a in enforce.alerts()] == [("public-share", image_id)]


def test_new_alert_costs_at_most_six_write_units_when_public_guard_revokes(enforce: Sandbox) -> None:
    meter = WriteUnitMeter(enforce.internal_client("dynamodb"))
    meter.register(boto3.DEFAULT_SESSION.events)  # the handlers' clients
    image_id = bake_image(enforce)["ImageId"]
    enforce.run()
    enforce.alerts()
    meter.reset()

    _make_public(enforce, image_id)
    enforce.run()

    [alert] = enforce.alerts()
    assert alert.message["action"] == "revoked"
    assert meter.total <= 6, meter.by_operation


def test_standing_finding_is_not_realerted_by_the_daily_sweep_when_alerted_within_realert_hours(
    standing: Sandbox,
) -> None:
    audit = standing
    # Given yesterday's sweep alerted an untrusted share that is still there (audit mode changes nothing)
    ec2 = audit.client("ec2")
    image_id = ec2.register_image(Name="standing", RootDeviceName="/dev/xvda")["ImageId"]
    ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": "999988887777"}]})
    _sweep(audit)
    assert [a.message["type"] for a in audit.alerts()] == ["untrusted-share", "sweep-summary"]
    _age_dedup_rows(audit, hours=25)

    # When today's sweep finds it again
    _sweep(audit)

    # Then only the summary goes out, and it counts the standing finding
    [summary] = audit.alerts()
    assert summary.message["type"] == "sweep-summary"
    assert summary.message["evidence"]["standing_not_realerted"] == 1
    assert "1 standing finding(s) not re-alerted" in summary.message["summary"]


def test_standing_finding_is_realerted_when_realert_hours_have_passed(standing: Sandbox) -> None:
    audit = standing
    ec2 = audit.client("ec2")
    image_id = ec2.register_image(Name="standing", RootDeviceName="/dev/xvda")["ImageId"]
    ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": "999988887777"}]})
    audit.reconfigure(RealertHours="24")
    _sweep(audit)
    audit.alerts()
    _age_dedup_rows(audit, hours=25)

    _sweep(audit)

    assert [a.message["type"] for a in audit.alerts()] == ["untrusted-share", "sweep-summary"]


def test_row_prewritten_for_the_unkeyed_fingerprint_does_not_suppress_the_alert_when_the_ami_is_made_public(
    audit: Sandbox,
) -> None:
    # Given someone learnt the finding's shape from one alert and pre-wrote the dedup row of another AMI's
    # future alert (in AWS the table's resource policy denies that write; here it is written anyway)
    first = bake_image(audit, name="first")["ImageId"]
    target = bake_image(audit, name="target")["ImageId"]
    audit.run()
    _make_public(audit, first)
    audit.run()
    [seen] = audit.alerts()
    future = Finding.model_validate(seen.message | {"image_id": target, "evidence": seen.message["evidence"]})
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    audit.internal_client("dynamodb").put_item(
        TableName=audit.ledger_table,
        Item={
            "pk": {"S": f"DEDUP#{future.fingerprint}"},
            "sk": {"S": "DEDUP"},
            "claimed_at": {"S": now},
            "sent_at": {"S": now},
            "lease_until": {"S": "2099-01-01T00:00:00.000000Z"},
        },
    )

    # When the target AMI is made public
    _make_public(audit, target)
    audit.run()

    # Then it is alerted all the same
    assert [(a.message["type"], a.message["image_id"]) for a in audit.alerts()] == [("public-share", target)]


def _sweep(sb: Sandbox) -> None:
    delivery = sb.invoke("sweeper", SCHEDULED_EVENT)
    assert delivery.error is None, delivery.error


def _age_dedup_rows(sb: Sandbox, *, hours: int) -> None:
    """As if every alert so far had been sent ``hours`` ago."""
    then = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    dynamodb = sb.internal_client("dynamodb")
    for row in _ledger_rows(sb, "DEDUP#"):
        dynamodb.update_item(
            TableName=sb.ledger_table,
            Key={"pk": row["pk"], "sk": row["sk"]},
            UpdateExpression="SET claimed_at = :then, sent_at = :then",
            ExpressionAttributeValues={":then": {"S": then}},
        )


SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eab",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-01-05T06:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/amiguard-SweeperFunctionSweep"],
    "detail": {},
}
