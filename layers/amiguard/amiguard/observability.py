"""Logs and metrics for every function: one structured log line and a set of EMF metrics per event.

Handlers decorate with ``logger.inject_lambda_context`` and ``metrics.log_metrics``; services stay free of
both and return an :class:`~amiguard.services.outcome.Outcome` that :func:`report` turns into signals.
"""

from __future__ import annotations

import warnings
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from amiguard.models.findings import Action
from amiguard.policy.screening import event_shape_problem
from amiguard.services.outcome import Outcome, Status

NAMESPACE = "amiguard"

# Events that only drop or find nothing flush no application metric; that is expected, not a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger(service="amiguard")
metrics = Metrics(namespace=NAMESPACE, service="amiguard")

# When Lambda stops the invocation being handled (None outside one): nothing it started can outlive it.
_deadline: ContextVar[datetime | None] = ContextVar("amiguard_invocation_deadline", default=None)

REMEDIATIONS = {Action.REVOKED, Action.TAGGED, Action.COPIED, Action.DEPRECATED, Action.DISABLED, Action.DEREGISTERED}


def report(outcome: Outcome, *, function: str) -> dict[str, Any]:
    """Log the outcome and emit its metrics; return the handler's (small) result."""
    summary = outcome.summary()
    if outcome.status is Status.DROPPED:
        logger.info(
            "event dropped", extra={"reason": outcome.reason, "detail": outcome.detail, "event_id": outcome.event_id}
        )
        with single_metric(name="EventsDropped", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
            metric.add_dimension(name="function", value=function)
            metric.add_dimension(name="reason", value=outcome.reason)
        return summary
    logger.info(
        "event handled", extra={"status": outcome.status.value, "reason": outcome.reason, "event_id": outcome.event_id}
    )
    for finding in outcome.findings:
        logger.warning(finding.summary, extra={"finding": finding.to_message()})
        with single_metric(name="Findings", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
            metric.add_dimension(name="type", value=finding.type.value)
            metric.add_dimension(name="severity", value=finding.severity.value)
        # One series per severity, so an alarm can watch "any critical finding" whatever its type.
        with single_metric(name="FindingsBySeverity", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
            metric.add_dimension(name="severity", value=finding.severity.value)
        if finding.action in REMEDIATIONS:
            metrics.add_metric(name="Remediations", unit=MetricUnit.Count, value=1)
        if finding.exposure_seconds is not None:
            metrics.add_metric(name="ExposureSeconds", unit=MetricUnit.Seconds, value=finding.exposure_seconds)
    for measurement in outcome.measurements:
        metrics.add_metric(name=measurement.name, unit=MetricUnit(measurement.unit), value=measurement.value)
    return summary


class EventService(Protocol):
    def handle(self, raw_event: dict[str, Any]) -> Outcome: ...
    def publish(self, outcome: Outcome) -> None: ...


class InvocationContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def invocation_deadline() -> datetime | None:
    """When Lambda will stop the invocation being handled; None outside :func:`handle_event` (the CLI)."""
    return _deadline.get()


def handle_event(service: EventService, event: object, context: InvocationContext, *, function: str) -> dict[str, Any]:
    """Every handler's body: decide and act, log and count, then alert.

    Findings are logged before they are published, so a failing SNS publish (raised: Lambda retries and
    the dead-letter queue keeps the event) never loses what was found.
    """
    if drop := event_shape_problem(event):
        return report(Outcome.dropped(drop), function=function)  # the services parse objects only
    payload = cast(dict[str, Any], event)  # event_shape_problem checked it is an object
    remaining = timedelta(milliseconds=context.get_remaining_time_in_millis())
    token = _deadline.set(datetime.now(UTC) + remaining)
    try:
        outcome = service.handle(payload)
        result = report(outcome, function=function)
        service.publish(outcome)
    finally:
        _deadline.reset(token)
    if outcome.retry_error is not None:
        raise outcome.retry_error
    return result
