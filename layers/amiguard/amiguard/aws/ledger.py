"""DynamoDB ledger adapter: every finding and action, the alert outbox, alert de-duplication, audit queries.

One table (``LedgerTable``; the key contract, docs/architecture.md):

- finding rows: pk ``IMAGE#<region>#<image-id>`` (account-level findings: ``ACCOUNT#<account>#<region>``),
  sk ``FINDING#<iso-time>#<fingerprint>#<event-id>``; index ``by-time`` (keys only) on ``DAY#YYYY-MM-DD`` /
  ``<iso-time>#<event-id>#<fingerprint>``: "everything about this AMI" is one Query on the table, "the last
  24 h" and "every row of this event" Queries on the index (then a BatchGetItem of the rows).
  A finding row is also the finding's **outbox** entry: it is written ``alert = pending`` before the
  remediation (:meth:`DynamoLedger.stage`) and becomes ``sent`` or ``suppressed`` once the alert path has
  decided. A row still ``pending`` is published by the next attempt of its event, or by the sweeper,
  whatever current state says by then.
- dedup rows: pk ``DEDUP#<keyed hash of the fingerprint>``, sk ``DEDUP``: who claimed the alert, until
  when, whether it was sent, and how many duplicates were suppressed since. The fingerprint is a hash of
  public data; keyed (HMAC with the stack's secret), the dedup key cannot be computed, so a row written in
  advance by someone else never suppresses an alert.

Write units of a new alert (what DynamoDB bills): 5. Stage the row (1, rows stay under 1 KB: the finding is
kept zlib-compressed) + its index entry (1, keys only), claim (1), mark the claim sent (1), mark the row sent
(1; an update touches no indexed or projected attribute, so the index is not written). No transactions: they
bill every item twice. The two last writes go claim first: a row left ``pending`` after a crash between them is
recognised by the next attempt as the sent claim's own row and marked ``sent``, never alerted again.

Why hand-rolled and not Powertools' idempotency utility: it keys on the event (one record per invocation)
and caches a return value; the alert path needs one claim per finding fingerprint across events, a dedup
window, a count of suppressed duplicates, and a lease bound to the claimant's Lambda deadline.

The time in a finding's keys is the event's time (the detection time when there is no event), so a
redelivered event writes the same row again instead of a second one. Every row carries ``expires_at`` (TTL).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from amiguard.aws.errors import error_code
from amiguard.models import ledger_keys
from amiguard.models.exceptions import FindingException
from amiguard.models.findings import Finding
from amiguard.models.ledger_keys import DEDUP_SK, FINDING_PREFIX, account_pk, day_key, dedup_pk, image_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_DEDUP_WINDOW = timedelta(hours=1)
DEFAULT_REALERT_WINDOW = timedelta(hours=168)
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
BATCH_GET_LIMIT = 100  # keys per BatchGetItem


class AlertState(StrEnum):
    """Where a finding row is on the alert path."""

    PENDING = "pending"  # staged (before the remediation), not yet alerted: the outbox
    SENT = "sent"
    SUPPRESSED = "suppressed"  # a duplicate of an alert sent inside its window
    EXCEPTED = "excepted"  # covered by a reviewed exception (parameter Exceptions): recorded, not alerted


def iso(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601 (microseconds, ``Z``): sorts lexically in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def finding_time(finding: Finding) -> datetime:
    return finding.event_time or finding.detected_at


def finding_pk(finding: Finding) -> str:
    """The partition of a finding's row. Every key carries the account where an id alone does not name it:
    an AMI id is unique in its region across all accounts (AMIs are shared and launched by id alone), so an
    AMI's partition is its region and id, in any account; an account-level finding names its account."""
    if finding.image_id:
        return image_pk(finding.region, finding.image_id)
    return account_pk(finding.account, finding.region)


def occurrence(finding: Finding) -> str:
    """``<iso-time>#<fingerprint>#<event id>``: one row per event, the same row when an event is redelivered.

    CloudTrail times have whole seconds, so two events in one second are told apart by their event ids.
    """
    return f"{iso(finding_time(finding))}#{finding.fingerprint}#{finding.event_id or '-'}"


