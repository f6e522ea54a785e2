"""The alert path of every function: the ledger records, de-duplicates, and alerts once per window."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from amiguard.aws.ledger import DynamoLedger
from amiguard.aws.posted import alert_id
from amiguard_cli.sandbox.account import Sandbox
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
