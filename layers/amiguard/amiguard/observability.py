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

from amiguard.aws.accounts import MemberRoleUnavailable, acting_in
from amiguard.models.findings import Action
from amiguard.policy.membership import member_role_unavailable
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
        # Organization mode: the event's account is the one acted in (amiguard.aws.accounts).
        with acting_in(payload.get("account")):
            try:
                outcome = service.handle(payload)
            except MemberRoleUnavailable as error:
                outcome = _member_role_unavailable(error, payload, function=function)
            result = report(outcome, function=function)
            service.publish(outcome)
    finally:
        _deadline.reset(token)
    if outcome.retry_error is not None:
        raise outcome.retry_error
    return result


def _member_role_unavailable(error: MemberRoleUnavailable, payload: dict[str, Any], *, function: str) -> Outcome:
    """The outcome of an event whose account amiguard cannot act in: a finding, then an error for Lambda to retry."""
    raw_detail = payload.get("detail")
    detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
    event_id = str(detail.get("eventID") or payload.get("id") or "") or None
    event_time = _parse_time(detail.get("eventTime") or payload.get("time"))
    finding = member_role_unavailable(
        account=error.account,
        role_arn=error.role_arn,
        region=error.region,
        cause=error.cause,
        code=error.code,
        function=function,
        event_id=event_id,
        event_time=event_time,
    )
    logger.error("member role unavailable; raising so Lambda retries", extra={"error": str(error)})
    with single_metric(name="MemberRoleUnavailable", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="function", value=function)
        metric.add_dimension(name="cause", value=error.cause)
    return Outcome(
        Status.ACTED, "member-role-unavailable", str(error), findings=[finding], event_id=event_id, retry_error=error
    )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
