"""What a function did with one event: acted, found nothing to do, or dropped it (with the reason)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from amiguard.models.findings import Finding
from amiguard.policy.screening import Drop


class Status(StrEnum):
    ACTED = "acted"  # findings raised (and, in enforce mode, remediated)
    CLEAN = "clean"  # looked at current state: nothing wrong (already undone, compliant, ...)
    DROPPED = "dropped"  # not acted on, for a logged reason


@dataclass(frozen=True)
class Measurement:
    """A metric the service measured (e.g. replication latency); emitted by :func:`amiguard.observability.report`."""

    name: str
    value: float
    unit: str = "Seconds"


@dataclass
class Outcome:
    status: Status
    reason: str
    detail: str = ""
    findings: list[Finding] = field(default_factory=list)
    event_id: str | None = None
    # The CloudTrail event's time, set once the event passed screening: its staged findings can be looked up.
    event_time: datetime | None = None
    measurements: list[Measurement] = field(default_factory=list)
    # Raised after findings were logged and published: part of the work must be retried (Lambda retries the
    # event); what succeeded is idempotent and is not repeated or re-alerted.
    retry_error: Exception | None = None

    @classmethod
    def dropped(cls, drop: Drop, event_id: str | None = None) -> Outcome:
        return cls(Status.DROPPED, drop.reason, drop.detail, event_id=event_id)

    @classmethod
    def clean(cls, reason: str, detail: str = "", event_id: str | None = None) -> Outcome:
        return cls(Status.CLEAN, reason, detail, event_id=event_id)

    def summary(self) -> dict[str, Any]:
        """The handler's return value: small, JSON-serialisable, useful in logs and the sandbox timeline."""
        return {
            "status": self.status.value,
            "reason": self.reason,
            "detail": self.detail,
            "event_id": self.event_id,
            "findings": [finding.to_message() for finding in self.findings],
        }
