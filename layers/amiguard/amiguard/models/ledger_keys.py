"""Every key of the one ledger table (``LedgerTable``): the one place its layout is decided.

- findings (and the alert outbox): pk ``IMAGE#<region>#<image-id>`` (or ``ACCOUNT#<account>#<region>``),
  sk ``FINDING#<iso-time>#<fingerprint>#<event-id>``;
- alert claims (de-duplication): pk ``DEDUP#<keyed hash of the fingerprint>``, sk ``DEDUP``;
- DR replicas: pk ``IMAGE#<source-region>#<source-image-id>``, sk ``REPLICA#<destination-region>``;
- tag violations: pk ``VIOLATIONS#<account>#<region>``, sk ``<image-id>``;
- Slack posts: pk ``POSTED#<alert id>``, sk ``SLACK``.

The ``by-time`` index's partition key is ``DAY#YYYY-MM-DD``. An AMI's findings and replicas share its partition:
"everything about this AMI" is one Query. The table's resource policy and each role's grants name these
prefixes (template.yaml: the notifier may write ``POSTED#`` rows only).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

FINDING_PREFIX = "FINDING#"
REPLICA_PREFIX = "REPLICA#"
POSTED_PREFIX = "POSTED#"
DEDUP_SK = "DEDUP"
POSTED_SK = "SLACK"


def image_pk(region: str, image_id: str) -> str:
    """An AMI's partition: its findings and, for a DR source, its replicas."""
    return f"IMAGE#{region}#{image_id}"


def account_pk(account: str | None, region: str) -> str:
    """The partition of findings about an account's region rather than an AMI (block public access, coverage,
    a member role). Rows written as ``ACCOUNT#<region>`` before organization mode are the stack's own account's,
    read as they are (no reader parses a partition key)."""
    return f"ACCOUNT#{account}#{region}" if account else f"ACCOUNT#{region}"


def finding_sk(occurrence: str) -> str:
    return f"{FINDING_PREFIX}{occurrence}"


def dedup_pk(keyed_hash: str) -> str:
    return f"DEDUP#{keyed_hash}"


def replica_sk(destination_region: str) -> str:
    return f"{REPLICA_PREFIX}{destination_region}"


def violations_pk(account: str, region: str) -> str:
    return f"VIOLATIONS#{account}#{region}"


def posted_pk(alert_id: str) -> str:
    return f"{POSTED_PREFIX}{alert_id}"


def day_key(moment: datetime | date) -> str:
    """The ``by-time`` index partition of a row written about ``moment`` (its UTC day), or of a day."""
    day = moment.astimezone(UTC).date() if isinstance(moment, datetime) else moment
    return f"DAY#{day:%Y-%m-%d}"


def day_key_of(iso_time: str) -> str:
    """:func:`day_key` of an ISO 8601 UTC time already written as text."""
    return f"DAY#{iso_time[:10]}"
