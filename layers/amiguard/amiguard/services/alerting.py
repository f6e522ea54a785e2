"""The one alert path of every function: stage the finding in the ledger (the outbox), alert it once per window.

Every function's ``build_service()`` wraps its SNS adapter in :class:`LedgeredAlerts`, so the outbox,
de-duplication and the audit trail need no code in the services beyond two calls:

1. ``stage(findings)`` before the remediation (:func:`amiguard.services.cloudtrail.stage_findings`): the rows
   are written ``pending``. Once the AMI is fixed, current state no longer shows the problem; the row does.
2. ``publish(finding)`` after it, then ``publish_pending(event_id, event_time)``
   (:func:`amiguard.services.cloudtrail.publish_findings`): every row of the event still pending is alerted,
   so a retry whose current state shows nothing (the first attempt revoked, then SNS failed) still alerts.

A duplicate (same image, type and evidence inside the window, which includes the same event delivered twice,
in ``audit`` mode too) is recorded and counted, not alerted. The window is the dedup window (1 h) for alerts
raised by an event and ``RealertHours`` for the sweeper's (a standing problem found again every day). When
publishing fails the claim is given back and the error raised: Lambda retries the event, and the retry alerts.
Two concurrent publishers of one finding are kept apart by the claim's lease (:class:`~amiguard.aws.ledger.
AlertInFlight`).

Before claiming, a finding covered by a reviewed exception (parameter ``Exceptions``,
:mod:`amiguard.policy.exceptions`) is settled ``excepted`` in the ledger and not alerted. After the alert is
published (never before, and never instead: a Security Hub that is off, throttled or failing is logged and
counted, the alert stands), the finding is imported into Security Hub when ``SecurityHub=enabled``.

Plug-in points for other delivery guarantees: :meth:`LedgeredAlerts.publish` hands the publisher the
finding only after the claim is taken, and the claim's ``token``/``dedup_key`` (``Claim``) are stable for
one alert across retries of one claimant, usable as an SNS deduplication id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache

from aws_lambda_powertools.metrics import MetricUnit

from amiguard.aws.alerts import SnsAlerts, topic_region
from amiguard.aws.clients import ClientFactory
from amiguard.aws.image_tags import current_image_tags
from amiguard.aws.ledger import STALE_CLAIM, DynamoLedger, finding_key
from amiguard.aws.secrets import SecretKey, secret_region
from amiguard.aws.securityhub import HubErrors, SecurityHubExport, hub_unavailable
from amiguard.models.exceptions import FindingException
from amiguard.models.findings import Finding
from amiguard.models.settings import SecurityHub, Settings
from amiguard.observability import invocation_deadline, logger, metrics
from amiguard.policy.exceptions import covering_exception
from amiguard.services.ports import (
    ActingAccounts,
    AlertLedgerPort,
    AlertResult,
    AlertsPort,
    FindingsHubPort,
    OutboxPort,
)

# account -> the clients acting in that account: the functions' own in one account; in organization mode those
# made with the member role of the AMI's account.
AccountClientsOf = Callable[[str], ClientFactory]


# How far back the sweeper looks for rows left pending: longer than Lambda's retries (6 h of event age) plus a
# day between sweeps.
OUTBOX_LOOKBACK = timedelta(days=2)


class LedgeredAlerts:
    """An :class:`~amiguard.services.ports.OutboxPort`: stages, de-duplicates and records before publishing.

    ``window``: how long an alert suppresses the same finding (None: the ledger's dedup window);
    ``exceptions``: the reviewed exceptions, matched by AMI id or by the AMI's current tags (``image_tags(finding)``,
    looked up only for a tag exception); ``hub``: Security Hub, or None when it is disabled.
    """

    def __init__(
        self,
        ledger: AlertLedgerPort,
        alerts: AlertsPort,
        *,
        window: timedelta | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        exceptions: Sequence[FindingException] = (),
        image_tags: Callable[[Finding], Mapping[str, str] | None] = lambda _finding: None,
        hub: FindingsHubPort | None = None,
    ) -> None:
        self._ledger = ledger
        self._alerts = alerts
        self._window = window
        self._clock = clock
        self._exceptions = tuple(exceptions)
        self._image_tags = image_tags
        self._hub = hub
        self._staged: set[tuple[str, str]] = set()  # rows this environment staged and has not published yet

    def stage(self, findings: Sequence[Finding]) -> None:
        for finding in findings:
            self._ledger.stage(finding)
            self._staged.add(finding_key(finding))

    def publish(self, finding: Finding) -> AlertResult:
        key = finding_key(finding)
        if key not in self._staged:
            self._ledger.stage(finding)  # not staged before acting (a finding with no remediation): now
        self._staged.discard(key)
        return self._alert(finding, finding.fingerprint, key)

    def publish_pending(self, event_id: str | None, event_time: datetime) -> list[AlertResult]:
        """Alert every row of this event still pending (staged by an attempt that did not get to alert)."""
        return [
            self._alert(row.finding, row.fingerprint, row.key)
            for row in self._ledger.pending_for_event(event_id, event_time)
        ]

    def publish_stale_pending(self) -> list[AlertResult]:
        """The sweeper's pass over the outbox: rows pending for longer than any invocation runs."""
        now = self._clock()
        rows = self._ledger.pending_since(now - OUTBOX_LOOKBACK, staged_before=now - STALE_CLAIM)
        if rows:
            logger.warning("alerting findings left pending in the outbox", extra={"count": len(rows)})
        # Staged before its remediation by an invocation that then failed for good: say so, the action may not
        # have taken effect (this sweep's own findings report the current state).
        return [self._alert(_left_pending(row.finding), row.fingerprint, row.key) for row in rows]

    def _alert(self, finding: Finding, fingerprint: str, key: tuple[str, str]) -> AlertResult:
        """Claim, publish, confirm the finding whose row is ``key`` (staged); then Security Hub."""
        excepted = self._exception_for(finding)
        if excepted is not None:
            self._ledger.mark_excepted(key, excepted)
            logger.info(
                "finding covered by an exception: recorded, not alerted",
                extra={"type": finding.type, "image_id": finding.image_id, "exception": excepted.name},
            )
            metrics.add_metric(name="FindingsExcepted", unit=MetricUnit.Count, value=1)
            self._export(finding, excepted)
            return AlertResult.EXCEPTED
        claim = self._ledger.claim(finding, window=self._window, fingerprint=fingerprint, key=key)
        if not claim.first:
            logger.info(
                "duplicate alert suppressed",
                extra={"fingerprint": fingerprint, "suppressed": claim.suppressed, "type": finding.type},
            )
            metrics.add_metric(name="AlertsSuppressed", unit=MetricUnit.Count, value=1)
            return AlertResult.SUPPRESSED
        try:
            self._alerts.publish(finding)
        except Exception:
            self._ledger.release(claim)
            raise
        self._ledger.confirm_sent(claim)
        self._export(finding, None)
        return AlertResult.SENT

    def _exception_for(self, finding: Finding) -> FindingException | None:
        if not self._exceptions:
            return None
        active, expired = covering_exception(
            finding,
            self._exceptions,
            today=self._clock().astimezone(UTC).date(),
            image_tags=lambda: self._image_tags(finding),
        )
        if active is None and expired:
            names = [entry.name for entry in expired]
            logger.warning("exception expired: the finding is alerted again", extra={"exceptions": names})
            metrics.add_metric(name="ExceptionsExpired", unit=MetricUnit.Count, value=1)
        return active

    def _export(self, finding: Finding, excepted: FindingException | None) -> None:
        """Security Hub after the alert: whatever it answers, the alert stands (logged and counted, not raised)."""
        if self._hub is None:
            return
        extra = {"type": finding.type, "account": finding.account, "region": finding.region}
        try:
            outcome = self._hub.export(finding, excepted=excepted)
        except HubErrors as error:
            if hub_unavailable(error):
                logger.warning(
                    "Security Hub is not enabled for this account and region: finding not imported",
                    extra=extra | {"error": str(error)},
                )
                metrics.add_metric(name="SecurityHubUnavailable", unit=MetricUnit.Count, value=1)
            else:
                logger.error(
                    "Security Hub import failed after its retries: the alert was sent, the import is lost",
                    extra=extra | {"error": str(error)},
                )
                metrics.add_metric(name="SecurityHubImportsFailed", unit=MetricUnit.Count, value=1)
            return
        logger.info("finding exported to Security Hub", extra=extra | {"outcome": outcome})
        metrics.add_metric(name="SecurityHubExports", unit=MetricUnit.Count, value=1)


