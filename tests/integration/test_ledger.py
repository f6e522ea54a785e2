"""The ledger under moto: the template's own table, the outbox, dedup claims, suppressed counts, queries, cost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from amiguard.aws.ledger import (
    LEASE_MARGIN,
    STALE_CLAIM,
    AlertInFlight,
    AlertState,
    DynamoLedger,
    dedup_hash,
    finding_pk,
    finding_sk,
)
from amiguard.models.findings import Finding, FindingType
from amiguard.services.alerting import LedgeredAlerts
from amiguard.services.ports import AlertResult
from amiguard_cli.sandbox.capacity import WriteUnitMeter
from amiguard_cli.sandbox.cfn import load_template, table_definition
from amiguard_cli.sandbox.iam import iam_actions
from tests.factories import a_finding

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
# What the roles grant for the alert path (template.yaml, RecordFindingsInLedger); a new call fails this file.
GRANTED_OPERATIONS = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:BatchGetItem"}
KEY = b"the-stack-secret"


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
    return DynamoLedger(dynamodb, "ledger", clock=clock, dedup_key=lambda: KEY)


def _claim(ledger: DynamoLedger, finding: Finding) -> Any:
    ledger.stage(finding)
    return ledger.claim(finding)


def _item(dynamodb: Any, pk: str, sk: str) -> dict[str, Any]:
    item: dict[str, Any] = dynamodb.get_item(TableName="ledger", Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item", {})
    return item


def test_first_claim_alerts_when_finding_is_new(ledger: DynamoLedger) -> None:
    claim = _claim(ledger, a_finding())

    assert claim.first


def test_duplicate_is_suppressed_and_counted_when_inside_the_window(ledger: DynamoLedger, clock: Clock) -> None:
    ledger.confirm_sent(_claim(ledger, a_finding()))
    clock.now += timedelta(minutes=59)

    second = _claim(ledger, a_finding(event_id="another-event"))
    third = _claim(ledger, a_finding(event_id="yet-another-event"))

    assert (second.first, second.suppressed) == (False, 1)
    assert (third.first, third.suppressed) == (False, 2)


def test_finding_alerts_again_when_the_window_has_passed(ledger: DynamoLedger, clock: Clock) -> None:
    first = _claim(ledger, a_finding())
    ledger.confirm_sent(first)
    clock.now += timedelta(hours=1, seconds=1)

    assert _claim(ledger, a_finding()).first


def test_other_evidence_alerts_when_same_image_and_type(ledger: DynamoLedger) -> None:
    _claim(ledger, a_finding())

    other = _claim(ledger, a_finding(type=FindingType.UNTRUSTED_SHARE, evidence={"untrusted": ["999988887777"]}))

    assert other.first


def test_unsent_claim_is_taken_over_when_older_than_any_function_timeout(ledger: DynamoLedger, clock: Clock) -> None:
    _claim(ledger, a_finding())  # the function died before publishing: never confirmed
    clock.now += STALE_CLAIM + timedelta(seconds=1)

    assert _claim(ledger, a_finding()).first


def test_duplicate_is_retried_not_suppressed_when_the_first_claim_was_never_confirmed_sent(
    ledger: DynamoLedger, clock: Clock
) -> None:
    _claim(ledger, a_finding())  # the first invocation timed out while SNS hung: never confirmed
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
    _claim(claimant, a_finding())  # then timed out while SNS hung
    sns = RecordingSns()
    retry = LedgeredAlerts(DynamoLedger(dynamodb, "ledger", clock=clock), sns)

    clock.now = deadline + timedelta(seconds=1)  # within the margin for clocks: it may still be running
    with pytest.raises(AlertInFlight):
        retry.publish(a_finding())
    clock.now = deadline + LEASE_MARGIN + timedelta(seconds=1)  # Lambda has stopped it
    retry.publish(a_finding())

    assert len(sns.published) == 1


def test_claim_is_free_again_when_released_after_a_failed_publish(ledger: DynamoLedger) -> None:
    claim = _claim(ledger, a_finding())
    ledger.release(claim)

    assert _claim(ledger, a_finding()).first


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
    assert row["alert"] == {"S": "sent"}
    assert row["suppressed_duplicates"] == {"N": "2"}
    dedup = _item(dynamodb, f"DEDUP#{dedup_hash(KEY, original.fingerprint)}", "DEDUP")
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
    alerts.publish_pending(a_finding().event_id, NOW - timedelta(hours=2, minutes=30))

    assert set(called) == GRANTED_OPERATIONS


def _metered(dynamodb: Any) -> WriteUnitMeter:
    meter = WriteUnitMeter(boto3.client("dynamodb", region_name="us-east-1"))
    meter.register(dynamodb.meta.events)
    return meter


def test_new_alert_costs_at_most_six_write_units_when_published(ledger: DynamoLedger, dynamodb: Any) -> None:
    meter = _metered(dynamodb)
    alerts = LedgeredAlerts(ledger, RecordingSns())
    findings = [a_finding(image_id=f"ami-{index:017x}", event_id=f"event-{index}") for index in range(5)]

    alerts.stage(findings)  # before the remediation, as the services do
    for finding in findings:
        assert alerts.publish(finding) is AlertResult.SENT

    assert meter.total / len(findings) <= 6, meter.by_operation
    assert not any(operation.startswith("TransactWriteItems") for operation in meter.by_operation)


def test_row_stays_under_one_kilobyte_when_the_finding_is_typical(ledger: DynamoLedger, dynamodb: Any) -> None:
    from amiguard_cli.sandbox.capacity import item_size

    finding = a_finding()
    LedgeredAlerts(ledger, RecordingSns()).publish(finding)

    assert item_size(_item(dynamodb, finding_pk(finding), finding_sk(finding))) < 1024


def test_staged_finding_is_alerted_when_a_later_attempt_of_its_event_finds_nothing(ledger: DynamoLedger) -> None:
    # Given the first attempt staged its finding, remediated, then could not reach SNS
    finding = a_finding()
    failing = LedgeredAlerts(ledger, RecordingSns(fail=True))
    failing.stage([finding])
    with pytest.raises(ConnectionError):
        failing.publish(finding)
    sns = RecordingSns()

    # When the retry (a fresh environment) sees current state clean: no finding, only the event
    results = LedgeredAlerts(ledger, sns).publish_pending(finding.event_id, finding.event_time or NOW)

    # Then the staged finding is alerted, once
    assert results == [AlertResult.SENT]
    assert [alert.event_id for alert in sns.published] == [finding.event_id]
    [entry] = ledger.findings_for_image("us-east-1", "ami-0123456789abcdef0")
    assert entry.state is AlertState.SENT
    assert LedgeredAlerts(ledger, sns).publish_pending(finding.event_id, finding.event_time or NOW) == []


def test_staged_finding_is_alerted_by_the_sweeper_when_its_event_failed_for_good(
    ledger: DynamoLedger, clock: Clock
) -> None:
    finding = a_finding(event_time=NOW - timedelta(hours=3))
    LedgeredAlerts(ledger, RecordingSns()).stage([finding])  # then the function died, the event is in the DLQ
    sns = RecordingSns()
    sweeper = LedgeredAlerts(ledger, sns, clock=clock)

    assert sweeper.publish_stale_pending() == []  # staged a moment ago: its own invocation may still alert it
    clock.now += STALE_CLAIM + timedelta(seconds=1)
    assert sweeper.publish_stale_pending() == [AlertResult.SENT]

    assert [alert.event_id for alert in sns.published] == [finding.event_id]
    assert "alerted by the sweep" in sns.published[0].summary  # its action may not have taken effect


def test_row_is_marked_sent_not_realerted_when_the_process_died_between_the_two_confirmations(
    ledger: DynamoLedger, dynamodb: Any, clock: Clock
) -> None:
    finding = a_finding()
    ledger.stage(finding)
    claim = ledger.claim(finding)
    dynamodb.update_item(  # what confirm_sent's first write does; the second never happened
        TableName="ledger",
        Key={"pk": {"S": claim.dedup_key}, "sk": {"S": "DEDUP"}},
        UpdateExpression="SET sent_at = :now",
        ExpressionAttributeValues={":now": {"S": "2026-11-26T12:00:00.000000Z"}},
    )
    sns = RecordingSns()

    LedgeredAlerts(ledger, sns).publish_pending(finding.event_id, finding.event_time or NOW)

    assert sns.published == []
    [entry] = ledger.findings_for_image("us-east-1", "ami-0123456789abcdef0")
    assert entry.state is AlertState.SENT


def test_standing_finding_is_not_realerted_when_inside_realert_hours(ledger: DynamoLedger, clock: Clock) -> None:
    sns = RecordingSns()
    sweep = LedgeredAlerts(ledger, sns, window=timedelta(hours=168), clock=clock)

    first = sweep.publish(a_finding(event_id=None, event_time=None, detected_at=clock.now))
    clock.now += timedelta(days=1)
    second = sweep.publish(a_finding(event_id=None, event_time=None, detected_at=clock.now))
    clock.now += timedelta(days=6, minutes=1)
    third = sweep.publish(a_finding(event_id=None, event_time=None, detected_at=clock.now))

    assert [first, second, third] == [AlertResult.SENT, AlertResult.SUPPRESSED, AlertResult.SENT]
    assert len(sns.published) == 2


def test_new_event_alerts_after_the_dedup_window_when_the_sweep_alerted_the_same_finding(
    ledger: DynamoLedger, clock: Clock
) -> None:
    sns = RecordingSns()
    LedgeredAlerts(ledger, sns, window=timedelta(hours=168), clock=clock).publish(a_finding(event_id=None))
    clock.now += timedelta(hours=2)

    result = LedgeredAlerts(ledger, sns, clock=clock).publish(a_finding(event_id="made-public-again"))

    assert result is AlertResult.SENT


def test_row_prewritten_for_the_plain_fingerprint_does_not_suppress_when_alerting(
    ledger: DynamoLedger, dynamodb: Any
) -> None:
    # Given someone wrote the dedup row an unkeyed design would use (the fingerprint hashes public data)
    finding = a_finding()
    dynamodb.put_item(
        TableName="ledger",
        Item={
            "pk": {"S": f"DEDUP#{finding.fingerprint}"},
            "sk": {"S": "DEDUP"},
            "claimed_at": {"S": "2026-11-26T11:59:00.000000Z"},
            "sent_at": {"S": "2026-11-26T11:59:00.000000Z"},
            "lease_until": {"S": "2099-01-01T00:00:00.000000Z"},
        },
    )
    sns = RecordingSns()

    result = LedgeredAlerts(ledger, sns).publish(finding)

    assert result is AlertResult.SENT and len(sns.published) == 1
    assert dedup_hash(KEY, finding.fingerprint) != finding.fingerprint


def test_alerted_row_stays_sent_when_its_event_is_redelivered_after_a_later_alert(
    ledger: DynamoLedger, clock: Clock
) -> None:
    alerts = LedgeredAlerts(ledger, RecordingSns(), clock=clock)
    first = a_finding()
    alerts.publish(first)
    clock.now += timedelta(hours=2)
    alerts.publish(a_finding(event_id="e2", event_time=NOW + timedelta(hours=2)))  # after the window: alerted
    clock.now += timedelta(minutes=10)

    assert alerts.publish(first) is AlertResult.SUPPRESSED  # the first event delivered once more

    states = {entry.finding.event_id: entry.state for entry in ledger.findings_for_image("us-east-1", first.image_id)}
    assert states == {first.event_id: AlertState.SENT, "e2": AlertState.SENT}
