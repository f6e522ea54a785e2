"""DynamoDB adapter for replica rows in the ledger table (see :mod:`amiguard.models.replicas`).

Every write that decides "who reports this" is conditional, so two invocations racing on the same
source and region (a duplicate event, an approval and a state change together) produce one alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from amiguard.aws.errors import error_code
from amiguard.models.ledger_keys import REPLICA_PREFIX, day_key_of, image_pk, replica_sk
from amiguard.models.replicas import ReplicaRecord, ReplicaStatus
from amiguard.policy.replication import LIVE_STATUSES

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Finished rows (failed, cleaned up) leave the table after a year. The row of an available replica never
# expires: it is the only record that amiguard made that copy (a tag is anyone's to write), so without it
# the replica would no longer be amiguard's to track or clean up.
FINISHED_ROW_TTL = timedelta(days=365)
TERMINAL = frozenset({ReplicaStatus.FAILED, ReplicaStatus.DEPRECATED, ReplicaStatus.DEREGISTERED})


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def to_item(record: ReplicaRecord) -> dict[str, Any]:
    """The DynamoDB item (low-level attribute values) for ``record``."""
    item: dict[str, Any] = {
        "pk": {"S": record.pk},
        "sk": {"S": record.sk},
        "kind": {"S": "replica"},
        "source_region": {"S": record.source_region},
        "source_image_id": {"S": record.source_image_id},
        "destination_region": {"S": record.destination_region},
        "status": {"S": record.status.value},
        "attempts": {"N": str(record.attempts)},
        "generation": {"N": str(record.generation)},
    }
    optional = {
        "replica_id": record.replica_id,
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "finished_by": record.finished_by,
        "last_error": record.last_error,
        "kms_key_id": record.kms_key_id,
        "client_token": record.client_token,
    }
    item |= {key: {"S": value} for key, value in optional.items() if value}
    if record.started_at:
        started = _iso(record.started_at) or ""
        item["gsi1pk"] = {"S": day_key_of(started)}
        item["gsi1sk"] = {"S": f"{started}#{record.source_image_id}#{record.destination_region}"}
    if record.status in TERMINAL:
        ended = record.finished_at or datetime.now(UTC)
        item["expires_at"] = {"N": str(int((ended + FINISHED_ROW_TTL).timestamp()))}
    return item


def from_item(item: dict[str, Any]) -> ReplicaRecord:
    def text(key: str) -> str | None:
        value = item.get(key)
        return str(value["S"]) if value and "S" in value else None

    return ReplicaRecord(
        source_region=text("source_region") or "",
        source_image_id=text("source_image_id") or "",
        destination_region=text("destination_region") or "",
        status=ReplicaStatus(text("status") or ReplicaStatus.FAILED),
        replica_id=text("replica_id"),
        started_at=_parse_time(text("started_at")),
        finished_at=_parse_time(text("finished_at")),
        finished_by=text("finished_by"),
        attempts=int(item.get("attempts", {}).get("N", "0")),
        last_error=text("last_error"),
        kms_key_id=text("kms_key_id"),
        client_token=text("client_token"),
        generation=int(item.get("generation", {}).get("N", "1")),
    )


def _condition_failed(error: ClientError) -> bool:
    return error_code(error) == "ConditionalCheckFailedException"


class DynamoReplicaLedger:
    """Replica rows of the ledger table."""

    def __init__(self, dynamodb: DynamoDBClient, table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table

    def replicas(self, source_region: str, source_image_id: str) -> dict[str, ReplicaRecord]:
        """Every replica row of one source, by destination region (one strongly consistent Query)."""
        response = self._dynamodb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :replica)",
            ExpressionAttributeValues={
                ":pk": {"S": image_pk(source_region, source_image_id)},
                ":replica": {"S": REPLICA_PREFIX},
            },
            ConsistentRead=True,
        )
        records = [from_item(item) for item in response.get("Items", [])]
        return {record.destination_region: record for record in records}

    def claim(self, record: ReplicaRecord) -> bool:
        """Write a new live row unless a live one exists; ``False`` means someone else already did."""
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(pk) OR NOT (#status IN (:pending, :available))",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":pending": {"S": ReplicaStatus.PENDING.value},
                    ":available": {"S": ReplicaStatus.AVAILABLE.value},
                },
            )
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True

    def put(self, record: ReplicaRecord) -> None:
        """Write a non-live row (retrying, failed, would-copy, cleaned up) unconditionally."""
        if record.status in LIVE_STATUSES:
            raise ValueError("live rows are written with claim()")
        self._dynamodb.put_item(TableName=self._table, Item=to_item(record))

    def replace_if(self, record: ReplicaRecord, *, unless_status: ReplicaStatus) -> bool:
        """Write ``record`` unless the stored row already has ``unless_status`` (first writer reports)."""
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(pk) OR #status <> :status",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":status": {"S": unless_status.value}},
            )
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True

    def finish(
        self,
        source_region: str,
        source_image_id: str,
        destination_region: str,
        *,
        replica_id: str,
        status: ReplicaStatus,
        finished_at: datetime,
        error: str | None = None,
        event_id: str | None = None,
    ) -> ReplicaRecord | None:
        """Move a pending row of this replica to ``status``; ``None`` if it is not pending (already done).

        ``event_id``: the event that finishes it, recorded (``finished_by``). A row this very event already moved
        to ``status`` is answered again, as first written: a retry whose first attempt wrote the row and then
        failed (the answer lost, the alert not sent) reports the same completion, with the same alert id, while
        another event (the state change after a sweep or an approval finished it) still finds it done.
        A replica with no row at all (the ledger lost it, or a copy made before amiguard tracked it)
        gets a finished row, so its completion is still reported once.
        """
        finished = _iso(finished_at) or ""
        values: dict[str, Any] = {
            ":status": {"S": status.value},
            ":pending": {"S": ReplicaStatus.PENDING.value},
            ":replica": {"S": replica_id},
            ":finished": {"S": finished},
        }
        update = "SET #status = :status, finished_at = if_not_exists(finished_at, :finished)"
        if status in TERMINAL:
            update += ", expires_at = :expires"
            values[":expires"] = {"N": str(int((finished_at + FINISHED_ROW_TTL).timestamp()))}
        if error:
            update += ", last_error = :error"
            values[":error"] = {"S": error}
        condition = "#status = :pending AND replica_id = :replica"
        if event_id:
            update += ", finished_by = if_not_exists(finished_by, :event)"
            values[":event"] = {"S": event_id}
            condition = "replica_id = :replica AND (#status = :pending OR (#status = :status AND finished_by = :event))"
        try:
            response = self._dynamodb.update_item(
                TableName=self._table,
                Key={
                    "pk": {"S": image_pk(source_region, source_image_id)},
                    "sk": {"S": replica_sk(destination_region)},
                },
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
            return from_item(response["Attributes"])
        except ClientError as error_:
            if not _condition_failed(error_):
                raise
        record = ReplicaRecord(
            source_region=source_region,
            source_image_id=source_image_id,
            destination_region=destination_region,
            status=status,
            replica_id=replica_id,
            finished_at=finished_at,
            finished_by=event_id,
            last_error=error,
        )
        try:
            self._dynamodb.put_item(
                TableName=self._table, Item=to_item(record), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error_:
            if _condition_failed(error_):
                return None
            raise
        return record
