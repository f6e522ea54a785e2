"""sweeper: the scheduled re-check of every owned AMI, for what events missed or came before deployment.

Triggered by the ``SweepSchedule`` rule (an EventBridge "Scheduled Event", default ``rate(1 day)``).
Runs :class:`~amiguard.services.scan.Scanner` in the stack's mode over its own region and the DR
regions: in ``enforce`` mode it applies the remedies ``public_guard`` and ``dr_replicator`` would (revoke
shares, copy approved AMIs a DR region lacks, clean up replicas whose source is gone, mark AMIs that lack
required tags with tag_enforcer's violation tags, so its grace period starts), in ``audit`` mode it changes
nothing (``would-revoke``, ``would-copy``, ``would-tag``). Overdue violations are reported, not escalated:
tag_enforcer's hourly sweep does that. Each finding goes out on the alert path (which
de-duplicates, so a problem that stays is not re-alerted every day), then one ``sweep-summary`` message.

A sweep never reports success for what it could not check. What failed for a transient reason (throttling,
a 5xx, a timeout, the deadline near: botocore's retries already spent) is given one more pass within the
sweep, over every region (a check in one region reads the others' inventory); what still fails is named in
the summary (``unchecked``) and the sweep raises :class:`SweepIncomplete` after publishing: Lambda retries the
event and, in the end, the failure queue keeps it. Lasting causes (access denied, a region not enabled) are
named in the summary too but not retried: another attempt would answer the same. Every finding carries the
scheduled event's id and time, so a retried sweep's alerts have the same ids (one alert, not one per try).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from amiguard.models.findings import Action, Finding, FindingType, Severity
from amiguard.models.settings import ACCOUNT_ID, Settings
from amiguard.policy.checks import checks_for
from amiguard.policy.screening import Drop
from amiguard.services.outcome import Outcome, Status
from amiguard.services.ports import AlertsPort
from amiguard.services.scan import (
    ReplicaPortInRegion,
    ScanError,
    Scanner,
    ScanPortInRegion,
    ScanReport,
    TaggingPortInRegion,
)

SCHEDULED = "Scheduled Event"
# Finding actions that changed something (the would-* actions and none did not).
REMEDIATED = frozenset(
    {Action.REVOKED, Action.TAGGED, Action.COPIED, Action.DEPRECATED, Action.DISABLED, Action.DEREGISTERED}
)


RETRY_PASSES = 1  # extra passes within one sweep over what failed transiently
# Codes that another attempt would answer the same way: reported, never retried.
LASTING = frozenset(
    {
        "OptInRequired",
        "AuthFailure",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
    }
)


class SweepFailed(RuntimeError):
    """No region could be scanned at all: raised, so Lambda retries and the failure queue keeps the event."""


class SweepIncomplete(RuntimeError):
    """Something could not be checked after the retry pass: raised (after publishing) so Lambda retries."""


def transient(error: ScanError) -> bool:
    return error.code not in LASTING


def unchecked(errors: Sequence[ScanError]) -> list[str]:
    """What the sweep could not check, by name: ``us-east-1/ami-0abc (launch-permissions: Throttling)``."""
    return sorted(
        {f"{e.region}/{e.image_id or e.snapshot_id or e.stage} ({e.stage}: {e.code or 'error'})" for e in errors}
    )


def _merge(first: ScanReport, second: ScanReport) -> ScanReport:
    """The retry pass's view, keeping what the first pass found (and fixed) that the second no longer sees."""
    findings = {finding.fingerprint: finding for finding in first.findings}
    findings.update({finding.fingerprint: finding for finding in second.findings})
    second.findings = list(findings.values())
    second.started_at = first.started_at
    return second


def sweep_regions(home: str, settings: Settings) -> list[str]:
    """The function's own region first, then the DR regions (where amiguard's replicas live)."""
    return list(dict.fromkeys([home, *settings.dr_regions]))


