"""The ledger under moto: the template's own table, dedup claims, suppressed counts, and both queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from amiguard.aws.ledger import LEASE_MARGIN, STALE_CLAIM, AlertInFlight, DynamoLedger, finding_pk, finding_sk
from amiguard.models.findings import Finding, FindingType
from amiguard.services.alerting import LedgeredAlerts
from amiguard_cli.sandbox.cfn import load_template, table_definition
from amiguard_cli.sandbox.iam import iam_actions
from tests.factories import a_finding

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
# What the roles grant for the alert path (template.yaml, RecordFindingsInLedger); a new call fails this file.
GRANTED_WRITE_OPERATIONS = {"dynamodb:PutItem", "dynamodb:UpdateItem"}


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RecordingSns:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[Finding] = []
        self.fail = fail

    def publish(self, finding: Finding) -> None:
        if self.fail:
            raise ConnectionError("SNS unreachable")
        self.published.append(finding)


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        definition = table_definition(load_template(TEMPLATE), "LedgerTable")
        assert definition is not None, "template.yaml has no LedgerTable"
        client.create_table(TableName="ledger", **definition)
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(dynamodb: Any, clock: Clock) -> DynamoLedger:
    return DynamoLedger(dynamodb, "ledger", clock=clock)


def _item(dynamodb: Any, pk: str, sk: str) -> dict[str, Any]:
    item: dict[str, Any] = dynamodb.get_item(TableName="ledger", Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item", {})
    return item


def test_first_claim_alerts_when_finding_is_new(ledger: DynamoLedger) -> None:
    claim = ledger.claim_alert(a_finding())

    assert claim.first


def test_duplicate_is_suppressed_and_counted_when_inside_the_window(ledger: DynamoLedger, clock: Clock) -> None:
    ledger.confirm_sent(ledger.claim_alert(a_finding()))
    clock.now += timedelta(minutes=59)

    second = ledger.claim_alert(a_finding(event_id="another-event"))
    third = ledger.claim_alert(a_finding(event_id="yet-another-event"))

    assert (second.first, second.suppressed) == (False, 1)
    assert (third.first, third.suppressed) == (False, 2)


def test_finding_alerts_again_when_the_window_has_passed(ledger: DynamoLedger, clock: Clock) -> None:
    first = ledger.claim_alert(a_finding())
    ledger.confirm_sent(first)
    clock.now += timedelta(hours=1, seconds=1)

    assert ledger.claim_alert(a_finding()).first


def test_other_evidence_alerts_when_same_image_and_type(ledger: DynamoLedger) -> None:
    ledger.claim_alert(a_finding())

    other = ledger.claim_alert(a_finding(type=FindingType.UNTRUSTED_SHARE, evidence={"untrusted": ["999988887777"]}))

    assert other.first


def test_unsent_claim_is_taken_over_when_older_than_any_function_timeout(ledger: DynamoLedger, clock: Clock) -> None:
    ledger.claim_alert(a_finding())  # the function died before publishing: never confirmed
    clock.now += STALE_CLAIM + timedelta(seconds=1)

    assert ledger.claim_alert(a_finding()).first


def test_duplicate_is_retried_not_suppressed_when_the_first_claim_was_never_confirmed_sent(
    ledger: DynamoLedger, clock: Clock
) -> None:
    ledger.claim_and_record(a_finding())  # the first invocation timed out while SNS hung: never confirmed
    sns = RecordingSns()
    clock.now += timedelta(minutes=1)  # Lambda's first retry of the event

    with pytest.raises(AlertInFlight):
        LedgeredAlerts(ledger, sns).publish(a_finding())
    clock.now += STALE_CLAIM  # a later retry, or a redrive from the failure queue
    LedgeredAlerts(ledger, sns).publish(a_finding())

    assert len(sns.published) == 1
    [entry] = ledger.findings_for_image("us-east-1", "ami-0123456789abcdef0")
    assert entry.alerted


def test_lambdas_retry_takes_the_claim_over_when_the_claimants_invocation_has_ended(
    dynamodb: Any, clock: Clock
) -> None:
    deadline = NOW + timedelta(seconds=60)  # the claimant had a minute left when it claimed
    claimant = DynamoLedger(dynamodb, "ledger", clock=clock, deadline=lambda: deadline)
    claimant.claim_and_record(a_finding())  # then timed out while SNS hung
    sns = RecordingSns()
    retry = LedgeredAlerts(DynamoLedger(dynamodb, "ledger", clock=clock), sns)

    clock.now = deadline + timedelta(seconds=1)  # within the margin for clocks: it may still be running
    with pytest.raises(AlertInFlight):
        retry.publish(a_finding())
    clock.now = deadline + LEASE_MARGIN + timedelta(seconds=1)  # Lambda has stopped it
    retry.publish(a_finding())

    assert len(sns.published) == 1


def test_claim_is_free_again_when_released_after_a_failed_publish(ledger: DynamoLedger) -> None:
    claim = ledger.claim_alert(a_finding())
    ledger.release(claim)

    assert ledger.claim_alert(a_finding()).first


def test_alert_published_once_and_duplicates_counted_on_its_row_when_sent_through_ledgered_alerts(
    ledger: DynamoLedger, dynamodb: Any, clock: Clock
) -> None:
    sns = RecordingSns()
    alerts = LedgeredAlerts(ledger, sns)
    original = a_finding()

    alerts.publish(original)
    clock.now += timedelta(minutes=10)
    alerts.publish(a_finding(event_id="e2", event_time=NOW + timedelta(minutes=10)))
    alerts.publish(original)  # the very same event delivered again

    assert [finding.event_id for finding in sns.published] == [original.event_id]
    row = _item(dynamodb, finding_pk(original), finding_sk(original))
    assert row["alerted"] == {"BOOL": True}
    assert row["suppressed_duplicates"] == {"N": "2"}
    dedup = _item(dynamodb, f"DEDUP#{original.fingerprint}", "DEDUP")
    assert dedup["suppressed"] == {"N": "2"}


def test_suppressed_duplicate_is_still_in_the_audit_trail_when_it_came_from_another_event(
    ledger: DynamoLedger, clock: Clock
) -> None:
    alerts = LedgeredAlerts(ledger, RecordingSns())
    alerts.publish(a_finding())
    alerts.publish(a_finding(event_id="e2", event_time=NOW + timedelta(minutes=5)))

    entries = ledger.findings_for_image("us-east-1", "ami-0123456789abcdef0")

    assert [(entry.finding.event_id, entry.alerted) for entry in entries] == [
        ("1c5a3b2e-0000-4000-8000-000000000001", True),
        ("e2", False),
    ]


def test_retry_alerts_when_the_first_publish_failed(ledger: DynamoLedger) -> None:
    failing = LedgeredAlerts(ledger, RecordingSns(fail=True))
    with pytest.raises(ConnectionError):
        failing.publish(a_finding())
    [entry] = ledger.findings_for_image("us-east-1", "ami-0123456789abcdef0")
    assert not entry.alerted  # the ledger never claims an alert that did not go out

    sns = RecordingSns()
    LedgeredAlerts(ledger, sns).publish(a_finding())  # Lambda's retry of the same event

    assert len(sns.published) == 1
    [entry] = ledger.findings_for_image("us-east-1", "ami-0123456789abcdef0")
    assert entry.alerted


def test_last_24_hours_come_back_in_time_order_when_they_span_midnight(ledger: DynamoLedger, clock: Clock) -> None:
    times = [NOW - timedelta(hours=hours) for hours in (30, 20, 13, 2)]  # 11-25 06:00 ... 11-26 10:00
    for index, moment in enumerate(times):
        ledger.record(a_finding(image_id=f"ami-{index:017x}", event_time=moment))

    entries = ledger.findings_since(NOW - timedelta(hours=24))

    assert [entry.finding.event_time for entry in entries] == times[1:]


def test_only_that_image_comes_back_when_queried_by_image(ledger: DynamoLedger) -> None:
    ledger.record(a_finding())
    ledger.record(a_finding(image_id="ami-0fedcba9876543210"))
    ledger.record(a_finding(image_id=None))

    entries = ledger.findings_for_image("us-east-1", "ami-0123456789abcdef0")

    assert [entry.finding.image_id for entry in entries] == ["ami-0123456789abcdef0"]


def test_row_expires_after_the_retention_when_written(ledger: DynamoLedger, dynamodb: Any) -> None:
    finding = a_finding()
    ledger.record(finding)

    row = _item(dynamodb, finding_pk(finding), finding_sk(finding))

    assert int(row["expires_at"]["N"]) == int((NOW + timedelta(days=400)).timestamp())


def test_huge_evidence_is_summarised_in_the_row_when_over_the_item_limit(ledger: DynamoLedger) -> None:
    finding = a_finding(evidence={"principals": ["x" * 1000] * 500})  # ~500 KB: over DynamoDB's 400 KB

    ledger.record(finding)

    [entry] = ledger.findings_for_image("us-east-1", "ami-0123456789abcdef0")
    assert entry.finding.evidence["truncated"] is True


def test_alert_path_calls_only_what_the_roles_grant_when_it_alerts_and_suppresses(
    ledger: DynamoLedger, dynamodb: Any
) -> None:
    called: list[str] = []

    dynamodb.meta.events.register(
        "provide-client-params.dynamodb", lambda model, params, **_: called.extend(iam_actions(model, params))
    )
    alerts = LedgeredAlerts(ledger, RecordingSns())
    failing = LedgeredAlerts(ledger, RecordingSns(fail=True))

    with pytest.raises(ConnectionError):
        failing.publish(a_finding(image_id="ami-0fedcba9876543210"))
    alerts.publish(a_finding())
    alerts.publish(a_finding())

    assert set(called) == GRANTED_WRITE_OPERATIONS


def test_new_finding_costs_two_round_trips_when_alerted(ledger: DynamoLedger, dynamodb: Any) -> None:
    called: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: called.append(model.name))

    LedgeredAlerts(ledger, RecordingSns()).publish(a_finding())

    assert called == ["TransactWriteItems", "TransactWriteItems"]  # claim + row, then sent + alerted
