"""The common path of every CloudTrail-triggered use case: parse, screen, act, and tell a vanished resource
(a drop) from anything else AWS answers (raised: Lambda retries, then the failure queue keeps the event)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from amiguard.aws.errors import is_gone
from amiguard.models.events import CloudTrailEvent
from amiguard.policy.screening import Drop, malformed_event, screen_cloudtrail
from amiguard.services.outcome import Outcome
from amiguard.services.ports import AlertsPort


def handle_cloudtrail(
    raw_event: Any, *, expected_names: frozenset[str], act: Callable[[CloudTrailEvent], Outcome]
) -> Outcome:
    """Parse and screen ``raw_event``; if it passes, ``act`` on it. The outcome carries the event id."""
    try:
        event = CloudTrailEvent.model_validate(raw_event)
    except ValidationError as error:
        return Outcome.dropped(malformed_event(error))
    event_id = event.detail.event_id or event.id
    if drop := screen_cloudtrail(event, expected_names=expected_names):
        return Outcome.dropped(drop, event_id)
    try:
        outcome = act(event)
    except ClientError as error:
        if not is_gone(error):
            raise  # transient or unexpected: Lambda retries, then the failure queue keeps the event
        outcome = Outcome.dropped(Drop("resource-gone", str(error)))
    outcome.event_id = event_id
    # Every finding names the event it came from: its ledger key and alert id are then the same on every
    # retry of that event (a finding dated only by its detection would be a new alert each time).
    outcome.findings = [
        finding
        if finding.event_id
        else finding.model_copy(update={"event_id": event_id, "event_time": finding.event_time or event.occurred_at})
        for finding in outcome.findings
    ]
    return outcome


def publish_findings(alerts: AlertsPort, outcome: Outcome) -> None:
    """Alert on the outcome's findings (after they were logged: a failing alert loses nothing)."""
    for finding in outcome.findings:
        alerts.publish(finding)
