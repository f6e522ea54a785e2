"""Whether amiguard already reported an exposure an event names: this very event, or a report made after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from amiguard.aws.exposures import LedgerExposures
from amiguard.aws.ledger import LedgerEntry
from amiguard.models.findings import FindingType
from tests.factories import a_finding

EVENT_TIME = datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC)  # CloudTrail's whole seconds
IMAGE = "ami-0123456789abcdef0"


class _Ledger:
    def __init__(self, *findings: Any) -> None:
        self.entries = [LedgerEntry(finding, alerted=True, suppressed_duplicates=0) for finding in findings]

    def findings_for_image(self, region: str, image_id: str) -> list[LedgerEntry]:
        return self.entries


def _reported(*findings: Any, event_id: str = "new-event") -> bool:
    exposures = LedgerExposures(lambda: _Ledger(*findings))  # type: ignore[arg-type,return-value]
    return exposures.reported_since("us-east-1", EVENT_TIME, event_id=event_id, image_id=IMAGE)


def test_exposure_counts_as_reported_when_this_event_already_raised_it() -> None:
    first_delivery = a_finding(event_id="new-event", event_time=EVENT_TIME, detected_at=EVENT_TIME)
    assert _reported(first_delivery)


def test_exposure_counts_as_reported_when_another_path_reported_it_after_the_event() -> None:
    sweep = a_finding(event_id="sweep", event_time=None, detected_at=EVENT_TIME + timedelta(minutes=10))
    assert _reported(sweep)


def test_previous_exposure_reported_in_the_same_second_does_not_hide_a_new_one() -> None:
    # Given the AMI's earlier untrusted share, reported within the same second as the new event's time
    earlier = a_finding(
        type=FindingType.UNTRUSTED_SHARE,
        event_id="earlier-event",
        event_time=EVENT_TIME,
        detected_at=EVENT_TIME + timedelta(milliseconds=400),
    )
    # Then the new exposure, ended before amiguard looked, is still to be reported
    assert not _reported(earlier)