def finding_sk(finding: Finding) -> str:
    return ledger_keys.finding_sk(occurrence(finding))


def finding_key(finding: Finding) -> tuple[str, str]:
    """The (pk, sk) of the finding's row."""
    return finding_pk(finding), finding_sk(finding)


def _event_prefix(event_id: str | None, moment: datetime) -> str:
    """The by-time sort key prefix shared by every row of one event."""
    return f"{iso(moment)}#{event_id or '-'}#"


def dedup_hash(key: bytes, fingerprint: str) -> str:
    """The dedup row's key: HMAC-SHA256 of the fingerprint with the stack's secret (128 bits, hex)."""
    return hmac.new(key, fingerprint.encode(), hashlib.sha256).hexdigest()[:32]


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": str(int(value)) if float(value).is_integer() else repr(float(value))}


def _key(pk: str, sk: str) -> dict[str, dict[str, str]]:
    return {"pk": _s(pk), "sk": _s(sk)}


def _finding_json(finding: Finding) -> str:
    message = finding.to_message()
    text = json.dumps(message, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if len(text.encode()) <= MAX_FINDING_JSON:
        return text
    message["evidence"] = {"truncated": True, "original_bytes": len(json.dumps(finding.evidence, default=str))}
    return json.dumps(message, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _finding_from(item: dict[str, Any]) -> Finding:
    if "finding_z" in item:
        return Finding.model_validate_json(zlib.decompress(item["finding_z"]["B"]))
    return Finding.model_validate_json(item["finding"]["S"])  # rows written before compression


def _state_of(item: dict[str, Any]) -> AlertState:
    if "alert" in item:
        return AlertState(item["alert"]["S"])
    # rows written before the outbox: a boolean
    return AlertState.SENT if item.get("alerted", {}).get("BOOL") else AlertState.SUPPRESSED


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
    dedup_key: str = ""  # the dedup row's pk


@dataclass(frozen=True)
class StagedFinding:
    """A finding row still ``pending``: written before its remediation, not alerted yet."""

    finding: Finding
    fingerprint: str  # as staged (the finding's own, even when the row's evidence was summarised)
    key: tuple[str, str]
    staged_at: datetime | None


@dataclass(frozen=True)
class LedgerEntry:
    """One finding row as read back: the finding and what happened to its alert."""

    finding: Finding
    alerted: bool
    suppressed_duplicates: int
    state: AlertState = AlertState.SENT
    excepted_by: str | None = None  # the exception that covered it (state ``excepted``)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> LedgerEntry:
        state = _state_of(item)
        return cls(
            finding=_finding_from(item),
            alerted=state is AlertState.SENT,
            suppressed_duplicates=int(item.get("suppressed_duplicates", {}).get("N", "0")),
            state=state,
            excepted_by=item.get("excepted_by", {}).get("S"),
        )


def _no_key() -> bytes:
    return b""


class DynamoLedger:
    """Findings, the alert outbox and alert claims in the ledger table.

    ``dedup_key`` returns the stack's secret (called at the first claim, never at start-up); readers (the
    CLI) and tests may leave it out. ``dedup_window`` bounds duplicates of an event-driven alert,
    ``realert_window`` how long a dedup row lives (a standing finding is re-alerted at most that often).
    """

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table_name: str,
        *,
        dedup_key: Callable[[], bytes] = _no_key,
        dedup_window: timedelta = DEFAULT_DEDUP_WINDOW,
        realert_window: timedelta = DEFAULT_REALERT_WINDOW,
        retention: timedelta = DEFAULT_RETENTION,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        deadline: Callable[[], datetime | None] = lambda: None,
    ) -> None:
        self._db = dynamodb
        self.table_name = table_name
        self._dedup_key = dedup_key
        self.dedup_window = dedup_window
        self.realert_window = realert_window
        self._retention = retention
        self._clock = clock
        self._deadline = deadline  # when the current invocation ends (amiguard.observability.invocation_deadline)

    # --- the outbox ---------------------------------------------------------------------------------------

    def stage(self, finding: Finding) -> bool:
        """Write the finding's row as ``pending`` unless it is already there (a redelivered event).

        Called before the remediation: once the AMI is fixed, current state no longer shows the finding,
        and only this row remembers that it must be alerted. True if written.
        """
        now = self._clock()
        moment = finding_time(finding)
        item: dict[str, Any] = {
            **_key(*finding_key(finding)),
            "gsi1pk": _s(day_key(moment)),
            "gsi1sk": _s(_event_prefix(finding.event_id, moment) + finding.fingerprint),
            "fingerprint": _s(finding.fingerprint),
            "alert": _s(AlertState.PENDING.value),
            "staged_at": _s(iso(now)),
            "finding_z": {"B": zlib.compress(_finding_json(finding).encode(), 9)},
            "expires_at": _n(int((now + self._retention).timestamp())),
        }
        try:
            self._db.put_item(TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    record = stage  # the audit trail's name for it: every finding is recorded, alerted or not

    def pending_for_event(self, event_id: str | None, event_time: datetime) -> list[StagedFinding]:
        """Every row of one event still ``pending``, whatever findings the current attempt raised."""
        keys = self._index_keys(event_time.astimezone(UTC).date(), begins=_event_prefix(event_id, event_time))
        return [self._staged(item) for item in self._get_rows(keys) if _state_of(item) is AlertState.PENDING]

    def pending_since(self, since: datetime, *, staged_before: datetime) -> list[StagedFinding]:
        """Rows of findings timed from ``since`` still ``pending`` and staged before ``staged_before``.

        What the sweeper publishes: findings whose function failed for good after staging them (the event is
        in a failure queue). ``staged_before`` leaves alone what a running invocation is about to publish.
        """
        keys = [key for day in _days(since, self._clock()) for key in self._index_keys(day, start=iso(since))]
        staged = [self._staged(item) for item in self._get_rows(keys) if _state_of(item) is AlertState.PENDING]
        return [row for row in staged if row.staged_at is None or row.staged_at < staged_before]

    @staticmethod
    def _staged(item: dict[str, Any]) -> StagedFinding:
        finding = _finding_from(item)
        staged_at = item.get("staged_at", {}).get("S")
        return StagedFinding(
            finding=finding,
            fingerprint=item.get("fingerprint", {}).get("S") or finding.fingerprint,
            key=(item["pk"]["S"], item["sk"]["S"]),
            staged_at=datetime.strptime(staged_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) if staged_at else None,
        )

    # --- claims -------------------------------------------------------------------------------------------

    def claim(
        self,
        finding: Finding,
        *,
        window: timedelta | None = None,
        fingerprint: str | None = None,
        key: tuple[str, str] | None = None,
    ) -> Claim:
        """Claim the right to alert ``finding`` (its row staged); a duplicate inside ``window`` is suppressed.

        A duplicate is counted on the dedup row and on the row that was alerted, and its own row is settled
        (``suppressed``, or ``sent`` when it is that very row: a redelivery). Raises :class:`AlertInFlight`
        when the first claim's alert is not confirmed sent yet. ``window``: the dedup window by default;
        ``fingerprint`` and ``key``: a staged row's own (see :class:`StagedFinding`), else the finding's.
        """
        fingerprint = fingerprint or finding.fingerprint
        now = self._clock()
        token = str(uuid.uuid4())
        deadline = self._deadline()
        lease_until = deadline + LEASE_MARGIN if deadline else now + STALE_CLAIM
        pk, sk = key or finding_key(finding)
        dedup = dedup_pk(dedup_hash(self._dedup_key(), fingerprint))
        lifetime = max(self.dedup_window, self.realert_window, window or self.dedup_window) + STALE_CLAIM
        try:
            self._db.put_item(
                TableName=self.table_name,
                Item={
                    **_key(dedup, DEDUP_SK),
                    "claim_token": _s(token),
                    "claimed_at": _s(iso(now)),
                    "lease_until": _s(iso(lease_until)),
                    "finding_pk": _s(pk),
                    "finding_sk": _s(sk),
                    "suppressed": _n(0),
                    "expires_at": _n(int((now + lifetime).timestamp())),
                },
                # Free when: never claimed, the window has passed, or a claim died before its alert was sent.
                ConditionExpression=(
                    "attribute_not_exists(pk) OR claimed_at < :window_start"
                    " OR (attribute_not_exists(sent_at) AND lease_until < :now)"
                ),
                ExpressionAttributeValues={
                    ":window_start": _s(iso(now - (window or self.dedup_window))),
                    ":now": _s(iso(now)),
                },
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            return self._count_duplicate(fingerprint, dedup, (pk, sk), now)
        return Claim(fingerprint, token, first=True, finding_key=(pk, sk), dedup_key=dedup)

    def _count_duplicate(self, fingerprint: str, dedup: str, own: tuple[str, str], now: datetime) -> Claim:
        try:
            response = self._db.update_item(
                TableName=self.table_name,
                Key=_key(dedup, DEDUP_SK),
                UpdateExpression="ADD suppressed :one SET last_suppressed_at = :now",
                # Only an alert that went out suppresses its duplicates: see AlertInFlight.
                ConditionExpression="attribute_exists(sent_at)",
                ExpressionAttributeValues={":one": _n(1), ":now": _s(iso(now))},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            raise AlertInFlight(fingerprint) from None
        row = response.get("Attributes", {})
        count = int(row.get("suppressed", {}).get("N", "1"))
        original = (row.get("finding_pk", {}).get("S", ""), row.get("finding_sk", {}).get("S", ""))
        if original == own:  # the alerted event again: its row was alerted (even if not yet marked so)
            self._update_row(own, "ADD suppressed_duplicates :one SET alert = :state", AlertState.SENT, count=True)
        else:
            if all(original):
                self._update_row(original, "ADD suppressed_duplicates :one", None, count=True)
            # Only a pending row: one alerted before (a redelivery after a later alert) stays sent.
            self._update_row(own, "SET alert = :state", AlertState.SUPPRESSED, only_pending=True)
        return Claim(fingerprint, str(row.get("claim_token", {}).get("S", "")), first=False, suppressed=count)

    def _update_row(
        self,
        key: tuple[str, str],
        expression: str,
        state: AlertState | None,
        *,
        count: bool = False,
        only_pending: bool = False,
    ) -> None:
        values: dict[str, Any] = {}
        condition = "attribute_exists(pk)"
        if only_pending:
            condition, values[":pending"] = "alert = :pending", _s(AlertState.PENDING.value)
        if state is not None:
            values[":state"] = _s(state.value)
        if count:
            values[":one"] = _n(1)
        try:
            self._db.update_item(
                TableName=self.table_name,
                Key=_key(*key),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            # The row expired or was never written (its claim died): the dedup row keeps the count. Or it
            # is not pending: already settled.
            if error_code(error) != "ConditionalCheckFailedException":
                raise

    def confirm_sent(self, claim: Claim) -> None:
        """The alert went out: the claim now holds for the whole window, then the finding's row says so.

        Two single-item updates, not a transaction (which bills both twice). Claim first: see the module
        docstring for why a crash between the two never re-alerts.
        """
        now = _s(iso(self._clock()))
        self._db.update_item(
            TableName=self.table_name,
            Key=_key(claim.dedup_key, DEDUP_SK),
            UpdateExpression="SET sent_at = :now",
            ExpressionAttributeValues={":now": now},
        )
        self._db.update_item(
            TableName=self.table_name,
            Key=_key(*claim.finding_key),
            UpdateExpression="SET alert = :sent, alerted_at = :now",
            ExpressionAttributeValues={":sent": _s(AlertState.SENT.value), ":now": now},
        )

    def mark_excepted(self, key: tuple[str, str], exception: FindingException) -> None:
        """Settle a pending row as ``excepted``: which exception covered it, why, until when (the audit trail)."""
        try:
            self._db.update_item(
                TableName=self.table_name,
                Key=_key(*key),
                UpdateExpression="SET alert = :excepted, excepted_by = :name, exception_reason = :reason,"
                " exception_expires = :expires",
                ConditionExpression="alert = :pending",
                ExpressionAttributeValues={
                    ":excepted": _s(AlertState.EXCEPTED.value),
                    ":pending": _s(AlertState.PENDING.value),
                    ":name": _s(exception.name),
                    ":reason": _s(exception.reason),
                    ":expires": _s(exception.expires.isoformat()),
                },
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":  # settled before (a redelivery)
                raise

    def release(self, claim: Claim) -> None:
        """Give a claim back (its alert could not be sent), so the retry of the event alerts.

        The row stays (its suppressed count too), dated before any window: the next claim takes it over.
        """
        try:
            self._db.update_item(
                TableName=self.table_name,
                Key=_key(claim.dedup_key, DEDUP_SK),
                UpdateExpression="SET claimed_at = :released REMOVE sent_at",
                ConditionExpression="claim_token = :token",
                ExpressionAttributeValues={":released": _s(RELEASED), ":token": _s(claim.token)},
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise

    # --- reading ------------------------------------------------------------------------------------------

    def findings_for_image(self, region: str, image_id: str) -> list[LedgerEntry]:
        """Every finding about one AMI, oldest first."""
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :finding)",
            ExpressionAttributeValues={":pk": _s(image_pk(region, image_id)), ":finding": _s(FINDING_PREFIX)},
        )
        return [LedgerEntry.from_item(item) for item in items if _is_finding(item)]

    def findings_since(self, since: datetime, until: datetime | None = None) -> list[LedgerEntry]:
        """Every finding whose time is in ``[since, until]``, oldest first: one index Query per UTC day."""
        until = until or self._clock()
        keys = [key for day in _days(since, until) for key in self._index_keys(day, start=iso(since), end=iso(until))]
        return [LedgerEntry.from_item(item) for item in self._get_rows(keys)]

    def _index_keys(
        self, day: Any, *, begins: str | None = None, start: str = "", end: str = "~"
    ) -> list[tuple[str, str]]:
        """Table keys of the index entries of one UTC day (in time order), by prefix or time range."""
        if begins is not None:
            condition, values = "gsi1pk = :day AND begins_with(gsi1sk, :prefix)", {":prefix": _s(begins)}
        else:
            condition, values = (
                "gsi1pk = :day AND gsi1sk BETWEEN :start AND :end",
                {
                    ":start": _s(start),
                    ":end": _s(end + "#~"),
                },
            )
        items = self._query(
            IndexName=BY_TIME_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeValues={":day": _s(day_key(day)), **values},
        )
        return [(item["pk"]["S"], item["sk"]["S"]) for item in items]

    def _query(self, **arguments: Any) -> Iterator[dict[str, Any]]:
        # By hand, not get_paginator: the functions' trimmed service models carry no paginators.
        while True:
            page = self._db.query(TableName=self.table_name, **arguments)
            yield from page.get("Items", [])
            if not page.get("LastEvaluatedKey"):
                return
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _get_rows(self, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """The finding rows behind ``keys`` (consistent reads), in the order of ``keys``."""
        wanted = [key for key in dict.fromkeys(keys) if key[1].startswith(FINDING_PREFIX)]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for batch in _chunks(wanted, BATCH_GET_LIMIT):
            request: Any = {self.table_name: {"Keys": [_key(*key) for key in batch], "ConsistentRead": True}}
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    found[(item["pk"]["S"], item["sk"]["S"])] = item
                request = response.get("UnprocessedKeys") or None
        return [found[key] for key in wanted if key in found and _is_finding(found[key])]


def _is_finding(item: dict[str, Any]) -> bool:
    return "finding_z" in item or "finding" in item


def _days(since: datetime, until: datetime) -> Iterator[Any]:
    day = since.astimezone(UTC).date()
    while day <= until.astimezone(UTC).date():
        yield day
        day += timedelta(days=1)


def _chunks(items: Sequence[tuple[str, str]], size: int) -> Iterator[Sequence[tuple[str, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
