"""The common path of every CloudTrail-triggered use case: parse, screen, act, and tell a vanished resource
(a drop) from anything else AWS answers (raised: Lambda retries, then the failure queue keeps the event)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from amiguard.aws.errors import is_gone
from amiguard.models.events import CloudTrailEvent
from amiguard.models.findings import Finding
from amiguard.policy.identity import OwnRoles
from amiguard.policy.screening import Drop, read_cloudtrail, screen_cloudtrail
from amiguard.services.outcome import Outcome
from amiguard.services.ports import AlertsPort, OutboxPort


def handle_cloudtrail(
    raw_event: Any, *, expected_names: frozenset[str], own: OwnRoles, act: Callable[[CloudTrailEvent], Outcome]
) -> Outcome:
    """Parse and screen ``raw_event``; if it passes, ``act`` on it. The outcome carries the event id."""
    event = read_cloudtrail(raw_event)
    if isinstance(event, Drop):
        return Outcome.dropped(event)
    event_id = event.detail.event_id or event.id
    if drop := screen_cloudtrail(event, expected_names=expected_names, own=own):
        return Outcome.dropped(drop, event_id)
    try:
        outcome = act(event)
    except ClientError as error:
        if not is_gone(error):
            raise  # transient or unexpected: Lambda retries, then the failure queue keeps the event
        outcome = Outcome.dropped(Drop("resource-gone", str(error)))
    outcome.event_id = event_id
    outcome.event_time = event.occurred_at
    # Every finding names the event it came from: its ledger key and alert id are then the same on every
    # retry of that event (a finding dated only by its detection would be a new alert each time).
    outcome.findings = [
        finding
        if finding.event_id
        else finding.model_copy(update={"event_id": event_id, "event_time": finding.event_time or event.occurred_at})
        for finding in outcome.findings
    ]
    return outcome


def stage_findings(alerts: AlertsPort, findings: Sequence[Finding]) -> None:
    """Write ``findings`` to the outbox before remediating them: once fixed, current state forgets them."""
    if isinstance(alerts, OutboxPort):
        alerts.stage(findings)


def publish_findings(alerts: AlertsPort, outcome: Outcome) -> None:
    """Alert on the outcome's findings, then on every finding of the event still pending in the outbox.

    The second part is what a retry needs when the first attempt remediated and then failed to alert: its
    current state shows nothing, its staged rows do.
    """
    for finding in outcome.findings:
        alerts.publish(finding)
    if outcome.event_time is not None and isinstance(alerts, OutboxPort):
        alerts.publish_pending(outcome.event_id, outcome.event_time)
