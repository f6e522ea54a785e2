"""sweeper: the scheduled re-check of every owned AMI, for what events missed or came before deployment.

Triggered by the ``SweepSchedule`` rule (an EventBridge "Scheduled Event", default ``rate(1 day)``).
Runs :class:`~amiguard.services.scan.Scanner` in the stack's mode over every region the account has
enabled (DescribeRegions, asked at each sweep: opt-in regions count once opted in), its own first, and the
DR regions: in ``enforce`` mode it applies the remedies ``public_guard`` and ``dr_replicator`` would (revoke
shares, copy approved AMIs a DR region lacks, clean up replicas whose source is gone, mark AMIs that lack
required tags with tag_enforcer's violation tags, so its grace period starts), in ``audit`` mode it changes
nothing (``would-revoke``, ``would-copy``, ``would-tag``). Overdue violations are reported, not escalated:
tag_enforcer's hourly sweep does that. Each finding goes out on the alert path, whose window for the
sweeper is ``RealertHours`` (default a week): a problem that stays is re-alerted at most that often, and the
summary counts the standing findings it did not re-alert. The sweep also alerts every finding an invocation
staged in the outbox and never got to alert (its event failed for good), then one ``sweep-summary`` message.
It also reads amiguard's own deployment back (:mod:`amiguard.policy.coverage`): a rule disabled, a function
gone or throttled to zero, a trail stopped is an ``amiguard-coverage-gap``, whoever did it.
In organization mode (:mod:`amiguard.services.sweep_fanout`) it sweeps one member account per message through
the member's ``amiguard-sweeper`` role, and every region of it that holds AMIs but whose forwarding rules are
missing or disabled is an ``amiguard-coverage-gap`` too (its events never reach the central bus).

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

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from amiguard.aws.ledger import AlertInFlight
from amiguard.models.findings import Action, Finding, FindingType, Severity
from amiguard.models.settings import Settings
from amiguard.observability import logger, metrics
from amiguard.policy.checks import checks_for
from amiguard.policy.coverage import FORWARDING_RULES, Gap, coverage_gaps, forwarding_gaps
from amiguard.policy.screening import Drop, read_schedule
from amiguard.policy.tampering import OwnResources, ResourceKind
from amiguard.services.outcome import Outcome, Status
from amiguard.services.ports import AlertResult, AlertsPort, DeploymentPort, ForwardingPort, OutboxPort
from amiguard.services.scan import (
    ReplicaPortInRegion,
    ReplicaRecordsPort,
    ScanError,
    Scanner,
    ScanPortInRegion,
    ScanReport,
    TaggingPortInRegion,
    ViolationsPort,
    describe_error,
)

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


DEADLINE = "DeadlineNear"  # the code of a check the invocation's deadline stopped (amiguard.aws.clients)


def unfinished_regions(codes_by_region: Sequence[tuple[str, str]]) -> list[str]:
    """Regions where a check was stopped by the deadline (``(region, error code)`` of each unchecked item)."""
    return sorted({region for region, code in codes_by_region if code == DEADLINE})


def transient(error: ScanError) -> bool:
    return error.code not in LASTING


def unchecked(errors: Sequence[ScanError]) -> list[str]:
    """What the sweep could not check, by name: ``us-east-1/ami-0abc (launch-permissions: Throttling)``."""
    return sorted(
        {f"{e.region}/{e.image_id or e.snapshot_id or e.stage} ({e.stage}: {e.code or 'error'})" for e in errors}
    )


def _merge(first: ScanReport, second: ScanReport) -> ScanReport:
    """The retry pass's view, keeping what the first pass found (and fixed) that the second no longer sees.

    By problem, not outcome: a fix the first pass could not make and the second made is one finding, fixed. A fix
    that raised in the first pass (a read timeout: EC2 made it, the answer was lost) whose problem the second pass
    no longer sees took effect: the finding says what was done, not "not fixed".
    """
    findings: dict[str, Finding] = {}
    for finding in first.findings:
        problem = finding.problem_fingerprint
        done = first.unfixed.get(problem)
        fixed = {"action": done, "fix_failed": False}
        findings[problem] = finding if done is None else finding.model_copy(update=fixed)
    findings.update({finding.problem_fingerprint: finding for finding in second.findings})
    second.findings = list(findings.values())
    second.started_at = first.started_at
    return second


def sweep_regions(home: str, enabled: Sequence[str], settings: Settings) -> list[str]:
    """The function's own region first, then every other enabled region, then any DR region not enabled (its
    listing fails and the summary says so: copies cannot land there)."""
    return list(dict.fromkeys([home, *sorted(enabled), *settings.dr_regions]))


class Sweeper:
    """Scans on schedule in the stack's mode and alerts on what it found."""

    def __init__(
        self,
        *,
        settings: Settings,
        images: ScanPortInRegion,
        alerts: AlertsPort,
        summary: AlertsPort,
        regions: Callable[[], Sequence[str]],
        replication: ReplicaPortInRegion | None = None,
        tagging: TaggingPortInRegion | None = None,
        replica_records: ReplicaRecordsPort | None = None,
        deployment: DeploymentPort | None = None,
        violations: ViolationsPort | None = None,
        forwarding: ForwardingPort | None = None,
        forwarding_exempt: frozenset[str] = frozenset(),
        concurrency: int = 8,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._images = images
        self._replication = replication
        self._tagging = tagging
        self._replica_records = replica_records
        self._deployment = deployment
        self._violations = violations
        # Organization mode: a member's forwarding rules, checked in every region that holds AMIs (but those in
        # ``forwarding_exempt``: the central stack's own account and region, where its rules hear events directly).
        self._forwarding = forwarding
        self._forwarding_exempt = forwarding_exempt
        self.unfinished: list[str] = []  # regions the invocation's deadline stopped (a continuation sweeps them)
        self._alerts = alerts
        self._summary = summary
        self._regions = regions  # asked at each sweep: a region enabled today is swept today
        self._swept: list[str] = []
        self._concurrency = concurrency
        self._clock = clock
        self.last_report: ScanReport | None = None

    def handle(self, raw_event: dict[str, Any]) -> Outcome:
        """Scan every region; the outcome carries the findings (published by :meth:`publish`)."""
        event_id = str(raw_event.get("id") or "") or None
        schedule = read_schedule(raw_event)
        if isinstance(schedule, Drop):
            return Outcome.dropped(schedule, event_id)
        account = schedule.account or ""
        scanner = Scanner(
            settings=self._settings,
            images=self._images,
            replication=self._replication,
            tagging=self._tagging,
            replica_records=self._replica_records,
            violations=self._violations,
            # tag_enforcer's hourly sweep escalates overdue violations in the stack: reported here, not acted on
            checks=checks_for(self._settings, escalate=False),
            account=account,
            fix=self._settings.enforcing,
            concurrency=self._concurrency,
            clock=self._clock,
        )
        self._swept = list(self._regions())
        report = scanner.scan(self._swept)
        for _ in range(RETRY_PASSES):
            if not any(transient(error) for error in report.errors):
                break
            report = _merge(report, scanner.scan(self._swept))
        self.last_report = report
        if not any(region.listed for region in report.regions):
            problems = "; ".join(error.message for error in report.errors) or "no region to scan"
            raise SweepFailed(f"the sweep could not scan any region: {problems}")
        # The sweep's event names every finding: a retried sweep's alerts keep their ids (amiguard.aws.posted).
        event_time = schedule.time
        report.findings = [
            finding.model_copy(update={"event_id": event_id, "event_time": event_time}) for finding in report.findings
        ]
        coverage = [
            finding.model_copy(update={"event_id": event_id, "event_time": event_time})
            for finding in [*self._coverage(account), *self._forwarding_gaps(account, report)]
        ]
        findings = [*coverage, *report.findings]
        status = Status.ACTED if findings else Status.CLEAN
        reason = "findings" if findings else ("clean" if report.complete else "incomplete")
        outcome = Outcome(status, reason, _describe(report), findings=findings, event_id=event_id)
        outcome.event_time = event_time
        self.unfinished = unfinished_regions([(error.region, error.code) for error in report.errors])
        retry = [error for error in report.errors if transient(error)]
        if retry:
            outcome.retry_error = SweepIncomplete(
                f"{len(retry)} check(s) still failing after {RETRY_PASSES + 1} passes: " + "; ".join(unchecked(retry))
            )
        return outcome

    def _coverage(self, account: str) -> list[Finding]:
        """amiguard's own deployment in the sweeper's region, read back: one finding per gap."""
        if self._deployment is None:
            return []
        own = OwnResources.of(self._settings)
        home = self._swept[0]
        return [coverage_gap_finding(gap, account, home) for gap in coverage_gaps(own, self._deployment.read(own))]

    def _forwarding_gaps(self, account: str, report: ScanReport) -> list[Finding]:
        """Every region of the account that holds AMIs but forwards no events to the central bus."""
        if self._forwarding is None:
            return []
        found: list[Finding] = []
        for region in report.regions:
            if not region.listed or not region.images or region.region in self._forwarding_exempt:
                continue  # a region without AMIs needs no forwarder yet
            try:
                rules = self._forwarding.rules(region.region, FORWARDING_RULES)
            except (ClientError, BotoCoreError) as error:
                code, message = describe_error(error, region.region)
                problem = f"could not be verified in {region.region}: {message} ({code})"
                gaps = [Gap(ResourceKind.RULE, name, problem, blind=False) for name in FORWARDING_RULES]
            else:
                gaps = forwarding_gaps(region.region, region.images, rules)
            found.extend(coverage_gap_finding(gap, account, region.region) for gap in gaps)
        return found

    def publish(self, outcome: Outcome) -> None:
        """Each finding on the alert path, the outbox's leftovers, then the one-message summary of the sweep.

        The leftovers are this sweep's own rows still pending (an earlier attempt of the same schedule event fixed
        an AMI, then could not alert: this attempt's scan no longer sees the problem), then any other invocation's
        left pending for longer than one runs.
        """
        results = [self._alerts.publish(finding) for finding in outcome.findings]
        if outcome.status is Status.DROPPED:
            return
        leftovers: list[AlertResult] = []
        if isinstance(self._alerts, OutboxPort):
            if outcome.event_time is not None:
                try:
                    results += self._alerts.publish_pending(outcome.event_id, outcome.event_time)
                except AlertInFlight as in_flight:
                    # An earlier attempt of this sweep published it and could not confirm (its lease runs to that
                    # attempt's 15-minute deadline, past Lambda's retries): raising would only fill the failure
                    # queue. The row stays pending: a later sweep's outbox pass settles it once the lease is over.
                    logger.warning(
                        "alert of an earlier attempt not confirmed: left to the outbox pass",
                        extra={"fingerprint": in_flight.fingerprint},
                    )
                    metrics.add_metric(name="AlertsLeftInOutbox", unit=MetricUnit.Count, value=1)
            leftovers = self._alerts.publish_stale_pending()
        if self.last_report is not None:
            standing = results.count(AlertResult.SUPPRESSED)
            summary = summary_finding(self.last_report, self._swept[0], self._settings, standing=standing)
            if leftovers:
                summary = summary.model_copy(
                    update={"evidence": summary.evidence | {"outbox_alerted": leftovers.count(AlertResult.SENT)}}
                )
            self._summary.publish(summary)
            self.last_report = None


def _describe(report: ScanReport) -> str:
    counts = ", ".join(f"{count} {kind}" for kind, count in report.counts().items()) or "no findings"
    names = unchecked(report.errors)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    errors = f"; {len(report.errors)} could not be checked: {shown}" if report.errors else ""
    return f"{report.images} AMI(s) in {sum(r.listed for r in report.regions)} region(s): {counts}{errors}"


def coverage_gap_finding(gap: Gap, account: str, region: str) -> Finding:
    """The one place an ``amiguard-coverage-gap`` finding is built."""
    return Finding(
        type=FindingType.COVERAGE_GAP,
        severity=Severity.CRITICAL if gap.blind else Severity.HIGH,
        summary=f"amiguard's {gap.kind} {gap.resource}: {gap.problem}",
        account=account,
        region=region,
        action=Action.NONE,
        evidence=gap.to_evidence(),
    )


def summary_finding(report: ScanReport, home: str, settings: Settings, *, standing: int = 0) -> Finding:
    """One message saying what the sweep covered, found, did and could not check.

    ``standing``: findings not re-alerted because they were alerted less than ``RealertHours`` ago.
    """
    fixed = sum(finding.action in REMEDIATED for finding in report.findings)
    quiet = (
        f" {standing} standing finding(s) not re-alerted (alerted < {settings.realert_hours} h ago)."
        if standing
        else ""
    )
    return Finding(
        type=FindingType.SWEEP_SUMMARY,
        severity=Severity.INFO,
        summary=f"Sweep ({settings.mode.value} mode): {_describe(report)}.{quiet}",
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
            "standing_not_realerted": standing,
            "realert_hours": settings.realert_hours,
            "errors": [error.to_dict() for error in report.errors],
            "unchecked": unchecked(report.errors),
            "complete": report.complete,
        },
    )
