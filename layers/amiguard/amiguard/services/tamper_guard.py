"""tamper_guard: a critical alert within seconds when someone switches amiguard off or changes what it may do.

Triggered by CloudTrail calls on EventBridge rules, Lambda functions, IAM roles and CloudTrail trails
(see :mod:`amiguard.policy.tampering`). It acts on nothing: it alerts (``amiguard-tampered``), critical for a
person or a script, info for CloudFormation (a deploy). It does not drop amiguard's own calls: none of its
roles may change these resources, so such a call is itself a sign of a stolen role. What the event cannot
show (a change made while the guard itself was off) the sweeper finds by reading the deployment back.
"""

from __future__ import annotations

from typing import Any

from amiguard.models.events import CloudTrailEvent
from amiguard.models.findings import Action, Finding, FindingType, Severity
from amiguard.models.settings import ACCOUNT_ID, REGION, Settings
from amiguard.policy.screening import Drop, read_cloudtrail
from amiguard.policy.tampering import OwnResources, Tampering, is_watched, tampering
from amiguard.services.cloudtrail import publish_findings
from amiguard.services.outcome import Outcome, Status
from amiguard.services.ports import AlertsPort


class TamperGuard:
    """Alerts on every change to amiguard's own deployment that CloudTrail records."""

    def __init__(self, *, settings: Settings, alerts: AlertsPort) -> None:
        self._own = OwnResources.of(settings)
        self._alerts = alerts

    def handle(self, raw_event: Any) -> Outcome:
        event = read_cloudtrail(raw_event)
        if isinstance(event, Drop):
            return Outcome.dropped(event)
        record = event.detail
        event_id = record.event_id or event.id
        if record.error_code:
            detail = f"{record.event_name} failed with {record.error_code}: it changed nothing"
            return Outcome.dropped(Drop("failed-call", detail), event_id)
        if not is_watched(record):
            detail = f"{record.event_source} {record.event_name} is not handled here"
            return Outcome.dropped(Drop("unhandled-event", detail), event_id)
        account = event.account_id
        if not account or not ACCOUNT_ID.match(account) or not REGION.match(record.aws_region):
            detail = f"account {account!r} / awsRegion {record.aws_region!r} are not an account id and a region"
            return Outcome.dropped(Drop("malformed-event", detail), event_id)
        found = tampering(record, self._own)
        if found is None:
            return Outcome.clean("not-amiguard", f"{record.event_name} names none of amiguard's resources", event_id)
        finding = tampered_finding(event, found, account)
        return Outcome(Status.ACTED, "tampered", finding.summary, findings=[finding], event_id=event_id)

    def publish(self, outcome: Outcome) -> None:
        publish_findings(self._alerts, outcome)


def tampered_finding(event: CloudTrailEvent, found: Tampering, account: str) -> Finding:
    """The one place an ``amiguard-tampered`` finding is built."""
    record = event.detail
    who = record.actor or "an unknown principal"
    if found.deploy:
        summary = f"CloudFormation ({who}) called {found.api} on amiguard's {found.kind} {found.resource}: a deploy"
    else:
        summary = (
            f"{who} called {found.api} on amiguard's {found.kind} {found.resource}: "
            "amiguard may no longer see or act on what happens in this account"
        )
    return Finding(
        type=FindingType.TAMPERED,
        severity=Severity.INFO if found.deploy else Severity.CRITICAL,
        summary=summary,
        account=account,
        region=record.aws_region,
        actor=record.actor,
        event_id=record.event_id or event.id,
        event_time=event.occurred_at,
        action=Action.NONE,
        evidence={
            "resource_type": found.kind.value,
            "resource": found.resource,
            "api": found.api,
            "event_source": record.event_source,
            "event_name": record.event_name,
            "deploy": found.deploy,
            "request": record.params,
            # Each call is news: the same call delivered twice is the same finding, a second call is another.
            "event_id": record.event_id or event.id,
        },
    )
