"""DynamoDB adapter for amiguard's own record of tag violations: when it first marked each AMI, and for what.

The ``amiguard:violation*`` tags mirror these rows for people; escalation (deprecate, disable, deregister)
counts the grace period from the row, because anyone with ec2:CreateTags can write a tag.

Rows in the ledger table (``LedgerTable``), beside the finding and dedup rows of :mod:`amiguard.aws.ledger`:
pk ``VIOLATIONS#<account>#<region>``, sk ``<image-id>``, attributes ``since`` (ISO 8601 UTC, whole seconds),
``violation`` (the tag value), ``expires_at`` (TTL). One partition per account and region, so the hourly
escalation sweep reads every violation of its region in one Query. A resolved violation's row loses
``since`` and expires within a day (UpdateItem: the functions call only the operations of the trimmed
models, and an UpdateItem costs what a DeleteItem does).

Cost (on-demand; a row is well under 1 KB): marking a new violation is one conditional PutItem (1 write
unit), a violation whose keys change one UpdateItem (1), a resolved or vanished one one UpdateItem (1); an
event that changes nothing writes nothing. Reads are strongly consistent Queries: 1 read unit per AMI an
event names (up to ``PER_IMAGE_QUERIES_MAX``; more AMIs in one event read the region's partition once), and
for the sweep 1 read unit per 4 KB of the region's rows (~25 AMIs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from amiguard.aws.errors import error_code
from amiguard.models.ledger_keys import violations_pk
from amiguard.policy.tagging import ViolationRecord, iso, parse_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PER_IMAGE_QUERIES_MAX = 10  # beyond this many AMIs in one event, one Query of the partition is cheaper
RETENTION = timedelta(days=400)  # a backstop: the sweep clears the rows of AMIs that are gone
CLEARED_RETENTION = timedelta(days=1)


def _record(item: dict[str, Any]) -> ViolationRecord | None:
    since = parse_iso(item.get("since", {}).get("S"))
    violation = item.get("violation", {}).get("S")
    if since is None or not isinstance(violation, str):
        return None  # cleared, or not a row amiguard wrote: no record (a new violation starts its grace period)
    return ViolationRecord(since=since, violation=violation)


def _expiry(after: timedelta) -> dict[str, str]:
    return {"N": str(int((datetime.now(UTC) + after).timestamp()))}


class DynamoViolations:
    """The violation rows of one ledger table.

    ``dynamodb`` makes (or returns) the client on first use: an event tag_enforcer drops (most CreateTags name
    no AMI) never pays for loading the DynamoDB service model on a cold start.
    """

    def __init__(self, dynamodb: Callable[[], DynamoDBClient], table_name: str) -> None:
        self._client = dynamodb
        self.table_name = table_name

    @property
    def _db(self) -> DynamoDBClient:
        return self._client()

    def _key(self, account: str, region: str, image_id: str) -> dict[str, Any]:
        return {"pk": {"S": violations_pk(account, region)}, "sk": {"S": image_id}}

    # --- reads --------------------------------------------------------------------------------------------

    def records(self, account: str, region: str, image_ids: Sequence[str]) -> dict[str, ViolationRecord]:
        """The records of these AMIs (those without one are absent)."""
        unique = list(dict.fromkeys(image_ids))
        if len(unique) > PER_IMAGE_QUERIES_MAX:
            wanted = set(unique)
            return {key: value for key, value in self.in_region(account, region).items() if key in wanted}
        found: dict[str, ViolationRecord] = {}
        for image_id in unique:
            for item in self._items(account, region, image_id):
                if (record := _record(item)) is not None:
                    found[image_id] = record
        return found

    def in_region(self, account: str, region: str) -> dict[str, ViolationRecord]:
        """Every recorded violation of the account in the region (one partition)."""
        found: dict[str, ViolationRecord] = {}
        for item in self._items(account, region):
            if (record := _record(item)) is not None:
                found[item["sk"]["S"]] = record
        return found

    def _items(self, account: str, region: str, image_id: str | None = None) -> Iterator[dict[str, Any]]:
        values: dict[str, Any] = {":pk": {"S": violations_pk(account, region)}}
        condition = "pk = :pk"
        if image_id is not None:
            condition += " AND sk = :image"
            values[":image"] = {"S": image_id}
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        ):
            yield from page.get("Items", [])

    # --- writes -------------------------------------------------------------------------------------------

    def record(self, account: str, region: str, image_id: str, violation: str, since: datetime) -> ViolationRecord:
        """Record a violation first seen at ``since``, unless one is recorded already: the record that holds."""
        try:
            self._db.put_item(
                TableName=self.table_name,
                Item={
                    **self._key(account, region, image_id),
                    "kind": {"S": "violation"},
                    "since": {"S": iso(since)},
                    "violation": {"S": violation},
                    "expires_at": _expiry(RETENTION),
                },
                ConditionExpression="attribute_not_exists(since)",  # free: no row, or a cleared one
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            old: Any = error.response.get("Item") or {}  # ReturnValuesOnConditionCheckFailure: the row that held
            held = _record(dict(old))
            if held is None:
                raise
            return held  # another invocation marked it first: its start holds
        return ViolationRecord(since=since.replace(microsecond=0), violation=violation)

    def update(self, account: str, region: str, image_id: str, violation: str) -> None:
        """The violation's keys changed; its start stays (a record cleared meanwhile stays cleared)."""
        self._conditional_update(
            account,
            region,
            image_id,
            UpdateExpression="SET violation = :violation",
            ConditionExpression="attribute_exists(since)",
            ExpressionAttributeValues={":violation": {"S": violation}},
        )

    def clear(self, account: str, region: str, image_id: str) -> None:
        """The AMI is compliant again (or gone): the next violation starts a new grace period."""
        self._conditional_update(
            account,
            region,
            image_id,
            UpdateExpression="REMOVE since, violation SET expires_at = :soon",
            ConditionExpression="attribute_exists(since)",
            ExpressionAttributeValues={":soon": _expiry(CLEARED_RETENTION)},
        )

    def _conditional_update(self, account: str, region: str, image_id: str, **arguments: Any) -> None:
        try:
            self._db.update_item(TableName=self.table_name, Key=self._key(account, region, image_id), **arguments)
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