class Sweeper:
    """Scans on schedule in the stack's mode and alerts on what it found."""

    def __init__(
        self,
        *,
        settings: Settings,
        images: ScanPortInRegion,
        alerts: AlertsPort,
        summary: AlertsPort,
        regions: Sequence[str],
        replication: ReplicaPortInRegion | None = None,
        tagging: TaggingPortInRegion | None = None,
        concurrency: int = 8,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._images = images
        self._replication = replication
        self._tagging = tagging
        self._alerts = alerts
        self._summary = summary
        self._regions = list(regions)
        self._concurrency = concurrency
        self._clock = clock
        self.last_report: ScanReport | None = None

    def handle(self, raw_event: dict[str, Any]) -> Outcome:
        """Scan every region; the outcome carries the findings (published by :meth:`publish`)."""
        event_id = str(raw_event.get("id") or "") or None
        if raw_event.get("detail-type") != SCHEDULED:
            detail = f"detail-type {raw_event.get('detail-type')!r} is not a schedule"
            return Outcome.dropped(Drop("unhandled-event", detail), event_id)
        account = str(raw_event.get("account") or "")
        if not ACCOUNT_ID.match(account):
            return Outcome.dropped(
                Drop("malformed-event", f"account {account!r} is not a 12-digit account id"), event_id
            )
        scanner = Scanner(
            settings=self._settings,
            images=self._images,
            replication=self._replication,
            tagging=self._tagging,
            # tag_enforcer's hourly sweep escalates overdue violations in the stack: reported here, not acted on
            checks=checks_for(self._settings, escalate=False),
            account=account,
            fix=self._settings.enforcing,
            concurrency=self._concurrency,
            clock=self._clock,
        )
        report = scanner.scan(self._regions)
        for _ in range(RETRY_PASSES):
            if not any(transient(error) for error in report.errors):
                break
            report = _merge(report, scanner.scan(self._regions))
        # The sweep's event names every finding: a retried sweep's alerts keep their ids (amiguard.aws.posted).
        event_time = _event_time(raw_event)
        report.findings = [
            finding.model_copy(update={"event_id": event_id, "event_time": event_time}) for finding in report.findings
        ]
        self.last_report = report
        if not any(region.listed for region in report.regions):
            problems = "; ".join(error.message for error in report.errors) or "no region to scan"
            raise SweepFailed(f"the sweep could not scan any region: {problems}")
        status = Status.ACTED if report.findings else Status.CLEAN
        reason = "findings" if report.findings else ("clean" if report.complete else "incomplete")
        outcome = Outcome(status, reason, _describe(report), findings=list(report.findings), event_id=event_id)
        retry = [error for error in report.errors if transient(error)]
        if retry:
            outcome.retry_error = SweepIncomplete(
                f"{len(retry)} check(s) still failing after {RETRY_PASSES + 1} passes: " + "; ".join(unchecked(retry))
            )
        return outcome

    def publish(self, outcome: Outcome) -> None:
        """Each finding on the alert path, then the one-message summary of the sweep."""
        for finding in outcome.findings:
            self._alerts.publish(finding)
        if self.last_report is not None and outcome.status is not Status.DROPPED:
            self._summary.publish(summary_finding(self.last_report, self._regions[0], self._settings))
            self.last_report = None


def _event_time(raw_event: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(raw_event.get("time") or "").replace("Z", "+00:00"))
    except ValueError:
        return None


def _describe(report: ScanReport) -> str:
    counts = ", ".join(f"{count} {kind}" for kind, count in report.counts().items()) or "no findings"
    names = unchecked(report.errors)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    errors = f"; {len(report.errors)} could not be checked: {shown}" if report.errors else ""
    return f"{report.images} AMI(s) in {sum(r.listed for r in report.regions)} region(s): {counts}{errors}"


def summary_finding(report: ScanReport, home: str, settings: Settings) -> Finding:
    """One message saying what the sweep covered, found, did and could not check."""
    fixed = sum(finding.action in REMEDIATED for finding in report.findings)
    return Finding(
        type=FindingType.SWEEP_SUMMARY,
        severity=Severity.INFO,
        summary=f"Sweep ({settings.mode.value} mode): {_describe(report)}.",
        account=report.account,
        region=home,
        action=Action.NONE,
        evidence={
            "sweep_started_at": report.started_at.isoformat(),
            "mode": settings.mode.value,
            "images": report.images,
            "regions": [region.to_dict() for region in report.regions],
            "counts": report.counts(),
            "remediated": fixed,
            "errors": [error.to_dict() for error in report.errors],
            "unchecked": unchecked(report.errors),
            "complete": report.complete,
        },
    )
