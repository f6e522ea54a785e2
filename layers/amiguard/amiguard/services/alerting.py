"""The one alert path of every function: record the finding in the ledger, alert it once per window.

Every function's ``build_service()`` wraps its SNS adapter in :class:`LedgeredAlerts`, so de-duplication
and the audit trail need no code in the services themselves. A duplicate (same image, type and evidence
inside the window, which includes the same event delivered twice, in ``audit`` mode too) is recorded and
counted, not alerted. When publishing fails the claim is given back and the error raised: Lambda retries
the event, and the retry alerts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from aws_lambda_powertools.metrics import MetricUnit

from amiguard.aws.alerts import SnsAlerts, topic_region
from amiguard.aws.clients import ClientFactory
from amiguard.aws.ledger import DynamoLedger
from amiguard.models.findings import Finding
from amiguard.models.settings import Settings
from amiguard.observability import invocation_deadline, logger, metrics
from amiguard.services.ports import AlertLedgerPort, AlertsPort


class LedgeredAlerts:
    """An :class:`~amiguard.services.ports.AlertsPort` that records and de-duplicates before publishing."""

    def __init__(self, ledger: AlertLedgerPort, alerts: AlertsPort) -> None:
        self._ledger = ledger
        self._alerts = alerts

    def publish(self, finding: Finding) -> None:
        # Claim and row first, in one round trip: before anything can fail, the finding is in the audit trail.
        claim = self._ledger.claim_and_record(finding)
        if not claim.first:
            logger.info(
                "duplicate alert suppressed",
                extra={"fingerprint": finding.fingerprint, "suppressed": claim.suppressed, "type": finding.type},
            )
            metrics.add_metric(name="AlertsSuppressed", unit=MetricUnit.Count, value=1)
            return
        try:
            self._alerts.publish(finding)
        except Exception:
            self._ledger.release(claim)
            raise
        self._ledger.confirm_sent(claim)


class DeferredAlerts:
    """Builds the alert path at the first alert, not at start-up: on a cold start the revocation does not
    wait for the SNS and DynamoDB clients to be made (their service models are loaded then)."""

    def __init__(self, build: Callable[[], AlertsPort]) -> None:
        self._build = cache(build)

    def publish(self, finding: Finding) -> None:
        self._build().publish(finding)


def alert_path(settings: Settings, clients: ClientFactory) -> AlertsPort:
    """What every function's ``build_service()`` passes as ``alerts``: SNS behind the ledger, made on first use.

    Without a ledger table (a partial local set-up) alerts go straight to SNS, un-deduplicated.
    """
    return DeferredAlerts(lambda: _ledgered_sns(settings, clients))


def _ledgered_sns(settings: Settings, clients: ClientFactory) -> AlertsPort:
    sns = SnsAlerts(clients.sns(topic_region(settings.alert_topic_arn)), settings.alert_topic_arn)
    if not settings.ledger_table:
        return sns
    return LedgeredAlerts(DynamoLedger(clients.dynamodb(), settings.ledger_table, deadline=invocation_deadline), sns)
