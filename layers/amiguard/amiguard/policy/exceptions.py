"""Which reviewed exception (parameter ``Exceptions``) covers a finding, if any. Pure.

Read by the alert path (:class:`amiguard.services.alerting.LedgeredAlerts`) before it alerts a finding: an
exception covers a finding of one of its types about its AMI (by id, or by a tag the AMI carries now), until
the end of its expiry day (UTC). Findings about no AMI (a region's block public access, amiguard's own
deployment) are never excepted: an exception names an AMI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date

from amiguard.models.exceptions import FindingException
from amiguard.models.findings import Finding


def covering_exception(
    finding: Finding,
    exceptions: Sequence[FindingException],
    *,
    today: date,
    image_tags: Callable[[], Mapping[str, str] | None],
) -> tuple[FindingException | None, list[FindingException]]:
    """The active exception covering ``finding`` (None: alert it) and the expired ones that would have.

    ``image_tags`` gives the AMI's current tags (from EC2, never from the event); it is called only when a tag
    exception could cover the finding, at most once.
    """
    if not finding.image_id:
        return None, []
    candidates = [entry for entry in exceptions if entry.covers_type(finding.type)]
    tags: Mapping[str, str] | None = None
    looked = False
    matching: list[FindingException] = []
    for entry in candidates:
        if entry.image is not None:
            if entry.image == finding.image_id:
                matching.append(entry)
            continue
        pair = entry.tag_pair
        if pair is None:
            continue
        if not looked:
            tags, looked = image_tags(), True
        if tags is not None and tags.get(pair[0]) == pair[1]:
            matching.append(entry)
    active = [entry for entry in matching if entry.active_on(today)]
    expired = [entry for entry in matching if not entry.active_on(today)]
    return (active[0] if active else None), expired
