"""Has amiguard already reported an exposure? Read from the ledger's finding rows (never from tags or events).

public_guard asks when an event says an AMI or snapshot was exposed but current state shows nothing: if
amiguard itself reported (and, in enforce mode, revoked) that exposure for this very event, or on another path
after the event, this is a redelivery or a late event, not an exposure someone else ended before amiguard looked.

CloudTrail's ``eventTime`` has whole seconds. A finding of another event counts only once it was detected after
the event's second had ended: a report of the AMI's previous exposure, made in the same second, says nothing
about this one (an AMI made public and private again within a second of its last alert would go unreported).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache

from amiguard.aws.ledger import DynamoLedger, LedgerEntry
from amiguard.models.findings import FindingType

EXPOSURE_FINDINGS = frozenset(
    {
        FindingType.PUBLIC_SHARE,
        FindingType.UNTRUSTED_SHARE,
        FindingType.PUBLIC_SNAPSHOT,
        FindingType.EXPOSURE_ENDED_BEFORE_CHECK,
    }
)
EVENT_TIME_RESOLUTION = timedelta(seconds=1)  # CloudTrail's eventTime: 2026-12-01T10:00:05Z


class LedgerExposures:
    """:class:`~amiguard.services.ports.ExposureRecordsPort` over the ledger (made on first use: a cold start
    that has nothing to ask makes no DynamoDB client)."""

    def __init__(self, ledger: Callable[[], DynamoLedger]) -> None:
        self._ledger = cache(ledger)

    def reported_since(
        self,
        region: str,
        since: datetime,
        *,
        event_id: str | None = None,
        image_id: str | None = None,
        snapshot_id: str | None = None,
    ) -> bool:
        ledger = self._ledger()
        # An AMI's findings are one Query on its key; a snapshot's may sit under its AMI or the account's key,
        # so they are read from the by-time index, one Query per UTC day since the event.
        entries = ledger.findings_for_image(region, image_id) if image_id else ledger.findings_since(since)
        return any(self._reports(entry, region, since, event_id, image_id, snapshot_id) for entry in entries)

    @staticmethod
    def _reports(
        entry: LedgerEntry,
        region: str,
        since: datetime,
        event_id: str | None,
        image_id: str | None,
        snapshot_id: str | None,
    ) -> bool:
        finding = entry.finding
        this_event = event_id is not None and finding.event_id == event_id
        return (
            finding.type in EXPOSURE_FINDINGS
            and finding.region == region
            and (this_event or finding.detected_at >= since + EVENT_TIME_RESOLUTION)
            and (image_id is None or finding.image_id == image_id)
            and finding.snapshot_id == snapshot_id
        )
