"""Reviewed exceptions (parameter Exceptions): a finding one covers is recorded as excepted, not alerted."""

from __future__ import annotations

import json
from typing import Any

from amiguard.aws.ledger import AlertState, DynamoLedger
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

ACTIVE, EXPIRED = "2099-12-31", "2020-01-31"
SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-01-05T06:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/amiguard-SweeperFunctionSweep"],
    "detail": {},
}


def _exceptions(*entries: dict[str, Any]) -> str:
    return json.dumps(list(entries))


def _untagged_image(sb: Sandbox, tags: list[dict[str, str]] | None = None) -> str:
    ec2 = sb.client("ec2")
    with acting_as(iam_user("dev-bob")):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        extra = {"TagSpecifications": [{"ResourceType": "image", "Tags": tags}]} if tags else {}
        image_id: str = ec2.create_image(InstanceId=instance, Name="farm-base", **extra)["ImageId"]
    return image_id


def _rows(sb: Sandbox, image_id: str, kind: str) -> list[Any]:
    ledger = DynamoLedger(sb.internal_client("dynamodb"), sb.ledger_table)
    return [entry for entry in ledger.findings_for_image(sb.home, image_id) if entry.finding.type.value == kind]


def _alerted(sb: Sandbox, kind: str) -> list[str]:
    return [alert.message["image_id"] for alert in sb.alerts() if alert.message["type"] == kind]


def test_finding_is_recorded_as_excepted_and_not_alerted_when_its_ami_is_excepted() -> None:
    # Given an exception for one AMI id, which the stack knows before the AMI is made (ids are seeded)
    with Sandbox(parameters={"Mode": "enforce"}) as probe:
        expected = _untagged_image(probe)
    entry = {"name": "farm", "image": expected, "types": ["missing-tags"], "reason": "build farm", "expires": ACTIVE}
    with Sandbox(parameters={"Mode": "enforce", "Exceptions": _exceptions(entry)}) as sb:
        # When that AMI is made without its required tags
        image_id = _untagged_image(sb)
        sb.run()

        # Then nothing is alerted about it, and the ledger says which exception covered it
        assert image_id == expected
        assert _alerted(sb, "missing-tags") == []
        [row] = _rows(sb, image_id, "missing-tags")
        assert row.state is AlertState.EXCEPTED and row.excepted_by == "farm" and not row.alerted


def test_finding_is_excepted_when_the_ami_carries_the_excepted_tag() -> None:
    entry = {"name": "research", "tag": "Team=research", "reason": "lab AMIs, reviewed", "expires": ACTIVE}
    with Sandbox(parameters={"Mode": "enforce", "Exceptions": _exceptions(entry)}) as sb:
        lab = _untagged_image(sb, tags=[{"Key": "Team", "Value": "research"}])
        other = _untagged_image(sb, tags=[{"Key": "Team", "Value": "payments"}])
        sb.run()

        # Then the lab AMI is excepted, the other one alerted
        assert _alerted(sb, "missing-tags") == [other]
        [row] = _rows(sb, lab, "missing-tags")
        assert row.state is AlertState.EXCEPTED and row.excepted_by == "research"


def test_finding_alerts_again_when_its_exception_has_expired() -> None:
    active = {"name": "research", "tag": "Team=research", "reason": "lab AMIs, reviewed", "expires": ACTIVE}
    with Sandbox(parameters={"Mode": "enforce", "Exceptions": _exceptions(active)}) as sb:
        lab = _untagged_image(sb, tags=[{"Key": "Team", "Value": "research"}])
        sb.run()
        assert _alerted(sb, "missing-tags") == []

        # When the exception has expired (the stack updated with its date passed) and the sweep finds the AMI again
        sb.reconfigure(Exceptions=_exceptions(active | {"expires": EXPIRED}))
        delivery = sb.invoke("sweeper", SCHEDULED_EVENT)

        # Then it is alerted
        assert delivery.error is None, delivery.error
        assert lab in _alerted(sb, "missing-tags")


def test_every_function_fails_at_start_up_naming_the_entry_when_an_exception_is_malformed() -> None:
    good = {"name": "farm", "image": "ami-12345678", "reason": "build farm", "expires": ACTIVE}
    bad = {"name": "no-expiry", "tag": "Team=research", "reason": "forgot the date"}
    with Sandbox(parameters={"Mode": "enforce", "Exceptions": _exceptions(good, bad)}) as sb:
        delivery = sb.invoke("sweeper", SCHEDULED_EVENT)

        assert delivery.result is None and delivery.error is not None
        assert "AMIGUARD_EXCEPTIONS: entry 2 ('no-expiry'): expires" in delivery.error
