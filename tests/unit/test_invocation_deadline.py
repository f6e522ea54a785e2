"""handle_event tells the alert path when the Lambda invocation ends, and only while it runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from amiguard.observability import handle_event, invocation_deadline
from amiguard.services.outcome import Outcome


class RecordingService:
    def __init__(self) -> None:
        self.seen: list[datetime | None] = []

    def handle(self, raw_event: dict[str, Any]) -> Outcome:
        self.seen.append(invocation_deadline())
        return Outcome.clean("nothing-to-do")

    def publish(self, outcome: Outcome) -> None:
        self.seen.append(invocation_deadline())


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def test_deadline_is_the_invocations_end_while_handled_and_gone_after() -> None:
    service = RecordingService()
    before = datetime.now(UTC)

    handle_event(service, {}, Context(), function="test")

    assert len(service.seen) == 2
    for deadline in service.seen:
        assert deadline is not None
        assert before + timedelta(seconds=29) < deadline < datetime.now(UTC) + timedelta(seconds=31)
    assert invocation_deadline() is None
