"""DynamoDB ledger adapter: every finding and action, alert de-duplication, and the audit queries.

One table (``LedgerTable``; the key contract, docs/architecture.md):

- finding rows: pk ``IMAGE#<region>#<image-id>`` (account-level findings: ``ACCOUNT#<region>``),
  sk ``FINDING#<iso-time>#<fingerprint>#<event-id>``, GSI ``by-time`` on ``DAY#YYYY-MM-DD`` / ``<iso-time>#...``;
  "everything about this AMI" is one Query on the table, "everything in the last 24 h" one Query per day on
  the index;
- dedup rows: pk ``DEDUP#<fingerprint>``, sk ``DEDUP``: who claimed the alert, when, and how many
  duplicates were suppressed since.

The time in a finding's keys is the event's time (the detection time when there is no event), so a
redelivered event writes the same row again instead of a second one. Every row carries ``expires_at``
(TTL, default 400 days). The whole finding is kept as JSON in ``finding``; the fields a reader filters on
are also top-level attributes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from amiguard.aws.errors import error_code
from amiguard.models.findings import Finding

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutTypeDef

DEFAULT_DEDUP_WINDOW = timedelta(hours=1)
DEFAULT_RETENTION = timedelta(days=400)
# An alert claimed but never confirmed as sent (the function died between claim and publish) is claimable
# again once its claimant's invocation is over: its Lambda deadline (plus LEASE_MARGIN for clocks), or,
# outside Lambda, after STALE_CLAIM, longer than any amiguard function's timeout. A live claim is never stolen.
STALE_CLAIM = timedelta(minutes=15)
LEASE_MARGIN = timedelta(seconds=5)
BY_TIME_INDEX = "by-time"
RELEASED = "0000-00-00T00:00:00.000000Z"  # a claimed_at before every window: the claim is free
# DynamoDB items are limited to 400 KB; evidence beyond this is summarised in the row (SNS keeps it whole).
MAX_FINDING_JSON = 300_000


def iso(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601 (microseconds, ``Z``): sorts lexically in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def finding_time(finding: Finding) -> datetime:
    return finding.event_time or finding.detected_at


def finding_pk(finding: Finding) -> str:
    if finding.image_id:
        return f"IMAGE#{finding.region}#{finding.image_id}"
    return f"ACCOUNT#{finding.region}"


def occurrence(finding: Finding) -> str:
    """``<iso-time>#<fingerprint>#<event id>``: one row per event, the same row when an event is redelivered.

    CloudTrail times have whole seconds, so two events in one second are told apart by their event ids.
    """
    return f"{iso(finding_time(finding))}#{finding.fingerprint}#{finding.event_id or '-'}"


def finding_sk(finding: Finding) -> str:
    return f"FINDING#{occurrence(finding)}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": str(int(value)) if float(value).is_integer() else repr(float(value))}


def _dedup_key(fingerprint: str) -> dict[str, dict[str, str]]:
    return {"pk": _s(f"DEDUP#{fingerprint}"), "sk": _s("DEDUP")}


def _finding_json(finding: Finding) -> str:
    text = json.dumps(finding.to_message(), ensure_ascii=False, sort_keys=True)
    if len(text.encode()) <= MAX_FINDING_JSON:
        return text
    message = finding.to_message()
    message["evidence"] = {"truncated": True, "original_bytes": len(json.dumps(finding.evidence, default=str))}
    return json.dumps(message, ensure_ascii=False, sort_keys=True)


class AlertInFlight(RuntimeError):
    """The finding's alert is claimed but not confirmed sent, and its claimant's invocation may still run.

    Another invocation is publishing it, or died doing so (a timeout while SNS hung). Suppressing this one
    could lose the alert, so it is raised: Lambda retries the event, by when the alert was sent (a duplicate)
    or the claimant's deadline has passed (the claim is taken over), and what still fails waits in the
    failure queue.
    """

    def __init__(self, fingerprint: str) -> None:
        super().__init__(f"alert {fingerprint} is claimed and not yet sent; retry later")
        self.fingerprint = fingerprint


@dataclass(frozen=True)
class Claim:
    """The answer to "may this finding be alerted now?"."""

    fingerprint: str
    token: str
    first: bool  # True: alert it; False: a duplicate inside the window, suppressed
    suppressed: int = 0  # duplicates suppressed so far in this window (this one included)
    finding_key: tuple[str, str] = ("", "")  # the row of the finding this claim alerts


@dataclass(frozen=True)
class LedgerEntry:
    """One finding row as read back: the finding and what happened to its alert."""

    finding: Finding
    alerted: bool
    suppressed_duplicates: int

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> LedgerEntry:
        return cls(
            finding=Finding.model_validate_json(item["finding"]["S"]),
            alerted=bool(item.get("alerted", {}).get("BOOL", False)),
            suppressed_duplicates=int(item.get("suppressed_duplicates", {}).get("N", "0")),
        )


class DynamoLedger:
    """Findings, actions and alert claims in the ledger table."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table_name: str,
        *,
        dedup_window: timedelta = DEFAULT_DEDUP_WINDOW,
        retention: timedelta = DEFAULT_RETENTION,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        deadline: Callable[[], datetime | None] = lambda: None,
    ) -> None:
        self._db = dynamodb
        self.table_name = table_name
        self.dedup_window = dedup_window
        self._retention = retention
        self._clock = clock
        self._deadline = deadline  # when the current invocation ends (amiguard.observability.invocation_deadline)

    # --- writing ------------------------------------------------------------------------------------------

    def claim_and_record(self, finding: Finding) -> Claim:
        """:meth:`claim_alert` and :meth:`record` in one round trip when the finding is new (the usual case).

        The claim and the row are written in one transaction; when either condition fails (a duplicate inside
        the window, a redelivered event whose claim was given back) the transaction writes nothing and the
        two separate calls decide, exactly as they would alone.
        """
        now = self._clock()
        token = str(uuid.uuid4())
        try:
            self._db.transact_write_items(
                TransactItems=[{"Put": self._claim_put(finding, now, token)}, {"Put": self._row_put(finding)}]
            )
        except ClientError as error:
            if error_code(error) != "TransactionCanceledException":
                raise
            self.record(finding)  # first: the finding is in the audit trail even if the claim raises
            return self.claim_alert(finding)
        return Claim(finding.fingerprint, token, first=True, finding_key=(finding_pk(finding), finding_sk(finding)))

    def claim_alert(self, finding: Finding) -> Claim:
        """Claim the right to alert ``finding``; a second claim inside the window counts a suppressed duplicate.

        Raises :class:`AlertInFlight` when the first claim's alert is not confirmed sent yet.
        """
        now = self._clock()
        token = str(uuid.uuid4())
        try:
            self._db.put_item(**self._claim_put(finding, now, token))
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            return self._count_duplicate(finding, _dedup_key(finding.fingerprint), now)
        return Claim(finding.fingerprint, token, first=True, finding_key=(finding_pk(finding), finding_sk(finding)))

    def _claim_put(self, finding: Finding, now: datetime, token: str) -> PutTypeDef:
        """The conditional write that takes the alert's dedup row (a PutItem or a transaction's Put)."""
        deadline = self._deadline()
        lease_until = deadline + LEASE_MARGIN if deadline else now + STALE_CLAIM
        return {
            "TableName": self.table_name,
            "Item": {
                **_dedup_key(finding.fingerprint),
                "claim_token": _s(token),
                "claimed_at": _s(iso(now)),
                "lease_until": _s(iso(lease_until)),
                "finding_pk": _s(finding_pk(finding)),
                "finding_sk": _s(finding_sk(finding)),
                "suppressed": _n(0),
                "expires_at": _n(int((now + self.dedup_window + STALE_CLAIM).timestamp())),
            },
            # Free when: never claimed, the window has passed, or a claim died before its alert was sent.
            "ConditionExpression": (
                "attribute_not_exists(pk) OR claimed_at < :window_start"
                " OR (attribute_not_exists(sent_at) AND lease_until < :now)"
            ),
            "ExpressionAttributeValues": {
                ":window_start": _s(iso(now - self.dedup_window)),
                ":now": _s(iso(now)),
            },
        }

    def _count_duplicate(self, finding: Finding, key: dict[str, dict[str, str]], now: datetime) -> Claim:
        try:
            response = self._db.update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="ADD suppressed :one SET last_suppressed_at = :now",
                # Only an alert that went out suppresses its duplicates: see AlertInFlight.
                ConditionExpression="attribute_exists(sent_at)",
                ExpressionAttributeValues={":one": _n(1), ":now": _s(iso(now))},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            raise AlertInFlight(finding.fingerprint) from None
        row = response.get("Attributes", {})
        count = int(row.get("suppressed", {}).get("N", "1"))
        original_pk, original_sk = row.get("finding_pk", {}).get("S"), row.get("finding_sk", {}).get("S")
        if original_pk and original_sk:
            self._add_suppressed(original_pk, original_sk)  # the alerted row shows how often it recurred
        return Claim(finding.fingerprint, str(row.get("claim_token", {}).get("S", "")), first=False, suppressed=count)

    def _add_suppressed(self, pk: str, sk: str) -> None:
        try:
            self._db.update_item(
                TableName=self.table_name,
                Key={"pk": _s(pk), "sk": _s(sk)},
                UpdateExpression="ADD suppressed_duplicates :one",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":one": _n(1)},
            )
        except ClientError as error:
            # The original row expired or was never written (its claim died): the dedup row keeps the count.
            if error_code(error) != "ConditionalCheckFailedException":
                raise

    def confirm_sent(self, claim: Claim) -> None:
        """The alert went out: the claim now holds for the whole window, and the finding's row says so.

        Both rows in one transaction: one round trip, and never one without the other.
        """
        now = _s(iso(self._clock()))
        pk, sk = claim.finding_key
        self._db.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": _dedup_key(claim.fingerprint),
                        "UpdateExpression": "SET sent_at = :now",
                        "ExpressionAttributeValues": {":now": now},
                    }
                },
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": {"pk": _s(pk), "sk": _s(sk)},
                        "UpdateExpression": "SET alerted = :yes, alerted_at = :now",
                        "ExpressionAttributeValues": {":yes": {"BOOL": True}, ":now": now},
                    }
                },
            ]
        )

    def release(self, claim: Claim) -> None:
        """Give a claim back (its alert could not be sent), so the retry of the event alerts.

        The row stays (its suppressed count too), dated before any window: the next claim takes it over.
        """
        try:
            self._db.update_item(
                TableName=self.table_name,
                Key=_dedup_key(claim.fingerprint),
                UpdateExpression="SET claimed_at = :released REMOVE sent_at",
                ConditionExpression="claim_token = :token",
                ExpressionAttributeValues={":released": _s(RELEASED), ":token": _s(claim.token)},
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise

    def record(self, finding: Finding) -> bool:
        """Write the finding's row unless it is already there (a redelivered event); True if written.

        The row says ``alerted: false`` until :meth:`confirm_sent`: what the ledger claims was alerted was.
        """
        try:
            self._db.put_item(**self._row_put(finding))
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def _row_put(self, finding: Finding) -> PutTypeDef:
        """The write of a finding's row, unless it is already there (a PutItem or a transaction's Put)."""
        moment = finding_time(finding)
        item: dict[str, Any] = {
            "pk": _s(finding_pk(finding)),
            "sk": _s(finding_sk(finding)),
            "gsi1pk": _s(f"DAY#{moment.astimezone(UTC):%Y-%m-%d}"),
            "gsi1sk": _s(occurrence(finding)),
            "kind": _s("finding"),
            "fingerprint": _s(finding.fingerprint),
            "type": _s(finding.type.value),
            "severity": _s(finding.severity.value),
            "action": _s(finding.action.value),
            "account": _s(finding.account),
            "region": _s(finding.region),
            "alerted": {"BOOL": False},
            "suppressed_duplicates": _n(0),
            "finding": _s(_finding_json(finding)),
            "expires_at": _n(int((self._clock() + self._retention).timestamp())),
        }
        for name, value in (("image_id", finding.image_id), ("snapshot_id", finding.snapshot_id)):
            if value:
                item[name] = _s(value)
        return {"TableName": self.table_name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}

    # --- reading ------------------------------------------------------------------------------------------

    def findings_for_image(self, region: str, image_id: str) -> list[LedgerEntry]:
        """Every finding about one AMI, oldest first."""
        return list(
            self._query(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :finding)",
                ExpressionAttributeValues={":pk": _s(f"IMAGE#{region}#{image_id}"), ":finding": _s("FINDING#")},
            )
        )

    def findings_since(self, since: datetime, until: datetime | None = None) -> list[LedgerEntry]:
        """Every finding whose time is in ``[since, until]``, oldest first: one index Query per UTC day."""
        until = until or self._clock()
        entries: list[LedgerEntry] = []
        day = since.astimezone(UTC).date()
        while day <= until.astimezone(UTC).date():
            entries.extend(
                self._query(
                    IndexName=BY_TIME_INDEX,
                    KeyConditionExpression="gsi1pk = :day AND gsi1sk BETWEEN :start AND :end",
                    ExpressionAttributeValues={
                        ":day": _s(f"DAY#{day:%Y-%m-%d}"),
                        ":start": _s(iso(since)),
                        ":end": _s(iso(until) + "#~"),
                    },
                )
            )
            day += timedelta(days=1)
        return entries

    def _query(self, **arguments: Any) -> Iterator[LedgerEntry]:
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(TableName=self.table_name, **arguments):
            for item in page.get("Items", []):
                if "finding" in item:
                    yield LedgerEntry.from_item(item)