def _left_pending(finding: Finding) -> Finding:
    note = " (alerted by the sweep: the function that found this failed after recording it; check the action)"
    return finding.model_copy(update={"summary": finding.summary + note})


class DeferredAlerts:
    """Builds the alert path at its first use, not at start-up: a cold start makes no SNS or DynamoDB client
    before it has to (the ledger's at the first staged finding, SNS's at the first alert)."""

    def __init__(self, build: Callable[[], AlertsPort]) -> None:
        self._build = cache(build)

    def stage(self, findings: Sequence[Finding]) -> None:
        path = self._build()
        if isinstance(path, OutboxPort):
            path.stage(findings)

    def publish(self, finding: Finding) -> AlertResult | None:
        return self._build().publish(finding)

    def publish_pending(self, event_id: str | None, event_time: datetime) -> list[AlertResult]:
        path = self._build()
        return path.publish_pending(event_id, event_time) if isinstance(path, OutboxPort) else []

    def publish_stale_pending(self) -> list[AlertResult]:
        path = self._build()
        return path.publish_stale_pending() if isinstance(path, OutboxPort) else []


def alert_path(
    settings: Settings,
    clients: ClientFactory,
    *,
    standing: bool = False,
    accounts: ActingAccounts | None = None,
) -> DeferredAlerts:
    """What every function's ``build_service()`` passes as ``alerts``: SNS behind the ledger, made on first use.

    ``standing``: the findings are re-found on a schedule (the sweeper), so an alert suppresses the same
    finding for ``RealertHours``, not the dedup window. Without a ledger table (a partial local set-up) alerts
    go straight to SNS, un-deduplicated. ``accounts`` (organization mode): clients acting in the finding's
    account (Security Hub imports there; a tag exception reads the AMI's tags there) and its name in the
    organization; None: ``clients``, this account's.
    """
    acting = accounts if accounts is not None and accounts.organization else None

    def build() -> AlertsPort:
        of_account = acting.clients_of if acting else None
        path = _ledgered_sns(settings, clients, standing=standing, account_clients=of_account)
        return path if acting is None else AccountNaming(path, acting.name_of)

    return DeferredAlerts(build)


class AccountNaming:
    """An alert path that gives each finding its account's name (``account_name``) before the ledger and SNS
    see it: the row and the alert say "prod (111122223333)", not a bare id. Naming never stops an alert."""

    def __init__(self, inner: AlertsPort, names: Callable[[str], str | None]) -> None:
        self._inner = inner
        self._names = names

    def _named(self, finding: Finding) -> Finding:
        if finding.account_name or not finding.account:
            return finding
        name = self._names(finding.account)
        return finding.model_copy(update={"account_name": name}) if name else finding

    def stage(self, findings: Sequence[Finding]) -> None:
        if isinstance(self._inner, OutboxPort):
            self._inner.stage([self._named(finding) for finding in findings])

    def publish(self, finding: Finding) -> AlertResult | None:
        return self._inner.publish(self._named(finding))

    def publish_pending(self, event_id: str | None, event_time: datetime) -> list[AlertResult]:
        return self._inner.publish_pending(event_id, event_time) if isinstance(self._inner, OutboxPort) else []

    def publish_stale_pending(self) -> list[AlertResult]:
        return self._inner.publish_stale_pending() if isinstance(self._inner, OutboxPort) else []


def _ledgered_sns(
    settings: Settings, clients: ClientFactory, *, standing: bool, account_clients: AccountClientsOf | None
) -> AlertsPort:
    # SNS and Secrets Manager clients at the first alert; only the ledger's is needed before the remediation.
    sns = DeferredAlerts(
        lambda: SnsAlerts(clients.sns(topic_region(settings.alert_topic_arn)), settings.alert_topic_arn)
    )
    if not settings.ledger_table:
        return sns
    realert = timedelta(hours=settings.realert_hours)
    key = settings.dedup_key_secret
    hub = None
    if settings.security_hub is SecurityHub.ENABLED:
        hub = SecurityHubExport(
            (lambda account, region: account_clients(account).securityhub(region))
            if account_clients
            else (lambda _account, region: clients.securityhub(region))
        )
    ledger = DynamoLedger(
        clients.dynamodb(),
        settings.ledger_table,
        # Without a key (a partial local set-up, never the template's) the hash is an unkeyed HMAC.
        dedup_key=SecretKey(lambda: clients.secretsmanager(secret_region(key)), key) if key else lambda: b"",
        realert_window=realert,
        deadline=invocation_deadline,
    )
    return LedgeredAlerts(
        ledger,
        sns,
        window=realert if standing else None,
        exceptions=settings.exceptions,
        # Only for a tag exception; in the AMI's own account (organization mode: through its member role).
        image_tags=lambda finding: current_image_tags(
            account_clients(finding.account).ec2(finding.region) if account_clients else clients.ec2(finding.region),
            finding.image_id or "",
        ),
        hub=hub,
    )
